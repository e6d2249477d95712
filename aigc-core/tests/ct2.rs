//! The CTranslate2 reader against files built by a small writer that mirrors
//! `ModelSpec._serialize` of the `ctranslate2` package (every dtype, rank 0 to 3, aliases, every
//! binary version), against corrupt input, and against the real Whisper tiny.en `model.bin`
//! (values from `tools/ct2_fixtures.py` → `tools/fixtures/ct2/real_values.json`).

mod common;

use std::borrow::Cow;

use aigc_core::Error;
use aigc_core::weights::{Ct2File, DType, TensorSource};
use half::{bf16, f16};
use serde_json::Value;

/// One variable to write: name, type id (version >= 4) or item size (older), dims, bytes.
struct Var {
    name: &'static str,
    type_id: u8,
    dims: Vec<u32>,
    data: Vec<u8>,
}

fn var(name: &'static str, type_id: u8, dims: &[u32], data: Vec<u8>) -> Var {
    Var { name, type_id, dims: dims.to_vec(), data }
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend(((s.len() + 1) as u16).to_le_bytes());
    out.extend(s.as_bytes());
    out.push(0);
}

/// Writes a `model.bin` the way `ModelSpec._serialize` does (and, for versions before 4, the
/// way older releases did: item size and element count instead of type id and byte count).
fn write(
    version: u32,
    spec: &str,
    revision: u32,
    vars: &[Var],
    aliases: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = version.to_le_bytes().to_vec();
    if version >= 2 {
        string(&mut out, spec);
        out.extend(revision.to_le_bytes());
    }
    out.extend((vars.len() as u32).to_le_bytes());
    for v in vars {
        string(&mut out, v.name);
        out.push(v.dims.len() as u8);
        for d in &v.dims {
            out.extend(d.to_le_bytes());
        }
        out.push(v.type_id);
        let count = if version >= 4 { v.data.len() } else { v.data.len() / v.type_id as usize };
        out.extend((count as u32).to_le_bytes());
        out.extend(&v.data);
    }
    if version >= 3 {
        out.extend((aliases.len() as u32).to_le_bytes());
        for (a, t) in aliases {
            string(&mut out, a);
            string(&mut out, t);
        }
    }
    out
}

fn le<T: Copy, const N: usize>(values: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| f(v)).collect()
}

/// A file with every dtype, ranks 0 to 3, an int8 weight with its scale, and an alias.
fn every_dtype() -> Vec<u8> {
    let vars = [
        var("model/scalar", 0, &[], le(&[2.5f32], f32::to_le_bytes)),
        var("model/flag", 1, &[], vec![1]),
        var("model/q/weight", 1, &[2, 3], le(&[-128i8, -1, 0, 1, 64, 127], i8::to_le_bytes)),
        var("model/q/weight_scale", 0, &[2], le(&[0.5f32, 0.25], f32::to_le_bytes)),
        var("model/i16", 2, &[2, 2], le(&[-32768i16, 32767, -2, 3], i16::to_le_bytes)),
        var("model/i32", 3, &[1, 2, 2], le(&[i32::MIN, 7, -7, i32::MAX], i32::to_le_bytes)),
        var(
            "model/f16",
            4,
            &[3],
            le(&[f16::from_f32(0.5), f16::from_f32(-2.0), f16::MAX], f16::to_le_bytes),
        ),
        var(
            "model/bf16",
            5,
            &[2, 1],
            le(&[bf16::from_f32(1.5), bf16::from_f32(-0.125)], bf16::to_le_bytes),
        ),
        var("model/empty", 0, &[0, 4], Vec::new()),
    ];
    write(6, "TinySpec", 3, &vars, &[("model/tied/weight", "model/q/weight")])
}

fn open(bytes: Vec<u8>) -> aigc_core::Result<Ct2File> {
    Ct2File::from_bytes("model.bin", bytes)
}

