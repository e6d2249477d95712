//! Image generation on burn: diffusion UNets, their samplers, and image files.
//!
//! - [`adm`]: the ADM UNet of guided-diffusion / OpenAI's consistency models with its
//!   consistency preconditioning, loaded by reference parameter names (from ONNX initializers
//!   through [`aigc_core::weights::OnnxFile::parameters`], or any tensor source).
//! - [`terrain`]: the terrain consistency model of `adaptive-terrain-diffusion`: one-step (or
//!   multistep) sampling conditioned on a difficulty, the package's height transform, and
//!   16-bit and shaded PNG output.
//! - [`mesh`]: heightmaps as triangle meshes with normals and height colours, written as
//!   binary glTF (`.glb`) or Wavefront OBJ.
//! - [`world`]: game worlds fetched tile by tile from a seed, seamless across tiles (the
//!   package's overlapping-window sampler on a fixed lattice), difficulty per tile.

#![warn(missing_docs)]

pub mod adm;
pub mod mesh;
pub use aigc_core::npy;
pub mod pipeline;
pub mod png;
pub mod terrain;
pub mod unet;
pub mod vae;
pub mod world;

pub use aigc_core::{Error, Result};
