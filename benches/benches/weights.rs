//! Weight reading: dequantization throughput per GGML type, and opening the real GGUF models.
//!
//! `cargo bench -p aigc-benches --bench weights`

use std::hint::black_box;

use aigc_core::quant::{GgmlType, dequantize};
use aigc_core::weights::{GgufFile, TensorSource};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Blocks of random bytes with sane f16 scales (the first two bytes of most block types).
fn blocks(ty: GgmlType, values: usize) -> Vec<u8> {
    let n = values / ty.block_size();
    let mut state = 0x1234_5678_u64;
    let mut bytes: Vec<u8> = (0..n * ty.type_size())
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect();
    // A finite scale wherever a type keeps an f16 scale: overwrite every f16-sized field that
    // would decode to inf/NaN with 1.0, which is enough for timing.
    for c in bytes.chunks_exact_mut(2) {
        if half::f16::from_le_bytes([c[0], c[1]]).is_nan()
            || half::f16::from_le_bytes([c[0], c[1]]).is_infinite()
        {
            c.copy_from_slice(&half::f16::ONE.to_le_bytes());
        }
    }
    bytes
}

fn dequant(c: &mut Criterion) {
    let mut group = c.benchmark_group("dequantize");
    let values = 1 << 20;
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
        GgmlType::F16,
    ] {
        let src = blocks(ty, values);
        let mut dst = vec![0f32; values];
        group.throughput(Throughput::Elements(values as u64));
        group.bench_function(format!("{}/cpu", ty.name()), |b| {
            b.iter(|| dequantize(ty, black_box(&src), black_box(&mut dst)).unwrap())
        });
    }
    group.finish();
}

fn open_models(c: &mut Criterion) {
    let mut group = c.benchmark_group("gguf_open");
    group.sample_size(10);
    for id in ["smollm2-135m-instruct", "gemma-3-270m"] {
        let Ok(path) = aigc_core::models::model_file(id) else {
            eprintln!("skipping gguf_open/{id}: model not installed");
            continue;
        };
        group.bench_function(format!("{id}/header"), |b| {
            b.iter(|| GgufFile::open(black_box(&path)).unwrap().tensor_names().len())
        });
        let file = GgufFile::open(&path).unwrap();
        group.bench_function(format!("{id}/token_embd_dequant"), |b| {
            b.iter(|| file.tensor("token_embd.weight").unwrap().to_f32().unwrap().len())
        });
    }
    group.finish();
}

criterion_group!(benches, dequant, open_models);
criterion_main!(benches);
