//! Image generation on burn: diffusion UNets, their samplers, and image files.
//!
//! A terrain heightmap from the consistency model in one denoising step, written as a 16-bit
//! PNG, a shaded colour PNG and a binary glTF mesh:
//!
//! ```no_run
//! use aigc_image::mesh::{MeshOptions, heightmap_mesh, write_glb};
//! use aigc_image::terrain::{NATIVE_SIZE, TerrainModel, normal_noise};
//!
//! let device = aigc_core::device_from_env()?;
//! // Installed by `./scripts/fetch-models.sh terrain-consistency-unet`.
//! let path = aigc_core::models::model_file("terrain-consistency-unet")?;
//! let model = TerrainModel::open(path, &device)?;
//!
//! // Seeded unit noise, difficulty 60 (of 1 to 100), one step as the package samples.
//! let noise = normal_noise(42, NATIVE_SIZE * NATIVE_SIZE);
//! let terrain = model.generate(&noise, 60, 1, 42, |_, _| {})?;
//!
//! // Heights are row-major 128x128, lowest point 0.
//! let n = NATIVE_SIZE;
//! aigc_image::png::write_gray16("terrain.png", n, n, &terrain.normalized())?;
//! let (side, rgb) = terrain.render_rgb(4); // 512x512, tinted and hill-shaded
//! aigc_image::png::write_rgb8("terrain-shaded.png", side, side, &rgb)?;
//! let options = MeshOptions { vertical_scale: 2.0, max_error: 0.05, ..Default::default() };
//! write_glb("terrain.glb", &heightmap_mesh(&terrain.heights, n, n, &options)?)?;
//! # Ok::<(), aigc_core::Error>(())
//! ```
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
//! - [`pipeline`]: Stable Diffusion text to image and image to image over a diffusers
//!   directory, built from [`unet`] (`UNet2DConditionModel`) and [`vae`] (`AutoencoderKL`)
//!   with the text encoder supplied by the caller.
//! - [`png`]: 16-bit grayscale heightmaps and 8-bit RGB images; [`npy`] re-exports
//!   `aigc-core`'s NumPy files.

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
