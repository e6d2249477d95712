//! The CLIP vision tower (`CLIPVisionModel`) and the two-tower CLIP model (`CLIPModel`) that
//! scores images against texts.
//!
//! Radford et al., *Learning Transferable Visual Models From Natural Language Supervision*
//! (2021); the reference is transformers' `models/clip/modeling_clip.py`. The vision tower cuts
//! the image into `patch x patch` squares with a convolution (no bias), puts a learned class
//! token in front, adds position embeddings, applies `pre_layrnorm` (sic), runs the same
//! pre-norm encoder layers as the text tower without a mask, and pools the class token through
//! `post_layernorm`. [`ClipModel`] projects both towers' pooled outputs (`visual_projection`,
//! `text_projection`, no bias), L2-normalises them, and scales their cosine similarities by
//! `exp(logit_scale)`.
//!
//! Weights load by transformers' names: a `CLIPModel` file has `text_model.*`, `vision_model.*`,
//! `visual_projection.weight`, `text_projection.weight` and `logit_scale`; a standalone
//! `CLIPVisionModel` is saved by transformers 5 without the `vision_model.` prefix (transformers
//! 4 wrote it), and both are accepted.
//!
//! ```no_run
//! use aigc_crossmodal::clip_image::ClipImageProcessor;
//! use aigc_crossmodal::clip_vision::ClipModel;
//!
//! let device = aigc_core::parse_device("flex")?;
//! let model = ClipModel::open("models/clip-vit-base-patch32", &device)?;
//! let processor = ClipImageProcessor::open("models/clip-vit-base-patch32")?;
//! let image = image::RgbImage::new(640, 480);
//! let pixels = processor.preprocess(&[image], &device)?;
//! // Token ids from the model's tokenizer (bos ... eos), one sequence per caption.
//! let captions = vec![vec![49406, 320, 1125, 539, 320, 2368, 49407]];
//! let out = model.forward(&captions, pixels)?;
//! let logits = out.logits_per_image; // [images, captions]
//! # let _ = logits;
//! # Ok::<(), aigc_core::Error>(())
//! ```

use std::path::Path;

use aigc_core::burn::tensor::{Device, Tensor};
use aigc_core::layers::{Conv2d, LayerNorm, QLinear};
use aigc_core::weights::{SafetensorsFile, TensorSource, WeightLoader};
use aigc_core::{Error, Result};

use crate::clip::{ClipActivation, ClipTextConfig, ClipTextEncoder, EncoderLayer};

/// The vision tower's configuration: a `CLIPVisionModel`'s `config.json`, or the
/// `vision_config` of a `CLIPModel`'s.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipVisionConfig {
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Width of the MLPs.
    pub intermediate_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer, each `hidden_size / num_attention_heads` wide.
    pub num_attention_heads: usize,
    /// Input channels (3).
    pub num_channels: usize,
    /// Side of the square input image, in pixels.
    pub image_size: usize,
    /// Side of a patch, in pixels (the convolution's kernel and stride).
    pub patch_size: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
    /// MLP activation.
    pub activation: ClipActivation,
}

impl ClipVisionConfig {
    /// Parses `config.json` text (`vision_config` is used when present).
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument("config.json", e.to_string()))?;
        let v = v.get("vision_config").unwrap_or(&v);
        let num = |k: &str, default: Option<usize>| -> Result<usize> {
            match v.get(k) {
                None if default.is_some() => Ok(default.unwrap_or_default()),
                x => x
                    .and_then(|x| x.as_u64())
                    .map(|x| x as usize)
                    .filter(|&x| x > 0 && x < 1 << 24)
                    .ok_or_else(|| {
                        Error::invalid_argument(
                            "config.json",
                            format!("vision `{k}` is missing or not a positive integer"),
                        )
                    }),
            }
        };
        let cfg = Self {
            hidden_size: num("hidden_size", None)?,
            intermediate_size: num("intermediate_size", None)?,
            num_hidden_layers: num("num_hidden_layers", None)?,
            num_attention_heads: num("num_attention_heads", None)?,
            num_channels: num("num_channels", Some(3))?,
            image_size: num("image_size", None)?,
            patch_size: num("patch_size", None)?,
            layer_norm_eps: v.get("layer_norm_eps").and_then(|x| x.as_f64()).unwrap_or(1e-5),
            activation: ClipActivation::from_name(
                v.get("hidden_act").and_then(|a| a.as_str()).unwrap_or("quick_gelu"),
            )?,
        };
        if !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return Err(Error::invalid_argument(
                "config.json",
                "vision hidden_size is not a multiple of the heads",
            ));
        }
        if cfg.patch_size > cfg.image_size || cfg.image_size > 1 << 14 {
            return Err(Error::invalid_argument(
                "config.json",
                format!("vision patch_size {} for image_size {}", cfg.patch_size, cfg.image_size),
            ));
        }
        Ok(cfg)
    }

    /// Patches along each side of the image.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens of the encoder: the class token and one per patch.
    pub fn tokens(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}

