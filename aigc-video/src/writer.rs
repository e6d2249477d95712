//! Video writers: frames of RGB pixels in, a file a person opens out.
//!
//! Four containers, picked by [`open_writer`] from the path:
//!
//! - `.gif`: a looping animated GIF ([`GifWriter`]) with one global 256-colour palette built by a
//!   variance-minimizing median cut over every frame's pixels, and optional ordered dithering so
//!   that smooth gradients do not band.
//! - `.png`: a looping animated PNG (APNG, [`ApngWriter`]), lossless.
//! - a directory, or a path holding `{}` or `%0Nd`: numbered PNG files ([`PngSequenceWriter`]).
//! - `.y4m`: YUV4MPEG2, 4:4:4 BT.601 limited-range Y'CbCr ([`Y4mWriter`]), which any encoder reads
//!   (`ffmpeg -i out.y4m out.mp4`).
//!
//! ```no_run
//! use aigc_video::writer::{RgbFrame, open_writer};
//! # fn main() -> aigc_core::Result<()> {
//! let mut writer = open_writer("walk.gif".as_ref(), 64, 48, 12.0)?;
//! for t in 0..24u8 {
//!     let data = (0..64 * 48).flat_map(|i| [(i % 64) as u8 * 4, t * 10, 128]).collect();
//!     writer.write_frame(&RgbFrame { width: 64, height: 48, data })?;
//! }
//! let path = writer.finish()?;
//! # let _ = path;
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use aigc_core::{Error, Result};

/// One RGB frame, 8 bits per channel, row-major, `width * height * 3` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height` pixels of `[r, g, b]`, top row first.
    pub data: Vec<u8>,
}

/// A destination for frames of one size.
pub trait VideoWriter {
    /// Adds one frame. Its size must be the size the writer was opened with.
    fn write_frame(&mut self, frame: &RgbFrame) -> Result<()>;
    /// Finishes the file (trailers, loop settings); returns what was written.
    fn finish(self: Box<Self>) -> Result<PathBuf>;
}

