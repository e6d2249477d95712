//! CLIP's image preprocessing, as transformers' `CLIPImageProcessor` does it by default:
//! resize so that the shortest side is 224 with PIL's bicubic filter, centre-crop 224 x 224,
//! rescale by 1/255, normalise with OpenAI's mean and standard deviation, channels first.
//!
//! transformers resizes through Pillow on the 8-bit image (its PIL backend, which
//! `CLIPImageProcessor` resolves to when torchvision is not installed). The resampling here is
//! Pillow's `ImagingResample` (`libImaging/Resample.c`) redone step by step: the same filter
//! windows and weights, the weights rounded to 22-bit fixed point, a horizontal pass then a
//! vertical one, each rounding and clamping to 8 bits. On the test images it reproduces Pillow
//! 13's resized pixels exactly, so the pixel values match transformers' to the last bit. The
//! torchvision backend (`CLIPImageProcessor` with torchvision installed) resizes the 8-bit
//! tensor with torchvision's antialiased bicubic instead and folds rescaling into the float32
//! normalisation, so its values are close to these but not guaranteed equal (not measured: the
//! reference environment has no torchvision).

use std::path::Path;

use aigc_core::burn::tensor::{Device, Tensor, TensorData};
use aigc_core::{Error, Result};

/// OpenAI CLIP's per-channel mean (`OPENAI_CLIP_MEAN` in transformers).
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's per-channel standard deviation (`OPENAI_CLIP_STD` in transformers).
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// Largest side, in pixels, a configuration may ask for (bounds the allocations it sizes).
const MAX_SIDE: usize = 1 << 14;

/// Pillow's resampling filters (the `resample` value of `preprocessor_config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// Lanczos (windowed sinc, support 3): PIL id 1.
    Lanczos,
    /// Triangle (support 1): PIL id 2.
    Bilinear,
    /// Keys cubic with `a = -0.5` (support 2): PIL id 3, CLIP's default.
    Bicubic,
    /// Box (support 0.5): PIL id 4.
    Box,
    /// Hamming-windowed sinc (support 1): PIL id 5.
    Hamming,
}

impl Resample {
    /// The filter with PIL's numeric id (`PIL.Image.Resampling`); nearest (0) is not one of
    /// the convolution filters and is not supported.
    pub fn from_pil(id: i64) -> Result<Self> {
        match id {
            1 => Ok(Resample::Lanczos),
            2 => Ok(Resample::Bilinear),
            3 => Ok(Resample::Bicubic),
            4 => Ok(Resample::Box),
            5 => Ok(Resample::Hamming),
            other => Err(Error::unsupported("resampling filter", format!("PIL id {other}"))),
        }
    }

    /// Half-width of the filter at scale 1.
    fn support(self) -> f64 {
        match self {
            Resample::Box => 0.5,
            Resample::Bilinear | Resample::Hamming => 1.0,
            Resample::Bicubic => 2.0,
            Resample::Lanczos => 3.0,
        }
    }

    /// The filter's weight at `x` (Pillow's expressions, in f64).
    fn weight(self, x: f64) -> f64 {
        fn sinc(x: f64) -> f64 {
            if x == 0.0 {
                return 1.0;
            }
            let x = x * std::f64::consts::PI;
            x.sin() / x
        }
        match self {
            Resample::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Resample::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Resample::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    // Pillow writes the window's constants as C floats.
                    x.sin() / x * (0.54f32 as f64 + 0.46f32 as f64 * x.cos())
                }
            }
            Resample::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Resample::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Fraction bits of Pillow's fixed-point weights for 8-bit images (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The weights of one resampling pass, as Pillow's `precompute_coeffs` and
/// `normalize_coeffs_8bpc` make them: for output position `i`, `len` input positions from
/// `start`, with fixed-point weights `weights[i * ksize..][..len]`.
struct Window {
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
    ksize: usize,
}

impl Window {
    fn new(in_size: usize, out_size: usize, filter: Resample) -> Self {
        // Pillow takes the box edges as C floats and computes in doubles.
        let scale = (in_size as f32) as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut k = vec![0f64; ksize];
        for (xx, row) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // C's (int) casts: truncation toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let len = (xmax - xmin).max(0) as usize;
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(len) {
                let w = filter.weight(((x as i64 + xmin) as f64 - center + 0.5) * ss);
                *kx = w;
                ww += w;
            }
            for (kx, out) in k.iter().zip(row.iter_mut()).take(len) {
                let w = if ww != 0.0 { kx / ww } else { *kx };
                let fixed = w * (1u32 << PRECISION_BITS) as f64;
                *out = if w < 0.0 { (-0.5 + fixed) as i32 } else { (0.5 + fixed) as i32 };
            }
            bounds.push((xmin as usize, len));
        }
        Self { bounds, weights, ksize }
    }