#[test]
fn every_dtype_rank_and_alias() {
    let file = open(every_dtype()).unwrap();
    assert_eq!((file.binary_version(), file.spec_name(), file.spec_revision()), (6, "TinySpec", 3));
    assert_eq!(
        file.tensor_names(),
        [
            "model/scalar",
            "model/flag",
            "model/q/weight",
            "model/q/weight_scale",
            "model/i16",
            "model/i32",
            "model/f16",
            "model/bf16",
            "model/empty",
            "model/tied/weight",
            "model/tied/weight_scale",
        ]
    );
    let check = |name: &str, dtype: DType, shape: &[usize], values: &[f32]| {
        let v = file.tensor(name).unwrap();
        assert_eq!((v.name.as_ref(), v.dtype, &v.shape[..]), (name, dtype, shape), "{name}");
        assert!(matches!(v.data, Cow::Borrowed(_)), "{name} should be lent from the file");
        assert_eq!(v.to_f32().unwrap(), values, "{name}");
        assert_eq!(file.tensor_info(name).unwrap().shape, shape);
    };
    check("model/scalar", DType::F32, &[], &[2.5]);
    check("model/flag", DType::I8, &[], &[1.0]);
    check("model/q/weight", DType::I8, &[2, 3], &[-128.0, -1.0, 0.0, 1.0, 64.0, 127.0]);
    check("model/q/weight_scale", DType::F32, &[2], &[0.5, 0.25]);
    check("model/i16", DType::I16, &[2, 2], &[-32768.0, 32767.0, -2.0, 3.0]);
    check("model/i32", DType::I32, &[1, 2, 2], &[i32::MIN as f32, 7.0, -7.0, i32::MAX as f32]);
    check("model/f16", DType::F16, &[3], &[0.5, -2.0, 65504.0]);
    check("model/bf16", DType::BF16, &[2, 1], &[1.5, -0.125]);
    check("model/empty", DType::F32, &[0, 4], &[]);
    // The alias reads its target under its own name, and brings the target's scale along.
    check("model/tied/weight", DType::I8, &[2, 3], &[-128.0, -1.0, 0.0, 1.0, 64.0, 127.0]);
    check("model/tied/weight_scale", DType::F32, &[2], &[0.5, 0.25]);
    assert_eq!(
        file.aliases(),
        [
            ("model/tied/weight".to_string(), "model/q/weight".to_string()),
            ("model/tied/weight_scale".to_string(), "model/q/weight_scale".to_string()),
        ]
    );
    let meta = file.metadata();
    let get = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("binary_version"), "6");
    assert_eq!(get("spec_name"), "TinySpec");
    assert_eq!(get("variables"), "9");
    assert_eq!(get("aliases"), "1");
    assert!(matches!(file.tensor("absent"), Err(Error::Tensor { .. })));
}

#[test]
fn older_binary_versions() {
    let f32s = le(&[1.0f32, -2.0], f32::to_le_bytes);
    let i16s = le(&[5i16, -6], i16::to_le_bytes);
    for version in 1..=6 {
        // Before version 4 the type byte is the item size: 4 (f32), 2 (i16), 1 (i8).
        let (t_f32, t_i16) = if version >= 4 { (0, 2) } else { (4, 2) };
        let vars = [var("a", t_f32, &[2], f32s.clone()), var("b", t_i16, &[2, 1], i16s.clone())];
        let bytes = write(version, "Spec", 2, &vars, &[("c", "a")]);
        let file = open(bytes).unwrap_or_else(|e| panic!("version {version}: {e}"));
        assert_eq!(file.binary_version(), version);
        assert_eq!(file.spec_name(), if version >= 2 { "Spec" } else { "" });
        assert_eq!(file.spec_revision(), if version >= 2 { 2 } else { 1 });
        assert_eq!(file.tensor("a").unwrap().to_f32().unwrap(), [1.0, -2.0]);
        let b = file.tensor("b").unwrap();
        assert_eq!((b.dtype, b.shape.clone()), (DType::I16, vec![2, 1]));
        assert_eq!(file.contains("c"), version >= 3, "aliases exist from version 3");
    }
}

