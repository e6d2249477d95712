//! The CLIP text encoder (`CLIPTextModel`), as Stable Diffusion uses it: token and position
//! embeddings, pre-norm transformer layers with causal self-attention, a final layer norm;
//! the pooled output is the hidden state at the end-of-text token.
//!
//! Loaded from a Hugging Face directory (`config.json`, `model.safetensors`) by its own
//! parameter names, with or without the `text_model.` prefix (transformers 5 saves without it,
//! Stable Diffusion checkpoints have it).

use std::path::Path;

use aigc_core::burn::tensor::{Device, Int, Tensor, TensorData, activation};
use aigc_core::layers::{LayerNorm, QLinear};
use aigc_core::weights::{SafetensorsFile, TensorSource, WeightLoader};
use aigc_core::{Error, Result};

/// The activation of the MLPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipActivation {
    /// `x * sigmoid(1.702 x)` (OpenAI's CLIP, Stable Diffusion 1.x).
    QuickGelu,
    /// GELU with erf (OpenCLIP, Stable Diffusion 2.x).
    Gelu,
}

/// `config.json` of a `CLIPTextModel`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipTextConfig {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Width of the MLPs.
    pub intermediate_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Positions (77).
    pub max_position_embeddings: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
    /// MLP activation.
    pub activation: ClipActivation,
    /// The end-of-text token; 2 means the legacy rule (pool at the largest id).
    pub eos_token_id: i64,
}

impl ClipTextConfig {
    /// Parses `config.json` text.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument("config.json", e.to_string()))?;
        let v = v.get("text_config").unwrap_or(&v);
        let num = |k: &str| -> Result<usize> {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .filter(|&x| x > 0 && x < 1 << 24)
                .ok_or_else(|| {
                    Error::invalid_argument("config.json", format!("`{k}` is missing or invalid"))
                })
        };
        let activation = match v.get("hidden_act").and_then(|a| a.as_str()).unwrap_or("quick_gelu")
        {
            "quick_gelu" => ClipActivation::QuickGelu,
            "gelu" => ClipActivation::Gelu,
            other => return Err(Error::unsupported("CLIP activation", other.to_string())),
        };
        let cfg = Self {
            vocab_size: num("vocab_size")?,
            hidden_size: num("hidden_size")?,
            intermediate_size: num("intermediate_size")?,
            num_hidden_layers: num("num_hidden_layers")?,
            num_attention_heads: num("num_attention_heads")?,
            max_position_embeddings: num("max_position_embeddings")?,
            layer_norm_eps: v.get("layer_norm_eps").and_then(|x| x.as_f64()).unwrap_or(1e-5),
            activation,
            eos_token_id: v.get("eos_token_id").and_then(|x| x.as_i64()).unwrap_or(2),
        };
        if !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return Err(Error::invalid_argument(
                "config.json",
                "hidden_size is not a multiple of the heads",
            ));
        }
        Ok(cfg)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    norm1: LayerNorm,
    q: QLinear,
    k: QLinear,
    v: QLinear,
    out: QLinear,
    norm2: LayerNorm,
    fc1: QLinear,
    fc2: QLinear,
}

/// The CLIP text encoder.
#[derive(Debug, Clone)]
pub struct ClipTextEncoder {
    cfg: ClipTextConfig,
    token_embedding: Tensor<2>,
    position_embedding: Tensor<2>,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    device: Device,
}

/// What [`ClipTextEncoder::forward`] returns.
#[derive(Debug, Clone)]
pub struct ClipTextOutput {
    /// `[batch, tokens, hidden]` after the final layer norm.
    pub last_hidden_state: Tensor<3>,
    /// `[batch, hidden]`: the hidden state at each sequence's end-of-text token.
    pub pooled: Tensor<2>,
}

impl ClipTextEncoder {
    /// Loads `config.json` and `model.safetensors` from a directory.
    pub fn open(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config = dir.join("config.json");
        let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
        let cfg = ClipTextConfig::from_json(&text)?;
        let file = SafetensorsFile::open(dir.join("model.safetensors"))?;
        Self::load(&file, cfg, device)
    }

