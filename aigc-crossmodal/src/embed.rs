//! Sentence embeddings: a BERT encoder (`BertModel`, [Devlin et al. 2018]) with
//! sentence-transformers' pooling and normalisation, as all-MiniLM-L6-v2 uses it.
//!
//! The encoder is the reference one (transformers' `modeling_bert.py`): word, position and
//! token-type embeddings summed and layer-normed, then post-norm layers of self-attention
//! (padding keys masked) and a GELU (erf) feed-forward block, each added to its input and
//! layer-normed. It loads from a Hugging Face directory (`config.json`, `model.safetensors`)
//! by the reference parameter names, with or without the `bert.` prefix (a bare `BertModel`
//! saves without it, `BertFor*` heads with it).
//!
//! [`SentenceEmbedder`] follows a sentence-transformers directory (`modules.json`): the
//! tokenizer (`tokenizer.json`) truncates to `max_seq_length` (`sentence_bert_config.json`),
//! the batch is padded, the token vectors are pooled (`1_Pooling/config.json`: mean, CLS or
//! max) and, when `modules.json` lists a `Normalize` module, scaled to unit length.
//!
//! [Devlin et al. 2018]: https://arxiv.org/abs/1810.04805
//!
//! ```no_run
//! use aigc_crossmodal::embed::{SentenceEmbedder, cosine_similarity};
//!
//! let device = aigc_core::parse_device("flex")?;
//! let model = aigc_core::models::resolve_or_fetch("all-minilm-l6-v2")?;
//! let embedder = SentenceEmbedder::open(&model, &device)?;
//! let v = embedder.embed(&["A man is eating food.", "A man is eating a piece of bread."])?;
//! println!("{:.3}", cosine_similarity(&v[0], &v[1]));
//! # Ok::<(), aigc_core::Error>(())
//! ```

use std::path::{Path, PathBuf};

use aigc_core::burn::tensor::{Device, Tensor, TensorData, activation};
use aigc_core::layers::{Embedding, HeadLayout, LayerNorm, QLinear, multi_head_attention};
use aigc_core::weights::{SafetensorsFile, TensorSource, WeightLoader};
use aigc_core::{Error, Result};
use tokenizers::{PostProcessor, Tokenizer, TruncationParams};

/// `config.json` of a `BertModel`.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Width of the feed-forward blocks.
    pub intermediate_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer, each `hidden_size / num_attention_heads` wide.
    pub num_attention_heads: usize,
    /// Positions (512).
    pub max_position_embeddings: usize,
    /// Token types (segments; 2).
    pub type_vocab_size: usize,
    /// Layer-norm epsilon (1e-12).
    pub layer_norm_eps: f64,
    /// The id padding is filled with.
    pub pad_token_id: u32,
}

impl BertConfig {
    /// Parses `config.json` text. Only what this encoder computes is accepted: `model_type`
    /// `bert` (RoBERTa-style models offset their positions), absolute positions and the
    /// `gelu` (erf) activation.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument("config.json", e.to_string()))?;
        let num = |k: &str| -> Result<usize> {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .filter(|&x| x > 0 && x < 1 << 24)
                .ok_or_else(|| {
                    Error::invalid_argument("config.json", format!("`{k}` is missing or invalid"))
                })
        };
        let text_of = |k: &str, default: &'static str| -> Result<String> {
            match v.get(k) {
                None => Ok(default.to_string()),
                Some(x) => x.as_str().map(str::to_string).ok_or_else(|| {
                    Error::invalid_argument("config.json", format!("`{k}` is not a string"))
                }),
            }
        };
        let model_type = text_of("model_type", "bert")?;
        if model_type != "bert" {
            return Err(Error::unsupported("BERT model type", model_type));
        }
        let act = text_of("hidden_act", "gelu")?;
        if act != "gelu" {
            return Err(Error::unsupported("BERT activation", act));
        }
        let positions = text_of("position_embedding_type", "absolute")?;
        if positions != "absolute" {
            return Err(Error::unsupported("BERT position embedding", positions));
        }
        let cfg = Self {
            vocab_size: num("vocab_size")?,
            hidden_size: num("hidden_size")?,
            intermediate_size: num("intermediate_size")?,
            num_hidden_layers: num("num_hidden_layers")?,
            num_attention_heads: num("num_attention_heads")?,
            max_position_embeddings: num("max_position_embeddings")?,
            type_vocab_size: match v.get("type_vocab_size") {
                None => 2,
                Some(_) => num("type_vocab_size")?,
            },
            layer_norm_eps: v.get("layer_norm_eps").and_then(|x| x.as_f64()).unwrap_or(1e-12),
            pad_token_id: v.get("pad_token_id").and_then(|x| x.as_u64()).unwrap_or(0) as u32,
        };
        if !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return Err(Error::invalid_argument(
                "config.json",
                "hidden_size is not a multiple of the heads",
            ));
        }
        if cfg.pad_token_id as usize >= cfg.vocab_size {
            return Err(Error::invalid_argument(
                "config.json",
                "pad_token_id is outside the vocabulary",
            ));
        }
        Ok(cfg)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    q: QLinear,
    k: QLinear,
    v: QLinear,
    attn_out: QLinear,
    attn_norm: LayerNorm,
    intermediate: QLinear,
    out: QLinear,
    out_norm: LayerNorm,
}

