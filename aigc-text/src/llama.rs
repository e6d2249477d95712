//! The Llama family: Llama 2/3, SmolLM2, Mistral, Qwen2 (q/k/v biases) and Qwen3 (q/k norms).
//!
//! Pre-norm blocks: `x += attn(norm(x))`, `x += mlp(norm(x))`, SwiGLU MLP, RoPE, grouped
//! key/value heads, an optional sliding window (Mistral), a tied or separate head.

use aigc_core::burn::tensor::{Device, Tensor};
use aigc_core::layers::{Embedding, GatedMlp, KvCache, RmsNorm, RotaryEmbedding};
use aigc_core::traits::CausalLm;
use aigc_core::weights::WeightLoader;

use crate::config::{Architecture, ModelConfig};
use crate::decoder::{self, Head, SelfAttention, load_mlp, load_norm};
use aigc_core::Result;

#[derive(Debug, Clone)]
struct Block {
    attn_norm: RmsNorm,
    attn: SelfAttention,
    mlp_norm: RmsNorm,
    mlp: GatedMlp,
}

/// A Llama-family decoder with its weights on one device.
#[derive(Debug, Clone)]
pub struct Llama {
    config: ModelConfig,
    embed: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    head: Head,
    ropes: Vec<RotaryEmbedding>,
    max_context: usize,
    device: Device,
}

impl Llama {
    /// Builds the model from Hugging Face tensor names (the loader renames them for GGUF),
    /// with RoPE tables for `max_context` positions. Check the loader with `finish()` after.
    pub fn load(w: &WeightLoader<'_>, config: &ModelConfig, max_context: usize) -> Result<Self> {
        let cfg = config;
        let qk_norm = cfg.architecture == Architecture::Qwen3;
        let (ropes, rope_of) = decoder::build_ropes(w, cfg, max_context)?;
        let d = cfg.hidden_size;
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                Block {
                    attn_norm: load_norm(w, &format!("{p}.input_layernorm.weight"), d, cfg),
                    attn: SelfAttention::load(
                        w,
                        &format!("{p}.self_attn"),
                        cfg,
                        qk_norm,
                        rope_of[i],
                    ),
                    mlp_norm: load_norm(w, &format!("{p}.post_attention_layernorm.weight"), d, cfg),
                    mlp: load_mlp(w, &p, cfg),
                }
            })
            .collect();
        Ok(Self {
            config: cfg.clone(),
            embed: Embedding::new(w.tensor::<2>("model.embed_tokens.weight", [cfg.vocab_size, d])),
            blocks,
            norm: load_norm(w, "model.norm.weight", d, cfg),
            head: Head::load(w, cfg),
            ropes,
            max_context,
            device: w.device().clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
}

impl CausalLm for Llama {
    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn max_context(&self) -> usize {
        self.max_context
    }

    fn new_cache(&self, context: usize) -> aigc_core::Result<KvCache> {
        decoder::new_cache(&self.config, context, self.max_context, &self.device)
    }

    fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        all_logits: bool,
    ) -> aigc_core::Result<Tensor<2>> {
        decoder::check_tokens(tokens, cache, self.config.vocab_size)?;
        let start = cache.len();
        let mut x = self.embed.forward(tokens)?;
        for (i, b) in self.blocks.iter().enumerate() {
            let a = b.attn.forward(
                b.attn_norm.forward(x.clone()),
                &self.ropes,
                cache.layer_mut(i),
                start,
            )?;
            x = x + a;
            x = x.clone() + b.mlp.forward(b.mlp_norm.forward(x));
        }
        cache.advance(tokens.len());
        let x = self.norm.forward(decoder::rows_for_head(x, all_logits));
        Ok(self.head.forward(x, &self.embed, self.config.final_logit_softcapping))
    }
}