/// What [`ClipVisionEncoder::forward`] returns.
#[derive(Debug, Clone)]
pub struct ClipVisionOutput {
    /// `[batch, 1 + patches, hidden]`: the last layer's output (no final norm, as in
    /// transformers).
    pub last_hidden_state: Tensor<3>,
    /// `[batch, hidden]`: the class token through `post_layernorm`.
    pub pooled: Tensor<2>,
}

/// The CLIP vision tower (`CLIPVisionModel`): square images cut into `patch_size` patches, a
/// class token in front, pre-norm transformer layers; the pooled output is the class token's
/// final state ([`ClipVisionOutput`]).
#[derive(Debug, Clone)]
pub struct ClipVisionEncoder {
    cfg: ClipVisionConfig,
    patch_embedding: Conv2d,
    class_embedding: Tensor<1>,
    position_embedding: Tensor<2>,
    pre_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    post_norm: LayerNorm,
}

impl ClipVisionEncoder {
    /// Loads `config.json` and `model.safetensors` from a directory (a `CLIPVisionModel`, a
    /// `CLIPVisionModelWithProjection`, whose projection is not used, or a whole `CLIPModel`).
    pub fn open(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg = ClipVisionConfig::from_json(&read_config(dir)?)?;
        let file = SafetensorsFile::open(dir.join("model.safetensors"))?;
        Self::load(&file, cfg, device)
    }

    /// Loads the weights from `src` (names with or without `vision_model.`); tensors of a
    /// text tower, projections and the logit scale in the same file are left alone.
    pub fn load(src: &dyn TensorSource, cfg: ClipVisionConfig, device: &Device) -> Result<Self> {
        let prefixed = src.contains("vision_model.embeddings.patch_embedding.weight");
        let w = WeightLoader::new(src, device).ignore(move |n| {
            n.ends_with("position_ids")
                || n.starts_with("visual_projection")
                || (prefixed && !n.starts_with("vision_model."))
        });
        let enc = Self::from_loader(&w, if prefixed { "vision_model." } else { "" }, cfg);
        w.finish()?;
        Ok(enc)
    }

    /// Builds the tower from the tensors under `prefix` of a loader the caller finishes.
    fn from_loader(w: &WeightLoader<'_>, prefix: &str, cfg: ClipVisionConfig) -> Self {
        let (d, f, p) = (cfg.hidden_size, cfg.intermediate_size, cfg.patch_size);
        let eps = cfg.layer_norm_eps;
        let weight = w.tensor(
            &format!("{prefix}embeddings.patch_embedding.weight"),
            [d, cfg.num_channels, p, p],
        );
        let class_embedding = w.tensor(&format!("{prefix}embeddings.class_embedding"), [d]);
        let position_embedding =
            w.tensor(&format!("{prefix}embeddings.position_embedding.weight"), [cfg.tokens(), d]);
        let pre_norm = LayerNorm::load(w, &format!("{prefix}pre_layrnorm"), d, eps);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EncoderLayer::load(w, &format!("{prefix}encoder.layers.{i}"), d, f, eps))
            .collect();
        let post_norm = LayerNorm::load(w, &format!("{prefix}post_layernorm"), d, eps);
        Self {
            patch_embedding: Conv2d::new(weight, None, p, 0),
            cfg,
            class_embedding,
            position_embedding,
            pre_norm,
            layers,
            post_norm,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClipVisionConfig {
        &self.cfg
    }

    /// Encodes `pixel_values` (`[batch, channels, image_size, image_size]`, as
    /// [`ClipImageProcessor`](crate::clip_image::ClipImageProcessor) makes them). Another size
    /// is an [`Error::Shape`] (transformers would need `interpolate_pos_encoding`, which is not
    /// implemented).
    pub fn forward(&self, pixel_values: Tensor<4>) -> Result<ClipVisionOutput> {
        let [b, c, h, w] = pixel_values.dims();
        let (s, d) = (self.cfg.image_size, self.cfg.hidden_size);
        if b == 0 || c != self.cfg.num_channels || h != s || w != s {
            return Err(Error::Shape {
                context: "CLIP vision pixel_values".into(),
                expected: vec![b.max(1), self.cfg.num_channels, s, s],
                found: vec![b, c, h, w],
            });
        }
        let n = self.cfg.tokens();
        // [b, d, g, g] -> [b, g * g, d], patches in row-major order.
        let patches = self.patch_embedding.forward(pixel_values).reshape([b, d, n - 1]);
        let patches = patches.swap_dims(1, 2);
        let class = self.class_embedding.clone().reshape([1, 1, d]).repeat_dim(0, b);
        let x =
            Tensor::cat(vec![class, patches], 1) + self.position_embedding.clone().unsqueeze::<3>();
        let mut h = self.pre_norm.forward(x);
        for l in &self.layers {
            h = l.forward(h, self.cfg.num_attention_heads, self.cfg.activation, None);
        }
        let pooled = self.post_norm.forward(h.clone().narrow(1, 0, 1).reshape([b, d]));
        Ok(ClipVisionOutput { last_hidden_state: h, pooled })
    }
}

/// A `CLIPModel`'s configuration: both towers and the projection width.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipConfig {
    /// The text tower (`text_config`).
    pub text: ClipTextConfig,
    /// The vision tower (`vision_config`).
    pub vision: ClipVisionConfig,
    /// Width of the shared embedding space (`projection_dim`, 512 when absent).
    pub projection_dim: usize,
}

