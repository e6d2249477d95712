//! The CLIP text encoder (`CLIPTextModel`), as Stable Diffusion uses it: token and position
//! embeddings, pre-norm transformer layers with causal self-attention, a final layer norm;
//! the pooled output is the hidden state at the end-of-text token.
//!
//! Loaded from a Hugging Face directory (`config.json`, `model.safetensors`) by its own
//! parameter names, with or without the `text_model.` prefix (transformers 5 saves without it,
//! Stable Diffusion checkpoints have it).
//!
//! The encoder layer is shared with the vision tower of [`crate::clip_vision`], which also
//! loads this encoder as the text tower of a whole `CLIPModel`.
//!
//! `ClipTextEncoder` implements aigc-image's [`PromptEncoder`](aigc_image::pipeline::PromptEncoder),
//! the text encoder a `StableDiffusion` pipeline takes.

use std::path::Path;

use aigc_core::burn::tensor::{Device, Int, Tensor, TensorData, activation};
use aigc_core::layers::{HeadLayout, LayerNorm, QLinear, multi_head_attention};
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
    /// Attention heads per layer, each `hidden_size / num_attention_heads` wide.
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
        let activation = ClipActivation::from_name(
            v.get("hidden_act").and_then(|a| a.as_str()).unwrap_or("quick_gelu"),
        )?;
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

impl ClipActivation {
    /// Parses a `hidden_act` value.
    pub(crate) fn from_name(name: &str) -> Result<Self> {
        match name {
            "quick_gelu" => Ok(ClipActivation::QuickGelu),
            "gelu" => Ok(ClipActivation::Gelu),
            other => Err(Error::unsupported("CLIP activation", other.to_string())),
        }
    }

    fn apply(self, x: Tensor<3>) -> Tensor<3> {
        match self {
            ClipActivation::QuickGelu => x.clone() * activation::sigmoid(x * 1.702),
            ClipActivation::Gelu => activation::gelu(x),
        }
    }
}

/// One pre-norm transformer layer (`encoder.layers.{i}`), the same in both CLIP towers:
/// `h + out(attn(norm1(h)))`, then `h + fc2(act(fc1(norm2(h))))`.
#[derive(Debug, Clone)]
pub(crate) struct EncoderLayer {
    norm1: LayerNorm,
    q: QLinear,
    k: QLinear,
    v: QLinear,
    out: QLinear,
    norm2: LayerNorm,
    fc1: QLinear,
    fc2: QLinear,
}

impl EncoderLayer {
    /// The layer under `prefix` (`...encoder.layers.{i}`), width `d`, MLP width `f`.
    pub(crate) fn load(w: &WeightLoader<'_>, prefix: &str, d: usize, f: usize, eps: f64) -> Self {
        let p = prefix;
        Self {
            norm1: LayerNorm::load(w, &format!("{p}.layer_norm1"), d, eps),
            q: w.linear(&format!("{p}.self_attn.q_proj"), d, d, true),
            k: w.linear(&format!("{p}.self_attn.k_proj"), d, d, true),
            v: w.linear(&format!("{p}.self_attn.v_proj"), d, d, true),
            out: w.linear(&format!("{p}.self_attn.out_proj"), d, d, true),
            norm2: LayerNorm::load(w, &format!("{p}.layer_norm2"), d, eps),
            fc1: w.linear(&format!("{p}.mlp.fc1"), d, f, true),
            fc2: w.linear(&format!("{p}.mlp.fc2"), f, d, true),
        }
    }

    /// Runs the layer on `h` (`[batch, tokens, hidden]`) with `heads` heads; `mask`
    /// (`[1, 1, tokens, tokens]`, added to the scores) is the text tower's causal mask, and
    /// the vision tower, which has none, attends through the shared unmasked attention.
    pub(crate) fn forward(
        &self,
        h: Tensor<3>,
        heads: usize,
        act: ClipActivation,
        mask: Option<&Tensor<4>>,
    ) -> Tensor<3> {
        let [b, t, d] = h.dims();
        let hd = d / heads;
        let scale = (hd as f64).powf(-0.5);
        let x = self.norm1.forward(h.clone());
        let a = match mask {
            Some(mask) => {
                let split = |t3: Tensor<3>| t3.reshape([b, t, heads, hd]).swap_dims(1, 2);
                let q = split(self.q.forward(x.clone()) * scale);
                let k = split(self.k.forward(x.clone()));
                let v = split(self.v.forward(x));
                let probs = activation::softmax(q.matmul(k.swap_dims(2, 3)) + mask.clone(), 3);
                probs.matmul(v).swap_dims(1, 2).reshape([b, t, d])
            }
            None => {
                let (q, k, v) =
                    (self.q.forward(x.clone()), self.k.forward(x.clone()), self.v.forward(x));
                multi_head_attention(q, k, v, heads, scale as f32, HeadLayout::TokenMajor)
            }
        };
        let h = h + self.out.forward(a);
        let x = self.fc1.forward(self.norm2.forward(h.clone()));
        h + self.fc2.forward(act.apply(x))
    }
}

