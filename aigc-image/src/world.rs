//! Game worlds: terrain without bounds, fetched tile by tile from a world seed, seamless.
//!
//! The reference is the package's tiled sampler (`TerrainGenerator._generate_tiled` in
//! `adaptive-terrain-diffusion` 0.4.2): the model denoises overlapping 128x128 views of one
//! shared noisy canvas, each denoised window is weighted by an outer product of Hann windows
//! (`max(hanning(128), 1e-3)`), and the canvas is their weighted mean in model space, turned
//! into heights afterwards. A game cannot sample the whole canvas at once, so [`World`] makes
//! every piece of that a function of world coordinates alone:
//!
//! - the noise of world pixel `(x, y)` is a hash of `(seed, x, y)` (a counter-based generator),
//!   so two windows that overlap see the same noise there, as on the package's canvas;
//! - windows lie on a fixed lattice, where the package's sampler puts them on a canvas that
//!   starts at world sample 0: window `(i, j)` covers the 128x128 samples from
//!   `(i * stride, j * stride)`, with `stride = 128 - overlap`;
//! - tiles are blocks of a whole number of strides, tile `(tx, ty)` starting at world sample
//!   `(tx * tile_size, ty * tile_size)`, so a tile edge is always where a window begins:
//!   the incoming window enters there at its `1e-3` floor weight, so cutting the world there
//!   adds no step of its own (at most a thousandth of the windows' difference). Each window is conditioned on the difficulty of the tile its first
//!   sample lies in, so a change of difficulty between tiles is blended across a cross-fade;
//! - a pixel's height is the weighted mean of the windows covering it, summed in one fixed
//!   order, each window denoised alone (batch of one).
//!
//! A pixel's value therefore depends on the seed, its coordinates and the difficulties of the
//! tiles around it, not on which tiles were asked for before or how many at once: tile `(x, y)`
//! is bit-identical whenever it is fetched, and two tiles that meet continue one surface across
//! their shared edge. Heights are the package's transform without its per-canvas zero floor
//! (a floor per tile would step at every edge): `0..HEIGHT_RANGE` in world units.
//!
//! The overlap: with the package's default of 32 samples, neighbouring windows share an
//! eighth of their noise and often settle on different ground levels, so the blended world
//! shows the window lattice as plateaus joined by 32-sample ramps (the package's own tiled
//! output looks the same; `tests/world.rs` checks the blend against it, within 1e-5 on the
//! same noise). Sharing half (an overlap of 64, this module's default) makes
//! neighbours agree and the lattice disappears, for 2.25 times the windows per area: a tile of
//! 128x128 costs four windows in a large region (nine alone).
//!
//! ```no_run
//! use aigc_image::terrain::TerrainModel;
//! use aigc_image::world::World;
//! # fn main() -> aigc_image::Result<()> {
//! let device = aigc_core::device::device_from_arg_or_env(None)?;
//! let model = TerrainModel::open("terrain_consistency_unet_difficulty100.onnx", &device)?;
//! // Harder terrain further east.
//! let mut world = World::new(model, 42, |x: i32, _y: i32| (20 + 10 * x.max(0)).min(100) as u32);
//! let tile = world.tile(3, -1)?; // world.tile_size() squared heights, row-major
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, VecDeque};

use aigc_core::{Error, Result};

use crate::terrain::{ASINH_SCALE, HEIGHT_RANGE, NATIVE_SIZE, SIGMA_MAX, TerrainModel};

/// The default overlap between neighbouring windows (the package's tiled sampler uses 32;
/// see the module docs).
pub const DEFAULT_OVERLAP: usize = 64;

/// The default tile side: two strides of the default overlap, the model's window size.
pub const DEFAULT_TILE_SIZE: usize = 128;

/// Denoised windows kept by default (each 64 KiB): enough for a game's view of a few tiles
/// around the player.
pub const DEFAULT_CACHE_WINDOWS: usize = 64;

/// Terrain fetched by tile from a world seed (see the module docs).
#[derive(Debug)]
pub struct World<F> {
    model: TerrainModel,
    seed: u64,
    difficulty: F,
    overlap: usize,
    tile_size: usize,
    cache: HashMap<(i64, i64), Vec<f32>>,
    order: VecDeque<(i64, i64)>,
    cache_windows: usize,
    blend: Vec<f32>,
}

/// Heights of a rectangle of the world, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HeightField {
    /// Width in samples.
    pub width: usize,
    /// Height in samples.
    pub height: usize,
    /// `width * height` heights, `0..HEIGHT_RANGE`.
    pub heights: Vec<f32>,
}

