//! Stable Diffusion pipelines over a diffusers-format directory (`model_index.json`,
//! `tokenizer/`, `text_encoder/`, `unet/`, `vae/`, `scheduler/`): text to image with
//! classifier-free guidance and a negative prompt, and image to image with a strength, as
//! diffusers' `StableDiffusionPipeline` and `StableDiffusionImg2ImgPipeline` compute them.
//!
//! The text encoder comes from the caller as a [`PromptEncoder`]: this crate does not depend on
//! the crate that holds the CLIP text encoder. `aigc_crossmodal::clip::ClipTextEncoder`
//! implements the trait, and `aigc_crossmodal::draw` opens a whole directory with it:
//!
//! ```no_run
//! // aigc-crossmodal supplies the encoder.
//! use aigc_core::schedulers::SeededNoise;
//! use aigc_crossmodal::clip::ClipTextEncoder;
//! use aigc_image::pipeline::{StableDiffusion, Txt2ImgParams};
//!
//! let device = aigc_core::parse_device("flex")?;
//! let encoder = ClipTextEncoder::open("stable-diffusion-v1-5/text_encoder", &device)?;
//! let mut sd = StableDiffusion::open("stable-diffusion-v1-5", encoder, &device)?;
//! let p = Txt2ImgParams::new("a red fox in the snow");
//! let image = sd.txt2img(&p, None, &mut SeededNoise::new(0), |_, _| {})?;
//! aigc_image::png::write_rgb8("fox.png", image.width, image.height, &image.to_rgb8())?;
//! # Ok::<(), aigc_core::Error>(())
//! ```

use std::path::Path;

use aigc_core::burn::tensor::{Device, Tensor, TensorData};
use aigc_core::schedulers::{
    BetaSchedule, DdimScheduler, DdpmScheduler, DpmSolverMultistepScheduler,
    EulerAncestralScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler, LcmScheduler,
    NoiseSource, PredictionType, Scheduler, SchedulerConfig, TimestepSpacing,
};
use aigc_core::{Error, Result};

use crate::unet::UNet2DCondition;
use crate::vae::AutoencoderKl;

