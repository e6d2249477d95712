//! Video on burn: frame sequences from image models, and the files that hold them.
//!
//! - [`writer`]: GIF, APNG, PNG-sequence and Y4M writers behind one [`VideoWriter`] trait.
//! - [`motion`]: AnimateDiff's motion modules (diffusers' `MotionAdapter` / `UNetMotionModel`
//!   names) run between the layers of `aigc-image`'s Stable Diffusion UNet.
//! - [`animatediff`]: text to video: Stable Diffusion with a motion adapter, all frames
//!   denoised together (diffusers' `AnimateDiffPipeline`).
//! - [`walk`]: a latent walk through the terrain consistency model (slerped noise, swept
//!   difficulty), rendered to frames.

#![warn(missing_docs)]

pub mod animatediff;
pub mod motion;
pub mod walk;
pub mod writer;

pub use writer::{
    ApngWriter, GifWriter, PngSequenceWriter, RgbFrame, VideoWriter, Y4mWriter, open_writer,
};