impl<F: Fn(i32, i32) -> u32> World<F> {
    /// A world of `seed` whose tile `(x, y)` has difficulty `difficulty(x, y)` (1..=100), with
    /// windows overlapping by [`DEFAULT_OVERLAP`] and tiles of [`DEFAULT_TILE_SIZE`].
    pub fn new(model: TerrainModel, seed: u64, difficulty: F) -> Self {
        Self {
            model,
            seed,
            difficulty,
            overlap: DEFAULT_OVERLAP,
            tile_size: DEFAULT_TILE_SIZE,
            cache: HashMap::new(),
            order: VecDeque::new(),
            cache_windows: DEFAULT_CACHE_WINDOWS,
            blend: blend_weights(),
        }
    }

    /// The same world with windows overlapping by `overlap` samples (0..128; the stride
    /// between windows is `128 - overlap`) and tiles of `tile_size`, a multiple of the stride.
    /// An overlap of 0 gives independent windows, which do not meet; `(32, 96)` is the
    /// package's overlap with one window per tile.
    pub fn with_layout(mut self, overlap: usize, tile_size: usize) -> Result<Self> {
        if overlap >= NATIVE_SIZE {
            return Err(Error::invalid_argument(
                "overlap",
                format!("{overlap} is not between 0 and {}", NATIVE_SIZE - 1),
            ));
        }
        let stride = NATIVE_SIZE - overlap;
        if tile_size == 0 || !tile_size.is_multiple_of(stride) || tile_size > 1 << 16 {
            return Err(Error::invalid_argument(
                "tile_size",
                format!("{tile_size} is not a multiple of the stride {stride} (up to 65536)"),
            ));
        }
        self.overlap = overlap;
        self.tile_size = tile_size;
        self.cache.clear();
        self.order.clear();
        Ok(self)
    }

    /// Keeps at most `windows` denoised windows for later tiles (0 keeps none). The cache only
    /// saves time; results are the same.
    pub fn with_cache(mut self, windows: usize) -> Self {
        self.cache_windows = windows;
        while self.order.len() > windows {
            if let Some(k) = self.order.pop_front() {
                self.cache.remove(&k);
            }
        }
        self
    }

    /// The world seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The side of a tile in samples.
    pub fn tile_size(&self) -> usize {
        self.tile_size
    }

    /// The samples neighbouring windows share.
    pub fn overlap(&self) -> usize {
        self.overlap
    }

    /// The distance between neighbouring windows' starts (`128 - overlap`).
    pub fn stride(&self) -> usize {
        NATIVE_SIZE - self.overlap
    }

    /// The terrain model the windows are sampled with.
    pub fn model(&self) -> &TerrainModel {
        &self.model
    }

    /// The heights of tile `(x, y)`: `tile_size()` squared, row-major, the same on every call.
    pub fn tile(&mut self, x: i32, y: i32) -> Result<Vec<f32>> {
        let s = self.tile_size() as i64;
        Ok(self.heights(x as i64 * s, y as i64 * s, s as usize, s as usize, |_, _| {})?.heights)
    }

    /// Tile `(x, y)` with one more row and column: `(tile_size() + 1)` squared samples, whose
    /// last column is the first column of tile `(x + 1, y)` and last row the first row of
    /// tile `(x, y + 1)`, bit for bit. Meshes made per tile from these share their edge
    /// vertices, so they join without gaps.
    pub fn tile_grid(&mut self, x: i32, y: i32) -> Result<HeightField> {
        let s = self.tile_size();
        self.heights(x as i64 * s as i64, y as i64 * s as i64, s + 1, s + 1, |_, _| {})
    }

    /// The heights of `width`x`height` tiles from tile `(x, y)`, as one field
    /// (`width * tile_size()` samples across). `progress(done, total)` counts the windows
    /// denoised.
    pub fn region(
        &mut self,
        x: i32,
        y: i32,
        width: usize,
        height: usize,
        progress: impl FnMut(usize, usize),
    ) -> Result<HeightField> {
        let s = self.tile_size();
        let (w, h) = match (width.checked_mul(s), height.checked_mul(s)) {
            (Some(w), Some(h)) if width > 0 && height > 0 => (w, h),
            _ => {
                return Err(Error::invalid_argument(
                    "region",
                    format!("{width}x{height} tiles is not a region"),
                ));
            }
        };
        self.heights(x as i64 * s as i64, y as i64 * s as i64, w, h, progress)
    }

