//! Whisper's encoder and decoder (Radford et al., 2022): two convolutions (the second of
//! stride 2) and a pre-norm transformer over 30 s of log-mel frames; a pre-norm transformer
//! decoder with causal self-attention over a KV cache and cross-attention over the encoder's
//! output (its keys and values computed once per window), logits from the tied embedding.
//!
//! Loaded from a CTranslate2 directory (`model.bin` and `config.json`, as `faster-whisper` and
//! `ct2-transformers-converter` make them: fused q/k/v split at load, the key bias zero) or a
//! Hugging Face directory (`config.json` and `model.safetensors` of
//! `WhisperForConditionalGeneration`).

use std::path::Path;

use aigc_core::burn::tensor::module::conv1d;
use aigc_core::burn::tensor::ops::ConvOptions;
use aigc_core::burn::tensor::{Device, Tensor, TensorData};
use aigc_core::layers::{
    Conv1d, Embedding, HeadLayout, KvCache, LayerCache, LayerNorm, QLinear, attention,
    cached_attention, gelu, multi_head_attention,
};
use aigc_core::weights::{Ct2File, SafetensorsFile, TensorSource, WeightLoader};
use aigc_core::{Error, Result};

/// The sizes of a Whisper model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhisperConfig {
    /// Mel bands of the input (80, or 128 for large-v3).
    pub n_mels: usize,
    /// Width of the hidden states.
    pub d_model: usize,
    /// Transformer layers of the audio encoder (4 for tiny, 32 for large).
    pub encoder_layers: usize,
    /// Transformer layers of the text decoder (as many as the encoder's in OpenAI's models).
    pub decoder_layers: usize,
    /// Attention heads (encoder and decoder).
    pub heads: usize,
    /// Width of the MLPs.
    pub ffn: usize,
    /// Encoder positions (1500: 30 s at 20 ms).
    pub audio_ctx: usize,
    /// Decoder positions (448).
    pub text_ctx: usize,
    /// Tokens in the vocabulary.
    pub vocab: usize,
}

impl WhisperConfig {
    fn check(&self) -> Result<()> {
        let ok = self.d_model > 0
            && self.heads > 0
            && self.d_model.is_multiple_of(self.heads)
            && self.n_mels > 0
            && self.audio_ctx > 0
            && self.text_ctx > 0
            && self.vocab > 0
            && [self.d_model, self.ffn, self.audio_ctx, self.text_ctx, self.vocab]
                .iter()
                .all(|&v| v < 1 << 20)
            && self.encoder_layers < 256
            && self.decoder_layers < 256;
        if ok {
            Ok(())
        } else {
            Err(Error::invalid_argument("Whisper config", format!("{self:?}")))
        }
    }

    /// Parses a Hugging Face `config.json` (`WhisperConfig`).
    pub fn from_hf_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument("config.json", e.to_string()))?;
        let num = |k: &str| -> Result<usize> {
            v.get(k).and_then(|x| x.as_u64()).map(|x| x as usize).ok_or_else(|| {
                Error::invalid_argument("config.json", format!("`{k}` is missing or invalid"))
            })
        };
        let heads = num("encoder_attention_heads")?;
        if num("decoder_attention_heads")? != heads {
            return Err(Error::unsupported("Whisper", "different encoder and decoder head counts"));
        }
        let cfg = Self {
            n_mels: num("num_mel_bins")?,
            d_model: num("d_model")?,
            encoder_layers: num("encoder_layers")?,
            decoder_layers: num("decoder_layers")?,
            heads,
            ffn: num("encoder_ffn_dim")?,
            audio_ctx: num("max_source_positions")?,
            text_ctx: num("max_target_positions")?,
            vocab: num("vocab_size")?,
        };
        cfg.check()?;
        Ok(cfg)
    }
}

/// Weight names of one layout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Ct2,
    Hf,
}

/// One attention block's projections: queries, keys and values fused (`[3 d]` outputs, or
/// `[2 d]` keys and values for cross-attention with the query apart), and the output.
#[derive(Debug, Clone)]
struct Attention {
    q: Option<QLinear>,
    fused: QLinear,
    out: QLinear,
    norm: LayerNorm,
}

#[derive(Debug, Clone)]
struct Mlp {
    fc1: QLinear,
    fc2: QLinear,
    norm: LayerNorm,
}

impl Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.fc1.forward(self.norm.forward(x.clone()));
        x + self.fc2.forward(gelu(h))
    }
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    attn: Attention,
    mlp: Mlp,
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    self_attn: Attention,
    cross_attn: Attention,
    mlp: Mlp,
}

