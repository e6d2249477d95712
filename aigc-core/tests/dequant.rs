//! Every GGML dequantizer against the Python `gguf` package, bit for bit.
//!
//! Fixtures: `tools/gguf_dequant_fixtures.py` writes each type's blocks (`<TYPE>.q`) and the
//! package's dequantization of them (`<TYPE>.f32`), listed in `manifest.json`.

mod common;

use aigc_core::quant::{GgmlType, dequantize};
use serde_json::Value;

fn read(name: &str) -> Vec<u8> {
    let p = common::fixtures().join("gguf").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn dequantization_is_bit_exact_against_gguf_package() {
    let manifest: Value = serde_json::from_slice(&read("manifest.json")).unwrap();
    let types = manifest["types"].as_array().unwrap();
    let required = [
        "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K",
        "Q5_K", "Q6_K", "Q8_K", "IQ4_NL", "IQ4_XS",
    ];
    let present: Vec<&str> = types.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for r in required {
        assert!(present.contains(&r), "fixture for {r} is missing");
    }
    for t in types {
        let name = t["name"].as_str().unwrap();
        let ty = GgmlType::from_id(t["ggml_type"].as_u64().unwrap() as u32).unwrap();
        assert_eq!(ty.name(), name);
        assert_eq!(ty.block_size() as u64, t["block_size"].as_u64().unwrap(), "{name} block size");
        assert_eq!(ty.type_size() as u64, t["type_size"].as_u64().unwrap(), "{name} type size");
        let q = read(t["q_file"].as_str().unwrap());
        let want: Vec<u32> = read(t["f32_file"].as_str().unwrap())
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(want.len() as u64, t["n_values"].as_u64().unwrap());
        let mut got = vec![0f32; want.len()];
        dequantize(ty, &q, &mut got).unwrap();
        let mismatches: Vec<usize> =
            (0..want.len()).filter(|&i| got[i].to_bits() != want[i]).collect();
        assert!(
            mismatches.is_empty(),
            "{name}: {} of {} values differ; first at {}: got {} want {}",
            mismatches.len(),
            want.len(),
            mismatches[0],
            got[mismatches[0]],
            f32::from_bits(want[mismatches[0]])
        );
    }
}

#[test]
fn rejects_partial_blocks_and_unimplemented_types() {
    let mut out = vec![0f32; 32];
    assert!(dequantize(GgmlType::Q4_0, &[0u8; 17], &mut out).is_err());
    assert!(dequantize(GgmlType::Q4_0, &[0u8; 18], &mut out[..31]).is_err());
    let e = dequantize(GgmlType::IQ1_S, &[0u8; 50], &mut vec![0f32; 256]).unwrap_err();
    assert!(e.to_string().contains("IQ1_S"), "{e}");
    assert!(!GgmlType::IQ1_S.can_dequantize());
}
