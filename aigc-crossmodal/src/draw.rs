//! Describe and draw: a text prompt through the CLIP text encoder and aigc-image's Stable
//! Diffusion to an image, then, given a whole CLIP model, CLIP's judgement of how well the image
//! matches the prompt.
//!
//! - [`open_stable_diffusion`]: a diffusers-format Stable Diffusion 1.x/2.x directory as
//!   aigc-image's [`StableDiffusion`], its `text_encoder/` loaded as a [`ClipTextEncoder`] (the
//!   pipeline takes any [`PromptEncoder`](aigc_image::pipeline::PromptEncoder); this is the one
//!   the checkpoints ship).
//! - [`ClipScorer`]: a `CLIPModel` with its image processor and tokenizer, scoring an image
//!   against a text by the cosine similarity of their embeddings.
//! - [`DescribeAndDraw`]: the two together; [`draw`](DescribeAndDraw::draw) generates the
//!   image and, with a scorer, scores it against its prompt ([`Drawing`]).
//!
//! ```no_run
//! use aigc_core::schedulers::SeededNoise;
//! use aigc_crossmodal::draw::{ClipScorer, DescribeAndDraw};
//! use aigc_image::pipeline::Txt2ImgParams;
//!
//! let device = aigc_core::parse_device("flex")?;
//! let mut pipe = DescribeAndDraw::open("stable-diffusion-v1-5", &device)?
//!     .with_scorer(ClipScorer::open("clip-vit-large-patch14", &device)?);
//! let p = Txt2ImgParams::new("a red fox in the snow");
//! let drawing = pipe.draw(&p, &mut SeededNoise::new(0), |_, _| {})?;
//! let image = &drawing.image;
//! aigc_image::png::write_rgb8("fox.png", image.width, image.height, &image.to_rgb8())?;
//! println!("CLIP similarity {:.3}", drawing.clip_similarity.unwrap_or(f32::NAN));
//! # Ok::<(), aigc_core::Error>(())
//! ```

use std::path::Path;

use aigc_core::burn::tensor::Device;
use aigc_core::schedulers::NoiseSource;
use aigc_core::{Error, Result};
use aigc_image::pipeline::{Image, StableDiffusion, Txt2ImgParams};
use tokenizers::{Tokenizer, TruncationParams};

use crate::clip::ClipTextEncoder;
use crate::clip_image::{ClipImageProcessor, RgbBytes};
use crate::clip_vision::ClipModel;

/// Opens a diffusers-format Stable Diffusion directory (`tokenizer/`, `text_encoder/`,
/// `unet/`, `vae/`, `scheduler/`) with its CLIP text encoder: aigc-image's pipeline, ready for
/// `txt2img` and `img2img`.
pub fn open_stable_diffusion(dir: impl AsRef<Path>, device: &Device) -> Result<StableDiffusion> {
    let dir = dir.as_ref();
    let encoder = ClipTextEncoder::open(dir.join("text_encoder"), device)?;
    StableDiffusion::open(dir, encoder, device)
}

/// A whole CLIP model as a judge of image-text agreement: `similarity` is the cosine of the
/// image's and the text's projected embeddings, in [-1, 1] (`logits_per_image` without the
/// logit scale). torchmetrics' `CLIPScore` is `100 * max(similarity, 0)`.
///
/// The image goes through the model's image processor as the 8-bit image a diffusers pipeline
/// returns ([`Image::to_rgb8`]); the text through the model's own tokenizer, truncated to its
/// positions with the end-of-text token kept.
pub struct ClipScorer {
    model: ClipModel,
    processor: ClipImageProcessor,
    tokenizer: Tokenizer,
    device: Device,
}

impl ClipScorer {
    /// Loads a transformers `CLIPModel` directory: `config.json`, `model.safetensors`,
    /// `tokenizer.json`, and `preprocessor_config.json` (the defaults without one).
    pub fn open(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let model = ClipModel::open(dir, device)?;
        let processor = ClipImageProcessor::open(dir)?;
        let path = dir.join("tokenizer.json");
        let tokenizer =
            Tokenizer::from_file(&path).map_err(|e| match std::fs::metadata(&path) {
                Err(io) => Error::io(&path, io),
                Ok(_) => Error::format(&path, "tokenizer.json", 0, e.to_string()),
            })?;
        Self::new(model, processor, tokenizer, device)
    }

