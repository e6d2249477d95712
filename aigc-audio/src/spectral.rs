//! Short-time Fourier transforms, mel spectrograms and Griffin-Lim, computed as librosa does
//! (`librosa.stft`, `librosa.istft`, `librosa.filters.mel`, `librosa.feature.melspectrogram`,
//! `librosa.griffinlim`), in f64 internally.
//!
//! Spectrograms are `[bins][frames]`, row-major, as librosa returns them.

use std::sync::Arc;

use aigc_core::{Error, Result};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

/// How a centred transform pads the signal by `n_fft / 2` on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PadMode {
    /// Zeros (librosa's default).
    #[default]
    Constant,
    /// The signal mirrored without repeating the edge sample (`numpy.pad(mode="reflect")`).
    Reflect,
}

/// Framing of a short-time Fourier transform with a periodic Hann window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StftConfig {
    /// FFT size in samples; a frame gives `n_fft / 2 + 1` frequency bins.
    pub n_fft: usize,
    /// Samples between the starts of consecutive frames.
    pub hop_length: usize,
    /// Window length (at most `n_fft`; centred in the frame and zero-padded).
    pub win_length: usize,
    /// Whether frame t is centred on sample `t * hop_length` (the signal padded by
    /// `n_fft / 2` on each side) rather than starting there.
    pub center: bool,
    /// The padding of a centred transform.
    pub pad_mode: PadMode,
}

impl StftConfig {
    /// `n_fft` with librosa's defaults: window `n_fft`, hop `n_fft / 4`, centred, zero padding.
    pub fn new(n_fft: usize) -> Self {
        Self {
            n_fft,
            hop_length: n_fft / 4,
            win_length: n_fft,
            center: true,
            pad_mode: PadMode::Constant,
        }
    }

    /// Frequency bins, `n_fft / 2 + 1`.
    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    fn check(&self) -> Result<()> {
        if self.n_fft == 0 || self.hop_length == 0 || self.win_length == 0 {
            return Err(Error::invalid_argument("STFT", format!("{self:?}: zero size")));
        }
        if self.win_length > self.n_fft {
            return Err(Error::invalid_argument(
                "STFT",
                format!("win_length {} > n_fft {}", self.win_length, self.n_fft),
            ));
        }
        if self.n_fft > 1 << 20 {
            return Err(Error::invalid_argument("STFT", format!("n_fft {} too large", self.n_fft)));
        }
        Ok(())
    }

    /// The periodic Hann window of `win_length`, centred in `n_fft` (as
    /// `librosa.util.pad_center(scipy.signal.get_window("hann", win_length, fftbins=True))`).
    pub fn window(&self) -> Vec<f64> {
        let n = self.win_length;
        let left = (self.n_fft - n) / 2;
        let mut w = vec![0f64; self.n_fft];
        for i in 0..n {
            w[left + i] = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
        }
        w
    }
}

/// A magnitude, power or mel spectrogram: `bins` rows of `frames` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrogram {
    /// Rows (frequency bins or mel bands).
    pub bins: usize,
    /// Columns (frames).
    pub frames: usize,
    /// `[bins][frames]`, row-major.
    pub data: Vec<f32>,
}

impl Spectrogram {
    /// The value of `bin` in `frame`.
    pub fn at(&self, bin: usize, frame: usize) -> f32 {
        self.data[bin * self.frames + frame]
    }
}

/// A complex STFT, `[bins][frames]`.
#[derive(Debug, Clone)]
pub struct ComplexSpectrogram {
    /// Frequency bins: `n_fft / 2 + 1`, from 0 Hz to the Nyquist frequency.
    pub bins: usize,
    /// Time frames, `hop_length` samples apart.
    pub frames: usize,
    /// `[bins][frames]`, row-major.
    pub data: Vec<Complex<f64>>,
}

