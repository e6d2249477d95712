//! Video: the terrain latent walk (`aigc_video::walk`), time per frame per runnable
//! backend (flex; ndarray and wgpu when compiled in): one batch of 4 frames (slerped noise,
//! swept difficulty), denoised in one model call and rendered at 256x256.
//!
//! `cargo bench -p aigc-benches --bench video` (the model from `scripts/fetch-models.sh`).

use std::hint::black_box;
use std::time::Duration;

use aigc_image::terrain::TerrainModel;
use aigc_video::walk::{TerrainWalk, walk_frames};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn terrain_walk(c: &mut Criterion) {
    let Some(path) = aigc_core::models::installed_or_skip("terrain-consistency-unet") else {
        return;
    };
    let walk =
        TerrainWalk { seeds: vec![1, 2], frames: 4, batch: 4, scale: 2, ..TerrainWalk::default() };
    for (backend, device, time) in aigc_benches::backends(Duration::from_secs(20)) {
        let model = TerrainModel::open(&path, &device).unwrap();
        let mut group = c.benchmark_group(format!("terrain-walk/{backend}"));
        group.sample_size(10).measurement_time(time);
        // Per element = per frame.
        group.throughput(Throughput::Elements(walk.frames as u64));
        group.bench_function("frames_256x256_batch4", |b| {
            b.iter(|| black_box(walk_frames(&model, &walk, |_, _| {}).unwrap()))
        });
        group.finish();
    }
}

criterion_group!(benches, terrain_walk);
criterion_main!(benches);
