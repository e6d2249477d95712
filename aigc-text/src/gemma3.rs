//! Gemma 3 (text).
//!
//! Differences from the Llama family: embeddings scaled by `sqrt(hidden_size)`; RMS norms on
//! queries and keys; each sub-block is wrapped in a norm before and after
//! (`x += post_norm(attn(pre_norm(x)))`); local layers attend over a sliding window with their
//! own RoPE base (10 000) while every sixth layer is global (base 1 000 000, possibly scaled);
//! GELU (tanh) gates; the head is tied to the embeddings. Hugging Face checkpoints store norm
//! weights as `w - 1`; GGUF files store `w` (llama.cpp's converter adds the 1).

use aigc_core::Result;
use aigc_core::burn::tensor::Tensor;
use aigc_core::layers::{GatedMlp, KvCache, RmsNorm};
use aigc_core::weights::WeightLoader;

use crate::config::ModelConfig;
use crate::decoder::{self, Decoder, SelfAttention, Trunk, load_mlp, load_norm};

#[derive(Debug, Clone)]
struct Block {
    input_norm: RmsNorm,
    attn: SelfAttention,
    post_attn_norm: RmsNorm,
    pre_mlp_norm: RmsNorm,
    mlp: GatedMlp,
    post_mlp_norm: RmsNorm,
}

/// A Gemma 3 text decoder with its weights on one device.
#[derive(Debug, Clone)]
pub struct Gemma3 {
    trunk: Trunk,
    /// transformers keeps the scale as a tensor of the model's dtype: sqrt in f32.
    embed_scale: f32,
    blocks: Vec<Block>,
}

impl Gemma3 {
    /// Builds the model from Hugging Face tensor names (renamed by the loader for GGUF), with
    /// RoPE tables for `max_context` positions. Check the loader with `finish()` after.
    pub fn load(w: &WeightLoader<'_>, cfg: &ModelConfig, max_context: usize) -> Result<Self> {
        let trunk = Trunk::load(w, cfg, max_context)?;
        let d = cfg.hidden_size;
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                let norm = |n: &str| load_norm(w, &format!("{p}.{n}.weight"), d, cfg);
                Block {
                    input_norm: norm("input_layernorm"),
                    attn: SelfAttention::load(
                        w,
                        &format!("{p}.self_attn"),
                        cfg,
                        true,
                        trunk.rope_of[i],
                    ),
                    post_attn_norm: norm("post_attention_layernorm"),
                    pre_mlp_norm: norm("pre_feedforward_layernorm"),
                    mlp: load_mlp(w, &p, cfg),
                    post_mlp_norm: norm("post_feedforward_layernorm"),
                }
            })
            .collect();
        Ok(Self { trunk, embed_scale: (d as f32).sqrt(), blocks })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.trunk.config
    }
}

impl Decoder for Gemma3 {
    fn trunk(&self) -> &Trunk {
        &self.trunk
    }

    fn blocks(&self, x: Tensor<3>, cache: &mut KvCache, start: usize) -> Result<Tensor<3>> {
        let mut x = x * self.embed_scale;
        for (i, b) in self.blocks.iter().enumerate() {
            let a = b.attn.forward(
                b.input_norm.forward(x.clone()),
                &self.trunk.ropes,
                cache.layer_mut(i),
                start,
            )?;
            x = x + b.post_attn_norm.forward(a);
            let m = b.mlp.forward(b.pre_mlp_norm.forward(x.clone()));
            x = x + b.post_mlp_norm.forward(m);
        }
        Ok(x)
    }
}

decoder::causal_lm_for_decoder!(Gemma3);
