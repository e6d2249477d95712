//! Model configuration, read from GGUF metadata or a Hugging Face `config.json`.

use aigc_core::layers::{Activation, RopeMode, RopeScaling};
use aigc_core::weights::GgufFile;
use serde_json::Value;

use crate::error::{Error, Result};

/// The decoder families this crate runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 2/3, SmolLM, and other Llama-shaped models.
    Llama,
    /// Mistral (Llama with an optional sliding window).
    Mistral,
    /// Qwen2 (biases on the q/k/v projections).
    Qwen2,
    /// Qwen3 (RMS norms on queries and keys).
    Qwen3,
    /// Gemma 3 (text).
    Gemma3,
}

impl Architecture {
    /// Whether [`crate::llama`] runs this family (otherwise [`crate::gemma3`]).
    pub fn is_llama_family(self) -> bool {
        !matches!(self, Architecture::Gemma3)
    }
}

/// How one layer attends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerAttention {
    /// `Some(w)`: a query sees the `w` most recent positions (itself included).
    pub sliding_window: Option<usize>,
    /// The RoPE base of this layer.
    pub rope_base: f32,
    /// RoPE frequency scaling of this layer.
    pub rope_scaling: Option<RopeScaling>,
}

/// Everything needed to build and run a decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The family.
    pub architecture: Architecture,
    /// Vocabulary entries (rows of the embedding).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMS norm epsilon.
    pub rms_norm_eps: f64,
    /// The context the model was trained for.
    pub max_position_embeddings: usize,
    /// Per-layer attention: window, RoPE base and scaling.
    pub layers: Vec<LayerAttention>,
    /// Which dimensions RoPE rotates together (depends on the checkpoint's layout).
    pub rope_mode: RopeMode,
    /// The output head is the embedding table.
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v (Qwen2, `attention_bias`).
    pub attention_bias: bool,
    /// Attention scores are multiplied by this (`1/sqrt(head_dim)` unless the model says).
    pub attention_scale: f32,
    /// `tanh` soft-capping of attention scores.
    pub attn_logit_softcapping: Option<f32>,
    /// `tanh` soft-capping of the output logits.
    pub final_logit_softcapping: Option<f32>,
    /// The MLP's gate activation.
    pub activation: Activation,
    /// RMS norm weights are stored as `w - 1` (Gemma checkpoints in Hugging Face layout).
    pub norm_weight_offset: bool,
}

fn cfg_err(source: &str, reason: impl Into<String>) -> Error {
    Error::config(source, reason)
}

/// Layers beyond any real decoder: checked before the per-layer table is allocated.
const MAX_LAYERS: usize = 1024;

fn check_layers(source: &str, n: usize) -> Result<()> {
    if n > MAX_LAYERS {
        return Err(cfg_err(
            source,
            format!("num_layers = {n} is larger than any supported model ({MAX_LAYERS})"),
        ));
    }
    Ok(())
}