    /// One output value from the input values `at(start + j)`, rounded and clamped to 8 bits
    /// as Pillow's `clip8` does.
    #[inline]
    fn apply(&self, i: usize, at: impl Fn(usize) -> u8) -> u8 {
        let (start, len) = self.bounds[i];
        let k = &self.weights[i * self.ksize..][..len];
        let mut ss = 1i64 << (PRECISION_BITS - 1);
        for (j, &w) in k.iter().enumerate() {
            ss += at(start + j) as i64 * w as i64;
        }
        (ss >> PRECISION_BITS).clamp(0, 255) as u8
    }
}

/// Resizes interleaved RGB8 pixels (`width x height`, rows top to bottom) to `new_width x
/// new_height` as Pillow's `Image.resize(size, filter)` does for an RGB image: a horizontal
/// pass when the width changes, then a vertical pass when the height changes, each in 8 bits.
pub fn resize_rgb8(
    rgb: &[u8],
    [width, height]: [usize; 2],
    [new_width, new_height]: [usize; 2],
    filter: Resample,
) -> Result<Vec<u8>> {
    check_rgb8(rgb, width, height)?;
    if new_width == 0 || new_height == 0 || new_width > MAX_SIDE || new_height > MAX_SIDE {
        return Err(Error::invalid_argument(
            "size",
            format!("cannot resize to {new_width} x {new_height}"),
        ));
    }
    let mut img = rgb.to_vec();
    let mut w = width;
    if new_width != width {
        let win = Window::new(width, new_width, filter);
        let mut out = vec![0u8; new_width * height * 3];
        for (src, dst) in img.chunks_exact(width * 3).zip(out.chunks_exact_mut(new_width * 3)) {
            for xx in 0..new_width {
                for c in 0..3 {
                    dst[xx * 3 + c] = win.apply(xx, |x| src[x * 3 + c]);
                }
            }
        }
        img = out;
        w = new_width;
    }
    if new_height != height {
        let win = Window::new(height, new_height, filter);
        let mut out = vec![0u8; w * new_height * 3];
        for (yy, dst) in out.chunks_exact_mut(w * 3).enumerate() {
            for (i, v) in dst.iter_mut().enumerate() {
                *v = win.apply(yy, |y| img[y * w * 3 + i]);
            }
        }
        img = out;
    }
    Ok(img)
}

fn check_rgb8(rgb: &[u8], width: usize, height: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::invalid_argument("image", format!("empty image ({width} x {height})")));
    }
    if width.checked_mul(height).and_then(|n| n.checked_mul(3)) != Some(rgb.len()) {
        return Err(Error::invalid_argument(
            "image",
            format!("{} bytes for a {width} x {height} RGB8 image", rgb.len()),
        ));
    }
    Ok(())
}

/// How [`ClipImageProcessor`] resizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTo {
    /// The shortest side to this many pixels, the longest side scaled and truncated
    /// (`int(size * long / short)`), as `{"shortest_edge": n}` asks.
    ShortestEdge(usize),
    /// Exactly this size, as `{"height": h, "width": w}` asks.
    Exact {
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
}

/// Raw interleaved RGB8 pixels, rows top to bottom.
#[derive(Debug, Clone, Copy)]
pub struct RgbBytes<'a> {
    /// `width * height * 3` bytes.
    pub data: &'a [u8],
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

/// `CLIPImageProcessor`: images to the `pixel_values` the vision tower takes.
///
/// ```no_run
/// use aigc_crossmodal::clip_image::ClipImageProcessor;
///
/// let device = aigc_core::parse_device("flex")?;
/// // preprocessor_config.json when the directory has one, CLIP's defaults otherwise.
/// let processor = ClipImageProcessor::open("models/clip-vit-base-patch32")?;
/// let image = image::RgbImage::new(640, 480);
/// let pixel_values = processor.preprocess(&[image], &device)?; // [1, 3, 224, 224]
/// # let _ = pixel_values;
/// # Ok::<(), aigc_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClipImageProcessor {
    /// The resize (`do_resize`, `size`); `None` keeps the image's size.
    pub resize: Option<ResizeTo>,
    /// The resampling filter (`resample`).
    pub resample: Resample,
    /// The centre crop `[height, width]` (`do_center_crop`, `crop_size`); an image smaller than
    /// the crop is padded with zeros (black, before rescaling), as transformers does.
    pub crop: Option<[usize; 2]>,
    /// The factor 8-bit values are multiplied by (`do_rescale`, `rescale_factor`).
    pub rescale: Option<f64>,
    /// Per-channel mean and standard deviation (`do_normalize`, `image_mean`, `image_std`).
    pub normalize: Option<([f64; 3], [f64; 3])>,
}

