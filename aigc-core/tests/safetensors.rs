//! safetensors reader: f32/f16/bf16/i64 tensors, sharded checkpoints, corrupt files.
//! Fixtures from `tools/safetensors_fixtures.py`.

mod common;

use aigc_core::weights::{DType, SafetensorsFile, TensorSource, WeightFile};
use common::{corruptions, must_not_panic};
use serde_json::Value;

fn dir() -> std::path::PathBuf {
    common::fixtures().join("safetensors")
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(dir().join("expected.json")).unwrap()).unwrap()
}

fn check_tensors(file: &dyn TensorSource, tensors: &Value) {
    for t in tensors.as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let view = file.tensor(name).unwrap();
        assert_eq!(view.dtype.name(), t["dtype"].as_str().unwrap(), "{name}");
        let shape: Vec<usize> =
            t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(view.shape, shape, "{name}");
        let values = t["values"].as_array().unwrap();
        if view.dtype == DType::I64 {
            let got: Vec<i64> = view
                .data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let want: Vec<i64> = values.iter().map(|v| v.as_i64().unwrap()).collect();
            assert_eq!(got, want, "{name}");
        } else {
            let got: Vec<u32> = view.to_f32().unwrap().iter().map(|v| v.to_bits()).collect();
            let want: Vec<u32> =
                values.iter().map(|v| (v.as_f64().unwrap() as f32).to_bits()).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}

#[test]
fn reads_every_dtype_exactly() {
    let exp = expected();
    let f = SafetensorsFile::open(dir().join("mixed.safetensors")).unwrap();
    let spec = &exp["files"]["mixed.safetensors"];
    check_tensors(&f, &spec["tensors"]);
    let names: Vec<String> = spec["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(f.tensor_names(), names, "file order");
    let meta = f.metadata().unwrap();
    assert_eq!(meta["purpose"], spec["metadata"]["purpose"].as_str().unwrap());
    assert!(f.tensor("absent").unwrap_err().to_string().contains("absent"));
}

#[test]
fn reads_sharded_checkpoints_through_the_index() {
    let exp = expected();
    let index = dir().join("sharded/model.safetensors.index.json");
    for f in [
        SafetensorsFile::open(&index).unwrap(),
        match WeightFile::open(dir().join("sharded")).unwrap() {
            WeightFile::Safetensors(f) => f,
            _ => panic!("a directory with an index opens as safetensors"),
        },
    ] {
        assert_eq!(f.files().len(), 2);
        let mut all = 0;
        for shard in
            ["sharded/model-00001-of-00002.safetensors", "sharded/model-00002-of-00002.safetensors"]
        {
            let tensors = &exp["files"][shard]["tensors"];
            check_tensors(&f, tensors);
            all += tensors.as_array().unwrap().len();
        }
        assert_eq!(f.tensor_names().len(), all);
    }
}

#[test]
fn rejects_inconsistent_indexes() {
    let tmp = std::env::temp_dir().join(format!("aigc-st-index-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for shard in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
        std::fs::copy(dir().join("sharded").join(shard), tmp.join(shard)).unwrap();
    }
    let original =
        std::fs::read_to_string(dir().join("sharded/model.safetensors.index.json")).unwrap();
    let cases = [
        (
            "wrong shard",
            original.replacen(
                "\"lm_head.weight\": \"model-00002",
                "\"lm_head.weight\": \"model-00001",
                1,
            ),
            "lm_head.weight",
        ),
        (
            "unlisted tensor",
            original.replacen(
                "\"model.layers.1.input_layernorm.weight\": \"model-00002-of-00002.safetensors\",",
                "",
                1,
            ),
            "model.layers.1.input_layernorm.weight",
        ),
        (
            "listed but absent",
            original.replacen(
                "\"weight_map\": {",
                "\"weight_map\": {\"ghost\": \"model-00001-of-00002.safetensors\",",
                1,
            ),
            "ghost",
        ),
        (
            "missing shard file",
            original.replace("model-00002-of-00002", "model-00003-of-00003"),
            "model-00003-of-00003",
        ),
        (
            "path escape",
            original
                .replace("model-00002-of-00002.safetensors", "../model-00002-of-00002.safetensors"),
            "plain file name",
        ),
        ("not an index", "{\"weights\": {}}".to_string(), "weight_map"),
    ];
    for (what, text, needle) in cases {
        assert_ne!(text, original, "{what}: the case did not change the index");
        let p = tmp.join("model.safetensors.index.json");
        std::fs::write(&p, text).unwrap();
        let e = SafetensorsFile::open(&p)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"))
            .to_string();
        assert!(e.contains(needle), "{what}: {e}");
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn corrupt_corpus_never_panics() {
    let bytes = std::fs::read(dir().join("mixed.safetensors")).unwrap();
    let header_len = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for (what, b) in corruptions(&bytes, header_len, 2000) {
        let truncated = what.starts_with("truncated");
        if let Ok(f) =
            must_not_panic(&what, &b, |b| SafetensorsFile::from_bytes("corrupt.safetensors", b))
        {
            assert!(!truncated, "{what}: accepted");
            for name in f.tensor_names() {
                f.tensor(&name).unwrap().to_f32().unwrap();
            }
        }
    }
    // Crafted headers: absurd length, offsets past the data, unsupported dtype.
    let craft = |header: &str, data: usize| {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend(header.as_bytes());
        b.extend(vec![0u8; data]);
        b
    };
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend(b"{}");
    for (what, b) in [
        ("huge header length", huge),
        (
            "offsets past the data",
            craft(r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, 8),
        ),
        (
            "shape and offsets disagree",
            craft(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#, 16),
        ),
        (
            "shape overflow",
            craft(
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}}"#,
                16,
            ),
        ),
        ("fp8", craft(r#"{"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}"#, 4)),
        ("not json", craft("{\"a\":", 0)),
    ] {
        let r = must_not_panic(what, &b, |b| SafetensorsFile::from_bytes("crafted.safetensors", b));
        let e = r.err().unwrap_or_else(|| panic!("{what}: accepted")).to_string();
        assert!(e.contains("crafted.safetensors"), "{what}: {e}");
    }
}
