//! `aigc-core`: what every aigc modality crate stands on.
//!
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
//! - [`traits`]: the interfaces pipelines drive models through ([`CausalLm`](traits::CausalLm)).

#![warn(missing_docs)]

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
