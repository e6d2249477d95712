//! LLM speed on the real models, single sequence: prefill tokens/s for a 128-token prompt and
//! decode tokens/s for 128 greedy tokens, per runnable backend (decoding with f32 and with
//! 8-bit activations); and the quantized matrix-vector kernels on the models' shapes.
//!
//! `cargo bench -p aigc-benches --bench text` (models from `scripts/fetch-models.sh`;
//! `AIGC_THREADS` sets the kernel threads). Criterion reports time per iteration: one
//! iteration is one 128-token prefill, or one decode step.

use std::hint::black_box;
use std::time::Duration;

use aigc_core::quant::GgmlType;
use aigc_core::quant::kernels::{Activations, QMatrix, set_activations};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PROMPT: usize = 128;
const DECODE: usize = 128;

fn models(c: &mut Criterion) {
    for id in ["smollm2-135m-instruct", "gemma-3-270m"] {
        let Some(path) = aigc_core::models::installed_or_skip(id) else { continue };
        for (backend, device, time) in aigc_benches::backends(Duration::from_secs(20)) {
            let ids: Vec<u32> = (0..PROMPT as u32).map(|i| 1000 + (i * 37) % 5000).collect();
            let gguf = aigc_core::weights::GgufFile::open(&path).unwrap();
            let loaded = aigc_text::load_gguf(&gguf, &device, PROMPT + DECODE + 8).unwrap();
            drop(gguf);
            let model = loaded.model;
            let mut group = c.benchmark_group(format!("{id}/{backend}"));
            group.sample_size(10).measurement_time(time);
            group.throughput(Throughput::Elements(PROMPT as u64));
            group.bench_function("prefill_128", |b| {
                let mut cache = model.new_cache(PROMPT + DECODE + 8).unwrap();
                b.iter(|| {
                    cache.reset();
                    black_box(model.forward(&ids, &mut cache, false).unwrap());
                });
            });
            group.throughput(Throughput::Elements(1));
            // Decoding with f32 activations (the default) and with 8-bit ones (llama.cpp's).
            // (The 8-bit activations are a CPU kernel setting: other backends run one variant.)
            let cpu = matches!(backend, "flex" | "ndarray");
            for (act, name) in [
                (Activations::F32, "decode_step_after_128"),
                (Activations::Q8, "decode_step_after_128_q8"),
            ]
            .into_iter()
            .take(if cpu { 2 } else { 1 })
            {
                set_activations(act);
                group.bench_function(name, |b| {
                    let mut cache = model.new_cache(PROMPT + DECODE + 8).unwrap();
                    let mut step = 0u32;
                    // Only the decode steps are timed: refilling the cache with the prompt is
                    // not.
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            if cache.is_empty() || cache.len() >= PROMPT + DECODE {
                                cache.reset();
                                model.forward(&ids, &mut cache, false).unwrap();
                            }
                            step += 1;
                            let t = std::time::Instant::now();
                            let logits = model.forward(&[1000 + step % 5000], &mut cache, false);
                            black_box(logits.unwrap());
                            total += t.elapsed();
                        }
                        total
                    });
                });
            }
            set_activations(Activations::F32);
            group.finish();
        }
    }
}

fn kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("qmatvec");
    for (ty, rows, cols) in [
        (GgmlType::Q4_1, 1536, 576),
        (GgmlType::Q8_0, 49152, 576),
        (GgmlType::Q8_0, 262_144, 640),
        (GgmlType::Q5_0, 2048, 640),
        (GgmlType::Q4_K, 640, 2048),
        (GgmlType::Q6_K, 640, 2048),
    ] {
        let bytes = vec![0x11u8; rows * cols / ty.block_size() * ty.type_size()];
        let w = QMatrix::new(ty, rows, cols, bytes).unwrap();
        let x = vec![0.5f32; cols];
        let mut out = vec![0f32; rows];
        group.throughput(Throughput::Elements((rows * cols) as u64));
        for (act, name) in [(Activations::F32, "f32"), (Activations::Q8, "q8")] {
            set_activations(act);
            group.bench_function(format!("{}_{rows}x{cols}_{name}", ty.name()), |b| {
                b.iter(|| w.matmul(black_box(&x), 1, &mut out))
            });
        }
        set_activations(Activations::F32);
    }
    group.finish();
}

criterion_group!(benches, kernels, models);
criterion_main!(benches);