/// Opens the writer that the path asks for: `.gif`, `.png` (APNG), `.y4m`, or a PNG sequence
/// when the path is an existing directory, ends in a separator, has no extension, or holds a
/// frame-number placeholder (`{}` or `%04d`). Every frame must be `width` x `height`; `fps`
/// is frames per second.
///
/// Fails with [`Error::Unsupported`] for another extension,
/// and with an invalid argument for a zero side, a rate that is not positive and finite, or
/// a size the container cannot hold (GIF sides are at most 65535).
pub fn open_writer(path: &Path, width: u32, height: u32, fps: f64) -> Result<Box<dyn VideoWriter>> {
    let text = path.to_string_lossy();
    if text.contains("{}") || percent_placeholder(&text).is_some() {
        return Ok(Box::new(PngSequenceWriter::create(path, width, height, fps)?));
    }
    if path.is_dir() || text.ends_with('/') || text.ends_with(std::path::MAIN_SEPARATOR) {
        return Ok(Box::new(PngSequenceWriter::create(path, width, height, fps)?));
    }
    let extension = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    match extension.as_deref() {
        None => Ok(Box::new(PngSequenceWriter::create(path, width, height, fps)?)),
        Some("gif") => Ok(Box::new(GifWriter::create(path, width, height, fps)?)),
        Some("png" | "apng") => Ok(Box::new(ApngWriter::create(path, width, height, fps)?)),
        Some("y4m") => Ok(Box::new(Y4mWriter::create(path, width, height, fps)?)),
        Some(other) => Err(Error::unsupported(
            "video format",
            format!(
                "{}: extension `.{other}` (use .gif, .png, .y4m or a directory)",
                path.display()
            ),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared checks

/// Checks the size and rate a writer is opened with; returns the byte length of one frame.
fn check_open(width: u32, height: u32, fps: f64) -> Result<usize> {
    if width == 0 || height == 0 {
        return Err(Error::invalid_argument(
            "width/height",
            format!("frame size {width}x{height} has a zero side"),
        ));
    }
    if !fps.is_finite() || fps <= 0.0 {
        return Err(Error::invalid_argument("fps", format!("{fps} is not a positive finite rate")));
    }
    (width as usize).checked_mul(height as usize).and_then(|n| n.checked_mul(3)).ok_or_else(|| {
        Error::invalid_argument("width/height", format!("{width}x{height} is too large"))
    })
}

/// Checks that a frame has the writer's size and a consistent byte length.
fn check_frame(frame: &RgbFrame, width: u32, height: u32, len: usize) -> Result<()> {
    if frame.width != width || frame.height != height {
        return Err(Error::invalid_argument(
            "frame",
            format!("frame is {}x{}, the video is {width}x{height}", frame.width, frame.height),
        ));
    }
    if frame.data.len() != len {
        return Err(Error::invalid_argument(
            "frame.data",
            format!("{} bytes, a {width}x{height} RGB frame has {len}", frame.data.len()),
        ));
    }
    Ok(())
}

fn no_frames(path: &Path) -> Error {
    Error::invalid_argument("frames", format!("{}: no frames were written", path.display()))
}

fn create_file(path: &Path) -> Result<BufWriter<File>> {
    File::create(path).map(BufWriter::new).map_err(|e| Error::io(path, e))
}

/// The best fraction `num / den` for `x` with both terms at most `max` (continued fractions).
fn rational(x: f64, max: u64) -> (u64, u64) {
    let (mut h0, mut h1, mut k0, mut k1) = (0u64, 1u64, 1u64, 0u64);
    let mut rest = x;
    for _ in 0..64 {
        let a = rest.floor();
        if a > max as f64 {
            break;
        }
        let a = a as u64;
        let (h2, k2) =
            (a.saturating_mul(h1).saturating_add(h0), a.saturating_mul(k1).saturating_add(k0));
        if h2 > max || k2 > max {
            break;
        }
        (h0, h1, k0, k1) = (h1, h2, k1, k2);
        let frac = rest - a as f64;
        if frac < 1e-9 {
            break;
        }
        rest = 1.0 / frac;
    }
    if k1 == 0 { (max, 1) } else { (h1, k1) }
}

/// The frame rate as a fraction. The NTSC rates 24000/1001, 30000/1001 and 60000/1001 are kept
/// exact when `fps` is within 0.01 % of them (so `29.97` becomes `30000:1001`).
fn fps_fraction(fps: f64, max: u64) -> (u64, u64) {
    for num in [24000u64, 30000, 48000, 60000] {
        let ntsc = num as f64 / 1001.0;
        if num <= max && ((fps - ntsc) / ntsc).abs() < 1e-4 {
            return (num, 1001);
        }
    }
    let (num, den) = rational(fps, max);
    if num == 0 { (1, max) } else { (num, den) }
}

// ---------------------------------------------------------------------------------------------
// GIF

/// A looping animated GIF.
///
/// GIF holds at most 256 colours per frame. Frames are kept in memory until [`finish`], which
/// builds one global palette over all of them (a median cut that splits the box with the largest
/// squared error at the point that minimizes it), maps every pixel to its nearest palette colour
/// and encodes. With dithering on (the default) a 4x4 Bayer pattern picks, per pixel, between the
/// two palette colours that bracket it, so that gradients do not band: a region then averages to
/// its source colour, at the cost of a somewhat larger per-pixel error.
///
/// The frame delay is `round(100 / fps)` centiseconds (GIF's unit), at least 1: 30 fps plays at
/// 3 cs (33.3 fps), 24 fps at 4 cs (25 fps). Many viewers slow delays under 2 cs down to 10 cs.
///
/// [`finish`]: VideoWriter::finish
#[derive(Debug)]
pub struct GifWriter {
    path: PathBuf,
    width: u16,
    height: u16,
    frame_len: usize,
    delay_cs: u16,
    dither: bool,
    frames: Vec<Vec<u8>>,
}

impl GifWriter {
    /// Opens a GIF writer (the file is created at [`VideoWriter::finish`]).
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Self> {
        let frame_len = check_open(width, height, fps)?;
        let (Ok(w), Ok(h)) = (u16::try_from(width), u16::try_from(height)) else {
            return Err(Error::invalid_argument(
                "width/height",
                format!("GIF sides are at most 65535, got {width}x{height}"),
            ));
        };
        let delay = (100.0 / fps).round().max(1.0);
        if delay > f64::from(u16::MAX) {
            return Err(Error::invalid_argument(
                "fps",
                format!("{fps} is too slow for a GIF delay"),
            ));
        }
        Ok(GifWriter {
            path: path.to_path_buf(),
            width: w,
            height: h,
            frame_len,
            delay_cs: delay as u16,
            dither: true,
            frames: Vec::new(),
        })
    }

    /// Turns ordered dithering on (the default) or off.
    pub fn set_dither(&mut self, dither: bool) {
        self.dither = dither;
    }

    /// The delay between frames in centiseconds.
    pub fn delay_cs(&self) -> u16 {
        self.delay_cs
    }
}

impl VideoWriter for GifWriter {
    fn write_frame(&mut self, frame: &RgbFrame) -> Result<()> {
        check_frame(frame, u32::from(self.width), u32::from(self.height), self.frame_len)?;
        self.frames.push(frame.data.clone());
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<PathBuf> {
        if self.frames.is_empty() {
            return Err(no_frames(&self.path));
        }
        let palette = Palette::median_cut(&self.frames, 256);
        let gif_error = |e: gif::EncodingError| match e {
            gif::EncodingError::Io(e) => Error::io(&self.path, e),
            other => Error::format(&self.path, "GIF", 0, other.to_string()),
        };
        let file = create_file(&self.path)?;
        let mut encoder =
            gif::Encoder::new(file, self.width, self.height, &palette.flat()).map_err(gif_error)?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(gif_error)?;
        let width = usize::from(self.width);
        let mut indices = vec![0u8; width * usize::from(self.height)];
        for data in &self.frames {
            palette.map(data, width, self.dither, &mut indices);
            let frame = gif::Frame {
                delay: self.delay_cs,
                width: self.width,
                height: self.height,
                buffer: Cow::Borrowed(&indices),
                ..gif::Frame::default()
            };
            encoder.write_frame(&frame).map_err(gif_error)?;
        }
        let mut file = encoder.into_inner().map_err(gif_error)?;
        file.flush().map_err(|e| Error::io(&self.path, e))?;
        Ok(self.path)
    }
}

/// Colour statistics of one histogram cell (6 bits per channel).
#[derive(Clone, Copy, Default)]
struct Cell {
    key: u32,
    count: u64,
    sum: [u64; 3],
    sum_sq: [u64; 3],
}

impl Cell {
    fn add(&mut self, other: &Cell) {
        self.count += other.count;
        for c in 0..3 {
            self.sum[c] += other.sum[c];
            self.sum_sq[c] += other.sum_sq[c];
        }
    }

    /// Sum of squared distances of the cell's pixels to their mean.
    fn sse(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let n = self.count as f64;
        (0..3).map(|c| self.sum_sq[c] as f64 - (self.sum[c] as f64).powi(2) / n).sum()
    }

    fn coord(&self, axis: usize) -> u32 {
        (self.key >> (12 - 6 * axis)) & 63
    }
}

/// A set of at most 256 colours with a nearest-colour search.
struct Palette {
    /// Colours sorted by green, the channel that weighs most in brightness.
    colors: Vec<[u8; 3]>,
}

impl Palette {
    /// Builds up to `size` colours by variance-minimizing median cut over the frames' pixels.
    fn median_cut(frames: &[Vec<u8>], size: usize) -> Palette {
        let mut histogram = vec![Cell::default(); 1 << 18];
        for data in frames {
            for px in data.chunks_exact(3) {
                let key = (usize::from(px[0] >> 2) << 12)
                    | (usize::from(px[1] >> 2) << 6)
                    | usize::from(px[2] >> 2);
                let cell = &mut histogram[key];
                cell.count += 1;
                for (c, &v) in px.iter().enumerate() {
                    let v = u64::from(v);
                    cell.sum[c] += v;
                    cell.sum_sq[c] += v * v;
                }
            }
        }
        let cells: Vec<Cell> = histogram
            .into_iter()
            .enumerate()
            .filter(|(_, c)| c.count > 0)
            .map(|(key, c)| Cell { key: key as u32, ..c })
            .collect();
        let total = |members: &[Cell]| {
            let mut t = Cell::default();
            members.iter().for_each(|c| t.add(c));
            t
        };
        let mut boxes: Vec<(Vec<Cell>, Cell)> = vec![(cells.clone(), total(&cells))];
        while boxes.len() < size {
            // Split the box holding the most squared error, if any box has two cells.
            let Some((index, _)) = boxes
                .iter()
                .enumerate()
                .filter(|(_, (members, _))| members.len() > 1)
                .max_by(|a, b| a.1.1.sse().total_cmp(&b.1.1.sse()))
            else {
                break;
            };
            let (mut members, sum) = boxes.swap_remove(index);
            let n = sum.count as f64;
            let axis = (0..3)
                .max_by(|&a, &b| {
                    let var = |c: usize| sum.sum_sq[c] as f64 - (sum.sum[c] as f64).powi(2) / n;
                    var(a).total_cmp(&var(b))
                })
                .unwrap_or(0);
            members.sort_unstable_by_key(|c| c.coord(axis));
            // The cut between cells that leaves the least squared error on both sides.
            let mut left = Cell::default();
            let mut best = (f64::INFINITY, 1);
            for i in 0..members.len() - 1 {
                left.add(&members[i]);
                if members[i].coord(axis) == members[i + 1].coord(axis) {
                    continue;
                }
                let mut right = sum;
                for c in 0..3 {
                    right.sum[c] -= left.sum[c];
                    right.sum_sq[c] -= left.sum_sq[c];
                }
                right.count -= left.count;
                let error = left.sse() + right.sse();
                if error < best.0 {
                    best = (error, i + 1);
                }
            }
            let upper = members.split_off(best.1);
            let (lower_sum, upper_sum) = (total(&members), total(&upper));
            boxes.push((members, lower_sum));
            boxes.push((upper, upper_sum));
        }
        let mut colors: Vec<[u8; 3]> = boxes
            .iter()
            .map(|(_, s)| {
                let n = s.count.max(1) as f64;
                [0, 1, 2].map(|c| (s.sum[c] as f64 / n).round().clamp(0.0, 255.0) as u8)
            })
            .collect();
        if colors.is_empty() {
            colors.push([0, 0, 0]);
        }
        colors.sort_unstable_by_key(|c| (c[1], c[0], c[2]));
        colors.dedup();
        Palette { colors }
    }

    /// `[r, g, b, ...]` as GIF's colour table wants it.
    fn flat(&self) -> Vec<u8> {
        self.colors.iter().flatten().copied().collect()
    }

    /// The index of the colour nearest `rgb`: a search outward from `rgb`'s green in the
    /// green-sorted palette, stopping once green alone is farther than the best match.
    fn nearest(&self, rgb: [f32; 3]) -> u8 {
        let start = self.colors.partition_point(|c| (c[1] as f32) < rgb[1]);
        let (mut best, mut best_d) = (0usize, f32::INFINITY);
        let consider = |i: usize, best: &mut usize, best_d: &mut f32| {
            let dg = self.colors[i][1] as f32 - rgb[1];
            if dg * dg >= *best_d {
                return false;
            }
            let d = dist2(&self.colors[i], &rgb);
            if d < *best_d {
                (*best, *best_d) = (i, d);
            }
            true
        };
        for i in start..self.colors.len() {
            if !consider(i, &mut best, &mut best_d) {
                break;
            }
        }
        for i in (0..start).rev() {
            if !consider(i, &mut best, &mut best_d) {
                break;
            }
        }
        best as u8
    }

    /// Maps an RGB frame to palette indices. With `dither`, each pixel chooses between its
    /// nearest colour and the nearest colour on the far side of it, by a 4x4 Bayer threshold
    /// against where the pixel lies between the two: an area then averages to the source colour,
    /// and a pixel that is exactly a palette colour keeps it.
    fn map(&self, data: &[u8], width: usize, dither: bool, indices: &mut [u8]) {
        const BAYER: [[u8; 4]; 4] = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]];
        for (i, (px, index)) in data.chunks_exact(3).zip(indices.iter_mut()).enumerate() {
            let rgb = [0, 1, 2].map(|c| f32::from(px[c]));
            let first = self.nearest(rgb);
            *index = first;
            if !dither {
                continue;
            }
            let near = self.colors[usize::from(first)].map(f32::from);
            let error = [0, 1, 2].map(|c| rgb[c] - near[c]);
            if error == [0.0; 3] {
                continue;
            }
            let beyond = [0, 1, 2].map(|c| (rgb[c] + error[c]).clamp(0.0, 255.0));
            let second = self.nearest(beyond);
            let far = self.colors[usize::from(second)].map(f32::from);
            let step = [0, 1, 2].map(|c| far[c] - near[c]);
            let length2: f32 = step.iter().map(|v| v * v).sum();
            if second == first || length2 == 0.0 {
                continue;
            }
            // How far along near -> far the pixel lies, 0 at `near`.
            let along = (0..3).map(|c| error[c] * step[c]).sum::<f32>() / length2;
            let (x, y) = (i % width, i / width);
            let threshold = (f32::from(BAYER[y % 4][x % 4]) + 0.5) / 16.0;
            if along > threshold {
                *index = second;
            }
        }
    }
}

fn dist2(a: &[u8; 3], b: &[f32; 3]) -> f32 {
    (0..3).map(|c| (a[c] as f32 - b[c]).powi(2)).sum()
}

// ---------------------------------------------------------------------------------------------
// APNG

/// A looping animated PNG, lossless 8-bit RGB.
///
/// APNG declares its frame count before the first frame, so frames are kept in memory until
/// [`VideoWriter::finish`]. The frame delay is `1 / fps` as a fraction with 16-bit terms.
#[derive(Debug)]
pub struct ApngWriter {
    path: PathBuf,
    width: u32,
    height: u32,
    frame_len: usize,
    delay: (u16, u16),
    frames: Vec<Vec<u8>>,
}

impl ApngWriter {
    /// Opens an APNG writer (the file is created at [`VideoWriter::finish`]).
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Self> {
        let frame_len = check_open(width, height, fps)?;
        let (num, den) = fps_fraction(fps, u64::from(u16::MAX));
        // The delay is the inverse of the rate: den / num seconds.
        let delay = (den as u16, num as u16);
        Ok(ApngWriter {
            path: path.to_path_buf(),
            width,
            height,
            frame_len,
            delay,
            frames: Vec::new(),
        })
    }

    /// The delay between frames in seconds, as `(numerator, denominator)`.
    pub fn delay(&self) -> (u16, u16) {
        self.delay
    }
}

impl VideoWriter for ApngWriter {
    fn write_frame(&mut self, frame: &RgbFrame) -> Result<()> {
        check_frame(frame, self.width, self.height, self.frame_len)?;
        self.frames.push(frame.data.clone());
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<PathBuf> {
        let count = u32::try_from(self.frames.len())
            .map_err(|_| Error::invalid_argument("frames", "more than 2^32 frames"))?;
        if count == 0 {
            return Err(no_frames(&self.path));
        }
        let png_error = |e: png::EncodingError| png_encoding_error(&self.path, e);
        let mut encoder = png::Encoder::new(create_file(&self.path)?, self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_animated(count, 0).map_err(png_error)?;
        encoder.set_frame_delay(self.delay.0, self.delay.1).map_err(png_error)?;
        let mut writer = encoder.write_header().map_err(png_error)?;
        for data in &self.frames {
            writer.write_image_data(data).map_err(png_error)?;
        }
        writer.finish().map_err(png_error)?;
        Ok(self.path)
    }
}

fn png_encoding_error(path: &Path, e: png::EncodingError) -> Error {
    match e {
        png::EncodingError::IoError(e) => Error::io(path, e),
        other => Error::format(path, "PNG", 0, other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// PNG sequence

/// Numbered PNG files, one per frame, written as frames arrive.
///
/// The path is a directory (created if missing; files `frame_0000.png`, `frame_0001.png`, ...)
/// or a pattern whose `{}` becomes the 4-digit frame number and whose `%0Nd` (or `%d`) becomes
/// it with `N` digits (or unpadded), like ffmpeg's. [`VideoWriter::finish`] returns the directory
/// that holds the files. The rate is not stored; PNG files have none.
#[derive(Debug)]
pub struct PngSequenceWriter {
    directory: PathBuf,
    pattern: Pattern,
    width: u32,
    height: u32,
    frame_len: usize,
    next: usize,
}

#[derive(Debug)]
enum Pattern {
    /// `frame_{:04}.png` in the directory.
    Directory,
    /// The text before the placeholder, the padding width, the text after it.
    Placeholder(String, usize, String),
}

/// Finds `%d` or `%0Nd` in `text`: (start, end, width).
fn percent_placeholder(text: &str) -> Option<(usize, usize, usize)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
            let end = i + 1 + digits;
            if bytes.get(end) == Some(&b'd') {
                let width = text[i + 1..end].parse().unwrap_or(0);
                return Some((i, end + 1, width));
            }
        }
        i += 1;
    }
    None
}

impl PngSequenceWriter {
    /// Opens a PNG sequence writer, creating the directory that will hold the files.
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Self> {
        let frame_len = check_open(width, height, fps)?;
        let text = path.to_string_lossy().into_owned();
        let (directory, pattern) = if let Some(at) = text.find("{}") {
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (parent, Pattern::Placeholder(text[..at].into(), 4, text[at + 2..].into()))
        } else if let Some((start, end, pad)) = percent_placeholder(&text) {
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (parent, Pattern::Placeholder(text[..start].into(), pad, text[end..].into()))
        } else {
            (path.to_path_buf(), Pattern::Directory)
        };
        if !directory.as_os_str().is_empty() {
            std::fs::create_dir_all(&directory).map_err(|e| Error::io(&directory, e))?;
        }
        Ok(PngSequenceWriter { directory, pattern, width, height, frame_len, next: 0 })
    }

    /// The file that frame `index` goes to.
    pub fn frame_path(&self, index: usize) -> PathBuf {
        match &self.pattern {
            Pattern::Directory => self.directory.join(format!("frame_{index:04}.png")),
            Pattern::Placeholder(before, pad, after) => {
                PathBuf::from(format!("{before}{index:0pad$}{after}"))
            }
        }
    }
}

impl VideoWriter for PngSequenceWriter {
    fn write_frame(&mut self, frame: &RgbFrame) -> Result<()> {
        check_frame(frame, self.width, self.height, self.frame_len)?;
        let path = self.frame_path(self.next);
        let mut encoder = png::Encoder::new(create_file(&path)?, self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| png_encoding_error(&path, e))?;
        writer.write_image_data(&frame.data).map_err(|e| png_encoding_error(&path, e))?;
        writer.finish().map_err(|e| png_encoding_error(&path, e))?;
        self.next += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<PathBuf> {
        if self.next == 0 {
            return Err(no_frames(&self.frame_path(0)));
        }
        Ok(self.directory)
    }
}

// ---------------------------------------------------------------------------------------------
// Y4M

/// YUV4MPEG2 with 4:4:4 Y'CbCr, written as frames arrive.
///
/// The header is `YUV4MPEG2 W{w} H{h} F{num}:{den} Ip A1:1 C444`. Pixels are converted with the
/// BT.601 luma weights (Kr = 0.299, Kb = 0.114) to limited ("studio") range, rounded:
///
/// ```text
/// Y  =  16 + (219/255) * (0.299 R + 0.587 G + 0.114 B)
/// Cb = 128 + (224/255) * (B - Y') / 1.772       where Y' = 0.299 R + 0.587 G + 0.114 B
/// Cr = 128 + (224/255) * (R - Y') / 1.402
/// ```
///
/// that is `Y = 16 + 0.2568 R + 0.5041 G + 0.0979 B`, `Cb = 128 - 0.1482 R - 0.2910 G + 0.4392 B`,
/// `Cr = 128 + 0.4392 R - 0.3678 G - 0.0714 B`. Converting back with the inverse matrix gives the
/// source within 2 levels per channel (limited range has 220 luma and 225 chroma levels).
#[derive(Debug)]
pub struct Y4mWriter {
    path: PathBuf,
    file: BufWriter<File>,
    width: u32,
    height: u32,
    frame_len: usize,
    planes: Vec<u8>,
    frames: usize,
}

/// BT.601 Y'CbCr, limited range, of one 8-bit RGB pixel.
pub fn rgb_to_ycbcr_bt601(rgb: [u8; 3]) -> [u8; 3] {
    const KR: f32 = 0.299;
    const KB: f32 = 0.114;
    let [r, g, b] = rgb.map(f32::from);
    let luma = KR * r + (1.0 - KR - KB) * g + KB * b;
    let y = 16.0 + 219.0 / 255.0 * luma;
    let cb = 128.0 + 224.0 / 255.0 * (b - luma) / (2.0 * (1.0 - KB));
    let cr = 128.0 + 224.0 / 255.0 * (r - luma) / (2.0 * (1.0 - KR));
    [y, cb, cr].map(|v| v.round().clamp(0.0, 255.0) as u8)
}

impl Y4mWriter {
    /// Creates the file and writes the stream header.
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Self> {
        let frame_len = check_open(width, height, fps)?;
        let (num, den) = fps_fraction(fps, u64::from(u32::MAX));
        let mut file = create_file(path)?;
        writeln!(file, "YUV4MPEG2 W{width} H{height} F{num}:{den} Ip A1:1 C444")
            .map_err(|e| Error::io(path, e))?;
        Ok(Y4mWriter {
            path: path.to_path_buf(),
            file,
            width,
            height,
            frame_len,
            planes: vec![0; frame_len],
            frames: 0,
        })
    }
}

impl VideoWriter for Y4mWriter {
    fn write_frame(&mut self, frame: &RgbFrame) -> Result<()> {
        check_frame(frame, self.width, self.height, self.frame_len)?;
        let n = self.frame_len / 3;
        let (y, chroma) = self.planes.split_at_mut(n);
        let (cb, cr) = chroma.split_at_mut(n);
        for (i, px) in frame.data.chunks_exact(3).enumerate() {
            [y[i], cb[i], cr[i]] = rgb_to_ycbcr_bt601([px[0], px[1], px[2]]);
        }
        self.file.write_all(b"FRAME\n").map_err(|e| Error::io(&self.path, e))?;
        self.file.write_all(&self.planes).map_err(|e| Error::io(&self.path, e))?;
        self.frames += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<PathBuf> {
        self.file.flush().map_err(|e| Error::io(&self.path, e))?;
        if self.frames == 0 {
            return Err(no_frames(&self.path));
        }
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_become_fractions() {
        assert_eq!(fps_fraction(30.0, 65535), (30, 1));
        assert_eq!(fps_fraction(29.97, 65535), (30000, 1001));
        assert_eq!(fps_fraction(12.5, 65535), (25, 2));
        assert_eq!(fps_fraction(0.5, 65535), (1, 2));
    }

    #[test]
    fn placeholders_are_found() {
        assert_eq!(percent_placeholder("out/f_%04d.png"), Some((6, 10, 4)));
        assert_eq!(percent_placeholder("out/f_%d.png"), Some((6, 8, 0)));
        assert_eq!(percent_placeholder("out/100%.png"), None);
    }
}
