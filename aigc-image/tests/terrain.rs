//! The terrain consistency model against onnxruntime running the same ONNX file
//! (`tools/terrain_golden.py` → `tools/fixtures/image/terrain/`): on the same noise, the
//! denoised output must agree within 1e-3 (max abs) at every noise level and difficulty.

use std::path::PathBuf;

use aigc_image::npy;
use aigc_image::terrain::{TerrainModel, heights_from_model};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/image/terrain")
}

#[test]
fn terrain_matches_onnxruntime() {
    let Some(path) = aigc_core::models::installed_or_skip("terrain-consistency-unet") else {
        return;
    };
    let device = aigc_core::parse_device("flex").unwrap();
    let model = TerrainModel::open(&path, &device).unwrap();
    let layout = model.unet().layout();
    assert_eq!(
        (layout.model_channels, layout.channel_mult.clone(), layout.res_blocks),
        (32, vec![1, 1, 2, 3, 4], 4)
    );
    assert_eq!(layout.attention, vec![false, false, true, true, true]);
    let meta: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("terrain.json")).unwrap()).unwrap();
    let (shape, noise) = npy::read_f32(fixtures().join("noise.npy")).unwrap();
    assert_eq!(shape, [1, 1, 128, 128]);
    for case in meta["cases"].as_array().unwrap() {
        let sigma = case["sigma"].as_f64().unwrap() as f32;
        let difficulty = case["difficulty"].as_u64().unwrap() as u32;
        let (_, want) = npy::read_f32(fixtures().join(case["file"].as_str().unwrap())).unwrap();
        let noisy: Vec<f32> = noise.iter().map(|z| z * sigma).collect();
        let got = model.denoise(&noisy, sigma, difficulty).unwrap();
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        eprintln!("sigma {sigma}, difficulty {difficulty}: max |diff| {worst:.2e}");
        assert!(worst <= 1e-3, "sigma {sigma}, difficulty {difficulty}: max |diff| {worst}");
        if case["file"] == "case_0.npy" {
            let h = heights_from_model(&got);
            let want_h = &meta["case_0_heights"];
            let max = h.iter().copied().fold(0f32, f32::max);
            let mean = h.iter().sum::<f32>() / h.len() as f32;
            assert_eq!(h.iter().copied().fold(f32::INFINITY, f32::min), 0.0);
            assert!((max - want_h["max"].as_f64().unwrap() as f32).abs() < 2e-3, "max {max}");
            assert!((mean - want_h["mean"].as_f64().unwrap() as f32).abs() < 2e-3, "mean {mean}");
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let Some(path) = aigc_core::models::installed_or_skip("terrain-consistency-unet") else {
        return;
    };
    let device = aigc_core::parse_device("flex").unwrap();
    let model = TerrainModel::open(&path, &device).unwrap();
    let noise = vec![0f32; 128 * 128];
    assert!(model.denoise(&noise[..100], 80.0, 50).is_err());
    assert!(model.denoise(&noise, 80.0, 0).is_err());
    assert!(model.denoise(&noise, -1.0, 50).is_err());
    assert!(model.generate(&noise, 50, 0, 1, |_, _| {}).is_err());
    // Not an ONNX file.
    let dir = std::env::temp_dir().join(format!("aigc-terrain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("x.onnx"), b"not a model").unwrap();
    assert!(TerrainModel::open(dir.join("x.onnx"), &device).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
