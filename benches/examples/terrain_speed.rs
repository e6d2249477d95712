//! Times one terrain UNet step the way `benches/compare-terrain.sh` times onnxruntime: a
//! warm-up step, then the best and median of N steps on the same input. Prints one JSON line.
//!
//! `cargo run --release -p aigc-benches --example terrain_speed -- MODEL.onnx [STEPS]`

use std::time::Instant;

use aigc_image::terrain::{NATIVE_SIZE, SIGMA_MAX, TerrainModel, normal_noise};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("usage: terrain_speed MODEL.onnx [STEPS]")?;
    let steps: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let device = aigc_core::device_from_env()?;
    let model = TerrainModel::open(path, &device)?;
    let noisy: Vec<f32> =
        normal_noise(1, NATIVE_SIZE * NATIVE_SIZE).iter().map(|z| z * SIGMA_MAX).collect();
    model.denoise(&noisy, SIGMA_MAX, 50)?;
    let mut times: Vec<f64> = (0..steps.max(1))
        .map(|_| {
            let t = Instant::now();
            model.denoise(&noisy, SIGMA_MAX, 50).map(|_| t.elapsed().as_secs_f64())
        })
        .collect::<Result<_, _>>()?;
    times.sort_by(f64::total_cmp);
    println!("{{\"best_s\": {:.4}, \"median_s\": {:.4}}}", times[0], times[times.len() / 2]);
    Ok(())
}