/// The BERT encoder (`BertModel` without its pooler).
#[derive(Debug, Clone)]
pub struct BertModel {
    cfg: BertConfig,
    word_embeddings: Embedding,
    position_embeddings: Tensor<2>,
    /// Token type 0's vector, `[1, 1, hidden]`: every sequence here is one segment.
    token_type: Tensor<3>,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    device: Device,
}

impl BertModel {
    /// Loads `config.json` and `model.safetensors` from a directory.
    pub fn open(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config = dir.join("config.json");
        let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
        let cfg = BertConfig::from_json(&text)?;
        let file = SafetensorsFile::open(dir.join("model.safetensors"))?;
        Self::load(&file, cfg, device)
    }

    /// Loads the weights from `src` (names with or without `bert.`).
    pub fn load(src: &dyn TensorSource, cfg: BertConfig, device: &Device) -> Result<Self> {
        let prefixed = src.tensor_info("bert.embeddings.word_embeddings.weight").is_some();
        let w = WeightLoader::new(src, device)
            .rename(move |n| if prefixed { format!("bert.{n}") } else { n.to_string() })
            // Position and token-type id buffers, the pooler (sentence-transformers pools
            // itself) and the heads of `BertFor*` checkpoints are not used.
            .ignore(|n| {
                let n = n.strip_prefix("bert.").unwrap_or(n);
                n.ends_with("position_ids")
                    || n.ends_with("token_type_ids")
                    || n.starts_with("pooler.")
                    || n.starts_with("cls.")
            });
        let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
        let eps = cfg.layer_norm_eps;
        let word_embeddings = w.embedding("embeddings.word_embeddings.weight", cfg.vocab_size, d);
        let position_embeddings =
            w.tensor("embeddings.position_embeddings.weight", [cfg.max_position_embeddings, d]);
        let token_type = w
            .tensor("embeddings.token_type_embeddings.weight", [cfg.type_vocab_size, d])
            .narrow(0, 0, 1)
            .unsqueeze::<3>();
        let embed_norm = LayerNorm::load(&w, "embeddings.LayerNorm", d, eps);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Layer {
                    q: w.linear(&format!("{p}.attention.self.query"), d, d, true),
                    k: w.linear(&format!("{p}.attention.self.key"), d, d, true),
                    v: w.linear(&format!("{p}.attention.self.value"), d, d, true),
                    attn_out: w.linear(&format!("{p}.attention.output.dense"), d, d, true),
                    attn_norm: LayerNorm::load(
                        &w,
                        &format!("{p}.attention.output.LayerNorm"),
                        d,
                        eps,
                    ),
                    intermediate: w.linear(&format!("{p}.intermediate.dense"), d, f, true),
                    out: w.linear(&format!("{p}.output.dense"), f, d, true),
                    out_norm: LayerNorm::load(&w, &format!("{p}.output.LayerNorm"), d, eps),
                }
            })
            .collect();
        w.finish()?;
        Ok(Self {
            cfg,
            word_embeddings,
            position_embeddings,
            token_type,
            embed_norm,
            layers,
            device: device.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// Encodes `ids`: `batch` sequences of 1 to `max_position_embeddings` tokens, of any
    /// lengths. Shorter sequences are padded on the right to the longest and the padding is
    /// masked out of attention, so each sequence's vectors are what it gets alone. Returns
    /// the last hidden state `[batch, longest, hidden]`; rows past a sequence's length are
    /// padding and mean nothing.
    pub fn forward(&self, ids: &[Vec<u32>]) -> Result<Tensor<3>> {
        let max = self.cfg.max_position_embeddings;
        if ids.is_empty() || ids.iter().any(|s| s.is_empty() || s.len() > max) {
            return Err(Error::invalid_argument(
                "ids",
                format!("need at least one sequence, each of 1..={max} tokens"),
            ));
        }
        let b = ids.len();
        let t = ids.iter().map(Vec::len).max().unwrap_or(0);
        let (d, heads) = (self.cfg.hidden_size, self.cfg.num_attention_heads);
        let pad = self.cfg.pad_token_id;
        let flat: Vec<u32> = ids
            .iter()
            .flat_map(|s| s.iter().copied().chain(std::iter::repeat_n(pad, t - s.len())))
            .collect();
        let words = self.word_embeddings.forward(&flat)?.reshape([b, t, d]);
        let pos = self.position_embeddings.clone().narrow(0, 0, t).unsqueeze::<3>();
        let mut h = self.embed_norm.forward(words + pos + self.token_type.clone());
        // Padding keys get -inf before the soft-max ([batch, 1, 1, t]); without padding the
        // unmasked attention of aigc-core (a host path on CPU devices) does.
        let padded = ids.iter().any(|s| s.len() != t);
        let mask = padded.then(|| {
            let m: Vec<f32> = ids
                .iter()
                .flat_map(|s| (0..t).map(|j| if j < s.len() { 0.0 } else { f32::NEG_INFINITY }))
                .collect();
            Tensor::<4>::from_data(TensorData::new(m, [b, 1, 1, t]), &self.device)
        });
        let hd = d / heads;
        let scale = (hd as f32).powf(-0.5);
        for l in &self.layers {
            let (q, k, v) =
                (l.q.forward(h.clone()), l.k.forward(h.clone()), l.v.forward(h.clone()));
            let a = match &mask {
                None => multi_head_attention(q, k, v, heads, scale, HeadLayout::TokenMajor),
                Some(mask) => {
                    let split = |x: Tensor<3>| x.reshape([b, t, heads, hd]).swap_dims(1, 2);
                    let scores = split(q).matmul(split(k).swap_dims(2, 3)) * scale;
                    let probs = activation::softmax(scores + mask.clone(), 3);
                    probs.matmul(split(v)).swap_dims(1, 2).reshape([b, t, d])
                }
            };
            h = l.attn_norm.forward(h + l.attn_out.forward(a));
            let x = activation::gelu(l.intermediate.forward(h.clone()));
            h = l.out_norm.forward(h + l.out.forward(x));
        }
        Ok(h)
    }
}

/// How token vectors become one sentence vector (`1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over the sentence's tokens (`pooling_mode_mean_tokens`).
    Mean,
    /// The first token's vector, `[CLS]` (`pooling_mode_cls_token`).
    Cls,
    /// The element-wise maximum over the sentence's tokens (`pooling_mode_max_tokens`).
    Max,
}

