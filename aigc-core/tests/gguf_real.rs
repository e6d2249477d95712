//! The real GGUF models against values the Python `gguf` package produced
//! (`tools/real_gguf_values.py` → `tools/fixtures/real_gguf_values.json`), bit for bit.

mod common;

use aigc_core::weights::{GgufFile, TensorSource};
use serde_json::Value;

fn check_model(id: &str) {
    let Some(path) = common::real_model(id) else { return };
    let fixture: Value = serde_json::from_slice(
        &std::fs::read(common::fixtures().join("real_gguf_values.json")).unwrap(),
    )
    .unwrap();
    let m = fixture["models"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap();
    let g = GgufFile::open(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), m["file_size"].as_u64().unwrap());
    assert_eq!(g.version() as u64, m["gguf_version"].as_u64().unwrap());
    assert_eq!(g.tensor_infos().len() as u64, m["tensor_count"].as_u64().unwrap());
    assert_eq!(g.metadata().len() as u64, m["kv_count"].as_u64().unwrap());
    assert_eq!(g.alignment(), m["alignment"].as_u64().unwrap());
    assert_eq!(g.data_offset(), m["data_offset"].as_u64().unwrap());
    assert_eq!(g.architecture().unwrap(), m["general.architecture"].as_str().unwrap());
    let arch = g.architecture().unwrap().to_string();
    let hp = &m["hparams"];
    for key in ["block_count", "embedding_length", "feed_forward_length", "attention.head_count"] {
        assert_eq!(
            g.get_u64(&format!("{arch}.{key}")).unwrap(),
            hp[key].as_u64().unwrap(),
            "{key}"
        );
    }
    let eps = hp["attention.layer_norm_rms_epsilon"]["bits"].as_str().unwrap();
    let eps_bits = u32::from_str_radix(eps.trim_start_matches("0x"), 16).unwrap();
    assert_eq!(
        g.get_f32(&format!("{arch}.attention.layer_norm_rms_epsilon")).unwrap().to_bits(),
        eps_bits
    );
    let tokens = g.get_string_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len() as u64, m["tokenizer"]["n_tokens"].as_u64().unwrap());

    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for t in g.tensor_infos() {
        *counts.entry(t.ggml_type.name().to_string()).or_default() += 1;
    }
    let want: std::collections::BTreeMap<String, u64> = m["tensor_type_counts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(counts, want);

    for t in m["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let view = g.tensor(name).unwrap();
        assert_eq!(view.dtype.name(), t["ggml_type"].as_str().unwrap(), "{name}");
        let shape: Vec<usize> = t["numpy_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(view.shape, shape, "{name}");
        for part in ["head", "deep", "tail"] {
            let Some(p) = t.get(part).filter(|p| !p.is_null()) else { continue };
            let offset = p["offset"].as_u64().unwrap() as usize;
            let bits: Vec<u32> = p["bits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    u32::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
                })
                .collect();
            let got: Vec<u32> = view
                .to_f32_range(offset, bits.len())
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(got, bits, "{id} {name} {part} values at {offset}");
        }
    }
}

#[test]
fn smollm2_q4_1_values_match_gguf_package() {
    check_model("smollm2-135m-instruct");
}

#[test]
fn gemma3_q4_k_and_q6_k_values_match_gguf_package() {
    check_model("gemma-3-270m");
}
