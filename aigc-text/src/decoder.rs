//! Pieces every decoder family here shares: tensor names, self-attention with RoPE, norms
//! loaded with the family's weight convention, the output head, and the KV cache layout.

use aigc_core::burn::tensor::{Device, Tensor};
use aigc_core::layers::{
    Embedding, GatedMlp, KvCache, LayerCache, QLinear, RmsNorm, RotaryEmbedding, attention,
    inverse_frequencies,
};
use aigc_core::weights::WeightLoader;

use crate::config::{LayerAttention, ModelConfig};
use aigc_core::{Error, Result};

/// The GGUF name of a tensor named the Hugging Face way (`model.layers.3.self_attn.q_proj.weight`
/// → `blk.3.attn_q.weight`). Names without a mapping are returned unchanged.
pub fn gguf_name(hf: &str, gemma: bool) -> String {
    match hf {
        "model.embed_tokens.weight" => return "token_embd.weight".into(),
        "model.norm.weight" => return "output_norm.weight".into(),
        "lm_head.weight" => return "output.weight".into(),
        _ => {}
    }
    let Some(rest) = hf.strip_prefix("model.layers.") else { return hf.to_string() };
    let Some((layer, rest)) = rest.split_once('.') else { return hf.to_string() };
    let (module, suffix) = match rest.rsplit_once('.') {
        Some(p) => p,
        None => return hf.to_string(),
    };
    let gguf = match module {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "post_attention_layernorm" if gemma => "post_attention_norm",
        "post_attention_layernorm" => "ffn_norm",
        "pre_feedforward_layernorm" => "ffn_norm",
        "post_feedforward_layernorm" => "post_ffw_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return hf.to_string(),
    };
    format!("blk.{layer}.{gguf}.{suffix}")
}

/// Loads an RMS norm of `dim` from `name`, adding 1 to weights stored as `w - 1`.
pub fn load_norm(w: &WeightLoader<'_>, name: &str, dim: usize, cfg: &ModelConfig) -> RmsNorm {
    let weight = w.tensor::<1>(name, [dim]);
    let weight = if cfg.norm_weight_offset { weight + 1.0 } else { weight };
    RmsNorm::new(weight, cfg.rms_norm_eps)
}

/// Self-attention with grouped key/value heads, optional q/k norms and RoPE.
#[derive(Debug, Clone)]
pub struct SelfAttention {
    q: QLinear,
    k: QLinear,
    v: QLinear,
    o: QLinear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f32,
    softcap: Option<f32>,
    /// Index into the model's RoPE tables.
    rope: usize,
}

impl SelfAttention {
    /// Loads `{prefix}.{q,k,v,o}_proj` (and `q_norm`/`k_norm` when `qk_norm`).
    pub fn load(
        w: &WeightLoader<'_>,
        prefix: &str,
        cfg: &ModelConfig,
        qk_norm: bool,
        rope: usize,
    ) -> Self {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim);
        let bias = cfg.attention_bias;
        let norm = |n: &str| load_norm(w, &format!("{prefix}.{n}.weight"), hd, cfg);
        Self {
            q: w.linear(&format!("{prefix}.q_proj"), d, cfg.num_heads * hd, bias),
            k: w.linear(&format!("{prefix}.k_proj"), d, cfg.num_kv_heads * hd, bias),
            v: w.linear(&format!("{prefix}.v_proj"), d, cfg.num_kv_heads * hd, bias),
            o: w.linear(&format!("{prefix}.o_proj"), cfg.num_heads * hd, d, false),
            q_norm: qk_norm.then(|| norm("q_norm")),
            k_norm: qk_norm.then(|| norm("k_norm")),
            heads: cfg.num_heads,
            kv_heads: cfg.num_kv_heads,
            head_dim: hd,
            scale: cfg.attention_scale,
            softcap: cfg.attn_logit_softcapping,
            rope,
        }
    }

    /// Attends `x` (`[1, n, d]`, positions `start..start + n`) over `cache`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        ropes: &[RotaryEmbedding],
        cache: &mut LayerCache,
        start: usize,
    ) -> Result<Tensor<3>> {
        let [_, n, _] = x.dims();
        let hd = self.head_dim;
        let split = |t: Tensor<3>, heads: usize, norm: &Option<RmsNorm>| {
            let t = t.reshape([1, n, heads, hd]);
            let t = match norm {
                Some(norm) => norm.forward(t),
                None => t,
            };
            ropes[self.rope].apply(t.swap_dims(1, 2), start)
        };
        let [q, k, v]: [Tensor<3>; 3] =
            aigc_core::layers::forward_group(&[&self.q, &self.k, &self.v], x)
                .try_into()
                .expect("three outputs");
        let q = split(q, self.heads, &self.q_norm);
        let k = split(k, self.kv_heads, &self.k_norm);
        let v = v.reshape([1, n, self.kv_heads, hd]).swap_dims(1, 2);
        let out = attention(q, k, v, cache, start, self.scale, self.softcap)?;
        Ok(self.o.forward(out.swap_dims(1, 2).reshape([1, n, self.heads * hd])))
    }
}