/// A Whisper model: the audio encoder (log-mel frames of one 30 s window to
/// `[1, audio_ctx, d_model]` states) and the text decoder with its self-attention cache
/// ([`DecoderState`]). Decoding rules (prompts, timestamps, fallback) live in
/// [`transcribe`](super::transcribe).
#[derive(Debug, Clone)]
pub struct WhisperModel {
    cfg: WhisperConfig,
    conv1: Conv1d,
    /// The stride-2 convolution: weight and bias.
    conv2: (Tensor<3>, Tensor<1>),
    enc_pos: Tensor<2>,
    enc_layers: Vec<EncoderLayer>,
    enc_norm: LayerNorm,
    /// The token embedding (kept as stored, float16 included, on a CPU device).
    embed: Embedding,
    /// The output projection: the same matrix (tied), as a linear layer.
    head: QLinear,
    dec_pos: Tensor<2>,
    dec_layers: Vec<DecoderLayer>,
    dec_norm: LayerNorm,
    device: Device,
}

/// What the decoder keeps for one window: the cross-attention's keys and values per layer,
/// and the self-attention's cache.
#[derive(Debug)]
pub struct DecoderState {
    cross: Vec<(Tensor<4>, Tensor<4>)>,
    cache: KvCache,
}

impl DecoderState {
    /// Tokens decoded so far (the positions the cache holds).
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether nothing was decoded yet.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

impl WhisperModel {
    /// Loads a CTranslate2 (`model.bin`) or Hugging Face (`model.safetensors` with
    /// `config.json`) directory, or a `model.bin` path.
    pub fn open(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        };
        let bin = if path.is_file() { path.to_path_buf() } else { dir.join("model.bin") };
        if bin.is_file() {
            let file = Ct2File::open(&bin)?;
            if !file.spec_name().contains("Whisper") {
                return Err(Error::unsupported("CTranslate2 model", file.spec_name().to_string()));
            }
            let cfg = Self::ct2_config(&file)?;
            return Self::load(&file, cfg, Layout::Ct2, device);
        }
        let config = dir.join("config.json");
        let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
        let cfg = WhisperConfig::from_hf_json(&text)?;
        let file = SafetensorsFile::open(dir.join("model.safetensors"))?;
        Self::load(&file, cfg, Layout::Hf, device)
    }

    /// Loads the Hugging Face layout from `src`.
    pub fn load_hf(src: &dyn TensorSource, cfg: WhisperConfig, device: &Device) -> Result<Self> {
        Self::load(src, cfg, Layout::Hf, device)
    }

    /// The sizes of a CTranslate2 Whisper file, read from its tensors' shapes.
    fn ct2_config(file: &Ct2File) -> Result<WhisperConfig> {
        let shape = |name: &str| -> Result<Vec<usize>> {
            file.tensor_info(name)
                .map(|i| i.shape)
                .ok_or_else(|| Error::tensor(name, "absent from the CTranslate2 file"))
        };
        let count = |prefix: &str| {
            (0..256)
                .take_while(|i| file.contains(&format!("{prefix}/layer_{i}/ffn/linear_0/weight")))
                .count()
        };
        let conv1 = shape("encoder/conv1/weight")?;
        let ffn = shape("encoder/layer_0/ffn/linear_0/weight")?;
        let emb = shape("decoder/embeddings/weight")?;
        let enc_pos = shape("encoder/position_encodings/encodings")?;
        let dec_pos = shape("decoder/position_encodings/encodings")?;
        let heads = file
            .tensor("encoder/num_heads")
            .and_then(|v| v.to_f32())
            .ok()
            .and_then(|v| v.first().copied())
            .ok_or_else(|| Error::tensor("encoder/num_heads", "missing"))?;
        let (Some(&d), Some(&n_mels), Some(&ffn), Some(&vocab), Some(&audio_ctx), Some(&text_ctx)) = (
            conv1.first(),
            conv1.get(1),
            ffn.first(),
            emb.first(),
            enc_pos.first(),
            dec_pos.first(),
        ) else {
            return Err(Error::tensor("encoder/conv1/weight", "unexpected rank"));
        };
        let cfg = WhisperConfig {
            n_mels,
            d_model: d,
            encoder_layers: count("encoder"),
            decoder_layers: count("decoder"),
            heads: heads as usize,
            ffn,
            audio_ctx,
            text_ctx,
            vocab,
        };
        cfg.check()?;
        Ok(cfg)
    }