/// A scheduler from a diffusers `scheduler_config.json` (its `_class_name` picks the kind).
pub fn scheduler_from_json(text: &str) -> Result<Box<dyn Scheduler>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid_argument("scheduler_config.json", e.to_string()))?;
    let class = v.get("_class_name").and_then(|c| c.as_str()).unwrap_or("");
    let mut cfg = match class {
        "DDIMScheduler" => SchedulerConfig::ddim(),
        "DDPMScheduler" => SchedulerConfig::ddpm(),
        "EulerDiscreteScheduler" => SchedulerConfig::euler(),
        "EulerAncestralDiscreteScheduler" => SchedulerConfig::euler_ancestral(),
        "HeunDiscreteScheduler" => SchedulerConfig::heun(),
        "DPMSolverMultistepScheduler" => SchedulerConfig::dpm_solver(),
        "LCMScheduler" => SchedulerConfig::lcm(),
        other => return Err(Error::unsupported("scheduler", other.to_string())),
    };
    let f = |k: &str| v.get(k).and_then(|x| x.as_f64());
    let b = |k: &str| v.get(k).and_then(|x| x.as_bool());
    let s = |k: &str| v.get(k).and_then(|x| x.as_str());
    if let Some(x) = v.get("num_train_timesteps").and_then(|x| x.as_u64()) {
        cfg.num_train_timesteps = x as usize;
    }
    if let Some(x) = f("beta_start") {
        cfg.beta_start = x;
    }
    if let Some(x) = f("beta_end") {
        cfg.beta_end = x;
    }
    if let Some(x) = s("beta_schedule") {
        cfg.beta_schedule = match x {
            "linear" => BetaSchedule::Linear,
            "scaled_linear" => BetaSchedule::ScaledLinear,
            "squaredcos_cap_v2" => BetaSchedule::SquaredcosCapV2,
            other => return Err(Error::unsupported("beta schedule", other.to_string())),
        };
    }
    if let Some(x) = s("prediction_type") {
        cfg.prediction_type = match x {
            "epsilon" => PredictionType::Epsilon,
            "v_prediction" => PredictionType::VPrediction,
            "sample" => PredictionType::Sample,
            other => return Err(Error::unsupported("prediction type", other.to_string())),
        };
    }
    if let Some(x) = s("timestep_spacing") {
        cfg.timestep_spacing = match x {
            "linspace" => TimestepSpacing::Linspace,
            "leading" => TimestepSpacing::Leading,
            "trailing" => TimestepSpacing::Trailing,
            other => return Err(Error::unsupported("timestep spacing", other.to_string())),
        };
    }
    if let Some(x) = v.get("steps_offset").and_then(|x| x.as_u64()) {
        cfg.steps_offset = x as usize;
    }
    if let Some(x) = b("clip_sample") {
        cfg.clip_sample = x;
    }
    if let Some(x) = f("clip_sample_range") {
        cfg.clip_sample_range = x;
    }
    if let Some(x) = b("thresholding") {
        cfg.thresholding = x;
    }
    if let Some(x) = b("set_alpha_to_one") {
        cfg.set_alpha_to_one = x;
    }
    if let Some(x) = b("use_karras_sigmas") {
        cfg.use_karras_sigmas = x;
    }
    if let Some(x) = b("rescale_betas_zero_snr") {
        cfg.rescale_betas_zero_snr = x;
    }
    if v.get("trained_betas").is_some_and(|x| !x.is_null()) {
        return Err(Error::unsupported("scheduler option", "trained_betas"));
    }
    Ok(match class {
        "DDIMScheduler" => Box::new(DdimScheduler::new(cfg)?),
        "DDPMScheduler" => Box::new(DdpmScheduler::new(cfg)?),
        "EulerDiscreteScheduler" => Box::new(EulerDiscreteScheduler::new(cfg)?),
        "EulerAncestralDiscreteScheduler" => Box::new(EulerAncestralScheduler::new(cfg)?),
        "HeunDiscreteScheduler" => Box::new(HeunDiscreteScheduler::new(cfg)?),
        "DPMSolverMultistepScheduler" => Box::new(DpmSolverMultistepScheduler::new(cfg)?),
        _ => Box::new(LcmScheduler::new(cfg)?),
    })
}

/// The text encoder of a Stable Diffusion pipeline: prompt token ids in, the hidden states that
/// the UNet's cross-attention reads (diffusers' `prompt_embeds`) out. In SD 1.x and 2.x it is a
/// CLIP text encoder (`aigc_crossmodal::clip::ClipTextEncoder` implements this trait).
///
/// The pipeline keeps the tokenizer (the directory's `tokenizer/`) and gives the encoder ids
/// already padded to one length, so an implementation only runs the model.
pub trait PromptEncoder: Send + Sync {
    /// Width of the hidden states; must equal the UNet's `cross_attention_dim`.
    fn hidden_size(&self) -> usize;

    /// The longest token sequence the encoder takes (its position table; 77 for CLIP).
    fn max_tokens(&self) -> usize;

    /// Hidden states `[batch, tokens, hidden_size]` of `batch` sequences of `tokens` ids each.
    fn encode(&self, ids: &[Vec<u32>]) -> Result<Tensor<3>>;
}

/// A loaded Stable Diffusion pipeline.
pub struct StableDiffusion {
    tokenizer: tokenizers::Tokenizer,
    pad_id: u32,
    max_length: usize,
    text_encoder: Box<dyn PromptEncoder>,
    unet: UNet2DCondition,
    vae: AutoencoderKl,
    scheduler: Box<dyn Scheduler>,
    device: Device,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Txt2ImgParams<'a> {
    /// What to draw (truncated to the tokenizer's `model_max_length`, 77 tokens).
    pub prompt: &'a str,
    /// What to steer away from ("" for none).
    pub negative_prompt: &'a str,
    /// Output height in pixels (a multiple of the VAE's downscale times the UNet's: 64 for
    /// SD 1.x/2.x).
    pub height: usize,
    /// Output width in pixels, the same multiple as `height`.
    pub width: usize,
    /// Denoising steps.
    pub steps: usize,
    /// Classifier-free guidance scale (1 or less: no guidance, one UNet call per step).
    pub guidance_scale: f32,
}

