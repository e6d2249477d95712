//! A latent walk through the terrain consistency model of `aigc_image::terrain`: an animation
//! whose frames are one-step samples from noise that moves smoothly between seeds.
//!
//! Each frame's unit normal noise is the spherical interpolation ([`slerp`]) of two seeds'
//! noise (so it stays on the shell where Gaussian noise lives, which a straight line would
//! leave), and its difficulty label is swept linearly between two values. The model is
//! continuous in both, so consecutive frames differ a little; [`Smoothness`] measures how
//! little against independent samples.
//!
//! ```no_run
//! use aigc_image::terrain::TerrainModel;
//! use aigc_video::walk::{TerrainWalk, walk_frames};
//!
//! let device = aigc_core::parse_device("flex")?;
//! let path = aigc_core::models::resolve_or_fetch("terrain-consistency-unet")?;
//! let model = TerrainModel::open(path, &device)?;
//! let walk = TerrainWalk { seeds: vec![1, 2], frames: 24, ..TerrainWalk::default() };
//! let frames = walk_frames(&model, &walk, |done, total| eprintln!("{done}/{total}"))?;
//! assert_eq!(frames.len(), 24);
//! # Ok::<(), aigc_core::Error>(())
//! ```

use aigc_core::burn::tensor::{Tensor, TensorData};
use aigc_core::{Error, Result};
use aigc_image::terrain::{
    NATIVE_SIZE, NUM_CLASSES, SIGMA_MAX, Terrain, TerrainModel, heights_from_model, normal_noise,
};

use crate::writer::RgbFrame;

/// Spherical interpolation from `a` (`t = 0`) to `b` (`t = 1`), by the angle between them;
/// a straight line where they are (anti)parallel.
pub fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let norm = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let cos = (dot / (norm(a) * norm(b)).max(f64::MIN_POSITIVE)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    let t = t as f64;
    let (wa, wb) = if omega.sin().abs() < 1e-6 {
        (1.0 - t, t)
    } else {
        let s = omega.sin();
        (((1.0 - t) * omega).sin() / s, (t * omega).sin() / s)
    };
    a.iter().zip(b).map(|(&x, &y)| (wa * x as f64 + wb * y as f64) as f32).collect()
}

/// The conditioning label of a continuous difficulty (`1.0..=100.0`): `(d - 1) / 99`, as
/// `aigc_image::terrain::difficulty_label` computes it for whole ones.
pub fn difficulty_label(difficulty: f32) -> Result<f32> {
    if !(1.0..=NUM_CLASSES as f32).contains(&difficulty) {
        return Err(Error::invalid_argument(
            "difficulty",
            format!("{difficulty} is not between 1 and {NUM_CLASSES}"),
        ));
    }
    Ok((difficulty - 1.0) / (NUM_CLASSES - 1) as f32)
}

/// What to walk through.
#[derive(Debug, Clone, PartialEq)]
pub struct TerrainWalk {
    /// The noise seeds. One: the noise stays put (a difficulty sweep only). Two: from the
    /// first (frame 0) to the second (the last frame). More: a closed loop through them and
    /// back towards the first, so the animation repeats without a jump.
    pub seeds: Vec<u64>,
    /// The difficulty of the first frame (1..=100, fractional values allowed).
    pub difficulty_from: f32,
    /// The difficulty of the last frame.
    pub difficulty_to: f32,
    /// How many frames.
    pub frames: usize,
    /// Frames denoised per model call (bounds memory: about 60 MB of activations per frame).
    pub batch: usize,
    /// Each frame's rendering is `scale` times the native 128x128.
    pub scale: usize,
}

impl Default for TerrainWalk {
    fn default() -> Self {
        Self {
            seeds: vec![0, 1],
            difficulty_from: 30.0,
            difficulty_to: 70.0,
            frames: 24,
            batch: 4,
            scale: 2,
        }
    }
}

/// One frame of a walk.
#[derive(Debug, Clone)]
pub struct WalkFrame {
    /// The frame's difficulty.
    pub difficulty: f32,
    /// Heights (`0..HEIGHT_RANGE`, lowest point 0), row-major 128x128.
    pub heights: Vec<f32>,
    /// The shaded colour rendering (`Terrain::render_rgb`).
    pub rgb: RgbFrame,
}

