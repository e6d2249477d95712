//! `aigc-core`: what every aigc modality crate stands on.
//!
//! - [`device`]: choose a burn [`Device`](burn::tensor::Device) by name (`flex`, `ndarray`,
//!   `wgpu`, `cuda`) or from `AIGC_DEVICE`.
//! - [`error`]: the [`Error`] type; every variant says what and where.
//! - [`weights`]: readers for safetensors, GGUF, ONNX and CTranslate2 files, and a strict
//!   loader that fills a burn module from them.
//! - [`quant`]: GGML block types and their exact dequantization.
//! - [`models`]: where real model files live on disk, and how to fetch them.

pub mod device;
pub mod error;
pub mod models;
pub mod quant;
pub mod weights;

pub use burn;
pub use device::{device_from_env, parse_device};
pub use error::{Error, LoadReport, Result};
