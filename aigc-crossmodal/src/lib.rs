//! Encoders that join modalities.
//!
//! - [`clip`]: the CLIP text encoder (Stable Diffusion's prompt encoder).

pub mod clip;
pub mod whisper;

pub use aigc_core::{Error, Result};