impl TerrainWalk {
    fn check(&self) -> Result<()> {
        if self.seeds.is_empty() {
            return Err(Error::invalid_argument("seeds", "at least one seed"));
        }
        if self.frames == 0 || self.batch == 0 || self.scale == 0 {
            return Err(Error::invalid_argument(
                "walk",
                "frames, batch and scale must be positive",
            ));
        }
        difficulty_label(self.difficulty_from)?;
        difficulty_label(self.difficulty_to)?;
        Ok(())
    }

    /// Frame `i`'s unit normal noise (128x128) and difficulty.
    pub fn frame_input(&self, i: usize) -> (Vec<f32>, f32) {
        let n = NATIVE_SIZE * NATIVE_SIZE;
        let k = self.seeds.len();
        let along = if self.frames > 1 { i as f32 / (self.frames - 1) as f32 } else { 0.0 };
        let difficulty = self.difficulty_from + (self.difficulty_to - self.difficulty_from) * along;
        let noise = match k {
            1 => normal_noise(self.seeds[0], n),
            2 => slerp(&normal_noise(self.seeds[0], n), &normal_noise(self.seeds[1], n), along),
            _ => {
                // A loop: `frames` evenly spaced stops over k legs, the last just before the
                // first seed again.
                let pos = i as f32 / self.frames as f32 * k as f32;
                let leg = (pos.floor() as usize).min(k - 1);
                let (a, b) = (self.seeds[leg], self.seeds[(leg + 1) % k]);
                slerp(&normal_noise(a, n), &normal_noise(b, n), pos - leg as f32)
            }
        };
        (noise, difficulty)
    }
}

/// Denoises unit normal `noises` (each 128x128) at `difficulties` in one model call: the
/// package's one-step sample, to heights.
pub fn sample_batch(
    model: &TerrainModel,
    noises: &[Vec<f32>],
    difficulties: &[f32],
) -> Result<Vec<Vec<f32>>> {
    let (b, n) = (noises.len(), NATIVE_SIZE * NATIVE_SIZE);
    if b == 0 || difficulties.len() != b || noises.iter().any(|z| z.len() != n) {
        return Err(Error::invalid_argument(
            "noises",
            format!("{b} noises of {n} values and as many difficulties"),
        ));
    }
    let labels = difficulties.iter().map(|&d| difficulty_label(d)).collect::<Result<Vec<_>>>()?;
    let flat: Vec<f32> = noises.iter().flatten().map(|&z| z * SIGMA_MAX).collect();
    let unet = model.unet();
    let x = Tensor::<4>::from_data(
        TensorData::new(flat, [b, 1, NATIVE_SIZE, NATIVE_SIZE]),
        unet.device(),
    );
    let out = unet.denoise(x, &vec![SIGMA_MAX; b], Some(&labels))?;
    let values = out
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::invalid_argument("denoised", format!("{e:?}")))?;
    Ok(values.chunks(n).map(heights_from_model).collect())
}

/// Renders heights (128x128) with the terrain module's shaded colour rendering.
pub fn render(heights: Vec<f32>, difficulty: f32, scale: usize) -> WalkFrame {
    let terrain =
        Terrain { model_values: Vec::new(), heights, difficulty: difficulty.round() as u32 };
    let (side, data) = terrain.render_rgb(scale);
    let side = side as u32;
    WalkFrame {
        difficulty,
        heights: terrain.heights,
        rgb: RgbFrame { width: side, height: side, data },
    }
}

/// Generates the walk's frames in batches, handing each to `on_frame(index, frame)` in order
/// (for writing as they come); an error from `on_frame` stops the walk.
pub fn walk(
    model: &TerrainModel,
    walk: &TerrainWalk,
    mut on_frame: impl FnMut(usize, WalkFrame) -> Result<()>,
) -> Result<()> {
    walk.check()?;
    let mut start = 0;
    while start < walk.frames {
        let end = (start + walk.batch).min(walk.frames);
        let (noises, difficulties): (Vec<_>, Vec<_>) =
            (start..end).map(|i| walk.frame_input(i)).unzip();
        let heights = sample_batch(model, &noises, &difficulties)?;
        for (j, (h, d)) in heights.into_iter().zip(difficulties).enumerate() {
            on_frame(start + j, render(h, d, walk.scale))?;
        }
        start = end;
    }
    Ok(())
}