impl ClipConfig {
    /// Parses a `CLIPModel`'s `config.json` text.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument("config.json", e.to_string()))?;
        if v.get("text_config").is_none() || v.get("vision_config").is_none() {
            return Err(Error::invalid_argument(
                "config.json",
                "a CLIP model needs `text_config` and `vision_config`",
            ));
        }
        let projection_dim = match v.get("projection_dim") {
            None => 512,
            Some(x) => x.as_u64().filter(|&x| x > 0 && x < 1 << 24).ok_or_else(|| {
                Error::invalid_argument("config.json", "`projection_dim` is not a positive integer")
            })? as usize,
        };
        Ok(Self {
            text: ClipTextConfig::from_json(text)?,
            vision: ClipVisionConfig::from_json(text)?,
            projection_dim,
        })
    }
}

/// What [`ClipModel::forward`] returns, named as transformers' `CLIPOutput`.
#[derive(Debug, Clone)]
pub struct ClipOutput {
    /// `[images, projection]`: projected, L2-normalised image embeddings.
    pub image_embeds: Tensor<2>,
    /// `[texts, projection]`: projected, L2-normalised text embeddings.
    pub text_embeds: Tensor<2>,
    /// `[images, texts]`: `exp(logit_scale)` times the cosine similarities.
    pub logits_per_image: Tensor<2>,
    /// `[texts, images]`: the transpose of `logits_per_image`.
    pub logits_per_text: Tensor<2>,
}

/// CLIP: the text and vision towers, their projections into one embedding space, and the
/// learned temperature of the similarity logits.
#[derive(Debug, Clone)]
pub struct ClipModel {
    cfg: ClipConfig,
    text: ClipTextEncoder,
    vision: ClipVisionEncoder,
    text_projection: QLinear,
    visual_projection: QLinear,
    logit_scale: f32,
}

impl ClipModel {
    /// Loads `config.json` and `model.safetensors` of a `CLIPModel` from a directory.
    pub fn open(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg = ClipConfig::from_json(&read_config(dir)?)?;
        let file = SafetensorsFile::open(dir.join("model.safetensors"))?;
        Self::load(&file, cfg, device)
    }

