//! Encoders that join modalities.
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
