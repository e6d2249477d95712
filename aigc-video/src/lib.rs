//! Video on burn: frame sequences from image models, and the files that hold them.
//!
//! - [`writer`]: GIF, APNG, PNG-sequence and Y4M writers behind one [`VideoWriter`] trait.
//! - [`walk`]: a latent walk through the terrain consistency model (slerped noise, swept
//!   difficulty), rendered to frames.

pub mod walk;
pub mod writer;

pub use writer::{
    ApngWriter, GifWriter, PngSequenceWriter, RgbFrame, VideoWriter, Y4mWriter, open_writer,
};