impl Pooling {
    /// Parses `1_Pooling/config.json` text: exactly one supported mode must be on.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument("1_Pooling/config.json", e.to_string()))?;
        let Some(fields) = v.as_object() else {
            return Err(Error::invalid_argument("1_Pooling/config.json", "not an object"));
        };
        let on: Vec<&str> = fields
            .iter()
            .filter(|(k, x)| k.starts_with("pooling_mode_") && x.as_bool() == Some(true))
            .map(|(k, _)| k.as_str())
            .collect();
        match on.as_slice() {
            ["pooling_mode_mean_tokens"] => Ok(Pooling::Mean),
            ["pooling_mode_cls_token"] => Ok(Pooling::Cls),
            ["pooling_mode_max_tokens"] => Ok(Pooling::Max),
            [] => Err(Error::invalid_argument("1_Pooling/config.json", "no pooling mode is on")),
            other => Err(Error::unsupported("sentence pooling", other.join(" + "))),
        }
    }

    /// Pools `h` (`[batch, tokens, hidden]`, sequences of `lengths` tokens padded on the
    /// right) to `[batch, hidden]`.
    pub fn apply(self, h: Tensor<3>, lengths: &[usize]) -> Tensor<2> {
        let [b, t, d] = h.dims();
        let device = h.device();
        let keep = |on: f32, off: f32| {
            let m: Vec<f32> = lengths
                .iter()
                .flat_map(|&n| (0..t).map(move |j| if j < n { on } else { off }))
                .collect();
            Tensor::<3>::from_data(TensorData::new(m, [b, t, 1]), &device)
        };
        match self {
            Pooling::Cls => h.narrow(1, 0, 1).reshape([b, d]),
            Pooling::Mean => {
                // As sentence-transformers: the masked sum over the count (at least 1e-9).
                let counts: Vec<f32> = lengths.iter().map(|&n| (n as f32).max(1e-9)).collect();
                let counts = Tensor::<2>::from_data(TensorData::new(counts, [b, 1]), &device);
                (h * keep(1.0, 0.0)).sum_dim(1).reshape([b, d]) / counts
            }
            // Padding set to -1e9 first, as sentence-transformers does.
            Pooling::Max => (h * keep(1.0, 0.0) + keep(0.0, -1e9)).max_dim(1).reshape([b, d]),
        }
    }
}

