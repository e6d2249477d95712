//! Game worlds on the real terrain model: a tile is bit-identical however and whenever it is
//! fetched, and neighbouring tiles meet without a seam. Sized for CI: two worlds of 6
//! denoised windows each (about a second each in the test profile).

use aigc_image::terrain::{HEIGHT_RANGE, TerrainModel};
use aigc_image::world::{World, seam_stats};

#[test]
fn tiles_are_deterministic_and_seamless() {
    let Some(path) = aigc_core::models::installed_or_skip("terrain-consistency-unet") else {
        return;
    };
    let device = aigc_core::parse_device("flex").unwrap();
    let model = TerrainModel::open(&path, &device).unwrap();
    // A different difficulty on every tile, so that the windows across an edge differ.
    let difficulty = |x: i32, y: i32| (40 + 25 * x + 7 * y).clamp(1, 100) as u32;

    // One world asks for tile (1, 0) first, then (0, 0).
    let layout = |w: World<_>| w.with_layout(64, 64).unwrap();
    let mut a = layout(World::new(model.clone(), 11, difficulty));
    let s = a.tile_size();
    assert_eq!((s, a.overlap(), a.stride()), (64, 64, 64));
    let a1 = a.tile(1, 0).unwrap();
    let a0 = a.tile(0, 0).unwrap();
    assert_eq!(a.tile(1, 0).unwrap(), a1, "same tile twice");
    assert_eq!((a0.len(), a1.len()), (s * s, s * s));
    assert!(a0.iter().chain(&a1).all(|h| (0.0..=HEIGHT_RANGE).contains(h)));

    // Another asks for both at once, in a region: the same bits.
    let mut windows = 0;
    let region = layout(World::new(model.clone(), 11, difficulty))
        .region(0, 0, 2, 1, |done, total| windows = windows.max(total).max(done))
        .unwrap();
    assert_eq!(windows, 3 * 2);
    assert_eq!((region.width, region.height), (2 * s, s));
    for r in 0..s {
        let row = &region.heights[r * 2 * s..(r + 1) * 2 * s];
        assert_eq!(row[..s], a0[r * s..(r + 1) * s], "tile (0, 0) row {r}");
        assert_eq!(row[s..], a1[r * s..(r + 1) * s], "tile (1, 0) row {r}");
    }

    // Grids with a border share their edge samples bit for bit (for per-tile meshes).
    let (g0, g1) = (a.tile_grid(0, 0).unwrap(), a.tile_grid(1, 0).unwrap());
    assert_eq!((g0.width, g0.height), (s + 1, s + 1));
    for r in 0..=s {
        assert_eq!(g0.heights[r * (s + 1) + s], g1.heights[r * (s + 1)], "shared edge row {r}");
        if r < s {
            assert_eq!(g0.heights[r * (s + 1)..r * (s + 1) + s], a0[r * s..(r + 1) * s]);
        }
    }

    // The shared edge continues the surface: steps across it are no larger than inside.
    let seams = seam_stats(&region, s).unwrap();
    eprintln!("{seams:?}");
    assert_eq!(seams.boundary_pairs, s);
    assert!(seams.inside > 0.0);
    assert!(seams.boundary <= seams.inside, "{seams:?}");

    // Another seed is another world.
    let mut other = World::new(model, 12, difficulty).with_cache(0);
    assert!(other.tile_size() == 128 && other.seed() == 12);
    let new = || World::new(other.model().clone(), 12, difficulty);
    assert!(new().with_layout(128, 128).is_err() && new().with_layout(64, 100).is_err());
    assert_eq!(new().with_layout(32, 96).unwrap().tile_size(), 96);
    assert!(other.region(0, 0, 0, 1, |_, _| {}).is_err());
}

/// The blend against the package's own tiled sampler (`tools/world_golden.py`): its
/// `_generate_tiled` on a 256x256 canvas of this world's noise, windows at 0, 64 and 128 on
/// each axis, difficulty 50, run by onnxruntime; the World's heights of the interior 128x128
/// (the same nine windows) must agree within 1e-3.
#[test]
fn world_matches_the_package_tiled_sampler() {
    let Some(path) = aigc_core::models::installed_or_skip("terrain-consistency-unet") else {
        return;
    };
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/image/world");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("world.json")).unwrap()).unwrap();
    let seed = meta["seed"].as_u64().unwrap();
    for (key, want) in meta["world_noise"].as_object().unwrap() {
        let (x, y) = key.split_once(',').unwrap();
        let got = aigc_image::world::world_noise(seed, x.parse().unwrap(), y.parse().unwrap());
        assert!((got - want.as_f64().unwrap() as f32).abs() < 1e-6, "noise at {key}: {got}");
    }
    let (shape, want) = aigc_image::npy::read_f32(dir.join("heights.npy")).unwrap();
    assert_eq!(shape, [128, 128]);
    let device = aigc_core::parse_device("flex").unwrap();
    let model = TerrainModel::open(&path, &device).unwrap();
    let difficulty = meta["difficulty"].as_u64().unwrap() as u32;
    let mut world = World::new(model, seed, move |_, _| difficulty).with_layout(64, 64).unwrap();
    let mut windows = 0;
    let field = world.heights(64, 64, 128, 128, |_, total| windows = total).unwrap();
    assert_eq!(windows, 9);
    let worst = field.heights.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("World vs the package's tiled sampler: max |height diff| {worst:.2e}");
    assert!(worst < 1e-3, "max |diff| {worst}");
}