/// Loads `{prefix}.mlp.{gate,up,down}_proj`.
pub fn load_mlp(w: &WeightLoader<'_>, prefix: &str, cfg: &ModelConfig) -> GatedMlp {
    let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
    GatedMlp {
        gate: w.linear(&format!("{prefix}.mlp.gate_proj"), d, f, false),
        up: w.linear(&format!("{prefix}.mlp.up_proj"), d, f, false),
        down: w.linear(&format!("{prefix}.mlp.down_proj"), f, d, false),
        activation: cfg.activation,
    }
}

/// The output projection: the embedding table (tied) or its own matrix.
#[derive(Debug, Clone)]
enum Head {
    /// Logits against the token embeddings.
    Tied,
    /// A separate `lm_head`.
    Linear(Box<QLinear>),
}

impl Head {
    /// Loads `lm_head` unless the model ties it to the embeddings.
    fn load(w: &WeightLoader<'_>, cfg: &ModelConfig) -> Self {
        if cfg.tie_word_embeddings {
            Head::Tied
        } else {
            Head::Linear(Box::new(w.linear("lm_head", cfg.hidden_size, cfg.vocab_size, false)))
        }
    }

    /// Logits `[rows, vocab]` of normalised hidden states `[1, rows, d]`.
    fn forward(&self, x: Tensor<3>, embed: &Embedding, softcap: Option<f32>) -> Tensor<2> {
        let [_, rows, _] = x.dims();
        let logits = match self {
            Head::Tied => embed.attend(x),
            Head::Linear(l) => l.forward(x),
        };
        let vocab = logits.dims()[2];
        let logits = logits.reshape([rows, vocab]);
        match softcap {
            Some(cap) => (logits / cap).tanh() * cap,
            None => logits,
        }
    }
}

