//! `aigc-text`: text generation with real LLMs on burn.
//!
//! Load a model file (GGUF, or a Hugging Face directory), then generate:
//!
//! ```
//! use aigc_text::{GenerationConfig, Generator, Message};
//!
//! # fn main() -> aigc_text::Result<()> {
//! // The default model, installed by `./scripts/fetch-models.sh smollm2-135m-instruct`.
//! let path = aigc_core::models::model_file("smollm2-135m-instruct")?;
//! # if !path.exists() { return Ok(()); }
//! let device = aigc_core::parse_device("flex")?;
//! let mut generator = Generator::open(&path, &device)?;
//!
//! // Greedy (temperature 0), at most 12 tokens, from a chat rendered by the model's template.
//! let messages = vec![Message::user("What is the capital of France?")];
//! let out = generator.generate(&messages, &GenerationConfig::greedy(12))?;
//! assert!(out.text.contains("Paris"), "{}", out.text);
//! println!("{} [{:?}, {:.1} tokens/s]", out.text, out.finish_reason, out.timings.tokens_per_s());
//!
//! // Streaming: pieces of text as they are generated.
//! for piece in generator.stream("Once upon a time", &GenerationConfig::greedy(8))? {
//!     print!("{}", piece?);
//! }
//! # Ok(()) }
//! ```
//!
//! - [`Generator`] owns the model, tokenizer, chat template and a KV cache allocated once;
//!   [`Generator::generate`] returns a [`Generation`] (text, ids, [`FinishReason`],
//!   [`Timings`]); [`Generator::stream`] yields text pieces; [`Generator::generate_with`]
//!   takes a callback that can cancel.
//! - [`GenerationConfig`] holds the sampler chain ([`SamplingParams`], from `aigc-core`, in
//!   llama.cpp's order), the token budget and stop strings.
//! - Architectures: [`llama`] (Llama 2/3, SmolLM2, Mistral, Qwen2, Qwen3) and [`gemma3`].
//! - [`tokenizer`]: from `tokenizer.json` or rebuilt from GGUF metadata; [`chat`]: templates.
//! - [`code`]: code completion (fill-in-the-middle prompts, stops at the end of the block).

#![warn(missing_docs)]

pub mod chat;
pub mod code;
pub mod config;
pub mod decoder;
pub mod error;
pub mod gemma3;
pub mod generator;
pub mod llama;
pub mod model;
pub mod tokenizer;

pub use aigc_core::sampling::SamplingParams;
pub use chat::{ChatTemplate, Message};
pub use config::{Architecture, ModelConfig};
pub use error::{Error, Result};
pub use generator::{
    DEFAULT_CONTEXT, FinishReason, Generation, GenerationConfig, Generator, Prompt, TextStream,
    Timings,
};
pub use model::{LoadedModel, load_gguf, load_hf_dir};
pub use tokenizer::{IncrementalDecoder, Tokenizer};
