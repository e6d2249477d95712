//! Encoders that join modalities.
//!
//! Text to speech to text, and how close in meaning the words that came back are: a Piper
//! voice speaks a sentence, Whisper transcribes it, and sentence embeddings compare the two.
//!
//! ```no_run
//! use aigc_audio::piper::{PiperVoice, SynthesisOptions};
//! use aigc_core::models::{model_dir, model_file};
//! use aigc_crossmodal::embed::{SentenceEmbedder, cosine_similarity};
//! use aigc_crossmodal::pipelines::speak_and_transcribe;
//! use aigc_crossmodal::whisper::Whisper;
//!
//! let device = aigc_core::device_from_env()?;
//! // Installed by `./scripts/fetch-models.sh piper-en-us-joe-medium whisper-tiny-en
//! // all-minilm-l6-v2`; `model_dir` gives a model's folder, `model_file` its main file.
//! let voice = PiperVoice::open(model_file("piper-en-us-joe-medium")?, &device)?;
//! let whisper = Whisper::open(model_dir("whisper-tiny-en")?, &device)?;
//! let embedder = SentenceEmbedder::open(model_dir("all-minilm-l6-v2")?, &device)?;
//!
//! let text = "It was a bright cold day in April.";
//! let options = SynthesisOptions::defaults(voice.config(), 0); // seed 0
//! let trip = speak_and_transcribe(&voice, &whisper, text, &options)?;
//! let heard = trip.transcript.text.trim();
//! let v = embedder.embed(&[text, heard])?; // unit vectors, 384 values each
//! let cosine = cosine_similarity(&v[0], &v[1]);
//! println!("{heard:?}: WER {:.1}%, cosine {cosine:.3}", 100.0 * trip.wer);
//! # Ok::<(), aigc_core::Error>(())
//! ```
//!
//! - [`clip`]: the CLIP text encoder (Stable Diffusion's prompt encoder).
//! - [`clip_vision`]: the CLIP vision tower and the two-tower model (image-text similarity).
//! - [`clip_image`]: CLIP's image preprocessing (`CLIPImageProcessor`, Pillow's resampling).
//! - [`embed`]: sentence embeddings (a BERT encoder with sentence-transformers' pooling).
//! - [`draw`]: describe and draw: a prompt through CLIP and Stable Diffusion to an image, scored
//!   by CLIP.
//! - [`whisper`]: speech recognition (Whisper, from CTranslate2 or Hugging Face files).
//! - [`pipelines`]: speech round trips scored by word error rate, semantic search over texts.

#![warn(missing_docs)]

pub mod clip;
pub mod clip_image;
pub mod clip_vision;
pub mod draw;
pub mod embed;
pub mod pipelines;
pub mod whisper;

pub use aigc_core::{Error, Result};