    /// Loads the weights from `src` (names with or without `text_model.`).
    pub fn load(src: &dyn TensorSource, cfg: ClipTextConfig, device: &Device) -> Result<Self> {
        let prefixed = src.tensor_info("text_model.embeddings.token_embedding.weight").is_some();
        let w = WeightLoader::new(src, device)
            .rename(move |n| if prefixed { format!("text_model.{n}") } else { n.to_string() })
            // The projection of CLIPTextModelWithProjection and position ids buffers are not used.
            .ignore(|n| n.ends_with("position_ids") || n.starts_with("text_projection"));
        let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
        let eps = cfg.layer_norm_eps;
        let token_embedding = w.tensor("embeddings.token_embedding.weight", [cfg.vocab_size, d]);
        let position_embedding =
            w.tensor("embeddings.position_embedding.weight", [cfg.max_position_embeddings, d]);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layers.{i}");
                Layer {
                    norm1: LayerNorm::load(&w, &format!("{p}.layer_norm1"), d, eps),
                    q: w.linear(&format!("{p}.self_attn.q_proj"), d, d, true),
                    k: w.linear(&format!("{p}.self_attn.k_proj"), d, d, true),
                    v: w.linear(&format!("{p}.self_attn.v_proj"), d, d, true),
                    out: w.linear(&format!("{p}.self_attn.out_proj"), d, d, true),
                    norm2: LayerNorm::load(&w, &format!("{p}.layer_norm2"), d, eps),
                    fc1: w.linear(&format!("{p}.mlp.fc1"), d, f, true),
                    fc2: w.linear(&format!("{p}.mlp.fc2"), f, d, true),
                }
            })
            .collect();
        let final_norm = LayerNorm::load(&w, "final_layer_norm", d, eps);
        w.finish()?;
        Ok(Self {
            cfg,
            token_embedding,
            position_embedding,
            layers,
            final_norm,
            device: device.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClipTextConfig {
        &self.cfg
    }

    /// Encodes `ids` (`batch` sequences of the same length, at most the position count).
    pub fn forward(&self, ids: &[Vec<u32>]) -> Result<ClipTextOutput> {
        let b = ids.len();
        let t = ids.first().map_or(0, Vec::len);
        if b == 0
            || t == 0
            || t > self.cfg.max_position_embeddings
            || ids.iter().any(|s| s.len() != t)
        {
            return Err(Error::invalid_argument(
                "ids",
                format!("need sequences of one length in 1..={}", self.cfg.max_position_embeddings),
            ));
        }
        if let Some(&bad) = ids.iter().flatten().find(|&&id| id as usize >= self.cfg.vocab_size) {
            return Err(Error::invalid_argument(
                "ids",
                format!("token {bad} is outside the vocabulary"),
            ));
        }
        let (d, heads) = (self.cfg.hidden_size, self.cfg.num_attention_heads);
        let hd = d / heads;
        let flat: Vec<i64> = ids.iter().flatten().map(|&i| i as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(flat, [b * t]), &self.device);
        let tok = self.token_embedding.clone().select(0, idx).reshape([b, t, d]);
        let pos = self.position_embedding.clone().narrow(0, 0, t).unsqueeze::<3>();
        let mut h = tok + pos;
        // Causal mask [1, 1, t, t]: 0 on and below the diagonal, -inf above.
        let mask: Vec<f32> =
            (0..t * t).map(|i| if i % t > i / t { f32::NEG_INFINITY } else { 0.0 }).collect();
        let mask = Tensor::<4>::from_data(TensorData::new(mask, [1, 1, t, t]), &self.device);
        let scale = (hd as f64).powf(-0.5);
        for l in &self.layers {
            let x = l.norm1.forward(h.clone());
            let split = |t3: Tensor<3>| t3.reshape([b, t, heads, hd]).swap_dims(1, 2);
            let q = split(l.q.forward(x.clone()) * scale);
            let k = split(l.k.forward(x.clone()));
            let v = split(l.v.forward(x));
            let probs = activation::softmax(q.matmul(k.swap_dims(2, 3)) + mask.clone(), 3);
            let a = probs.matmul(v).swap_dims(1, 2).reshape([b, t, d]);
            h = h + l.out.forward(a);
            let x = l.fc1.forward(l.norm2.forward(h.clone()));
            let x = match self.cfg.activation {
                ClipActivation::QuickGelu => x.clone() * activation::sigmoid(x * 1.702),
                ClipActivation::Gelu => activation::gelu(x),
            };
            h = h + l.fc2.forward(x);
        }
        let last = self.final_norm.forward(h);
        // Pooled: at the first end-of-text token (or, with the legacy id 2, the largest id).
        let pos: Vec<i64> = ids
            .iter()
            .map(|s| {
                let p = if self.cfg.eos_token_id == 2 {
                    s.iter()
                        .enumerate()
                        .max_by_key(|&(i, &v)| (v, std::cmp::Reverse(i)))
                        .map_or(0, |(i, _)| i)
                } else {
                    s.iter().position(|&v| v as i64 == self.cfg.eos_token_id).unwrap_or(t - 1)
                };
                p as i64
            })
            .collect();
        let rows: Vec<i64> =
            pos.iter().enumerate().map(|(i, &p)| i as i64 * t as i64 + p).collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [b]), &self.device);
        let pooled = last.clone().reshape([b * t, d]).select(0, rows);
        Ok(ClipTextOutput { last_hidden_state: last, pooled })
    }
}