/// RoPE tables for the distinct (base, scaling) pairs of a model's layers, and the table
/// each layer uses.
fn build_ropes(
    w: &WeightLoader<'_>,
    cfg: &ModelConfig,
    max_positions: usize,
) -> Result<(Vec<RotaryEmbedding>, Vec<usize>)> {
    // Llama 3.1 GGUF files carry their frequency scaling as per-dimension divisors.
    let factors: Option<Vec<f32>> =
        match w.optional_tensor::<1>("rope_freqs.weight", [cfg.head_dim / 2]) {
            Some(t) => Some(
                t.to_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .map_err(|e| Error::tensor("rope_freqs.weight", format!("{e:?}")))?,
            ),
            None => None,
        };
    let mut kinds: Vec<LayerAttention> = Vec::new();
    let mut index = Vec::with_capacity(cfg.layers.len());
    for l in &cfg.layers {
        let key = LayerAttention { sliding_window: None, ..*l };
        let i = match kinds.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                kinds.push(key);
                kinds.len() - 1
            }
        };
        index.push(i);
    }
    let ropes = kinds
        .iter()
        .map(|k| {
            let mut inv = inverse_frequencies(cfg.head_dim, k.rope_base, k.rope_scaling);
            if let Some(f) = &factors {
                inv.iter_mut().zip(f).for_each(|(x, f)| *x /= f);
            }
            RotaryEmbedding::from_inverse_frequencies(
                &inv,
                max_positions,
                cfg.rope_mode,
                w.device(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((ropes, index))
}

/// A KV cache for `context` positions with each layer's window.
fn new_cache(
    cfg: &ModelConfig,
    context: usize,
    max_context: usize,
    device: &aigc_core::burn::tensor::Device,
) -> Result<KvCache> {
    if context == 0 || context > max_context {
        return Err(Error::invalid_argument(
            "context",
            format!(
                "{context} is not in 1..={max_context} (the positions this model was loaded for)"
            ),
        ));
    }
    let layers = cfg
        .layers
        .iter()
        .map(|l| LayerCache::new(cfg.num_kv_heads, cfg.head_dim, context, l.sliding_window, device))
        .collect();
    Ok(KvCache::new(layers, context))
}

/// Checks that there are `tokens` and that they fit in `cache` (the embedding checks the ids).
fn check_tokens(tokens: &[u32], cache: &KvCache) -> Result<()> {
    if tokens.is_empty() {
        return Err(Error::invalid_argument("tokens", "no tokens to run"));
    }
    cache.check_room(tokens.len())
}

/// The hidden states to project: all rows, or only the last.
fn rows_for_head(x: Tensor<3>, all_logits: bool) -> Tensor<3> {
    let [_, n, _] = x.dims();
    if all_logits { x } else { x.narrow(1, n - 1, 1) }
}

/// What every decoder here has around its blocks: the embedding table, the final norm, the
/// head, the RoPE tables and the configuration.
#[derive(Debug, Clone)]
pub struct Trunk {
    /// The configuration.
    pub config: ModelConfig,
    embed: Embedding,
    norm: RmsNorm,
    head: Head,
    /// RoPE tables, indexed by [`rope_of`](Self::rope_of).
    pub ropes: Vec<RotaryEmbedding>,
    /// Which RoPE table each layer uses.
    pub rope_of: Vec<usize>,
    max_context: usize,
    device: Device,
}

impl Trunk {
    /// Loads `model.embed_tokens`, `model.norm` and the head, with RoPE tables for
    /// `max_context` positions.
    pub fn load(w: &WeightLoader<'_>, cfg: &ModelConfig, max_context: usize) -> Result<Self> {
        let (ropes, rope_of) = build_ropes(w, cfg, max_context)?;
        let d = cfg.hidden_size;
        Ok(Self {
            config: cfg.clone(),
            embed: w.embedding("model.embed_tokens.weight", cfg.vocab_size, d),
            norm: load_norm(w, "model.norm.weight", d, cfg),
            head: Head::load(w, cfg),
            ropes,
            rope_of,
            max_context,
            device: w.device().clone(),
        })
    }

    /// Positions the RoPE tables cover.
    pub fn max_context(&self) -> usize {
        self.max_context
    }

    /// A cache for `context` positions.
    pub fn new_cache(&self, context: usize) -> Result<KvCache> {
        new_cache(&self.config, context, self.max_context, &self.device)
    }

    /// Checks `tokens` against the vocabulary and the cache; returns their embeddings
    /// (`[1, n, d]`) and the position of the first.
    pub fn embed(&self, tokens: &[u32], cache: &KvCache) -> Result<(Tensor<3>, usize)> {
        check_tokens(tokens, cache)?;
        Ok((self.embed.forward(tokens)?, cache.len()))
    }

    /// Records `n` processed tokens in `cache`, then normalises and projects the hidden states
    /// (all rows, or the last) to logits `[rows, vocab]`.
    pub fn logits(&self, x: Tensor<3>, cache: &mut KvCache, all_logits: bool) -> Tensor<2> {
        cache.advance(x.dims()[1]);
        let x = self.norm.forward(rows_for_head(x, all_logits));
        self.head.forward(x, &self.embed, self.config.final_logit_softcapping)
    }
}

/// A decoder family: its [`Trunk`] and what its blocks do to the embedded tokens. Every
/// `Decoder` is a [`CausalLm`](aigc_core::traits::CausalLm).
pub trait Decoder: Send {
    /// The shared parts.
    fn trunk(&self) -> &Trunk;

    /// Runs the blocks over embeddings `x` (`[1, n, d]`) at positions `start..start + n`.
    fn blocks(&self, x: Tensor<3>, cache: &mut KvCache, start: usize) -> Result<Tensor<3>>;
}

/// Implements [`CausalLm`](aigc_core::traits::CausalLm) for a [`Decoder`] (a blanket impl
/// over a foreign trait is not allowed).
macro_rules! causal_lm_for_decoder {
    ($t:ty) => {
        impl aigc_core::traits::CausalLm for $t {
            fn vocab_size(&self) -> usize {
                $crate::decoder::Decoder::trunk(self).config.vocab_size
            }

            fn max_context(&self) -> usize {
                $crate::decoder::Decoder::trunk(self).max_context()
            }

            fn new_cache(&self, context: usize) -> aigc_core::Result<aigc_core::layers::KvCache> {
                $crate::decoder::Decoder::trunk(self).new_cache(context)
            }

            fn forward(
                &self,
                tokens: &[u32],
                cache: &mut aigc_core::layers::KvCache,
                all_logits: bool,
            ) -> aigc_core::Result<aigc_core::burn::tensor::Tensor<2>> {
                let trunk = $crate::decoder::Decoder::trunk(self);
                let (x, start) = trunk.embed(tokens, cache)?;
                let x = $crate::decoder::Decoder::blocks(self, x, cache, start)?;
                Ok(trunk.logits(x, cache, all_logits))
            }
        }
    };
}
pub(crate) use causal_lm_for_decoder;