/// Sentences per forward pass in [`SentenceEmbedder::embed`] (sentence-transformers' default).
const BATCH: usize = 32;

/// A sentence-transformers model: tokenizer, BERT encoder, pooling and optional
/// normalisation; sentences in, one vector each out.
#[derive(Debug, Clone)]
pub struct SentenceEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    max_seq_length: usize,
    lowercase: bool,
    pooling: Pooling,
    normalize: bool,
}

impl SentenceEmbedder {
    /// Opens a sentence-transformers directory (or a file in it, such as the
    /// `model.safetensors` that [`aigc_core::models::model_file`] returns): `modules.json`
    /// names the Transformer, Pooling and optional Normalize modules (anything else is
    /// unsupported); without it, mean pooling and no normalisation, as sentence-transformers
    /// does for a plain Hugging Face model.
    pub fn open(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let dir = if dir.is_file() { dir.parent().unwrap_or(Path::new(".")) } else { dir };
        let (transformer, pooling_dir, normalize) = read_modules(dir)?;
        let model = BertModel::open(&transformer, device)?;
        let pooling = match pooling_dir {
            Some(p) => Pooling::from_json(&read(&p.join("config.json"))?)?,
            None => Pooling::Mean,
        };
        // sentence_bert_config.json: the token limit and lower-casing.
        let st_config = transformer.join("sentence_bert_config.json");
        let st: serde_json::Value = if st_config.is_file() {
            serde_json::from_str(&read(&st_config)?)
                .map_err(|e| Error::invalid_argument("sentence_bert_config.json", e.to_string()))?
        } else {
            serde_json::Value::Null
        };
        let positions = model.config().max_position_embeddings;
        let max_seq_length = match st.get("max_seq_length") {
            None => positions,
            Some(x) => x.as_u64().map(|x| x as usize).filter(|&x| x > 0).ok_or_else(|| {
                Error::invalid_argument("sentence_bert_config.json", "bad `max_seq_length`")
            })?,
        };
        if max_seq_length > positions {
            return Err(Error::invalid_argument(
                "sentence_bert_config.json",
                format!("max_seq_length {max_seq_length} exceeds the {positions} positions"),
            ));
        }
        let lowercase = st.get("do_lower_case").and_then(|x| x.as_bool()).unwrap_or(false);
        let tokenizer = open_tokenizer(&transformer.join("tokenizer.json"), max_seq_length)?;
        Ok(Self { model, tokenizer, max_seq_length, lowercase, pooling, normalize })
    }

    /// The encoder.
    pub fn model(&self) -> &BertModel {
        &self.model
    }

    /// Length of the vectors.
    pub fn dim(&self) -> usize {
        self.model.config().hidden_size
    }