    /// A scorer from parts. The tokenizer's own padding is switched off and its truncation set
    /// to the text tower's positions (special tokens included), as transformers' CLIP
    /// processor calls it with `truncation=True`.
    pub fn new(
        model: ClipModel,
        processor: ClipImageProcessor,
        mut tokenizer: Tokenizer,
        device: &Device,
    ) -> Result<Self> {
        let positions = model.config().text.max_position_embeddings;
        tokenizer
            .with_padding(None)
            .with_truncation(Some(TruncationParams { max_length: positions, ..Default::default() }))
            .map_err(|e| Error::invalid_argument("tokenizer", e.to_string()))?;
        Ok(Self { model, processor, tokenizer, device: device.clone() })
    }

    /// The CLIP model.
    pub fn model(&self) -> &ClipModel {
        &self.model
    }

    /// The token ids of `text` (start and end-of-text tokens included).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::invalid_argument("text", e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The cosine similarity of `image` and `text`.
    pub fn similarity(&self, image: &Image, text: &str) -> Result<f32> {
        self.similarity_ids(image, &self.tokenize(text)?)
    }

    /// The cosine similarity of `image` and a text given as token ids (framed by the start and
    /// end-of-text tokens, as [`tokenize`](Self::tokenize) gives them).
    pub fn similarity_ids(&self, image: &Image, ids: &[u32]) -> Result<f32> {
        let rgb = image.to_rgb8();
        let rgb = RgbBytes { data: &rgb, width: image.width, height: image.height };
        let pixels = self.processor.preprocess_rgb8(&[rgb], &self.device)?;
        let image_embeds = self.model.image_embeds(pixels)?;
        let text_embeds = self.model.text_embeds(&[ids.to_vec()])?;
        let cosine = (image_embeds * text_embeds).sum();
        let v = cosine.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        v.first()
            .copied()
            .ok_or_else(|| Error::invalid_argument("similarity", "no value came back"))
    }
}

/// What [`DescribeAndDraw::draw`] returns.
#[derive(Debug, Clone)]
pub struct Drawing {
    /// The generated image (and its final latents).
    pub image: Image,
    /// The CLIP cosine similarity of the image and its prompt, when there is a scorer.
    pub clip_similarity: Option<f32>,
}

/// Text to image with Stable Diffusion, optionally judged by CLIP.
pub struct DescribeAndDraw {
    sd: StableDiffusion,
    scorer: Option<ClipScorer>,
}

impl DescribeAndDraw {
    /// Opens a diffusers-format Stable Diffusion directory (see [`open_stable_diffusion`]),
    /// without a scorer.
    pub fn open(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Ok(Self::new(open_stable_diffusion(dir, device)?))
    }

    /// Wraps a loaded pipeline (with any prompt encoder), without a scorer.
    pub fn new(sd: StableDiffusion) -> Self {
        Self { sd, scorer: None }
    }

    /// Scores every drawing against its prompt with `scorer`.
    pub fn with_scorer(mut self, scorer: ClipScorer) -> Self {
        self.scorer = Some(scorer);
        self
    }

    /// The Stable Diffusion pipeline (to change its scheduler, or run `img2img`).
    pub fn pipeline(&mut self) -> &mut StableDiffusion {
        &mut self.sd
    }

    /// The scorer, if there is one.
    pub fn scorer(&self) -> Option<&ClipScorer> {
        self.scorer.as_ref()
    }

    /// Generates an image for `p` from `noise`'s first draw (the initial latents; schedulers
    /// that draw more take them from it too) and scores it against `p.prompt`. `progress`
    /// gets (steps done, steps) after every denoising step.
    pub fn draw(
        &mut self,
        p: &Txt2ImgParams<'_>,
        noise: &mut dyn NoiseSource,
        progress: impl FnMut(usize, usize),
    ) -> Result<Drawing> {
        let image = self.sd.txt2img(p, None, noise, progress)?;
        let clip_similarity = match &self.scorer {
            Some(scorer) => Some(scorer.similarity(&image, p.prompt)?),
            None => None,
        };
        Ok(Drawing { image, clip_similarity })
    }
}
