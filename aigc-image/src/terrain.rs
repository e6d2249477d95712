//! Terrain heightmaps from the consistency model of `adaptive-terrain-diffusion`.
//!
//! The model denoises a 1x128x128 heightfield in "model space" (`[-1, 1]`, an asinh-compressed
//! height) in one step from pure noise at sigma 80, conditioned on a difficulty from 1 to 100.
//! [`TerrainModel::generate`] follows the package's `TerrainGenerator.generate` at the native
//! size: noise times sigma_max, one denoising step, then the inverse height transform
//! (`0.1 sinh(u * asinh(221.69))`, clipped, lowest point at 0). More steps are possible
//! (consistency multistep sampling, re-noising to decreasing sigmas on a Karras schedule);
//! the package itself only does one.

use std::path::Path;

use aigc_core::burn::tensor::{Device, Tensor, TensorData};

use aigc_core::sampling::Xoshiro256StarStar;
use aigc_core::weights::OnnxFile;
use aigc_core::{Error, Result};

use crate::adm::{AdmConfig, AdmUnet};

/// The model's side length.
pub const NATIVE_SIZE: usize = 128;
/// Difficulty labels run from 1 to this.
pub const NUM_CLASSES: u32 = 100;
/// Heights span `0..HEIGHT_RANGE` (metres in the package's units).
pub const HEIGHT_RANGE: f32 = 22.168_64;
/// The asinh compression's scale.
pub const ASINH_SCALE: f32 = 0.1;
/// The noise level sampling starts from.
pub const SIGMA_MAX: f32 = 80.0;
/// The smallest noise level.
pub const SIGMA_MIN: f32 = 0.002;

/// The terrain consistency model.
#[derive(Debug, Clone)]
pub struct TerrainModel {
    unet: AdmUnet,
}

/// One generated terrain.
#[derive(Debug, Clone)]
pub struct Terrain {
    /// The model's denoised output (`[-1, 1]`, row-major 128x128), before the height transform.
    pub model_values: Vec<f32>,
    /// Heights (`0..HEIGHT_RANGE`, lowest point 0), row-major 128x128.
    pub heights: Vec<f32>,
    /// The difficulty it was conditioned on.
    pub difficulty: u32,
}

