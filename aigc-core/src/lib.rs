//! `aigc-core`: what every aigc modality crate stands on.
//!
//! The pieces together: a device, a real model file loaded strictly, shared layers, and a
//! seeded sampler. This runs SmolLM2's embedding, final norm and tied output head on one token
//! (the transformer blocks in between are `aigc-text`'s), so the token it picks is not a
//! sensible continuation; `aigc_text::Generator` runs the whole model.
//!
//! ```no_run
//! use aigc_core::layers::RmsNorm;
//! use aigc_core::sampling::{Sampler, SamplingParams};
//! use aigc_core::weights::{GgufFile, WeightLoader};
//!
//! // `AIGC_DEVICE` names the backend (`flex`, the pure-Rust CPU one, when unset).
//! let device = aigc_core::device_from_env()?;
//! // Installed by `./scripts/fetch-models.sh smollm2-135m-instruct`; a missing model is an
//! // error that names that command.
//! let file = GgufFile::open(aigc_core::models::model_file("smollm2-135m-instruct")?)?;
//!
//! // Every tensor asked for must exist with that shape; `finish` fails with one report naming
//! // each one that does not and each file tensor nothing asked for (the blocks, here ignored).
//! let loader = WeightLoader::new(&file, &device).ignore(|name| name.starts_with("blk."));
//! let embed = loader.embedding("token_embd.weight", 49152, 576);
//! let norm = RmsNorm::new(loader.tensor::<1>("output_norm.weight", [576]), 1e-5);
//! loader.finish()?;
//!
//! let hidden = norm.forward(embed.forward(&[1])?); // [1, 1, 576]
//! let logits: Vec<f32> = embed.attend(hidden).try_into_vec_as()?; // 49152 values
//!
//! // llama.cpp's sampler chain, seeded: the same logits and seed give the same token.
//! let params = SamplingParams { temperature: 0.7, top_k: 40, seed: 42, ..Default::default() };
//! let token = Sampler::new(params, embed.vocab_size())?.sample(&logits)?;
//! println!("token {token} on {}", aigc_core::device::describe(&device));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`cli`]: flags, a progress bar and the exit convention for command-line programs.
//! - [`device`]: choose a burn [`Device`](burn::tensor::Device) by name (`flex`, `ndarray`,
//!   `wgpu`, `cuda`) or from `AIGC_DEVICE`.
//! - [`error`]: the [`Error`] type; every variant says what and where.
//! - [`weights`]: readers for safetensors, GGUF, ONNX and CTranslate2 files, and a strict
//!   loader that fills a burn module from them.
//! - [`quant`]: GGML block types and their exact dequantization.
//! - [`layers`]: layers shared by models (linear, RMS norm, RoPE, attention with a KV cache,
//!   gated MLPs, embeddings).
//! - [`models`]: where real model files live on disk, and how to fetch them.
//! - [`sampling`]: logits processors in llama.cpp's order and a seeded sampler.
//! - [`schedulers`]: diffusion schedulers with diffusers' contract (DDPM, DDIM, Euler,
//!   Heun, DPM-Solver++, LCM, consistency and EDM).
//! - [`npy`]: NumPy `.npy` files, the format the reference scripts exchange arrays in.
//! - [`traits`]: the interfaces pipelines drive models through ([`CausalLm`](traits::CausalLm)).

#![warn(missing_docs)]

pub mod cli;
pub mod device;
pub mod error;
pub mod layers;
pub mod models;
pub mod npy;
pub mod quant;
pub mod sampling;
pub mod schedulers;
pub mod traits;
pub mod weights;

pub use burn;
pub use device::{device_from_env, parse_device};
pub use error::{Error, LoadReport, Result};