    fn load(
        src: &dyn TensorSource,
        cfg: WhisperConfig,
        layout: Layout,
        device: &Device,
    ) -> Result<Self> {
        cfg.check()?;
        let (d, ffn) = (cfg.d_model, cfg.ffn);
        let w = WeightLoader::new(src, device).ignore(|n| {
            // Scalars and attributes of the CTranslate2 spec; the tied output projection.
            !n.contains('/') && !n.contains('.')
                || n.ends_with("num_heads")
                || n.starts_with("decoder/") && !n.contains("/layer") && {
                    let rest = &n["decoder/".len()..];
                    !rest.starts_with("embeddings")
                        && !rest.starts_with("position_encodings")
                        && !rest.starts_with("layer_norm")
                }
                || n == "proj_out.weight"
        });
        let hf_prefix = if layout == Layout::Hf && w.contains("model.encoder.conv1.weight") {
            "model."
        } else {
            ""
        };
        let t2 = |name: &str, shape: [usize; 2]| w.tensor::<2>(name, shape);
        let t1 = |name: &str, n: usize| w.tensor::<1>(name, [n]);
        let lin = |wn: &str, bn: Option<&str>, o: usize, i: usize| {
            QLinear::from_tensors(t2(wn, [o, i]), bn.map(|b| t1(b, o)))
        };
        let norm = |p: &str| match layout {
            Layout::Ct2 => {
                LayerNorm::new(t1(&format!("{p}/gamma"), d), t1(&format!("{p}/beta"), d), 1e-5)
            }
            Layout::Hf => {
                LayerNorm::new(t1(&format!("{p}.weight"), d), t1(&format!("{p}.bias"), d), 1e-5)
            }
        };
        // A fused projection from separate HF ones: weights stacked, the key bias zero.
        let hf_fused = |p: &str, parts: &[&str]| {
            let ws: Vec<Tensor<2>> =
                parts.iter().map(|n| t2(&format!("{p}.{n}_proj.weight"), [d, d])).collect();
            let bs: Vec<Tensor<1>> = parts
                .iter()
                .map(|n| match *n {
                    "k" => Tensor::zeros([d], device),
                    _ => t1(&format!("{p}.{n}_proj.bias"), d),
                })
                .collect();
            QLinear::from_tensors(Tensor::cat(ws, 0), Some(Tensor::cat(bs, 0)))
        };
        let attention = |p: &str, cross: bool| -> Attention {
            match layout {
                Layout::Ct2 => {
                    let l = |i: usize, o: usize| {
                        lin(
                            &format!("{p}/linear_{i}/weight"),
                            Some(&format!("{p}/linear_{i}/bias")),
                            o,
                            d,
                        )
                    };
                    if cross {
                        Attention {
                            q: Some(l(0, d)),
                            fused: l(1, 2 * d),
                            out: l(2, d),
                            norm: norm(&format!("{p}/layer_norm")),
                        }
                    } else {
                        Attention {
                            q: None,
                            fused: l(0, 3 * d),
                            out: l(1, d),
                            norm: norm(&format!("{p}/layer_norm")),
                        }
                    }
                }
                Layout::Hf => {
                    let (attn, ln) = p.split_once('|').expect("hf attention names");
                    let out = lin(
                        &format!("{attn}.out_proj.weight"),
                        Some(&format!("{attn}.out_proj.bias")),
                        d,
                        d,
                    );
                    let (q, fused) = if cross {
                        let q = lin(
                            &format!("{attn}.q_proj.weight"),
                            Some(&format!("{attn}.q_proj.bias")),
                            d,
                            d,
                        );
                        (Some(q), hf_fused(attn, &["k", "v"]))
                    } else {
                        (None, hf_fused(attn, &["q", "k", "v"]))
                    };
                    Attention { q, fused, out, norm: norm(ln) }
                }
            }
        };
        let mlp = |p: &str, ln: &str| -> Mlp {
            match layout {
                Layout::Ct2 => Mlp {
                    fc1: lin(
                        &format!("{p}/linear_0/weight"),
                        Some(&format!("{p}/linear_0/bias")),
                        ffn,
                        d,
                    ),
                    fc2: lin(
                        &format!("{p}/linear_1/weight"),
                        Some(&format!("{p}/linear_1/bias")),
                        d,
                        ffn,
                    ),
                    norm: norm(&format!("{p}/layer_norm")),
                },
                Layout::Hf => Mlp {
                    fc1: lin(&format!("{p}.fc1.weight"), Some(&format!("{p}.fc1.bias")), ffn, d),
                    fc2: lin(&format!("{p}.fc2.weight"), Some(&format!("{p}.fc2.bias")), d, ffn),
                    norm: norm(ln),
                },
            }
        };
        let (enc, dec) = match layout {
            Layout::Ct2 => ("encoder".to_string(), "decoder".to_string()),
            Layout::Hf => (format!("{hf_prefix}encoder"), format!("{hf_prefix}decoder")),
        };
        let sep = if layout == Layout::Ct2 { '/' } else { '.' };
        let conv_w =
            |n: &str, i: usize| w.tensor::<3>(&format!("{enc}{sep}{n}{sep}weight"), [d, i, 3]);
        let conv_b = |n: &str| t1(&format!("{enc}{sep}{n}{sep}bias"), d);
        let conv1 = Conv1d::new(conv_w("conv1", cfg.n_mels), Some(conv_b("conv1")), 1, 1, 1);
        let conv2 = (conv_w("conv2", d), conv_b("conv2"));
        let (enc_pos_name, dec_pos_name, emb_name) = match layout {
            Layout::Ct2 => (
                "encoder/position_encodings/encodings".to_string(),
                "decoder/position_encodings/encodings".to_string(),
                "decoder/embeddings/weight".to_string(),
            ),
            Layout::Hf => (
                format!("{enc}.embed_positions.weight"),
                format!("{dec}.embed_positions.weight"),
                format!("{dec}.embed_tokens.weight"),
            ),
        };
        let enc_layers = (0..cfg.encoder_layers)
            .map(|i| match layout {
                Layout::Ct2 => EncoderLayer {
                    attn: attention(&format!("{enc}/layer_{i}/self_attention"), false),
                    mlp: mlp(&format!("{enc}/layer_{i}/ffn"), ""),
                },
                Layout::Hf => {
                    let p = format!("{enc}.layers.{i}");
                    EncoderLayer {
                        attn: attention(&format!("{p}.self_attn|{p}.self_attn_layer_norm"), false),
                        mlp: mlp(&p, &format!("{p}.final_layer_norm")),
                    }
                }
            })
            .collect();
        let dec_layers = (0..cfg.decoder_layers)
            .map(|i| match layout {
                Layout::Ct2 => DecoderLayer {
                    self_attn: attention(&format!("{dec}/layer_{i}/self_attention"), false),
                    cross_attn: attention(&format!("{dec}/layer_{i}/attention"), true),
                    mlp: mlp(&format!("{dec}/layer_{i}/ffn"), ""),
                },
                Layout::Hf => {
                    let p = format!("{dec}.layers.{i}");
                    DecoderLayer {
                        self_attn: attention(
                            &format!("{p}.self_attn|{p}.self_attn_layer_norm"),
                            false,
                        ),
                        cross_attn: attention(
                            &format!("{p}.encoder_attn|{p}.encoder_attn_layer_norm"),
                            true,
                        ),
                        mlp: mlp(&p, &format!("{p}.final_layer_norm")),
                    }
                }
            })
            .collect();
        // The tied head from the embedding's own bytes: a float16 file stays float16 and runs
        // through the multi-threaded kernels (the logits read the whole matrix every token).
        let head = match w.view(&emb_name, &[cfg.vocab, d]) {
            Some(v) => QLinear::from_view_shared(&v, src.shared_bytes(&emb_name), None, device),
            None => Ok(QLinear::from_tensors(Tensor::zeros([1, 1], device), None)),
        };
        let model = Self {
            conv1,
            conv2,
            enc_pos: t2(&enc_pos_name, [cfg.audio_ctx, d]),
            enc_layers,
            enc_norm: norm(&format!("{enc}{sep}layer_norm")),
            embed: w.embedding(&emb_name, cfg.vocab, d),
            head: head?,
            dec_pos: t2(&dec_pos_name, [cfg.text_ctx, d]),
            dec_layers,
            dec_norm: norm(&format!("{dec}{sep}layer_norm")),
            device: device.clone(),
            cfg,
        };
        w.finish()?;
        Ok(model)
    }

