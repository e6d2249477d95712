//! Video on burn: frame sequences from image models, and the files that hold them.
//!
//! A looping GIF of terrain that morphs between two noise seeds while its difficulty rises,
//! each frame written as soon as it is denoised:
//!
//! ```no_run
//! use aigc_image::terrain::TerrainModel;
//! use aigc_video::walk::{TerrainWalk, walk};
//!
//! let device = aigc_core::device_from_env()?;
//! // Installed by `./scripts/fetch-models.sh terrain-consistency-unet`.
//! let path = aigc_core::models::model_file("terrain-consistency-unet")?;
//! let model = TerrainModel::open(path, &device)?;
//! // 24 frames from seed 1 to seed 2, difficulty 30 to 70, rendered at 256x256.
//! let spec = TerrainWalk { seeds: vec![1, 2], frames: 24, ..TerrainWalk::default() };
//! let side = (128 * spec.scale) as u32;
//! let mut writer = aigc_video::open_writer("walk.gif".as_ref(), side, side, 12.0)?;
//! walk(&model, &spec, |_, frame| writer.write_frame(&frame.rgb))?;
//! let path = writer.finish()?; // the container follows the extension: .gif, .png, .y4m
//! # let _ = path;
//! # Ok::<(), aigc_core::Error>(())
//! ```
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
