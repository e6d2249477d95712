//! Layers that more than one model uses: linear projections, RMS normalisation, rotary
//! position embeddings, attention over a preallocated KV cache (with sliding windows), gated
//! MLPs and token embeddings.
//!
//! They are plain structs over burn tensors, built from weights by a
//! [`WeightLoader`](crate::weights::WeightLoader) and run on whatever device those tensors
//! live on.

mod attention;
mod embedding;
mod linear;
mod mlp;
mod norm;
mod rope;

pub use attention::{KvCache, LayerCache, attention};
pub use embedding::Embedding;
pub use linear::{QLinear, forward_group, is_cpu};
pub use mlp::{Activation, GatedMlp};
pub use norm::RmsNorm;
pub use rope::{RopeMode, RopeScaling, RotaryEmbedding, inverse_frequencies};