    /// The heights of any `width`x`height` rectangle of world samples from `(x0, y0)`. A sample
    /// has the same value whichever rectangle it is fetched in.
    pub fn heights(
        &mut self,
        x0: i64,
        y0: i64,
        width: usize,
        height: usize,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<HeightField> {
        const LIMIT: usize = 1 << 28;
        if width == 0 || height == 0 || width.checked_mul(height).is_none_or(|n| n > LIMIT) {
            return Err(Error::invalid_argument(
                "heights",
                format!("a {width}x{height} rectangle (at most {LIMIT} samples)"),
            ));
        }
        let (xs, ys) = (self.windows_over(x0, width), self.windows_over(y0, height));
        let total = xs.clone().count() * ys.clone().count();
        let stride = self.stride() as i64;
        let mut sum = vec![0f32; width * height];
        let mut weight = vec![0f32; width * height];
        let mut done = 0;
        // Fixed order (rows of windows, then columns) so that every sample sums the same way.
        for j in ys {
            for i in xs.clone() {
                let (wx, wy) = (i * stride, j * stride);
                let values = self.window(i, j)?;
                let n = NATIVE_SIZE as i64;
                // The window's part of the rectangle.
                let (ax, bx) = (wx.max(x0), (wx + n).min(x0 + width as i64));
                let (ay, by) = (wy.max(y0), (wy + n).min(y0 + height as i64));
                for py in ay..by {
                    let (wr, r) = ((py - wy) as usize, (py - y0) as usize);
                    for px in ax..bx {
                        let (wc, c) = ((px - wx) as usize, (px - x0) as usize);
                        let b = self.blend[wr * NATIVE_SIZE + wc];
                        sum[r * width + c] += values[wr * NATIVE_SIZE + wc] * b;
                        weight[r * width + c] += b;
                    }
                }
                done += 1;
                progress(done, total);
            }
        }
        let heights = sum.iter().zip(&weight).map(|(&s, &w)| height_of(s / w.max(1e-12))).collect();
        Ok(HeightField { width, height, heights })
    }

    /// The window indices along one axis whose 128 samples meet `[start, start + len)`.
    fn windows_over(&self, start: i64, len: usize) -> std::ops::RangeInclusive<i64> {
        let (s, n) = (self.stride() as i64, NATIVE_SIZE as i64);
        // Window i covers p when i s <= p < i s + n.
        let first = -((-(start - n + 1)).div_euclid(s)); // ceil
        let last = (start + len as i64 - 1).div_euclid(s);
        first..=last
    }

    /// Window `(i, j)` denoised (model space, row-major 128x128), from the cache or the model.
    fn window(&mut self, i: i64, j: i64) -> Result<Vec<f32>> {
        if let Some(v) = self.cache.get(&(i, j)) {
            return Ok(v.clone());
        }
        let (stride, tile_size) = (self.stride() as i64, self.tile_size as i64);
        let (wx, wy) = (i * stride, j * stride);
        let tile = |t: i64| {
            i32::try_from(t)
                .map_err(|_| Error::invalid_argument("tile", format!("{t} is off the world")))
        };
        let difficulty =
            (self.difficulty)(tile(wx.div_euclid(tile_size))?, tile(wy.div_euclid(tile_size))?);
        let mut noisy = Vec::with_capacity(NATIVE_SIZE * NATIVE_SIZE);
        for r in 0..NATIVE_SIZE as i64 {
            for c in 0..NATIVE_SIZE as i64 {
                noisy.push(world_noise(self.seed, wx + c, wy + r) * SIGMA_MAX);
            }
        }
        let values = self.model.denoise(&noisy, SIGMA_MAX, difficulty)?;
        if self.cache_windows > 0 {
            if self.order.len() >= self.cache_windows
                && let Some(k) = self.order.pop_front()
            {
                self.cache.remove(&k);
            }
            self.order.push_back((i, j));
            self.cache.insert((i, j), values.clone());
        }
        Ok(values)
    }
}

/// `max(hanning(128), 1e-3)` outer product, as the package blends its tiles.
fn blend_weights() -> Vec<f32> {
    let n = NATIVE_SIZE;
    let hann: Vec<f32> = (0..n)
        .map(|k| {
            let w = 0.5 - 0.5 * (std::f64::consts::TAU * k as f64 / (n - 1) as f64).cos();
            (w as f32).max(1e-3)
        })
        .collect();
    (0..n * n).map(|k| hann[k / n] * hann[k % n]).collect()
}

/// A model-space value to a height: the package's `_from_model_space` without the zero floor.
fn height_of(v: f32) -> f32 {
    let normalizer = (HEIGHT_RANGE / ASINH_SCALE).asinh();
    let unit = ((v + 1.0) * 0.5).clamp(0.0, 1.0);
    (ASINH_SCALE * (unit * normalizer).sinh()).clamp(0.0, HEIGHT_RANGE)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The standard normal noise of world sample `(x, y)` under `seed`: a hash of the three
/// (splitmix64 rounds), two 32-bit uniforms, Box-Muller.
pub fn world_noise(seed: u64, x: i64, y: i64) -> f32 {
    let h = splitmix64(splitmix64(splitmix64(seed) ^ x as u64) ^ y as u64);
    let u1 = ((h >> 32) as f64 + 1.0) / 4_294_967_296.0; // (0, 1]
    let u2 = (h & 0xFFFF_FFFF) as f64 / 4_294_967_296.0;
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Mean absolute differences between neighbouring samples of a tiled field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeamStats {
    /// Over pairs that straddle a tile edge.
    pub boundary: f64,
    /// Over pairs inside one tile.
    pub inside: f64,
    /// How many pairs straddle an edge.
    pub boundary_pairs: usize,
    /// How many pairs lie inside a tile.
    pub inside_pairs: usize,
}

/// Compares height steps across tile edges with steps inside tiles, over horizontal and
/// vertical neighbours of a `width`x`height` field cut into `tile`x`tile` tiles from its
/// corner. Seamless tiling gives `boundary` no larger than `inside`.
pub fn seam_stats(field: &HeightField, tile: usize) -> Result<SeamStats> {
    let (w, h) = (field.width, field.height);
    if tile == 0 || Some(field.heights.len()) != w.checked_mul(h) {
        return Err(Error::invalid_argument(
            "field",
            format!("{} values for {w}x{h} in tiles of {tile}", field.heights.len()),
        ));
    }
    let (mut b, mut bn, mut i, mut inn) = (0f64, 0usize, 0f64, 0usize);
    let mut add = |d: f32, edge: bool| {
        if edge {
            b += d.abs() as f64;
            bn += 1;
        } else {
            i += d.abs() as f64;
            inn += 1;
        }
    };
    let at = |r: usize, c: usize| field.heights[r * w + c];
    for r in 0..h {
        for c in 0..w {
            if c + 1 < w {
                add(at(r, c + 1) - at(r, c), (c + 1) % tile == 0);
            }
            if r + 1 < h {
                add(at(r + 1, c) - at(r, c), (r + 1) % tile == 0);
            }
        }
    }
    let mean = |s: f64, n: usize| if n > 0 { s / n as f64 } else { 0.0 };
    Ok(SeamStats {
        boundary: mean(b, bn),
        inside: mean(i, inn),
        boundary_pairs: bn,
        inside_pairs: inn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_normal_and_local() {
        let z: Vec<f32> =
            (0..40_000).map(|k| world_noise(9, k % 200 - 100, k / 200 - 100)).collect();
        let mean = z.iter().sum::<f32>() / z.len() as f32;
        let var = z.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / z.len() as f32;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.03, "{mean} {var}");
        assert_eq!(world_noise(9, -5, 7), world_noise(9, -5, 7));
        assert_ne!(world_noise(9, -5, 7), world_noise(10, -5, 7));
        assert_ne!(world_noise(9, 7, -5), world_noise(9, -5, 7));
    }

    #[test]
    fn blend_and_heights() {
        let b = blend_weights();
        assert!((b[0] - 1e-6).abs() < 1e-12);
        let mid = b[63 * 128 + 64];
        assert!(mid > 0.99, "{mid}");
        assert_eq!(height_of(-1.0), 0.0);
        assert!((height_of(1.0) - HEIGHT_RANGE).abs() < 1e-3);
    }

    #[test]
    fn seams_count_pairs() {
        // A 4x4 field in 2x2 tiles: per row 1 edge pair and 2 inner pairs, likewise per column.
        let field =
            HeightField { width: 4, height: 4, heights: (0..16).map(|k| k as f32).collect() };
        let s = seam_stats(&field, 2).unwrap();
        assert_eq!((s.boundary_pairs, s.inside_pairs), (8, 16));
        assert_eq!((s.boundary, s.inside), (2.5, 2.5));
    }
}
