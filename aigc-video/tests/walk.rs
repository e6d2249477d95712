//! The terrain latent walk with the real model (skipped when it is not installed).

use aigc_image::terrain::{NATIVE_SIZE, TerrainModel, normal_noise};
use aigc_video::walk::{TerrainWalk, mean_abs_step, slerp, smoothness, walk_frames};

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn slerp_keeps_endpoints_and_norm() {
    let n = NATIVE_SIZE * NATIVE_SIZE;
    let (a, b) = (normal_noise(3, n), normal_noise(4, n));
    assert_eq!(slerp(&a, &b, 0.0), a);
    let end = slerp(&a, &b, 1.0);
    assert!(end.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4));
    let (na, nb) = (norm(&a), norm(&b));
    for t in [0.25, 0.5, 0.75] {
        let m = norm(&slerp(&a, &b, t));
        // Independent noises are near orthogonal with near equal norms, so the arc keeps the
        // norm (a straight line would shrink it by 1/sqrt(2) at the middle).
        assert!((m / (0.5 * (na + nb)) - 1.0).abs() < 0.02, "t {t}: {m} vs {na} {nb}");
    }
    // Walk endpoints are the seeds' noise.
    let walk = TerrainWalk { seeds: vec![3, 4], frames: 5, ..TerrainWalk::default() };
    assert_eq!(walk.frame_input(0).0, a);
    assert!(walk.frame_input(4).0.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4));
    assert_eq!(walk.frame_input(0).1, walk.difficulty_from);
    assert_eq!(walk.frame_input(4).1, walk.difficulty_to);
    // Three seeds: a loop whose stops 0, 2 and 4 of 6 are the seeds' noise.
    let looped = TerrainWalk { seeds: vec![3, 4, 5], frames: 6, ..TerrainWalk::default() };
    for (i, seed) in [(0, 3), (2, 4), (4, 5)] {
        let z = normal_noise(seed, n);
        assert!(looped.frame_input(i).0.iter().zip(&z).all(|(x, y)| (x - y).abs() < 1e-4));
    }
    assert_eq!(mean_abs_step(&[vec![0.0, 1.0], vec![1.0, 1.0], vec![1.0, 3.0]]), 0.75);
}

#[test]
fn walk_is_deterministic_and_smooth() {
    let Some(path) = aigc_core::models::installed_or_skip("terrain-consistency-unet") else {
        return;
    };
    let device = aigc_core::parse_device("flex").unwrap();
    let model = TerrainModel::open(&path, &device).unwrap();
    let walk = TerrainWalk {
        seeds: vec![11, 12],
        difficulty_from: 40.0,
        difficulty_to: 60.0,
        frames: 6,
        batch: 3,
        scale: 1,
    };
    let mut calls = 0;
    let frames = walk_frames(&model, &walk, |done, total| {
        calls += 1;
        assert_eq!((done, total), (calls, 6));
    })
    .unwrap();
    assert_eq!(frames.len(), 6);
    let side = NATIVE_SIZE as u32;
    assert!(frames.iter().all(|f| f.rgb.width == side && f.rgb.height == side));
    assert!(frames.iter().all(|f| f.rgb.data.len() == (side * side * 3) as usize));
    // The same seeds give the same frames, whatever the batching.
    let again =
        walk_frames(&model, &TerrainWalk { batch: 4, frames: 3, ..walk.clone() }, |_, _| {})
            .unwrap();
    let short = walk_frames(&model, &TerrainWalk { frames: 3, ..walk.clone() }, |_, _| {}).unwrap();
    for (a, b) in again.iter().zip(&short) {
        let diff =
            a.heights.iter().zip(&b.heights).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-3, "{diff}");
    }
    let rerun = walk_frames(&model, &walk, |_, _| {}).unwrap();
    for (a, b) in frames.iter().zip(&rerun) {
        assert_eq!(a.heights, b.heights);
        assert!(a.rgb.data == b.rgb.data);
    }
    let s = smoothness(&model, &walk, &frames, 4, 1000).unwrap();
    eprintln!("{s:?} heights ratio {:.3} rgb ratio {:.3}", s.heights_ratio(), s.rgb_ratio());
    assert!(s.heights_ratio() < 0.6, "{s:?}");
    assert!(s.rgb_ratio() < 0.8, "{s:?}");
}