    /// Tokens per sentence, special tokens included; longer sentences are truncated.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// How token vectors become the sentence vector, from `1_Pooling/config.json`.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Whether vectors are scaled to unit length.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// The token ids the encoder sees for `text`: `[CLS] ... [SEP]`, truncated to
    /// [`max_seq_length`](Self::max_seq_length).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let text = if self.lowercase { text.to_lowercase() } else { text.to_string() };
        let enc = self
            .tokenizer
            .encode_fast(text.as_str(), true)
            .map_err(|e| Error::invalid_argument("text", e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// One vector per text, in order, [`dim`](Self::dim) values each (unit length when the
    /// model normalises). Texts are tokenized, truncated to
    /// [`max_seq_length`](Self::max_seq_length), sorted by length and run in batches of 32
    /// (so that little padding is computed). Fails when `texts` is empty.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Err(Error::invalid_argument("texts", "no text to embed"));
        }
        let ids = texts.iter().map(|t| self.tokenize(t)).collect::<Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out = vec![Vec::new(); ids.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
            for (&i, v) in chunk.iter().zip(self.embed_ids(&batch)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// One vector per sequence of token ids (as [`tokenize`](Self::tokenize) gives them),
    /// all in one forward pass.
    pub fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let h = self.model.forward(ids)?;
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        let pooled = self.pooling.apply(h, &lengths);
        let values = pooled
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| Error::tensor("pooled embeddings", format!("{e:?}")))?;
        Ok(values
            .chunks_exact(self.dim())
            .map(|v| {
                let mut v = v.to_vec();
                if self.normalize {
                    // torch.nn.functional.normalize: v / max(|v|, 1e-12).
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                v
            })
            .collect())
    }
}

/// `a·b / (|a| |b|)`; 0 when either vector is zero. Vectors of different lengths are
/// compared over the shorter one.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    let denom = (aa * bb).sqrt();
    if denom > 0.0 { (ab / denom) as f32 } else { 0.0 }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// From `modules.json` in `dir`: the Transformer module's folder, the Pooling module's folder
/// and whether a Normalize module follows.
fn read_modules(dir: &Path) -> Result<(PathBuf, Option<PathBuf>, bool)> {
    let path = dir.join("modules.json");
    if !path.is_file() {
        return Ok((dir.to_path_buf(), None, false));
    }
    let bad = |reason: &str| Error::invalid_argument("modules.json", reason.to_string());
    let v: serde_json::Value =
        serde_json::from_str(&read(&path)?).map_err(|e| bad(&e.to_string()))?;
    let modules = v.as_array().ok_or_else(|| bad("not a list"))?;
    let (mut transformer, mut pooling, mut normalize) = (None, None, false);
    for m in modules {
        let kind = m.get("type").and_then(|x| x.as_str()).ok_or_else(|| bad("a module's type"))?;
        let sub = dir.join(m.get("path").and_then(|x| x.as_str()).unwrap_or(""));
        match kind.rsplit('.').next().unwrap_or(kind) {
            "Transformer" if transformer.is_none() && pooling.is_none() => transformer = Some(sub),
            "Pooling" if transformer.is_some() && pooling.is_none() => pooling = Some(sub),
            "Normalize" if pooling.is_some() => normalize = true,
            _ => return Err(Error::unsupported("sentence-transformers module", kind.to_string())),
        }
    }
    let transformer = transformer.ok_or_else(|| bad("no Transformer module"))?;
    Ok((transformer, pooling, normalize))
}

/// `tokenizer.json` with its own padding off (batches are padded by the encoder) and
/// truncation to `max_len` tokens, special tokens included.
fn open_tokenizer(path: &Path, max_len: usize) -> Result<Tokenizer> {
    let bad = |reason: String| Error::format(path, "tokenizer.json", 0, reason);
    let mut tok = Tokenizer::from_file(path).map_err(|e| match std::fs::metadata(path) {
        Err(io) => Error::io(path, io),
        Ok(_) => bad(e.to_string()),
    })?;
    let special = tok.get_post_processor().map_or(0, |p| p.added_tokens(false));
    if max_len <= special {
        return Err(Error::invalid_argument(
            "max_seq_length",
            format!("{max_len} leaves no room beside {special} special tokens"),
        ));
    }
    tok.with_padding(None)
        .with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
        .map_err(|e| bad(e.to_string()))?;
    Ok(tok)
}