impl<'a> Txt2ImgParams<'a> {
    /// `prompt` with the txt2img example's defaults: no negative prompt, 512 x 512 (SD 1.x's
    /// size), 25 steps, guidance 7.5.
    pub fn new(prompt: &'a str) -> Self {
        Self {
            prompt,
            negative_prompt: "",
            height: 512,
            width: 512,
            steps: 25,
            guidance_scale: 7.5,
        }
    }
}

/// An RGB image, row-major `height * width * 3` values in `[0, 1]`.
#[derive(Debug, Clone)]
pub struct Image {
    /// `height * width * 3` values in `[0, 1]`, top row first, RGB interleaved
    /// ([`to_rgb8`](Self::to_rgb8) gives bytes for a PNG).
    pub pixels: Vec<f32>,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// The final latents (before the VAE), `[1, c, h/f, w/f]` flattened.
    pub latents: Vec<f32>,
}

impl Image {
    /// 8-bit RGB bytes (for [`crate::png::write_rgb8`]), rounded as diffusers' `numpy_to_pil`.
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.pixels.iter().map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect()
    }
}

impl StableDiffusion {
    /// Loads a diffusers-format pipeline directory (`tokenizer/`, `unet/`, `vae/`,
    /// `scheduler/`) with `text_encoder` in place of its `text_encoder/`, which this crate does
    /// not load (see [`PromptEncoder`]). The encoder's width must be the UNet's
    /// `cross_attention_dim`.
    pub fn open(
        dir: impl AsRef<Path>,
        text_encoder: impl PromptEncoder + 'static,
        device: &Device,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io(p, e));
        let tok_path = dir.join("tokenizer/tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| {
            Error::invalid_argument("tokenizer", format!("{}: {e}", tok_path.display()))
        })?;
        let tok_cfg: serde_json::Value = read(&dir.join("tokenizer/tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let pad = tok_cfg.get("pad_token").and_then(|p| p.as_str()).unwrap_or("<|endoftext|>");
        let pad_id = tokenizer
            .token_to_id(pad)
            .ok_or_else(|| Error::invalid_argument("tokenizer", format!("no pad token `{pad}`")))?;
        let positions = text_encoder.max_tokens();
        let max_length = tok_cfg
            .get("model_max_length")
            .and_then(|m| m.as_u64())
            .map_or(positions, |m| (m as usize).min(positions));
        if max_length == 0 {
            return Err(Error::invalid_argument("text encoder", "takes no tokens"));
        }
        // A text encoder of another width would only fail inside the UNet's cross-attention.
        let unet_config = dir.join("unet/config.json");
        let unet_json: serde_json::Value = serde_json::from_str(&read(&unet_config)?)
            .map_err(|e| Error::invalid_argument("unet/config.json", e.to_string()))?;
        if let Some(width) = unet_json.get("cross_attention_dim").and_then(|c| c.as_u64())
            && width as usize != text_encoder.hidden_size()
        {
            return Err(Error::invalid_argument(
                "text encoder",
                format!(
                    "width {} but {} has cross_attention_dim {width}",
                    text_encoder.hidden_size(),
                    unet_config.display()
                ),
            ));
        }
        let scheduler = scheduler_from_json(&read(&dir.join("scheduler/scheduler_config.json"))?)?;
        Ok(Self {
            tokenizer,
            pad_id,
            max_length,
            text_encoder: Box::new(text_encoder),
            unet: UNet2DCondition::open(dir.join("unet"), device)?,
            vae: AutoencoderKl::open(dir.join("vae"), device)?,
            scheduler,
            device: device.clone(),
        })
    }

    /// Replaces the scheduler.
    pub fn set_scheduler(&mut self, scheduler: Box<dyn Scheduler>) {
        self.scheduler = scheduler;
    }

    /// The scheduler, to change its options between calls (the next call sets its timesteps).
    pub fn scheduler_mut(&mut self) -> &mut dyn Scheduler {
        self.scheduler.as_mut()
    }

    /// The denoiser (`unet/`), for calling it directly.
    pub fn unet(&self) -> &UNet2DCondition {
        &self.unet
    }

    /// The autoencoder (`vae/`) between pixels and latents.
    pub fn vae(&self) -> &AutoencoderKl {
        &self.vae
    }

    /// The prompt encoder the pipeline was opened with.
    pub fn text_encoder(&self) -> &dyn PromptEncoder {
        self.text_encoder.as_ref()
    }

    /// Token ids of `text`, padded (or truncated) to the encoder's length as diffusers does.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::invalid_argument("prompt", e.to_string()))?;
        let mut ids = enc.get_ids().to_vec();
        if ids.len() > self.max_length {
            // Keep the end-of-text token, as truncation in the tokenizer does.
            let last = *ids.last().expect("non-empty");
            ids.truncate(self.max_length - 1);
            ids.push(last);
        }
        ids.resize(self.max_length, self.pad_id);
        Ok(ids)
    }

    /// The text encoder's hidden states for `text` (`[1, 77, d]`).
    pub fn encode_prompt(&self, text: &str) -> Result<Tensor<3>> {
        let h = self.text_encoder.encode(&[self.tokenize(text)?])?;
        let want = [1, self.max_length, self.text_encoder.hidden_size()];
        if h.dims() != want {
            return Err(Error::Shape {
                context: "the text encoder's hidden states".into(),
                expected: want.to_vec(),
                found: h.dims().to_vec(),
            });
        }
        Ok(h)
    }

    /// Generates an image from `initial` unit noise (`[1, c, h/f, w/f]` values; the
    /// scheduler's initial sigma is applied here) or, when `None`, from `noise`.
    /// `progress(step, steps)` is called after each denoising step.
    ///
    /// Fails when the size is zero or not a multiple of the VAE's downscale, `initial` has
    /// the wrong length, or the scheduler rejects `steps`.
    pub fn txt2img(
        &mut self,
        p: &Txt2ImgParams<'_>,
        initial: Option<Vec<f32>>,
        noise: &mut dyn NoiseSource,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Image> {
        let f = self.vae.downscale();
        if p.height == 0
            || p.width == 0
            || !p.height.is_multiple_of(f)
            || !p.width.is_multiple_of(f)
        {
            return Err(Error::invalid_argument(
                "size",
                format!("{}x{} is not a multiple of the VAE's {f}", p.height, p.width),
            ));
        }
        let shape = [1, self.vae.config().latent_channels, p.height / f, p.width / f];
        let init = match initial {
            Some(v) => {
                if v.len() != shape.iter().product::<usize>() {
                    return Err(Error::invalid_argument(
                        "latents",
                        format!("{} values for {shape:?}", v.len()),
                    ));
                }
                Tensor::<4>::from_data(TensorData::new(v, shape), &self.device)
            }
            None => noise.noise(shape, &self.device)?,
        };
        self.scheduler.set_timesteps(p.steps)?;
        let latents = init * self.scheduler.init_noise_sigma();
        let timesteps = self.scheduler.timesteps().to_vec();
        let latents = self.denoise(
            latents,
            &timesteps,
            p.prompt,
            p.negative_prompt,
            p.guidance_scale,
            noise,
            &mut progress,
        )?;
        self.decode(latents, p.height, p.width)
    }

    /// Image to image: `image` (row-major `height * width * 3` in `[0, 1]`) encoded, noised to
    /// the timestep `strength` of the way into the schedule, then denoised from there.
    /// `noise` gives the VAE's latent sample and the added noise, in that order, then any
    /// scheduler draws.
    #[allow(clippy::too_many_arguments)]
    pub fn img2img(
        &mut self,
        image: &[f32],
        (height, width): (usize, usize),
        prompt: &str,
        negative_prompt: &str,
        strength: f32,
        steps: usize,
        guidance_scale: f32,
        noise: &mut dyn NoiseSource,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Image> {
        if !(0.0..=1.0).contains(&strength) {
            return Err(Error::invalid_argument(
                "strength",
                format!("{strength} is not in [0, 1]"),
            ));
        }
        if image.len() != height * width * 3 {
            return Err(Error::invalid_argument(
                "image",
                format!("{} values for {height}x{width}x3", image.len()),
            ));
        }
        // HWC in [0, 1] -> NCHW in [-1, 1].
        let mut chw = vec![0f32; image.len()];
        for (i, px) in image.chunks_exact(3).enumerate() {
            for c in 0..3 {
                chw[c * height * width + i] = px[c] * 2.0 - 1.0;
            }
        }
        let x = Tensor::<4>::from_data(TensorData::new(chw, [1, 3, height, width]), &self.device);
        let dist = self.vae.encode(x)?;
        let sample_noise = noise.noise(dist.mean.dims(), &self.device)?;
        let init_latents = dist.sample(sample_noise) * self.vae.config().scaling_factor;
        self.scheduler.set_timesteps(steps)?;
        let all = self.scheduler.timesteps().to_vec();
        let init_timestep = ((steps as f32 * strength) as usize).min(steps);
        let start = (steps - init_timestep) * self.scheduler.order();
        let timesteps = all[start.min(all.len())..].to_vec();
        let Some(&first) = timesteps.first() else {
            return Err(Error::invalid_argument("strength", "leaves no denoising step"));
        };
        let add = noise.noise(init_latents.dims(), &self.device)?;
        let latents = self.scheduler.add_noise(init_latents, add, &[first])?;
        let latents = self.denoise(
            latents,
            &timesteps,
            prompt,
            negative_prompt,
            guidance_scale,
            noise,
            &mut progress,
        )?;
        self.decode(latents, height, width)
    }

    #[allow(clippy::too_many_arguments)]
    fn denoise(
        &mut self,
        mut latents: Tensor<4>,
        timesteps: &[f64],
        prompt: &str,
        negative: &str,
        guidance: f32,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Tensor<4>> {
        let cfg = guidance > 1.0;
        let text = self.encode_prompt(prompt)?;
        let context =
            if cfg { Tensor::cat(vec![self.encode_prompt(negative)?, text], 0) } else { text };
        for (i, &t) in timesteps.iter().enumerate() {
            let input = if cfg {
                Tensor::cat(vec![latents.clone(), latents.clone()], 0)
            } else {
                latents.clone()
            };
            let input = self.scheduler.scale_model_input(input, t)?;
            let n = input.dims()[0];
            let out = self.unet.forward(input, &vec![t as f32; n], &context)?;
            let eps = if cfg {
                let uncond = out.clone().narrow(0, 0, 1);
                let cond = out.narrow(0, 1, 1);
                uncond.clone() + (cond - uncond) * guidance
            } else {
                out
            };
            latents = self.scheduler.step(eps, t, latents, noise)?.prev_sample;
            progress(i + 1, timesteps.len());
        }
        Ok(latents)
    }

    fn decode(&self, latents: Tensor<4>, height: usize, width: usize) -> Result<Image> {
        let image = self.decode_latents(latents)?.pop();
        match image {
            Some(img) if img.height == height && img.width == width => Ok(img),
            _ => Err(Error::invalid_argument("image", format!("not decoded at {height}x{width}"))),
        }
    }

    /// Images from latents `[n, c, h, w]` as the scheduler leaves them (the VAE's scaling
    /// factor is undone here): decoded, mapped from `[-1, 1]` to `[0, 1]` and clamped, as
    /// diffusers' `output_type="np"`.
    pub fn decode_latents(&self, latents: Tensor<4>) -> Result<Vec<Image>> {
        let n = latents.dims()[0];
        let flat =
            latents.clone().into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        let img = self.vae.decode(latents / self.vae.config().scaling_factor)?;
        let img = (img / 2.0 + 0.5).clamp(0.0, 1.0);
        let [_, c, h, w] = img.dims();
        let nchw = img.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        if c != 3 || nchw.len() != n * 3 * h * w || n == 0 {
            return Err(Error::invalid_argument("image", format!("decoded [{n}, {c}, {h}, {w}]")));
        }
        let per_latent = flat.len() / n;
        let images = nchw
            .chunks_exact(3 * h * w)
            .zip(flat.chunks_exact(per_latent))
            .map(|(chw, lat)| {
                let mut pixels = vec![0f32; chw.len()];
                for ch in 0..3 {
                    for i in 0..h * w {
                        pixels[i * 3 + ch] = chw[ch * h * w + i];
                    }
                }
                Image { pixels, height: h, width: w, latents: lat.to_vec() }
            })
            .collect();
        Ok(images)
    }
}