/// The CLIP text encoder: token ids (from CLIP's tokenizer, padded to one length of at most
/// `max_position_embeddings`, 77) to per-token hidden states and a pooled vector per
/// sequence ([`ClipTextOutput`]). Stable Diffusion conditions on the hidden states.
#[derive(Debug, Clone)]
pub struct ClipTextEncoder {
    cfg: ClipTextConfig,
    token_embedding: Tensor<2>,
    position_embedding: Tensor<2>,
    layers: Vec<EncoderLayer>,
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
            // The projection of CLIPTextModelWithProjection and position ids buffers are not used.
            .ignore(|n| n.ends_with("position_ids") || n.starts_with("text_projection"));
        let enc = Self::from_loader(&w, if prefixed { "text_model." } else { "" }, cfg);
        w.finish()?;
        Ok(enc)
    }

    /// Builds the encoder from the tensors under `prefix` (`""` or `"text_model."`) of a
    /// loader that the caller finishes (a whole CLIP model loads both towers from one file).
    pub(crate) fn from_loader(w: &WeightLoader<'_>, prefix: &str, cfg: ClipTextConfig) -> Self {
        let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
        let eps = cfg.layer_norm_eps;
        let token_embedding =
            w.tensor(&format!("{prefix}embeddings.token_embedding.weight"), [cfg.vocab_size, d]);
        let position_embedding = w.tensor(
            &format!("{prefix}embeddings.position_embedding.weight"),
            [cfg.max_position_embeddings, d],
        );
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EncoderLayer::load(w, &format!("{prefix}encoder.layers.{i}"), d, f, eps))
            .collect();
        let final_norm = LayerNorm::load(w, &format!("{prefix}final_layer_norm"), d, eps);
        Self {
            cfg,
            token_embedding,
            position_embedding,
            layers,
            final_norm,
            device: w.device().clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClipTextConfig {
        &self.cfg
    }

    /// Encodes `ids` (`batch` sequences of the same length, at most the position count).
    /// Fails when `ids` is empty, a sequence is empty or too long, the lengths differ, or an
    /// id is outside the vocabulary.
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
        let flat: Vec<i64> = ids.iter().flatten().map(|&i| i as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(flat, [b * t]), &self.device);
        let tok = self.token_embedding.clone().select(0, idx).reshape([b, t, d]);
        let pos = self.position_embedding.clone().narrow(0, 0, t).unsqueeze::<3>();
        let mut h = tok + pos;
        // Causal mask [1, 1, t, t]: 0 on and below the diagonal, -inf above.
        let mask: Vec<f32> =
            (0..t * t).map(|i| if i % t > i / t { f32::NEG_INFINITY } else { 0.0 }).collect();
        let mask = Tensor::<4>::from_data(TensorData::new(mask, [1, 1, t, t]), &self.device);
        for l in &self.layers {
            h = l.forward(h, heads, self.cfg.activation, Some(&mask));
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

/// Stable Diffusion's prompt encoder: the pipeline's padded ids in, `last_hidden_state` out
/// (the pooled output is not used by SD 1.x/2.x).
impl aigc_image::pipeline::PromptEncoder for ClipTextEncoder {
    fn hidden_size(&self) -> usize {
        self.cfg.hidden_size
    }

    fn max_tokens(&self) -> usize {
        self.cfg.max_position_embeddings
    }

    fn encode(&self, ids: &[Vec<u32>]) -> Result<Tensor<3>> {
        Ok(self.forward(ids)?.last_hidden_state)
    }
}