/// The walk's frames; `progress(done, total)` after each frame.
pub fn walk_frames(
    model: &TerrainModel,
    walk_spec: &TerrainWalk,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<WalkFrame>> {
    let mut frames = Vec::with_capacity(walk_spec.frames);
    walk(model, walk_spec, |i, frame| {
        frames.push(frame);
        progress(i + 1, walk_spec.frames);
        Ok(())
    })?;
    Ok(frames)
}

/// Mean absolute difference of consecutive items (0 with fewer than two).
pub fn mean_abs_step<T: AsRef<[f32]>>(items: &[T]) -> f32 {
    let steps: Vec<f64> = items
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0].as_ref(), w[1].as_ref());
            a.iter().zip(b).map(|(&x, &y)| (x - y).abs() as f64).sum::<f64>()
                / a.len().max(1) as f64
        })
        .collect();
    if steps.is_empty() { 0.0 } else { (steps.iter().sum::<f64>() / steps.len() as f64) as f32 }
}

/// How smooth a walk is: the mean absolute frame-to-frame difference of its consecutive frames
/// against the same measure between independent samples (different seeds, one difficulty).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Smoothness {
    /// The walk's consecutive frames, on the heights (height units).
    pub walk_heights: f32,
    /// Independent samples, on the heights.
    pub independent_heights: f32,
    /// The walk's consecutive frames, on the RGB renderings (0..255).
    pub walk_rgb: f32,
    /// Independent samples, on the RGB renderings.
    pub independent_rgb: f32,
}

impl Smoothness {
    /// `walk_heights / independent_heights`: well below 1 for a smooth walk.
    pub fn heights_ratio(&self) -> f32 {
        self.walk_heights / self.independent_heights.max(f32::MIN_POSITIVE)
    }

    /// `walk_rgb / independent_rgb`.
    pub fn rgb_ratio(&self) -> f32 {
        self.walk_rgb / self.independent_rgb.max(f32::MIN_POSITIVE)
    }
}

/// The smoothness of a walk's `frames` against `samples` independent samples (seeds
/// `independent_seed`, `independent_seed + 1`, ...; at least 2) at the walk's middle
/// difficulty, rendered at the walk's scale.
pub fn smoothness(
    model: &TerrainModel,
    walk_spec: &TerrainWalk,
    frames: &[WalkFrame],
    samples: usize,
    independent_seed: u64,
) -> Result<Smoothness> {
    if frames.len() < 2 || samples < 2 {
        return Err(Error::invalid_argument("smoothness", "at least two frames and two samples"));
    }
    let difficulty = 0.5 * (walk_spec.difficulty_from + walk_spec.difficulty_to);
    let n = NATIVE_SIZE * NATIVE_SIZE;
    let mut independent = Vec::with_capacity(samples);
    let seeds: Vec<u64> = (0..samples as u64).map(|i| independent_seed.wrapping_add(i)).collect();
    for chunk in seeds.chunks(walk_spec.batch.max(1)) {
        let noises: Vec<Vec<f32>> = chunk.iter().map(|&s| normal_noise(s, n)).collect();
        let heights = sample_batch(model, &noises, &vec![difficulty; chunk.len()])?;
        independent.extend(heights.into_iter().map(|h| render(h, difficulty, walk_spec.scale)));
    }
    let heights =
        |f: &[WalkFrame]| mean_abs_step(&f.iter().map(|f| &f.heights[..]).collect::<Vec<_>>());
    let rgb = |f: &[WalkFrame]| {
        let as_f32: Vec<Vec<f32>> =
            f.iter().map(|f| f.rgb.data.iter().map(|&v| v as f32).collect()).collect();
        mean_abs_step(&as_f32)
    };
    Ok(Smoothness {
        walk_heights: heights(frames),
        independent_heights: heights(&independent),
        walk_rgb: rgb(frames),
        independent_rgb: rgb(&independent),
    })
}