    /// Loads the weights from `src`, by transformers' `CLIPModel` names; a missing, misshaped
    /// or unexpected tensor is an error that lists them all.
    pub fn load(src: &dyn TensorSource, cfg: ClipConfig, device: &Device) -> Result<Self> {
        let w = WeightLoader::new(src, device).ignore(|n| n.ends_with("position_ids"));
        let text = ClipTextEncoder::from_loader(&w, "text_model.", cfg.text.clone());
        let vision = ClipVisionEncoder::from_loader(&w, "vision_model.", cfg.vision.clone());
        let p = cfg.projection_dim;
        let text_projection = w.linear("text_projection", cfg.text.hidden_size, p, false);
        let visual_projection = w.linear("visual_projection", cfg.vision.hidden_size, p, false);
        // A 0-d tensor (older checkpoints: shape [1]).
        let shape: &[usize] = match src.tensor_info("logit_scale") {
            Some(info) if info.shape == [1] => &[1],
            _ => &[],
        };
        let logit_scale = w.view("logit_scale", shape).map(|v| v.to_f32());
        w.finish()?;
        let logit_scale = match logit_scale {
            Some(v) => v?.first().copied().unwrap_or_default(),
            None => return Err(Error::tensor("logit_scale", "missing")),
        };
        Ok(Self { cfg, text, vision, text_projection, visual_projection, logit_scale })
    }

    /// The configuration.
    pub fn config(&self) -> &ClipConfig {
        &self.cfg
    }

    /// The text tower.
    pub fn text_encoder(&self) -> &ClipTextEncoder {
        &self.text
    }

    /// The vision tower.
    pub fn vision_encoder(&self) -> &ClipVisionEncoder {
        &self.vision
    }

    /// The stored `logit_scale`; the logits are scaled by its exponential.
    pub fn logit_scale(&self) -> f32 {
        self.logit_scale
    }

    /// `[images, projection]`: the vision tower's pooled output of `pixel_values`, projected
    /// and L2-normalised.
    pub fn image_embeds(&self, pixel_values: Tensor<4>) -> Result<Tensor<2>> {
        let pooled = self.vision.forward(pixel_values)?.pooled;
        Ok(l2_normalize(project(&self.visual_projection, pooled)))
    }

    /// `[texts, projection]`: the text tower's pooled output (at each sequence's end-of-text
    /// token) of `ids`, projected and L2-normalised. Sequences may differ in length: shorter
    /// ones are padded on the right, which changes nothing (the attention is causal, so the
    /// end-of-text token never sees what follows it) as long as each holds its end-of-text
    /// token, as a CLIP tokenizer makes them.
    pub fn text_embeds(&self, ids: &[Vec<u32>]) -> Result<Tensor<2>> {
        let t = ids.iter().map(Vec::len).max().unwrap_or(0);
        let eos = self.cfg.text.eos_token_id;
        // With the legacy rule (pool at the largest id) pad with 0, which is never larger.
        let pad = if eos == 2 { 0 } else { u32::try_from(eos).unwrap_or(0) };
        let padded: Vec<Vec<u32>> = ids
            .iter()
            .map(|s| {
                let mut s = s.clone();
                if !s.is_empty() {
                    s.resize(t, pad);
                }
                s
            })
            .collect();
        let pooled = self.text.forward(&padded)?.pooled;
        Ok(l2_normalize(project(&self.text_projection, pooled)))
    }

    /// `(logits_per_image [images, texts], logits_per_text [texts, images])` of normalised
    /// embeddings: `exp(logit_scale) * text_embeds @ image_embeds^T`, as transformers
    /// computes them.
    pub fn logits(
        &self,
        image_embeds: Tensor<2>,
        text_embeds: Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let per_text =
            text_embeds.matmul(image_embeds.transpose()) * (self.logit_scale as f64).exp();
        (per_text.clone().transpose(), per_text)
    }

    /// Both towers, the embeddings and the similarity logits of every image against every
    /// text.
    pub fn forward(&self, ids: &[Vec<u32>], pixel_values: Tensor<4>) -> Result<ClipOutput> {
        let image_embeds = self.image_embeds(pixel_values)?;
        let text_embeds = self.text_embeds(ids)?;
        let (logits_per_image, logits_per_text) =
            self.logits(image_embeds.clone(), text_embeds.clone());
        Ok(ClipOutput { image_embeds, text_embeds, logits_per_image, logits_per_text })
    }
}

/// `config.json` of a model directory.
fn read_config(dir: &Path) -> Result<String> {
    let path = dir.join("config.json");
    std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))
}

/// A projection without bias of `[batch, in]` rows.
fn project(layer: &QLinear, x: Tensor<2>) -> Tensor<2> {
    let [b, d] = x.dims();
    let y = layer.forward(x.reshape([1, b, d]));
    let out = y.dims()[2];
    y.reshape([b, out])
}

/// Each row divided by its Euclidean norm (`x / ||x||`, as transformers' `_get_vector_norm`).
fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt();
    x / norm
}
