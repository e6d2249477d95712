//! Whisper's log-mel front end, as `whisper.audio.log_mel_spectrogram` computes it: 16 kHz
//! audio, a 400-point STFT every 160 samples (centred, reflect padding, periodic Hann window),
//! the power spectrum without its last frame, Slaney mel filters (librosa's, 80 or 128 bands),
//! `log10` clamped at 1e-10, floored at 8 below the maximum, then `(x + 4) / 4`.

use aigc_audio::spectral::{MelConfig, MelNorm, MelScale, MelSpectrogram, PadMode, StftConfig};
use aigc_core::{Error, Result};

/// The sample rate Whisper listens at.
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples between frames.
pub const HOP_LENGTH: usize = 160;
/// FFT size.
pub const N_FFT: usize = 400;
/// Seconds in one window of the encoder.
pub const CHUNK_SECONDS: usize = 30;
/// Samples in one window.
pub const N_SAMPLES: usize = CHUNK_SECONDS * SAMPLE_RATE as usize;
/// Mel frames in one window.
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH;
/// The longest audio accepted at once (two hours), so that no allocation follows an
/// unchecked length.
pub const MAX_SAMPLES: usize = 2 * 3600 * SAMPLE_RATE as usize;

/// A log-mel spectrogram, `[n_mels][frames]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LogMel {
    /// Mel bands (80 or 128).
    pub n_mels: usize,
    /// Frames (one per 10 ms).
    pub frames: usize,
    /// `n_mels * frames` values, one row per band: `log10` power floored at 8 below the
    /// maximum, then `(x + 4) / 4`, so they span at most 2.
    pub data: Vec<f32>,
}

impl LogMel {
    /// `N_FRAMES` frames from `start` (zeros, i.e. the padded silence's value, past the end),
    /// `[n_mels][N_FRAMES]`: one encoder window.
    pub fn window(&self, start: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.n_mels * N_FRAMES];
        let take = self.frames.saturating_sub(start).min(N_FRAMES);
        for (m, row) in out.chunks_exact_mut(N_FRAMES).enumerate() {
            let src = &self.data[m * self.frames + start.min(self.frames)..];
            row[..take].copy_from_slice(&src[..take]);
        }
        out
    }
}

/// The front end for `n_mels` bands.
#[derive(Debug, Clone)]
pub struct WhisperFrontEnd {
    mel: MelSpectrogram,
    n_mels: usize,
}

impl WhisperFrontEnd {
    /// Filters for `n_mels` bands (80 for most Whisper models, 128 for large-v3).
    pub fn new(n_mels: usize) -> Result<Self> {
        if n_mels == 0 || n_mels > 512 {
            return Err(Error::invalid_argument("n_mels", format!("{n_mels}")));
        }
        let stft = StftConfig {
            n_fft: N_FFT,
            hop_length: HOP_LENGTH,
            win_length: N_FFT,
            center: true,
            pad_mode: PadMode::Reflect,
        };
        let cfg = MelConfig {
            sample_rate: SAMPLE_RATE,
            stft,
            n_mels,
            fmin: 0.0,
            fmax: None,
            scale: MelScale::Slaney,
            norm: MelNorm::Slaney,
            power: 2.0,
        };
        Ok(Self { mel: MelSpectrogram::new(cfg)?, n_mels })
    }

    /// Mel bands.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The log-mel spectrogram of `audio` (16 kHz mono) followed by `padding` samples of
    /// silence (Whisper pads with one window, `N_SAMPLES`, so that the last window is whole):
    /// `(audio.len() + padding) / HOP_LENGTH` frames.
    pub fn compute(&self, audio: &[f32], padding: usize) -> Result<LogMel> {
        if audio.len() + padding > MAX_SAMPLES + N_SAMPLES {
            return Err(Error::invalid_argument(
                "audio",
                format!("{} samples (at most {MAX_SAMPLES})", audio.len()),
            ));
        }
        if audio.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid_argument("audio", "non-finite samples"));
        }
        let mut signal = audio.to_vec();
        signal.resize(audio.len() + padding, 0.0);
        if signal.len() <= N_FFT / 2 {
            // Reflect padding needs more samples than half a frame.
            signal.resize(N_FFT / 2 + 1, 0.0);
        }
        let spec = self.mel.compute(&signal)?;
        // The STFT has one frame per hop plus one; Whisper drops the last.
        let frames = spec.frames - 1;
        let mut data = Vec::with_capacity(self.n_mels * frames);
        for m in 0..self.n_mels {
            let row = &spec.data[m * spec.frames..m * spec.frames + frames];
            data.extend(row.iter().map(|&v| v.max(1e-10).log10()));
        }
        let max = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in &mut data {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        Ok(LogMel { n_mels: self.n_mels, frames, data })
    }
}
