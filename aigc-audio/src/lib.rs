//! Audio generation for aigc: WAV files, resampling, spectrograms (STFT, mel, Griffin-Lim)
//! that match librosa, the HiFi-GAN vocoder, and (coming) text to speech.
//!
//! ```no_run
//! use aigc_audio::spectral::{MelConfig, MelNorm, MelScale, MelSpectrogram, PadMode, StftConfig};
//!
//! let audio = aigc_audio::wav::read_wav("speech.wav")?;
//! let mel = MelSpectrogram::new(MelConfig {
//!     sample_rate: audio.sample_rate,
//!     stft: StftConfig { n_fft: 1024, hop_length: 256, win_length: 1024, center: true, pad_mode: PadMode::Reflect },
//!     n_mels: 80,
//!     fmin: 0.0,
//!     fmax: Some(8000.0),
//!     scale: MelScale::Slaney,
//!     norm: MelNorm::Slaney,
//!     power: 1.0,
//! })?
//! .compute(&audio.to_mono())?;
//! println!("{} mel bands x {} frames", mel.bins, mel.frames);
//! # Ok::<(), aigc_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod espeak;
pub mod hifigan;
pub mod piper;
pub mod resample;
pub mod spectral;
pub mod vits;
pub mod wav;
