//! Speech recognition with Whisper: the log-mel front end ([`mel`]), the encoder-decoder
//! ([`model`]) from a CTranslate2 or Hugging Face directory, and transcription with
//! openai-whisper's decoding rules ([`transcribe`]).
//!
//! ```no_run
//! use aigc_crossmodal::whisper::{TranscribeOptions, Whisper};
//! let device = aigc_core::parse_device("flex")?;
//! let dir = aigc_core::models::resolve_or_fetch("whisper-tiny-en")?;
//! let whisper = Whisper::open(&dir, &device)?;
//! let audio = vec![0f32; 16_000]; // 16 kHz mono samples
//! let transcript = whisper.transcribe(&audio, &TranscribeOptions::default())?;
//! println!("{}", transcript.text);
//! # Ok::<(), aigc_core::Error>(())
//! ```

pub mod mel;
pub mod model;
pub mod transcribe;

pub use mel::{LogMel, WhisperFrontEnd};
pub use model::{DecoderState, WhisperConfig, WhisperModel};
pub use transcribe::{Segment, TranscribeOptions, Transcript, Whisper, compression_ratio};