/// Standard normal values from a seed (Box-Muller over xoshiro256**).
pub fn normal_noise(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = Xoshiro256StarStar::new(seed);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.next_f64(); // (0, 1]
        let u2 = rng.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        out.push((r * a.cos()) as f32);
        out.push((r * a.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// The conditioning label of a difficulty (1..=100): `(d - 1) / 99`.
pub fn difficulty_label(difficulty: u32) -> Result<f32> {
    if !(1..=NUM_CLASSES).contains(&difficulty) {
        return Err(Error::invalid_argument(
            "difficulty",
            format!("{difficulty} is not between 1 and {NUM_CLASSES}"),
        ));
    }
    Ok((difficulty - 1) as f32 / (NUM_CLASSES - 1) as f32)
}

/// Model space to heights, as the package's `_from_model_space(zero_floor=True)` computes it.
pub fn heights_from_model(values: &[f32]) -> Vec<f32> {
    let normalizer = (HEIGHT_RANGE / ASINH_SCALE).asinh();
    let mut h: Vec<f32> = values
        .iter()
        .map(|&v| {
            let unit = ((v + 1.0) * 0.5).clamp(0.0, 1.0);
            (ASINH_SCALE * (unit * normalizer).sinh()).clamp(0.0, HEIGHT_RANGE)
        })
        .collect();
    let min = h.iter().copied().fold(f32::INFINITY, f32::min);
    if min.is_finite() {
        h.iter_mut().for_each(|v| *v -= min);
    }
    h
}

/// The noise levels of an `steps`-step run: sigma_max, then Karras-spaced (rho 7) levels down
/// towards sigma_min (which itself is left out: there the model is the identity).
pub fn sigmas(steps: usize) -> Vec<f32> {
    let rho = 7.0f64;
    let (hi, lo) = ((SIGMA_MAX as f64).powf(1.0 / rho), (SIGMA_MIN as f64).powf(1.0 / rho));
    (0..steps).map(|i| (hi + i as f64 / steps as f64 * (lo - hi)).powf(rho) as f32).collect()
}

impl TerrainModel {
    /// Loads the ONNX checkpoint (`terrain_consistency_unet_difficulty100.onnx`) onto `device`.
    /// Fails when the file cannot be read, a parameter is missing or misshaped (one report
    /// naming them all), or the UNet is not a one-channel model with a difficulty label.
    pub fn open(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let file = OnnxFile::open(path)?;
        let params = file.parameters();
        let unet = AdmUnet::load(&params, AdmConfig::default(), device)?;
        if unet.layout().in_channels != 1 || !unet.layout().label {
            return Err(Error::unsupported(
                "terrain model",
                "expected 1 channel and a difficulty label",
            ));
        }
        Ok(Self { unet })
    }

    /// The ADM UNet underneath, for calling it with other noise levels or batches.
    pub fn unet(&self) -> &AdmUnet {
        &self.unet
    }

    /// One denoising call: `noisy` (row-major 128x128) at noise level `sigma` to model space.
    pub fn denoise(&self, noisy: &[f32], sigma: f32, difficulty: u32) -> Result<Vec<f32>> {
        let n = NATIVE_SIZE * NATIVE_SIZE;
        if noisy.len() != n {
            return Err(Error::invalid_argument(
                "noisy",
                format!("{} values, expected {n}", noisy.len()),
            ));
        }
        let label = difficulty_label(difficulty)?;
        let x = Tensor::<4>::from_data(
            TensorData::new(noisy.to_vec(), [1, 1, NATIVE_SIZE, NATIVE_SIZE]),
            self.unet.device(),
        );
        let out = self.unet.denoise(x, &[sigma], Some(&[label]))?;
        out.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| Error::invalid_argument("denoised", format!("{e:?}")))
    }

    /// Generates a terrain from unit normal `noise` (128x128) in `steps` steps (1 as the
    /// package does; more re-noise with `seed`'s stream between steps). `progress(i, steps)`
    /// is called after each step.
    ///
    /// Fails when `steps` is 0, `noise` does not hold 128x128 values, or `difficulty` is
    /// outside 1..=100.
    pub fn generate(
        &self,
        noise: &[f32],
        difficulty: u32,
        steps: usize,
        seed: u64,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Terrain> {
        if steps == 0 {
            return Err(Error::invalid_argument("steps", "at least one step"));
        }
        let sig = sigmas(steps);
        let noisy: Vec<f32> = noise.iter().map(|&z| z * sig[0]).collect();
        let mut x = self.denoise(&noisy, sig[0], difficulty)?;
        progress(1, steps);
        for (i, &s) in sig.iter().enumerate().skip(1) {
            let z = normal_noise(seed.wrapping_add(i as u64), x.len());
            let scale = (s * s - SIGMA_MIN * SIGMA_MIN).max(0.0).sqrt();
            let noisy: Vec<f32> = x.iter().zip(&z).map(|(&d, &z)| d + scale * z).collect();
            x = self.denoise(&noisy, s, difficulty)?;
            progress(i + 1, steps);
        }
        let heights = heights_from_model(&x);
        Ok(Terrain { model_values: x, heights, difficulty })
    }
}

impl Terrain {
    /// The heights normalised to `[0, 1]` by this terrain's highest point (for a 16-bit PNG).
    pub fn normalized(&self) -> Vec<f32> {
        let max = self.heights.iter().copied().fold(0f32, f32::max);
        let s = if max > 0.0 { 1.0 / max } else { 0.0 };
        self.heights.iter().map(|h| h * s).collect()
    }

    /// A shaded colour rendering, `scale` times the native size (bilinear): a hypsometric
    /// tint (water blue, lowland green, highland brown, snow) lit from the north-west.
    pub fn render_rgb(&self, scale: usize) -> (usize, Vec<u8>) {
        let scale = scale.max(1);
        (NATIVE_SIZE * scale, render_rgb(&self.heights, NATIVE_SIZE, NATIVE_SIZE, scale))
    }
}

/// Bilinear sample of a `width`x`height` grid at continuous pixel coordinates.
fn bilinear(h: &[f32], width: usize, height: usize, y: f32, x: f32) -> f32 {
    let (y, x) = (y.clamp(0.0, (height - 1) as f32), x.clamp(0.0, (width - 1) as f32));
    let (y0, x0) = (y.floor() as usize, x.floor() as usize);
    let (y1, x1) = ((y0 + 1).min(height - 1), (x0 + 1).min(width - 1));
    let (wy, wx) = (y - y0 as f32, x - x0 as f32);
    let top = h[y0 * width + x0] * (1.0 - wx) + h[y0 * width + x1] * wx;
    let bottom = h[y1 * width + x0] * (1.0 - wx) + h[y1 * width + x1] * wx;
    top * (1.0 - wy) + bottom * wy
}

/// The hypsometric tint of a height `t` normalised to `[0, 1]` (clamped): water blue,
/// lowland green, highland brown, snow; sRGB components in `[0, 1]`.
pub fn hypsometric_tint(t: f32) -> [f32; 3] {
    const STOPS: [(f32, [f32; 3]); 6] = [
        (0.00, [0.16, 0.33, 0.58]),
        (0.08, [0.36, 0.56, 0.42]),
        (0.30, [0.55, 0.68, 0.38]),
        (0.55, [0.70, 0.62, 0.42]),
        (0.80, [0.55, 0.45, 0.36]),
        (1.00, [0.97, 0.97, 0.98]),
    ];
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let k = STOPS.windows(2).position(|w| t <= w[1].0).unwrap_or(STOPS.len() - 2);
    let ((a, ca), (b, cb)) = (STOPS[k], STOPS[k + 1]);
    let f = if b > a { (t - a) / (b - a) } else { 0.0 };
    [0, 1, 2].map(|c| ca[c] + (cb[c] - ca[c]) * f)
}

/// A shaded colour rendering of any `width`x`height` heightmap (row-major, heights from 0),
/// `scale` times its size (bilinear), as [`Terrain::render_rgb`] draws a terrain: returns the
/// RGB bytes of a `width * scale` x `height * scale` image. The tint is normalised by the
/// map's highest point.
pub fn render_heights_rgb(
    heights: &[f32],
    width: usize,
    height: usize,
    scale: usize,
) -> Result<Vec<u8>> {
    if width == 0 || height == 0 || Some(heights.len()) != width.checked_mul(height) {
        return Err(Error::invalid_argument(
            "heights",
            format!("{} values for a {width}x{height} map", heights.len()),
        ));
    }
    if scale == 0 {
        return Err(Error::invalid_argument("scale", "at least 1"));
    }
    Ok(render_rgb(heights, width, height, scale))
}

fn render_rgb(heights: &[f32], width: usize, height: usize, scale: usize) -> Vec<u8> {
    let (out_w, out_h) = (width * scale, height * scale);
    let max = heights.iter().copied().fold(1e-6f32, f32::max);
    let big: Vec<f32> = (0..out_w * out_h)
        .map(|i| {
            let (y, x) = ((i / out_w) as f32, (i % out_w) as f32);
            let s = scale as f32;
            bilinear(heights, width, height, (y + 0.5) / s - 0.5, (x + 0.5) / s - 0.5)
        })
        .collect();
    // Light from the north-west, 45 degrees up. The relief is drawn as if the highest point
    // stood a quarter of the map's width above the lowest, so that slopes read at any height
    // range.
    let light = {
        let (az, alt) = (315f32.to_radians(), 45f32.to_radians());
        [alt.cos() * az.sin(), -alt.cos() * az.cos(), alt.sin()]
    };
    let cell = 2.0 * max / (0.25 * out_w.min(out_h) as f32);
    let mut rgb = Vec::with_capacity(out_w * out_h * 3);
    for y in 0..out_h {
        for x in 0..out_w {
            let at = |yy: usize, xx: usize| big[yy.min(out_h - 1) * out_w + xx.min(out_w - 1)];
            let dzdx = (at(y, x + 1) - at(y, x.saturating_sub(1))) / (2.0 * cell);
            let dzdy = (at(y + 1, x) - at(y.saturating_sub(1), x)) / (2.0 * cell);
            let n = [-dzdx, -dzdy, 1.0];
            let len = (n[0] * n[0] + n[1] * n[1] + 1.0).sqrt();
            let shade = ((n[0] * light[0] + n[1] * light[1] + n[2] * light[2]) / len).max(0.0);
            let c = hypsometric_tint(big[y * out_w + x] / max);
            let lit = 0.35 + 0.65 * shade;
            rgb.extend(c.map(|v| ((v * lit).clamp(0.0, 1.0) * 255.0).round() as u8));
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_and_labels() {
        assert_eq!(difficulty_label(1).unwrap(), 0.0);
        assert_eq!(difficulty_label(100).unwrap(), 1.0);
        assert!(difficulty_label(0).is_err() && difficulty_label(101).is_err());
        // -1 maps to 0, +1 to the full range; the lowest point becomes 0.
        let h = heights_from_model(&[-1.0, 1.0, 0.0]);
        assert_eq!(h[0], 0.0);
        assert!((h[1] - HEIGHT_RANGE).abs() < 1e-3, "{}", h[1]);
        let s = sigmas(3);
        assert_eq!(s[0], SIGMA_MAX);
        assert!(s[1] < s[0] && s[2] < s[1] && s[2] > SIGMA_MIN);
        let z = normal_noise(7, 20001);
        let mean = z.iter().sum::<f32>() / z.len() as f32;
        let var = z.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / z.len() as f32;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "{mean} {var}");
        assert_eq!(normal_noise(7, 5), normal_noise(7, 5));
    }
}
