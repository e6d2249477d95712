//! Audio generation for aigc: text to speech with Piper voices (VITS), the HiFi-GAN vocoder,
//! WAV files, resampling, and spectrograms (STFT, mel, Griffin-Lim) that match librosa.
//!
//! A sentence spoken by a Piper voice, written as a WAV file, and its mel spectrogram:
//!
//! ```no_run
//! use aigc_audio::piper::{PiperVoice, SynthesisOptions};
//! use aigc_audio::spectral::{MelConfig, MelNorm, MelScale, MelSpectrogram, PadMode, StftConfig};
//! use aigc_audio::wav::{SampleFormat, write_wav};
//!
//! let device = aigc_core::device_from_env()?;
//! // Installed by `./scripts/fetch-models.sh piper-en-us-joe-medium`; the phonemes come from
//! // the system's espeak-ng (Debian package `espeak-ng`).
//! let path = aigc_core::models::model_file("piper-en-us-joe-medium")?;
//! let voice = PiperVoice::open(path, &device)?;
//! let options = SynthesisOptions::defaults(voice.config(), 0); // the voice's scales, seed 0
//! let speech = voice.speak("It was a bright cold day in April.", &options)?;
//! write_wav("speech.wav", &speech, SampleFormat::Pcm16)?; // mono, 22,050 Hz for this voice
//!
//! let mel = MelSpectrogram::new(MelConfig {
//!     sample_rate: speech.sample_rate,
//!     stft: StftConfig {
//!         n_fft: 1024,
//!         hop_length: 256,
//!         win_length: 1024,
//!         center: true,
//!         pad_mode: PadMode::Reflect,
//!     },
//!     n_mels: 80,
//!     fmin: 0.0,
//!     fmax: Some(8000.0),
//!     scale: MelScale::Slaney,
//!     norm: MelNorm::Slaney,
//!     power: 1.0,
//! })?
//! .compute(&speech.to_mono())?;
//! println!("{:.2} s: {} mel bands x {} frames", speech.duration_s(), mel.bins, mel.frames);
//! # Ok::<(), aigc_core::Error>(())
//! ```
//!
//! - [`piper`]: Piper voices (a VITS model exported to ONNX with its `.onnx.json`): text to
//!   phonemes ([`espeak`]), phoneme ids, the [`vits`] text encoder, duration predictor and
//!   flow, and the HiFi-GAN decoder.
//! - [`hifigan`]: the HiFi-GAN generator, mel frames to a waveform (SpeechT5's checkpoint and
//!   VITS decoders).
//! - [`spectral`]: STFT, inverse STFT, mel filter banks and Griffin-Lim, as librosa computes
//!   them.
//! - [`resample`]: rational resampling as `scipy.signal.resample_poly` does it.
//! - [`wav`]: WAV files in and out (16-bit PCM or 32-bit float).

#![warn(missing_docs)]

pub mod espeak;
pub mod hifigan;
pub mod piper;
pub mod resample;
pub mod spectral;
pub mod vits;
pub mod wav;
