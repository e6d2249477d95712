//! The Llama family: Llama 2/3, SmolLM2, Mistral, Qwen2 (q/k/v biases) and Qwen3 (q/k norms).
//!
//! Pre-norm blocks: `x += attn(norm(x))`, `x += mlp(norm(x))`, SwiGLU MLP, RoPE, grouped
//! key/value heads, an optional sliding window (Mistral), a tied or separate head.

use aigc_core::Result;
use aigc_core::burn::tensor::Tensor;
use aigc_core::layers::{GatedMlp, KvCache, RmsNorm};
use aigc_core::weights::WeightLoader;

use crate::config::{Architecture, ModelConfig};
use crate::decoder::{self, Decoder, SelfAttention, Trunk, load_mlp, load_norm};

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
    trunk: Trunk,
    blocks: Vec<Block>,
}

impl Llama {
    /// Builds the model from Hugging Face tensor names (the loader renames them for GGUF),
    /// with RoPE tables for `max_context` positions. Check the loader with `finish()` after.
    pub fn load(w: &WeightLoader<'_>, cfg: &ModelConfig, max_context: usize) -> Result<Self> {
        let trunk = Trunk::load(w, cfg, max_context)?;
        let qk_norm = cfg.architecture == Architecture::Qwen3;
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
                        trunk.rope_of[i],
                    ),
                    mlp_norm: load_norm(w, &format!("{p}.post_attention_layernorm.weight"), d, cfg),
                    mlp: load_mlp(w, &p, cfg),
                }
            })
            .collect();
        Ok(Self { trunk, blocks })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.trunk.config
    }
}

impl Decoder for Llama {
    fn trunk(&self) -> &Trunk {
        &self.trunk
    }

    fn blocks(&self, x: Tensor<3>, cache: &mut KvCache, start: usize) -> Result<Tensor<3>> {
        let mut x = x;
        for (i, b) in self.blocks.iter().enumerate() {
            let h = b.attn_norm.forward(x.clone());
            x = x + b.attn.forward(h, &self.trunk.ropes, cache.layer_mut(i), start)?;
            x = x.clone() + b.mlp.forward(b.mlp_norm.forward(x));
        }
        Ok(x)
    }
}

decoder::causal_lm_for_decoder!(Llama);
