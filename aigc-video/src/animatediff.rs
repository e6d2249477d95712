//! Text to video with AnimateDiff: a Stable Diffusion pipeline whose UNet runs a
//! [`MotionAdapter`] between its layers, denoising all frames of a clip together, as diffusers'
//! `AnimateDiffPipeline` does.

use std::path::Path;

use aigc_core::burn::tensor::{Device, Tensor, TensorData};
use aigc_core::schedulers::NoiseSource;
use aigc_core::{Error, Result};
use aigc_image::pipeline::{Image, PromptEncoder, StableDiffusion};

use crate::motion::MotionAdapter;
use crate::writer::RgbFrame;

/// What to generate.
#[derive(Debug, Clone)]
pub struct VideoParams<'a> {
    /// What the clip shows (truncated to the tokenizer's `model_max_length`, 77 tokens).
    pub prompt: &'a str,
    /// What to steer away from ("" for none).
    pub negative_prompt: &'a str,
    /// Frames in the clip (at most the adapter's position table, 32 for AnimateDiff's).
    pub frames: usize,
    /// Frame height in pixels (a multiple of the VAE's downscale times the UNet's).
    pub height: usize,
    /// Frame width in pixels, the same multiple as `height`.
    pub width: usize,
    /// Denoising steps.
    pub steps: usize,
    /// Classifier-free guidance scale (1 or less: no guidance, one UNet call per step).
    pub guidance_scale: f32,
    /// Frames the VAE decodes at once (memory against speed; the result is the same).
    pub decode_chunk: usize,
}

impl<'a> VideoParams<'a> {
    /// `prompt` with diffusers' AnimateDiff defaults: 16 frames of 512 x 512, 25 steps,
    /// guidance 7.5, no negative prompt.
    pub fn new(prompt: &'a str) -> Self {
        Self {
            prompt,
            negative_prompt: "",
            frames: 16,
            height: 512,
            width: 512,
            steps: 25,
            guidance_scale: 7.5,
            decode_chunk: 4,
        }
    }
}

/// A generated clip.
#[derive(Debug, Clone)]
pub struct Video {
    /// The frames in order, each `height` x `width` RGB in `[0, 1]`
    /// ([`rgb_frames`](Self::rgb_frames) converts them for the writers).
    pub frames: Vec<Image>,
    /// The final latents, `[c, frames, h/f, w/f]` flattened (diffusers' `[1, c, f, h, w]`).
    pub latents: Vec<f32>,
}

impl Video {
    /// The frames as 8-bit RGB for a [`crate::VideoWriter`].
    pub fn rgb_frames(&self) -> Vec<RgbFrame> {
        self.frames
            .iter()
            .map(|f| RgbFrame { width: f.width as u32, height: f.height as u32, data: f.to_rgb8() })
            .collect()
    }
}

/// A Stable Diffusion pipeline with an AnimateDiff motion adapter.
pub struct AnimateDiff {
    sd: StableDiffusion,
    adapter: MotionAdapter,
    device: Device,
}

impl AnimateDiff {
    /// Loads a diffusers Stable Diffusion directory (see [`StableDiffusion::open`]; its
    /// `unet/` may be a saved `UNetMotionModel`) and a motion adapter directory
    /// (`MotionAdapter.save_pretrained`, or the same `unet/`).
    pub fn open(
        sd_dir: impl AsRef<Path>,
        adapter_dir: impl AsRef<Path>,
        text_encoder: impl PromptEncoder + 'static,
        device: &Device,
    ) -> Result<Self> {
        let sd = StableDiffusion::open(sd_dir, text_encoder, device)?;
        let adapter = MotionAdapter::open(adapter_dir, sd.unet(), device)?;
        Ok(Self::new(sd, adapter, device))
    }

    /// A pipeline from a loaded image pipeline and adapter.
    pub fn new(sd: StableDiffusion, adapter: MotionAdapter, device: &Device) -> Self {
        Self { sd, adapter, device: device.clone() }
    }

    /// The image pipeline underneath (tokenizer, text encoder, UNet, VAE, scheduler).
    pub fn stable_diffusion(&mut self) -> &mut StableDiffusion {
        &mut self.sd
    }

    /// The motion adapter.
    pub fn adapter(&self) -> &MotionAdapter {
        &self.adapter
    }

    /// Generates a clip from `initial` unit noise (`[c, frames, h/f, w/f]` values, the
    /// order of diffusers' `[1, c, f, h, w]` latents; the scheduler's initial sigma is applied
    /// here) or, when `None`, from `noise`. `progress` gets (step, steps).
    pub fn generate(
        &mut self,
        p: &VideoParams<'_>,
        initial: Option<Vec<f32>>,
        noise: &mut dyn NoiseSource,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Video> {
        let f = self.sd.vae().downscale();
        let frames = p.frames;
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
        if frames == 0 || frames > self.adapter.max_frames() {
            return Err(Error::invalid_argument(
                "frames",
                format!("{frames}: the adapter takes 1 to {}", self.adapter.max_frames()),
            ));
        }
        let shape = [self.sd.vae().config().latent_channels, frames, p.height / f, p.width / f];
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
        let scheduler = self.sd.scheduler_mut();
        scheduler.set_timesteps(p.steps)?;
        let mut latents = init * scheduler.init_noise_sigma();
        let timesteps = scheduler.timesteps().to_vec();

        let cfg = p.guidance_scale > 1.0;
        let text = self.sd.encode_prompt(p.prompt)?;
        let context = if cfg {
            Tensor::cat(vec![self.sd.encode_prompt(p.negative_prompt)?, text], 0)
        } else {
            text
        };
        let clips = context.dims()[0];
        for (i, &t) in timesteps.iter().enumerate() {
            // [c, f, h, w] -> frames [f, c, h, w], twice for guidance (unconditional first).
            let x = latents.clone().swap_dims(0, 1);
            let x = if cfg { Tensor::cat(vec![x.clone(), x], 0) } else { x };
            let x = self.sd.scheduler_mut().scale_model_input(x, t)?;
            let out = self.adapter.forward(
                self.sd.unet(),
                x,
                frames,
                &vec![t as f32; clips],
                &context,
            )?;
            let eps = if cfg {
                let uncond = out.clone().narrow(0, 0, frames);
                let cond = out.narrow(0, frames, frames);
                uncond.clone() + (cond - uncond) * p.guidance_scale
            } else {
                out
            };
            latents =
                self.sd.scheduler_mut().step(eps.swap_dims(0, 1), t, latents, noise)?.prev_sample;
            progress(i + 1, timesteps.len());
        }
        let flat =
            latents.clone().into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        let per_frame = latents.swap_dims(0, 1);
        let chunk = p.decode_chunk.max(1);
        let mut images = Vec::with_capacity(frames);
        for start in (0..frames).step_by(chunk) {
            let n = chunk.min(frames - start);
            images.extend(self.sd.decode_latents(per_frame.clone().narrow(0, start, n))?);
        }
        Ok(Video { frames: images, latents: flat })
    }
}
