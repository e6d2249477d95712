//! Image models: one denoising step of the terrain consistency UNet (1x128x128, ADM, 10.5M
//! parameters) per runnable backend (flex; ndarray and wgpu when compiled in).
//!
//! `cargo bench -p aigc-benches --bench image` (the model from `scripts/fetch-models.sh`).
//! `benches/compare-terrain.sh` times onnxruntime on the same step in the same run.

use std::hint::black_box;
use std::time::Duration;

use aigc_image::terrain::{NATIVE_SIZE, SIGMA_MAX, TerrainModel, normal_noise};
use criterion::{Criterion, criterion_group, criterion_main};

fn terrain(c: &mut Criterion) {
    let Some(path) = aigc_core::models::installed_or_skip("terrain-consistency-unet") else {
        return;
    };
    let noisy: Vec<f32> =
        normal_noise(1, NATIVE_SIZE * NATIVE_SIZE).iter().map(|z| z * SIGMA_MAX).collect();
    for (backend, device, time) in aigc_benches::backends(Duration::from_secs(15)) {
        let model = TerrainModel::open(&path, &device).unwrap();
        let mut group = c.benchmark_group(format!("terrain-unet/{backend}"));
        group.sample_size(10).measurement_time(time);
        group.bench_function("step_128x128", |b| {
            b.iter(|| black_box(model.denoise(&noisy, SIGMA_MAX, 50).unwrap()))
        });
        group.finish();
    }
}

criterion_group!(benches, terrain);
criterion_main!(benches);
