//! The small traits that pipelines drive models through.

use burn::tensor::Tensor;

use crate::error::Result;
use crate::layers::KvCache;

/// A decoder-only language model: token ids in, next-token logits out, with a KV cache that
/// the caller owns (so one model can serve several conversations).
pub trait CausalLm: Send {
    /// Entries in the vocabulary (columns of the logits).
    fn vocab_size(&self) -> usize;

    /// The longest context the model can run (its position tables), in tokens.
    fn max_context(&self) -> usize;

    /// A cache for `context` positions, allocated once. Layers with a sliding window shorter
    /// than `context` hold only their window.
    fn new_cache(&self, context: usize) -> Result<KvCache>;

    /// Runs `tokens` at positions `cache.len()..`, stores their keys and values in `cache`, and
    /// returns logits `[rows, vocab]`: one row per token when `all_logits`, else the last
    /// position's row only.
    fn forward(&self, tokens: &[u32], cache: &mut KvCache, all_logits: bool) -> Result<Tensor<2>>;
}