#[test]
fn sniffing_the_header() {
    let dir = std::env::temp_dir().join(format!("aigc-ct2-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.bin");
    std::fs::write(&path, every_dtype()).unwrap();
    assert!(Ct2File::looks_like(&path));
    assert_eq!(Ct2File::open(&path).unwrap().tensor_names().len(), 11);
    std::fs::write(&path, write(1, "", 1, &[var("v1", 4, &[1], vec![0; 4])], &[])).unwrap();
    assert!(Ct2File::looks_like(&path));
    for not_ct2 in
        [&b"GGUF\x03\x00\x00\x00\x00"[..], b"", b"\x08\x08\x12\x04test", &[6, 0, 0, 0, 5, 0]]
    {
        std::fs::write(&path, not_ct2).unwrap();
        assert!(!Ct2File::looks_like(&path), "{not_ct2:?}");
    }
    assert!(!Ct2File::looks_like(&dir.join("absent.bin")));
    assert!(!Ct2File::looks_like(&common::fixtures().join("onnx/tensors.onnx")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_files_are_errors() {
    let ok = |vars: &[Var]| write(6, "S", 1, vars, &[]);
    let f32v = || var("w", 0, &[2], vec![0; 8]);
    // Each case is a whole file that must be refused.
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown type id", ok(&[var("w", 6, &[2], vec![0; 8])])),
        ("byte count too small", ok(&[var("w", 0, &[3], vec![0; 8])])),
        ("byte count too large", ok(&[var("w", 0, &[1], vec![0; 8])])),
        (
            "dims overflow",
            ok(&[var("w", 0, &[u32::MAX, u32::MAX, u32::MAX, u32::MAX], vec![0; 4])]),
        ),
        ("item size 3 in version 3", write(3, "S", 1, &[var("w", 3, &[1], vec![0; 3])], &[])),
        ("duplicate variable", ok(&[f32v(), f32v()])),
        ("alias to an absent variable", write(6, "S", 1, &[f32v()], &[("a", "nope")])),
        ("alias reusing a name", write(6, "S", 1, &[f32v()], &[("w", "w")])),
    ];
    let mut trailing = ok(&[f32v()]);
    trailing.push(0);
    cases.push(("trailing byte", trailing));

    // Hand-edited headers: after the version (4) and spec string ("S\0": 2 + 2) and revision (4).
    let base = ok(&[f32v()]);
    let var_count_at = 4 + 4 + 4;
    let name_at = var_count_at + 4;
    let edit = |at: usize, bytes: &[u8]| {
        let mut b = base.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    cases.push(("version 0", edit(0, &0u32.to_le_bytes())));
    cases.push(("absurd variable count", edit(var_count_at, &u32::MAX.to_le_bytes())));
    cases.push(("variable count one too many", edit(var_count_at, &2u32.to_le_bytes())));
    cases.push(("name length 0", edit(name_at, &0u16.to_le_bytes())));
    cases.push(("name length beyond the file", edit(name_at, &u16::MAX.to_le_bytes())));
    cases.push(("name without its NUL", edit(name_at + 3, b"x")));
    cases.push(("rank 255", edit(name_at + 4, &[255])));
    cases.push(("absurd byte count", edit(name_at + 4 + 1 + 4 + 1, &u32::MAX.to_le_bytes())));
    let alias_count_at = base.len() - 4;
    cases.push(("absurd alias count", edit(alias_count_at, &u32::MAX.to_le_bytes())));
    let spec_at = 4;
    cases.push(("spec name beyond the file", edit(spec_at, &u16::MAX.to_le_bytes())));
    let mut interior_nul = write(6, "S", 1, &[var("ab", 0, &[2], vec![0; 8])], &[]);
    interior_nul[name_at + 2] = 0;
    cases.push(("name with an interior NUL", interior_nul));
    let mut bad_utf8 = base.clone();
    bad_utf8[name_at + 2] = 0xff;
    cases.push(("name not UTF-8", bad_utf8));

    for (what, bytes) in cases {
        let r = open(bytes);
        assert!(matches!(r, Err(Error::Format { .. })), "{what}: {:?}", r.err());
    }
    let newer = write(7, "S", 1, &[f32v()], &[]);
    assert!(matches!(open(newer), Err(Error::Unsupported { .. })));
}

fn exercise(bytes: Vec<u8>) -> aigc_core::Result<usize> {
    let file = open(bytes)?;
    let _ = file.metadata();
    let mut n = 0;
    for name in file.tensor_names() {
        let v = file.tensor(&name)?;
        let _ = v.to_f32()?;
        n += 1;
    }
    Ok(n)
}

#[test]
fn corrupt_files_never_panic() {
    let bytes = every_dtype();
    assert_eq!(exercise(bytes.clone()).unwrap(), 11);
    // Every field is needed up to the end of the alias table, so every strict prefix fails.
    for len in 0..bytes.len() {
        let r = common::must_not_panic(&format!("truncated to {len}"), &bytes[..len], exercise);
        assert!(r.is_err(), "truncated to {len} was accepted");
    }
    let mut accepted = 0;
    let corpus = common::corruptions(&bytes, bytes.len(), 3000);
    for (what, b) in &corpus {
        if common::must_not_panic(what, b, exercise).is_ok() {
            accepted += 1;
        }
    }
    eprintln!("{accepted} of {} corruptions still parse", corpus.len());
}

#[test]
fn real_whisper_tiny_en() {
    let Some(path) = common::real_model("whisper-tiny-en") else { return };
    let want: Value = serde_json::from_slice(
        &std::fs::read(common::fixtures().join("ct2/real_values.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), want["file_size"].as_u64().unwrap());
    assert!(Ct2File::looks_like(&path));
    let file = Ct2File::open(&path).unwrap();
    assert_eq!(u64::from(file.binary_version()), want["binary_version"].as_u64().unwrap());
    assert_eq!(file.spec_name(), want["spec_name"].as_str().unwrap());
    assert_eq!(u64::from(file.spec_revision()), want["spec_revision"].as_u64().unwrap());

    let aliases: Vec<(String, String)> = want["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(aliases.len() as u64, want["alias_count"].as_u64().unwrap());
    // An fp16 model has no scales, so no alias is implied.
    assert_eq!(file.aliases(), &aliases[..]);
    let names = file.tensor_names();
    let variables = want["variable_count"].as_u64().unwrap() as usize;
    assert_eq!(names.len(), variables + aliases.len());
    let first: Vec<&str> =
        want["first_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(&names[..first.len()], &first[..]);

    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for name in &names[..variables] {
        *counts.entry(file.tensor_info(name).unwrap().dtype.name().to_string()).or_default() += 1;
    }
    let want_counts: std::collections::BTreeMap<String, u64> = want["dtype_counts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(counts, want_counts);

    for v in want["variables"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let t = file.tensor(name).unwrap();
        assert_eq!(t.dtype.name(), v["dtype"].as_str().unwrap(), "{name}");
        assert_eq!(
            t.shape,
            v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect::<Vec<_>>()
        );
        for (i, b) in v["first_bits"].as_array().unwrap().iter().enumerate() {
            let b = u16::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
            assert_eq!(u16::from_le_bytes([t.data[2 * i], t.data[2 * i + 1]]), b, "{name}[{i}]");
        }
        let sum: f64 = t.to_f32().unwrap().iter().map(|&x| f64::from(x)).sum();
        let want_sum = v["sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-9 * want_sum.abs().max(1.0),
            "{name}: {sum} vs {want_sum}"
        );
    }
    // Whisper fuses self-attention Q, K and V into `linear_0`: 3 x 384 rows for tiny.en.
    let qkv = file.tensor_info("decoder/layer_0/self_attention/linear_0/weight").unwrap();
    assert_eq!(qkv.shape, [3 * 384, 384]);
    // The tied output projection is an alias of the token embedding.
    let proj = file.tensor("decoder/projection/weight").unwrap();
    assert_eq!(proj.data, file.tensor("decoder/embeddings/weight").unwrap().data);

    for v in want["integer_variables"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let t = file.tensor(name).unwrap();
        assert_eq!(t.dtype.name(), v["dtype"].as_str().unwrap(), "{name}");
        let values: Vec<i64> = t.to_f32().unwrap().iter().map(|&x| x as i64).collect();
        let expected: Vec<i64> =
            v["values"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        assert_eq!(values, expected, "{name}");
    }
}