impl Default for ClipImageProcessor {
    /// transformers' `CLIPImageProcessor()`: shortest side 224, bicubic, crop 224 x 224,
    /// 1/255, OpenAI's mean and standard deviation.
    fn default() -> Self {
        Self {
            resize: Some(ResizeTo::ShortestEdge(224)),
            resample: Resample::Bicubic,
            crop: Some([224, 224]),
            rescale: Some(1.0 / 255.0),
            normalize: Some((OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)),
        }
    }
}

impl ClipImageProcessor {
    /// Reads `preprocessor_config.json` from a model directory, or gives the defaults when
    /// there is none.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref().join("preprocessor_config.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_json(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Parses `preprocessor_config.json` text; absent keys take `CLIPImageProcessor`'s
    /// defaults. `size` and `crop_size` may be objects or (older files) plain integers.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument("preprocessor_config.json", e.to_string()))?;
        let bad = |what: &str| {
            Error::invalid_argument("preprocessor_config.json", format!("`{what}` is invalid"))
        };
        let flag = |k: &str| -> Result<bool> {
            match v.get(k) {
                None => Ok(true),
                Some(x) => x.as_bool().ok_or_else(|| bad(k)),
            }
        };
        let side = |x: &serde_json::Value, k: &str| -> Result<usize> {
            x.as_u64().map(|n| n as usize).filter(|&n| n > 0 && n <= MAX_SIDE).ok_or_else(|| bad(k))
        };
        let d = Self::default();
        let resize = if !flag("do_resize")? {
            None
        } else {
            Some(match v.get("size") {
                None => d.resize.unwrap_or(ResizeTo::ShortestEdge(224)),
                Some(n) if n.is_number() => ResizeTo::ShortestEdge(side(n, "size")?),
                Some(s) => match (s.get("shortest_edge"), s.get("height"), s.get("width")) {
                    (Some(n), _, _) => {
                        if s.get("longest_edge").is_some_and(|l| !l.is_null()) {
                            return Err(Error::unsupported(
                                "CLIP image processor",
                                "size with both shortest_edge and longest_edge",
                            ));
                        }
                        ResizeTo::ShortestEdge(side(n, "size.shortest_edge")?)
                    }
                    (None, Some(h), Some(w)) => ResizeTo::Exact {
                        height: side(h, "size.height")?,
                        width: side(w, "size.width")?,
                    },
                    _ => return Err(bad("size")),
                },
            })
        };
        let resample = match v.get("resample") {
            None => d.resample,
            Some(x) => Resample::from_pil(x.as_i64().ok_or_else(|| bad("resample"))?)?,
        };
        let crop = if !flag("do_center_crop")? {
            None
        } else {
            Some(match v.get("crop_size") {
                None => d.crop.unwrap_or([224, 224]),
                Some(n) if n.is_number() => [side(n, "crop_size")?; 2],
                Some(s) => match (s.get("height"), s.get("width")) {
                    (Some(h), Some(w)) => {
                        [side(h, "crop_size.height")?, side(w, "crop_size.width")?]
                    }
                    _ => return Err(bad("crop_size")),
                },
            })
        };
        let rescale = if !flag("do_rescale")? {
            None
        } else {
            Some(match v.get("rescale_factor") {
                None => 1.0 / 255.0,
                Some(x) => {
                    x.as_f64().filter(|f| f.is_finite()).ok_or_else(|| bad("rescale_factor"))?
                }
            })
        };
        let triple = |k: &str, default: [f64; 3]| -> Result<[f64; 3]> {
            match v.get(k) {
                None => Ok(default),
                Some(x) if x.is_number() => Ok([x.as_f64().ok_or_else(|| bad(k))?; 3]),
                Some(x) => {
                    let list = x.as_array().filter(|a| a.len() == 3).ok_or_else(|| bad(k))?;
                    let mut out = [0.0; 3];
                    for (o, x) in out.iter_mut().zip(list) {
                        *o = x.as_f64().ok_or_else(|| bad(k))?;
                    }
                    Ok(out)
                }
            }
        };
        let normalize = if !flag("do_normalize")? {
            None
        } else {
            let std = triple("image_std", OPENAI_CLIP_STD)?;
            if std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
                return Err(bad("image_std"));
            }
            Some((triple("image_mean", OPENAI_CLIP_MEAN)?, std))
        };
        Ok(Self { resize, resample, crop, rescale, normalize })
    }

    /// `[height, width]` of the resized image (before the crop) for a `width x height` input.
    pub fn resized_size(&self, width: usize, height: usize) -> [usize; 2] {
        match self.resize {
            None => [height, width],
            Some(ResizeTo::Exact { height, width }) => [height, width],
            Some(ResizeTo::ShortestEdge(size)) => {
                // transformers' get_resize_output_image_size: `int(size * long / short)`, the
                // division in f64 (exact integers, one rounding), then truncation.
                let (short, long) = if width <= height { (width, height) } else { (height, width) };
                let new_long = ((size * long) as f64 / short as f64) as usize;
                if width <= height { [new_long, size] } else { [size, new_long] }
            }
        }
    }

    /// `[height, width]` of the pixel values for a `width x height` input.
    pub fn output_size(&self, width: usize, height: usize) -> [usize; 2] {
        self.crop.unwrap_or_else(|| self.resized_size(width, height))
    }

    /// One image's pixel values, `[3, height, width]` (channels first) as f32 on the host.
    pub fn pixel_values_rgb8(&self, rgb: &[u8], width: usize, height: usize) -> Result<Vec<f32>> {
        check_rgb8(rgb, width, height)?;
        let [rh, rw] = self.resized_size(width, height);
        if rh == 0 || rw == 0 || rh > MAX_SIDE || rw > MAX_SIDE {
            return Err(Error::invalid_argument(
                "image",
                format!("a {width} x {height} image resizes to {rw} x {rh}"),
            ));
        }
        let resized = if [rh, rw] == [height, width] {
            rgb.to_vec()
        } else {
            resize_rgb8(rgb, [width, height], [rw, rh], self.resample)?
        };
        let [oh, ow] = self.output_size(width, height);
        // Centre crop: output (r, c) reads resized (r + top, c + left), zero outside (the
        // padding transformers adds when the image is smaller than the crop).
        let top = (rh as i64 - oh as i64).div_euclid(2);
        let left = (rw as i64 - ow as i64).div_euclid(2);
        let (mean, std) = match self.normalize {
            Some((m, s)) => (m.map(|x| x as f32), s.map(|x| x as f32)),
            None => ([0.0; 3], [1.0; 3]),
        };
        let mut out = vec![0f32; 3 * oh * ow];
        for (c, plane) in out.chunks_exact_mut(oh * ow).enumerate() {
            for (r, row) in plane.chunks_exact_mut(ow).enumerate() {
                let y = r as i64 + top;
                for (col, o) in row.iter_mut().enumerate() {
                    let x = col as i64 + left;
                    let v = if (0..rh as i64).contains(&y) && (0..rw as i64).contains(&x) {
                        resized[(y as usize * rw + x as usize) * 3 + c]
                    } else {
                        0
                    };
                    // numpy: rescale in f64 then cast to f32; normalise in f32.
                    let v = match self.rescale {
                        Some(f) => (v as f64 * f) as f32,
                        None => v as f32,
                    };
                    *o = match self.normalize {
                        Some(_) => (v - mean[c]) / std[c],
                        None => v,
                    };
                }
            }
        }
        Ok(out)
    }

    /// A batch of raw RGB8 images as `pixel_values`, `[batch, 3, height, width]`; every image
    /// must come out the same size (always so with a crop).
    pub fn preprocess_rgb8(&self, images: &[RgbBytes<'_>], device: &Device) -> Result<Tensor<4>> {
        let Some(first) = images.first() else {
            return Err(Error::invalid_argument("images", "no images"));
        };
        let [h, w] = self.output_size(first.width, first.height);
        let mut values = Vec::with_capacity(images.len() * 3 * h * w);
        for img in images {
            let size = self.output_size(img.width, img.height);
            if size != [h, w] {
                return Err(Error::invalid_argument(
                    "images",
                    format!("images come out {size:?} and {:?}: use a crop", [h, w]),
                ));
            }
            values.extend(self.pixel_values_rgb8(img.data, img.width, img.height)?);
        }
        Ok(Tensor::from_data(TensorData::new(values, [images.len(), 3, h, w]), device))
    }

    /// A batch of images as `pixel_values`, `[batch, 3, height, width]`.
    pub fn preprocess(&self, images: &[image::RgbImage], device: &Device) -> Result<Tensor<4>> {
        let raw: Vec<RgbBytes<'_>> = images
            .iter()
            .map(|i| RgbBytes {
                data: i.as_raw(),
                width: i.width() as usize,
                height: i.height() as usize,
            })
            .collect();
        self.preprocess_rgb8(&raw, device)
    }
}