impl ModelConfig {
    /// Checks the sizes against each other.
    pub fn validate(&self, source: &str) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(cfg_err(source, format!("{name} is 0")));
            }
        }
        // Generous bounds: no real decoder comes near them, and they keep a corrupt header
        // from sizing a huge allocation.
        let bounded = [
            ("vocab_size", self.vocab_size, 1 << 22),
            ("hidden_size", self.hidden_size, 1 << 16),
            ("intermediate_size", self.intermediate_size, 1 << 18),
            ("num_layers", self.num_layers, MAX_LAYERS),
            ("num_heads", self.num_heads, 1024),
            ("head_dim", self.head_dim, 1024),
        ];
        for (name, v, max) in bounded {
            if v > max {
                return Err(cfg_err(
                    source,
                    format!("{name} = {v} is larger than any supported model ({max})"),
                ));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(cfg_err(
                source,
                format!(
                    "{} attention heads are not a multiple of {} key/value heads",
                    self.num_heads, self.num_kv_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(cfg_err(
                source,
                format!("head_dim = {} is odd; RoPE needs pairs", self.head_dim),
            ));
        }
        if self.layers.len() != self.num_layers {
            return Err(cfg_err(
                source,
                format!("{} layer types for {} layers", self.layers.len(), self.num_layers),
            ));
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps < 1.0) {
            return Err(cfg_err(
                source,
                format!("rms_norm_eps = {} is not in (0, 1)", self.rms_norm_eps),
            ));
        }
        for (i, l) in self.layers.iter().enumerate() {
            if !(l.rope_base > 1.0 && l.rope_base.is_finite()) {
                return Err(cfg_err(
                    source,
                    format!("layer {i}: rope base {} is not a finite number > 1", l.rope_base),
                ));
            }
            if l.sliding_window == Some(0) {
                return Err(cfg_err(source, format!("layer {i}: sliding window of 0")));
            }
        }
        Ok(())
    }

    /// Reads the configuration from GGUF metadata (`{arch}.*` keys as llama.cpp writes them).
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let source = g.path().display().to_string();
        let arch_name = g.architecture()?.to_string();
        let architecture = match arch_name.as_str() {
            "llama" => Architecture::Llama,
            "mistral" => Architecture::Mistral,
            "qwen2" => Architecture::Qwen2,
            "qwen3" => Architecture::Qwen3,
            "gemma3" => Architecture::Gemma3,
            other => {
                return Err(Error::Core(aigc_core::Error::unsupported(
                    "architecture",
                    format!(
                        "`{other}` in {source} (supported: llama, mistral, qwen2, qwen3, gemma3)"
                    ),
                )));
            }
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let get = |k: &str| g.get_usize(&key(k));
        let opt_usize = |k: &str| -> Result<Option<usize>> {
            g.get(&key(k)).map(|_| get(k)).transpose().map_err(Into::into)
        };
        let opt_f32 = |k: &str| -> Result<Option<f32>> {
            g.get(&key(k)).map(|_| g.get_f32(&key(k))).transpose().map_err(Into::into)
        };

        let hidden_size = get("embedding_length")?;
        let num_layers = get("block_count")?;
        check_layers(&source, num_layers)?;
        let num_heads = get("attention.head_count")?;
        let num_kv_heads = opt_usize("attention.head_count_kv")?.unwrap_or(num_heads);
        let intermediate_size = get("feed_forward_length")?;
        let head_dim = match opt_usize("attention.key_length")? {
            Some(d) => d,
            None if num_heads > 0 && hidden_size % num_heads == 0 => hidden_size / num_heads,
            None => {
                return Err(cfg_err(
                    &source,
                    format!("{hidden_size} is not divisible by {num_heads} heads"),
                ));
            }
        };
        let vocab_size = match opt_usize("vocab_size")? {
            Some(v) => v,
            None => g.get_array("tokenizer.ggml.tokens")?.len(),
        };
        let rms_norm_eps = g.get_f64(&key("attention.layer_norm_rms_epsilon"))?;
        let max_position_embeddings = get("context_length")?;
        let rope_base = opt_f32("rope.freq_base")?.unwrap_or(10_000.0);
        let rope_scaling = match g.get(&key("rope.scaling.type")) {
            None => None,
            Some(_) => match g.get_str(&key("rope.scaling.type"))? {
                "none" => None,
                "linear" => {
                    let factor = opt_f32("rope.scaling.factor")?.unwrap_or(1.0);
                    (factor != 1.0).then_some(RopeScaling::Linear { factor })
                }
                other => {
                    return Err(Error::Core(aigc_core::Error::unsupported(
                        "RoPE scaling",
                        format!("`{other}` in {source}"),
                    )));
                }
            },
        };
        let window = opt_usize("attention.sliding_window")?.filter(|&w| w > 0);

        let mut cfg = Self {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps,
            max_position_embeddings,
            layers: Vec::new(),
            // llama.cpp's converter permutes the q/k rows of `llama` models for interleaved
            // pairs; every other architecture keeps Hugging Face's rotate-half layout.
            rope_mode: if architecture == Architecture::Llama {
                RopeMode::Interleaved
            } else {
                RopeMode::Half
            },
            tie_word_embeddings: g.tensor_entry("output.weight").is_none(),
            attention_bias: architecture == Architecture::Qwen2,
            attention_scale: 1.0 / (head_dim as f32).sqrt(),
            attn_logit_softcapping: opt_f32("attn_logit_softcapping")?.filter(|&c| c > 0.0),
            final_logit_softcapping: opt_f32("final_logit_softcapping")?.filter(|&c| c > 0.0),
            activation: Activation::Silu,
            norm_weight_offset: false,
        };
        let full = LayerAttention { sliding_window: None, rope_base, rope_scaling };
        cfg.layers = match architecture {
            Architecture::Gemma3 => {
                cfg.activation = Activation::GeluTanh;
                // llama.cpp: every 6th layer is global; local layers use base 10000, unscaled.
                let local = LayerAttention {
                    sliding_window: window,
                    rope_base: 10_000.0,
                    rope_scaling: None,
                };
                (0..num_layers).map(|i| if (i + 1) % 6 == 0 { full } else { local }).collect()
            }
            _ => vec![LayerAttention { sliding_window: window, ..full }; num_layers],
        };
        cfg.validate(&source)?;
        Ok(cfg)
    }

    /// Reads a Hugging Face `config.json` (transformers 4.x `rope_theta`/`rope_scaling` and
    /// 5.x `rope_parameters` forms both).
    pub fn from_hf_json(text: &str, source: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text).map_err(|e| cfg_err(source, e.to_string()))?;
        // Multimodal Gemma 3 nests the decoder under `text_config`.
        let v = match v.get("text_config") {
            Some(t) if t.is_object() => t.clone(),
            _ => v,
        };
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
        let architecture = match model_type {
            "llama" => Architecture::Llama,
            "mistral" => Architecture::Mistral,
            "qwen2" => Architecture::Qwen2,
            "qwen3" => Architecture::Qwen3,
            "gemma3_text" | "gemma3" => Architecture::Gemma3,
            other => {
                return Err(Error::Core(aigc_core::Error::unsupported(
                    "architecture",
                    format!(
                        "model_type `{other}` in {source} (supported: llama, mistral, qwen2, qwen3, gemma3_text)"
                    ),
                )));
            }
        };
        let usize_of = |k: &str| -> Result<Option<usize>> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => {
                    x.as_u64().and_then(|n| usize::try_from(n).ok()).map(Some).ok_or_else(|| {
                        cfg_err(source, format!("`{k}` = {x} is not a non-negative integer"))
                    })
                }
            }
        };
        let req =
            |k: &str| usize_of(k)?.ok_or_else(|| cfg_err(source, format!("`{k}` is missing")));
        let f64_of = |k: &str| v.get(k).and_then(Value::as_f64);
        let bool_of = |k: &str| v.get(k).and_then(Value::as_bool);

        let hidden_size = req("hidden_size")?;
        let num_heads = req("num_attention_heads")?;
        let num_kv_heads = usize_of("num_key_value_heads")?.unwrap_or(num_heads);
        let head_dim = match usize_of("head_dim")? {
            Some(d) => d,
            None if num_heads > 0 => hidden_size / num_heads,
            None => 0,
        };
        let num_layers = req("num_hidden_layers")?;
        check_layers(source, num_layers)?;
        let gemma = architecture == Architecture::Gemma3;

        // RoPE: `rope_parameters` (5.x; per layer type for Gemma 3) or `rope_theta` +
        // `rope_scaling` (4.x).
        let parse_rope = |p: Option<&Value>,
                          theta_default: f64|
         -> Result<(f32, Option<RopeScaling>)> {
            let theta = p
                .and_then(|p| p.get("rope_theta"))
                .and_then(Value::as_f64)
                .or_else(|| f64_of("rope_theta"));
            let theta = theta.unwrap_or(theta_default) as f32;
            let scaling_src = match p {
                Some(p) if p.get("rope_type").is_some() => Some(p),
                _ => v.get("rope_scaling").filter(|s| s.is_object()),
            };
            let scaling = match scaling_src {
                None => None,
                Some(s) => {
                    let kind = s
                        .get("rope_type")
                        .or_else(|| s.get("type"))
                        .and_then(Value::as_str)
                        .unwrap_or("default");
                    let num = |k: &str| s.get(k).and_then(Value::as_f64);
                    match kind {
                        "default" => None,
                        "linear" => Some(RopeScaling::Linear { factor: num("factor").unwrap_or(1.0) as f32 }),
                        "llama3" => Some(RopeScaling::Llama3 {
                            factor: num("factor").ok_or_else(|| cfg_err(source, "llama3 rope scaling without `factor`"))? as f32,
                            high_freq_factor: num("high_freq_factor").unwrap_or(4.0) as f32,
                            low_freq_factor: num("low_freq_factor").unwrap_or(1.0) as f32,
                            original_max_position_embeddings: s
                                .get("original_max_position_embeddings")
                                .and_then(Value::as_u64)
                                .ok_or_else(|| cfg_err(source, "llama3 rope scaling without `original_max_position_embeddings`"))?
                                as usize,
                        }),
                        other => {
                            return Err(Error::Core(aigc_core::Error::unsupported(
                                "RoPE scaling",
                                format!("rope_type `{other}` in {source}"),
                            )));
                        }
                    }
                }
            };
            Ok((theta, scaling))
        };
        let params = v.get("rope_parameters").filter(|p| p.is_object());
        let (global_theta, global_scaling, local_theta) = if gemma {
            let full = params.and_then(|p| p.get("full_attention"));
            let local = params.and_then(|p| p.get("sliding_attention"));
            let (gt, gs) = parse_rope(full, 1_000_000.0)?;
            let lt = match local {
                Some(l) => parse_rope(Some(l), 10_000.0)?.0,
                None => f64_of("rope_local_base_freq").unwrap_or(10_000.0) as f32,
            };
            (gt, gs, lt)
        } else {
            let (t, s) = parse_rope(params, 10_000.0)?;
            (t, s, t)
        };

        let window = usize_of("sliding_window")?.filter(|&w| w > 0);
        let window = match architecture {
            // Qwen2/3 only use their window when `use_sliding_window` says so.
            Architecture::Qwen2 | Architecture::Qwen3
                if bool_of("use_sliding_window") != Some(true) =>
            {
                None
            }
            _ => window,
        };
        let layer_types: Option<Vec<String>> = v
            .get("layer_types")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|t| t.as_str().unwrap_or("").to_string()).collect());
        let layers: Vec<LayerAttention> = (0..num_layers)
            .map(|i| {
                let sliding = match &layer_types {
                    Some(types) => types.get(i).is_some_and(|t| t == "sliding_attention"),
                    None if gemma => {
                        let pattern =
                            usize_of("sliding_window_pattern").ok().flatten().unwrap_or(6).max(1);
                        (i + 1) % pattern != 0
                    }
                    None => window.is_some(),
                };
                if sliding && gemma {
                    LayerAttention {
                        sliding_window: window,
                        rope_base: local_theta,
                        rope_scaling: None,
                    }
                } else if sliding {
                    LayerAttention {
                        sliding_window: window,
                        rope_base: global_theta,
                        rope_scaling: global_scaling,
                    }
                } else {
                    LayerAttention {
                        sliding_window: None,
                        rope_base: global_theta,
                        rope_scaling: global_scaling,
                    }
                }
            })
            .collect();

        let activation = match v
            .get("hidden_activation")
            .or_else(|| v.get("hidden_act"))
            .and_then(Value::as_str)
        {
            None | Some("silu") | Some("swish") => {
                if gemma {
                    Activation::GeluTanh
                } else {
                    Activation::Silu
                }
            }
            Some("gelu_pytorch_tanh") | Some("gelu_new") | Some("gelu_fast") => {
                Activation::GeluTanh
            }
            Some(other) => {
                return Err(Error::Core(aigc_core::Error::unsupported(
                    "activation",
                    format!("`{other}` in {source}"),
                )));
            }
        };
        let attention_scale = match f64_of("query_pre_attn_scalar") {
            Some(s) if gemma && s > 0.0 => (1.0 / s.sqrt()) as f32,
            _ => 1.0 / (head_dim.max(1) as f32).sqrt(),
        };
        let cfg = Self {
            architecture,
            vocab_size: req("vocab_size")?,
            hidden_size,
            intermediate_size: req("intermediate_size")?,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: f64_of("rms_norm_eps").unwrap_or(1e-6),
            max_position_embeddings: usize_of("max_position_embeddings")?.unwrap_or(4096),
            layers,
            rope_mode: RopeMode::Half,
            tie_word_embeddings: bool_of("tie_word_embeddings").unwrap_or(gemma),
            attention_bias: match architecture {
                Architecture::Qwen2 => true,
                _ => bool_of("attention_bias").unwrap_or(false),
            },
            attention_scale,
            attn_logit_softcapping: f64_of("attn_logit_softcapping").map(|c| c as f32),
            final_logit_softcapping: f64_of("final_logit_softcapping").map(|c| c as f32),
            activation,
            norm_weight_offset: gemma,
        };
        cfg.validate(source)?;
        Ok(cfg)
    }
}