/// Forward and inverse transforms of one size, planned once.
#[derive(Clone)]
pub struct Stft {
    cfg: StftConfig,
    window: Vec<f64>,
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Stft {
    /// Plans the transforms for `cfg`.
    pub fn new(cfg: StftConfig) -> Result<Self> {
        cfg.check()?;
        let mut planner = FftPlanner::new();
        Ok(Self {
            window: cfg.window(),
            forward: planner.plan_fft_forward(cfg.n_fft),
            inverse: planner.plan_fft_inverse(cfg.n_fft),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &StftConfig {
        &self.cfg
    }

    /// The complex STFT of `signal` (as `librosa.stft`).
    pub fn forward(&self, signal: &[f32]) -> Result<ComplexSpectrogram> {
        let StftConfig { n_fft, hop_length, center, pad_mode, .. } = self.cfg;
        let padded: Vec<f64> = if center {
            pad(signal, n_fft / 2, pad_mode)?
        } else {
            signal.iter().map(|&v| v as f64).collect()
        };
        if padded.len() < n_fft {
            return Err(Error::invalid_argument(
                "signal",
                format!("{} samples, shorter than n_fft {n_fft} without centring", signal.len()),
            ));
        }
        let frames = 1 + (padded.len() - n_fft) / hop_length;
        let bins = self.cfg.bins();
        let mut data = vec![Complex::new(0.0, 0.0); bins * frames];
        let mut buf = vec![Complex::new(0.0, 0.0); n_fft];
        for t in 0..frames {
            let frame = &padded[t * hop_length..t * hop_length + n_fft];
            for ((b, &x), &w) in buf.iter_mut().zip(frame).zip(&self.window) {
                *b = Complex::new(x * w, 0.0);
            }
            self.forward.process(&mut buf);
            for (f, &v) in buf.iter().take(bins).enumerate() {
                data[f * frames + t] = v;
            }
        }
        Ok(ComplexSpectrogram { bins, frames, data })
    }

    /// `|STFT|^power` of `signal`.
    pub fn power(&self, signal: &[f32], power: f64) -> Result<Spectrogram> {
        let spec = self.forward(signal)?;
        let data = spec
            .data
            .iter()
            .map(|c| {
                let m = c.norm();
                (if power == 1.0 {
                    m
                } else if power == 2.0 {
                    c.norm_sqr()
                } else {
                    m.powf(power)
                }) as f32
            })
            .collect();
        Ok(Spectrogram { bins: spec.bins, frames: spec.frames, data })
    }

    /// The signal whose STFT is `spec` (as `librosa.istft`): windowed inverse transforms
    /// overlap-added and divided by the summed squared window; `length` trims or zero-pads
    /// the result (and limits the frames used, as librosa does).
    pub fn inverse(&self, spec: &ComplexSpectrogram, length: Option<usize>) -> Result<Vec<f32>> {
        let StftConfig { n_fft, hop_length, center, .. } = self.cfg;
        if spec.bins != self.cfg.bins() {
            return Err(Error::invalid_argument(
                "spectrogram",
                format!("{} bins for n_fft {n_fft} (needs {})", spec.bins, self.cfg.bins()),
            ));
        }
        let half = if center { n_fft / 2 } else { 0 };
        let frames = match length {
            Some(len) => spec.frames.min((len + 2 * half).div_ceil(hop_length)),
            None => spec.frames,
        };
        if frames == 0 {
            return Ok(vec![0.0; length.unwrap_or(0)]);
        }
        let full = n_fft + hop_length * (frames - 1);
        let (mut y, mut norm) = (vec![0f64; full], vec![0f64; full]);
        let mut buf = vec![Complex::new(0.0, 0.0); n_fft];
        let bins = spec.bins;
        for t in 0..frames {
            // The Hermitian spectrum of a real frame (DC's and Nyquist's imaginary parts
            // dropped, as numpy's irfft does).
            for f in 0..bins {
                let mut v = spec.data[f * spec.frames + t];
                if f == 0 || (n_fft % 2 == 0 && f == n_fft / 2) {
                    v.im = 0.0;
                }
                buf[f] = v;
                if f > 0 && f < n_fft - f {
                    buf[n_fft - f] = v.conj();
                }
            }
            self.inverse.process(&mut buf);
            for (i, (&b, &w)) in buf.iter().zip(&self.window).enumerate() {
                y[t * hop_length + i] += b.re / n_fft as f64 * w;
                norm[t * hop_length + i] += w * w;
            }
        }
        let len = length.unwrap_or(full - 2 * half);
        let tiny = f32::MIN_POSITIVE as f64;
        Ok((0..len)
            .map(|i| {
                let j = i + half;
                match (y.get(j), norm.get(j)) {
                    (Some(&v), Some(&n)) if n > tiny => (v / n) as f32,
                    (Some(&v), _) => v as f32,
                    _ => 0.0,
                }
            })
            .collect())
    }
}

/// `x` padded by `p` on each side.
fn pad(x: &[f32], p: usize, mode: PadMode) -> Result<Vec<f64>> {
    let n = x.len();
    let mut out = Vec::with_capacity(n + 2 * p);
    match mode {
        PadMode::Constant => {
            out.resize(p, 0.0);
            out.extend(x.iter().map(|&v| v as f64));
            out.resize(n + 2 * p, 0.0);
        }
        PadMode::Reflect => {
            if n < 2 {
                return Err(Error::invalid_argument(
                    "signal",
                    format!("{n} samples cannot be reflect-padded"),
                ));
            }
            // Index i of the padded signal reads x at the mirror image of i - p, with period
            // 2 (n - 1) (numpy reflects again when the padding exceeds the signal).
            let period = 2 * (n - 1) as isize;
            for i in 0..(n + 2 * p) as isize {
                let k = (i - p as isize).rem_euclid(period);
                let k = if k < n as isize { k } else { period - k };
                out.push(x[k as usize] as f64);
            }
        }
    }
    Ok(out)
}

/// The mel scale of a filterbank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MelScale {
    /// Slaney's: linear below 1 kHz, logarithmic above (librosa's default, `htk=False`).
    #[default]
    Slaney,
    /// HTK's `2595 log10(1 + f / 700)`.
    Htk,
}

/// The normalisation of a filterbank's triangles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MelNorm {
    /// Each triangle divided by its width in Hz over 2 (equal area; librosa's default).
    #[default]
    Slaney,
    /// Peaks of 1.
    None,
}

impl MelScale {
    fn mel(self, f: f64) -> f64 {
        match self {
            MelScale::Htk => 2595.0 * (1.0 + f / 700.0).log10(),
            MelScale::Slaney => {
                let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
                let min_log_mel = min_log_hz / f_sp;
                let logstep = 6.4f64.ln() / 27.0;
                if f >= min_log_hz {
                    min_log_mel + (f / min_log_hz).ln() / logstep
                } else {
                    f / f_sp
                }
            }
        }
    }

    fn hz(self, m: f64) -> f64 {
        match self {
            MelScale::Htk => 700.0 * (10f64.powf(m / 2595.0) - 1.0),
            MelScale::Slaney => {
                let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
                let min_log_mel = min_log_hz / f_sp;
                let logstep = 6.4f64.ln() / 27.0;
                if m >= min_log_mel {
                    min_log_hz * (logstep * (m - min_log_mel)).exp()
                } else {
                    f_sp * m
                }
            }
        }
    }
}

/// A mel spectrogram's parameters (librosa's `melspectrogram` arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MelConfig {
    /// Sample rate of the signal.
    pub sample_rate: u32,
    /// The STFT the power spectrogram comes from (`n_fft` sets the frequency resolution the
    /// mel filters are built on).
    pub stft: StftConfig,
    /// Mel bands.
    pub n_mels: usize,
    /// Lowest frequency (Hz).
    pub fmin: f64,
    /// Highest frequency (Hz); half the sample rate when `None`.
    pub fmax: Option<f64>,
    /// Mel scale.
    pub scale: MelScale,
    /// Triangle normalisation.
    pub norm: MelNorm,
    /// Exponent of the magnitude (1: magnitude, 2: power).
    pub power: f64,
}

/// `librosa.filters.mel`: `[n_mels][n_fft / 2 + 1]` triangular filters.
pub fn mel_filterbank(
    sample_rate: u32,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: Option<f64>,
    scale: MelScale,
    norm: MelNorm,
) -> Result<Vec<f32>> {
    let fmax = fmax.unwrap_or(sample_rate as f64 / 2.0);
    if n_fft == 0 || n_mels == 0 || !(0.0..fmax).contains(&fmin) || n_mels > 4096 {
        return Err(Error::invalid_argument(
            "mel filterbank",
            format!("n_fft {n_fft}, n_mels {n_mels}, fmin {fmin}, fmax {fmax}"),
        ));
    }
    let bins = n_fft / 2 + 1;
    let freqs: Vec<f64> =
        (0..bins).map(|k| k as f64 * sample_rate as f64 / 2.0 / (bins - 1).max(1) as f64).collect();
    let (lo, hi) = (scale.mel(fmin), scale.mel(fmax));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| scale.hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut w = vec![0f32; n_mels * bins];
    for i in 0..n_mels {
        let (d0, d1) = (mel_f[i + 1] - mel_f[i], mel_f[i + 2] - mel_f[i + 1]);
        let enorm = match norm {
            MelNorm::Slaney => 2.0 / (mel_f[i + 2] - mel_f[i]),
            MelNorm::None => 1.0,
        };
        for (k, &f) in freqs.iter().enumerate() {
            let lower = (f - mel_f[i]) / d0;
            let upper = (mel_f[i + 2] - f) / d1;
            w[i * bins + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    Ok(w)
}

/// Mel spectrograms of one configuration, with the transform planned and the filterbank built
/// once.
#[derive(Debug, Clone)]
pub struct MelSpectrogram {
    cfg: MelConfig,
    stft: Stft,
    filters: Vec<f32>,
}

impl MelSpectrogram {
    /// Builds the transform and filterbank for `cfg`.
    pub fn new(cfg: MelConfig) -> Result<Self> {
        let filters = mel_filterbank(
            cfg.sample_rate,
            cfg.stft.n_fft,
            cfg.n_mels,
            cfg.fmin,
            cfg.fmax,
            cfg.scale,
            cfg.norm,
        )?;
        if cfg.power.is_nan() || cfg.power <= 0.0 {
            return Err(Error::invalid_argument("power", format!("{}", cfg.power)));
        }
        Ok(Self { stft: Stft::new(cfg.stft)?, filters, cfg })
    }

    /// The filterbank, `[n_mels][bins]`.
    pub fn filters(&self) -> &[f32] {
        &self.filters
    }

    /// The mel spectrogram of `signal`, `[n_mels][frames]`.
    pub fn compute(&self, signal: &[f32]) -> Result<Spectrogram> {
        let spec = self.stft.power(signal, self.cfg.power)?;
        let (bins, frames, n_mels) = (spec.bins, spec.frames, self.cfg.n_mels);
        let mut data = vec![0f32; n_mels * frames];
        for m in 0..n_mels {
            let filter = &self.filters[m * bins..(m + 1) * bins];
            let row = &mut data[m * frames..(m + 1) * frames];
            for (k, &fw) in filter.iter().enumerate() {
                if fw == 0.0 {
                    continue;
                }
                let src = &spec.data[k * frames..(k + 1) * frames];
                for (o, &s) in row.iter_mut().zip(src) {
                    *o += fw * s;
                }
            }
        }
        Ok(Spectrogram { bins: n_mels, frames, data })
    }
}

/// `librosa.griffinlim`: a signal whose STFT magnitude approximates `magnitude`
/// (`[bins][frames]`), from zero phase, with the fast Griffin-Lim momentum; `length` trims the
/// output.
pub fn griffin_lim(
    magnitude: &Spectrogram,
    cfg: StftConfig,
    n_iter: usize,
    momentum: f64,
    length: Option<usize>,
) -> Result<Vec<f32>> {
    let stft = Stft::new(cfg)?;
    if magnitude.bins != cfg.bins() || magnitude.data.len() != magnitude.bins * magnitude.frames {
        return Err(Error::invalid_argument(
            "magnitude",
            format!("{} x {} for {} bins", magnitude.bins, magnitude.frames, cfg.bins()),
        ));
    }
    if !(0.0..1.0 + f64::EPSILON).contains(&momentum) {
        return Err(Error::invalid_argument("momentum", format!("{momentum} not in [0, 1]")));
    }
    let (bins, frames) = (magnitude.bins, magnitude.frames);
    let mut angles = vec![Complex::new(1.0, 0.0); bins * frames];
    let mut rebuilt = vec![Complex::new(0.0, 0.0); bins * frames];
    let with_phase = |angles: &[Complex<f64>]| ComplexSpectrogram {
        bins,
        frames,
        data: magnitude.data.iter().zip(angles).map(|(&m, &a)| a * m as f64).collect(),
    };
    let tiny = f32::MIN_POSITIVE as f64;
    let m = momentum / (1.0 + momentum);
    for _ in 0..n_iter {
        let inverse = stft.inverse(&with_phase(&angles), length)?;
        let next = stft.forward(&inverse)?;
        if next.frames != frames {
            return Err(Error::invalid_argument(
                "length",
                format!("{length:?} gives {} frames, the magnitude has {frames}", next.frames),
            ));
        }
        for ((a, r), &n) in angles.iter_mut().zip(rebuilt.iter_mut()).zip(&next.data) {
            let v = n - *r * m;
            *a = v / (v.norm() + tiny);
            *r = n;
        }
    }
    stft.inverse(&with_phase(&angles), length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_padding_matches_numpy() {
        let x = [1.0, 2.0, 3.0];
        assert_eq!(pad(&x, 2, PadMode::Reflect).unwrap(), vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
        // Longer than the signal: numpy keeps reflecting.
        assert_eq!(
            pad(&x, 4, PadMode::Reflect).unwrap(),
            vec![1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(pad(&x, 1, PadMode::Constant).unwrap(), vec![0.0, 1.0, 2.0, 3.0, 0.0]);
        assert!(pad(&[1.0], 1, PadMode::Reflect).is_err());
    }

    #[test]
    fn inverse_undoes_forward() {
        let x: Vec<f32> =
            (0..3000).map(|i| ((i as f32) * 0.01).sin() + 0.1 * ((i * 7) % 13) as f32).collect();
        for cfg in [
            StftConfig {
                n_fft: 512,
                hop_length: 128,
                win_length: 512,
                center: true,
                pad_mode: PadMode::Reflect,
            },
            StftConfig {
                n_fft: 400,
                hop_length: 100,
                win_length: 300,
                center: true,
                pad_mode: PadMode::Constant,
            },
        ] {
            let stft = Stft::new(cfg).unwrap();
            let y = stft.inverse(&stft.forward(&x).unwrap(), Some(x.len())).unwrap();
            assert_eq!(y.len(), x.len());
            for (a, b) in x.iter().zip(&y) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(Stft::new(StftConfig { win_length: 600, ..StftConfig::new(512) }).is_err());
        assert!(Stft::new(StftConfig { hop_length: 0, ..StftConfig::new(512) }).is_err());
        let uncentred = Stft::new(StftConfig { center: false, ..StftConfig::new(512) }).unwrap();
        assert!(uncentred.forward(&[0.0; 100]).is_err());
        assert!(
            mel_filterbank(
                22050,
                1024,
                80,
                9000.0,
                Some(8000.0),
                MelScale::Slaney,
                MelNorm::Slaney
            )
            .is_err()
        );
    }
}