    /// The sizes.
    pub fn config(&self) -> &WhisperConfig {
        &self.cfg
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The encoder's output `[1, audio_ctx, d_model]` for one window of log-mel frames
    /// (`[n_mels][2 audio_ctx]`, row-major).
    pub fn encode(&self, mel: &[f32]) -> Result<Tensor<3>> {
        let (n_mels, frames) = (self.cfg.n_mels, 2 * self.cfg.audio_ctx);
        if mel.len() != n_mels * frames {
            return Err(Error::invalid_argument(
                "mel",
                format!("{} values, expected {n_mels} x {frames}", mel.len()),
            ));
        }
        let x = Tensor::<3>::from_data(
            TensorData::new(mel.to_vec(), [1, n_mels, frames]),
            &self.device,
        );
        let x = gelu(self.conv1.forward(x));
        let (w2, b2) = &self.conv2;
        let x = conv1d(x, w2.clone(), Some(b2.clone()), ConvOptions::new([2], [1], [1], 1));
        let x = gelu(x).swap_dims(1, 2); // [1, audio_ctx, d]
        let mut x = x + self.enc_pos.clone().unsqueeze::<3>();
        let (heads, d) = (self.cfg.heads, self.cfg.d_model);
        let scale = 1.0 / ((d / heads) as f32).sqrt();
        for layer in &self.enc_layers {
            let a = &layer.attn;
            let qkv = a.fused.forward(a.norm.forward(x.clone()));
            let part = |i: usize| qkv.clone().narrow(2, i * d, d);
            let o = multi_head_attention(
                part(0),
                part(1),
                part(2),
                heads,
                scale,
                HeadLayout::TokenMajor,
            );
            x = x + a.out.forward(o);
            x = layer.mlp.forward(x);
        }
        Ok(self.enc_norm.forward(x))
    }

    /// A decoder state for one window: the cross-attention keys and values of `encoded`
    /// (`[1, audio_ctx, d_model]`) and an empty self-attention cache.
    pub fn decoder_state(&self, encoded: &Tensor<3>) -> DecoderState {
        let d = self.cfg.d_model;
        let cross = self
            .dec_layers
            .iter()
            .map(|l| {
                let kv = l.cross_attn.fused.forward(encoded.clone());
                // Per head, keys transposed `[1, heads, hd, audio]` and values
                // `[1, heads, audio, hd]`, contiguous: made once, read whole at every step.
                let [_, t, _] = kv.dims();
                let own = |t: Tensor<4>| Tensor::from_data(t.into_data(), &self.device);
                let heads = |x: Tensor<3>| x.reshape([1, t, self.cfg.heads, d / self.cfg.heads]);
                let k = own(heads(kv.clone().narrow(2, 0, d)).permute([0, 2, 3, 1]));
                let v = own(heads(kv.narrow(2, d, d)).swap_dims(1, 2));
                (k, v)
            })
            .collect();
        let hd = d / self.cfg.heads;
        let layers = self
            .dec_layers
            .iter()
            .map(|_| LayerCache::new(self.cfg.heads, hd, self.cfg.text_ctx, None, &self.device))
            .collect();
        DecoderState { cross, cache: KvCache::new(layers, self.cfg.text_ctx) }
    }

    /// Feeds `tokens` after those already in `state` and returns the logits of the last one
    /// (`[vocab]`).
    pub fn decode(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<Vec<f32>> {
        let n = tokens.len();
        let start = state.cache.len();
        if n == 0 {
            return Err(Error::invalid_argument("tokens", "no tokens"));
        }
        state.cache.check_room(n)?;
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= self.cfg.vocab) {
            return Err(Error::invalid_argument(
                "tokens",
                format!("id {t} >= vocab {}", self.cfg.vocab),
            ));
        }
        let (heads, d) = (self.cfg.heads, self.cfg.d_model);
        let hd = d / heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let pos = self.dec_pos.clone().narrow(0, start, n);
        let mut x = self.embed.forward(tokens)? + pos.unsqueeze::<3>(); // [1, n, d]
        let to_heads = |t: Tensor<3>| t.reshape([1, n, heads, hd]).swap_dims(1, 2);
        for (i, layer) in self.dec_layers.iter().enumerate() {
            let a = &layer.self_attn;
            let qkv = a.fused.forward(a.norm.forward(x.clone()));
            let part = |j: usize| to_heads(qkv.clone().narrow(2, j * d, d));
            let o =
                attention(part(0), part(1), part(2), state.cache.layer_mut(i), start, scale, None)?;
            x = x + a.out.forward(o.swap_dims(1, 2).reshape([1, n, d]));
            let c = &layer.cross_attn;
            let q = c.q.as_ref().expect("cross-attention query").forward(c.norm.forward(x.clone()));
            // A few queries against 1500 keys laid out for them once per window.
            let (kt, v) = &state.cross[i];
            let o = cached_attention(to_heads(q), kt, v, scale);
            x = x + c.out.forward(o.swap_dims(1, 2).reshape([1, n, d]));
            x = layer.mlp.forward(x);
        }
        state.cache.advance(n);
        let last = self.dec_norm.forward(x.narrow(1, n - 1, 1));
        self.head
            .forward(last)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| Error::invalid_argument("logits", format!("{e:?}")))
    }
}
