//! DDIM: Song et al., "Denoising Diffusion Implicit Models" (<https://arxiv.org/abs/2010.02502>),
//! after diffusers' `scheduling_ddim.py`. Deterministic at `eta = 0`; `eta = 1` is DDPM-like.

use burn::tensor::Tensor;

use super::{
    NoiseSource, PredictionType, Scheduler, SchedulerConfig, StepOutput, add_noise_batch,
    check_steps, clip_or_threshold, integer_timesteps, per_batch, same_shape, train_index,
};
use crate::error::{Error, Result};

/// diffusers' `DDIMScheduler`, with the `eta` and `use_clipped_model_output` arguments of its
/// `step` held as settings.
#[derive(Debug, Clone)]
pub struct DdimScheduler {
    config: SchedulerConfig,
    alphas_cumprod: Vec<f32>,
    final_alpha_cumprod: f32,
    timesteps: Vec<f64>,
    num_inference_steps: Option<usize>,
    eta: f32,
    use_clipped_model_output: bool,
}

impl DdimScheduler {
    /// A deterministic (`eta = 0`) DDIM scheduler.
    pub fn new(config: SchedulerConfig) -> Result<Self> {
        config.reject(config.use_karras_sigmas, "DDIMScheduler", "use_karras_sigmas")?;
        let alphas_cumprod = config.alphas_cumprod()?;
        let final_alpha_cumprod = if config.set_alpha_to_one { 1.0 } else { alphas_cumprod[0] };
        let timesteps = (0..config.num_train_timesteps).rev().map(|t| t as f64).collect();
        Ok(Self {
            config,
            alphas_cumprod,
            final_alpha_cumprod,
            timesteps,
            num_inference_steps: None,
            eta: 0.0,
            use_clipped_model_output: false,
        })
    }

    /// Sets the weight of the noise added at each step (`eta` in the paper, 0 to 1). Above 0,
    /// [`step`](Scheduler::step) draws noise.
    pub fn with_eta(mut self, eta: f32) -> Result<Self> {
        if !(eta.is_finite() && eta >= 0.0) {
            return Err(Error::invalid_argument(
                "eta",
                format!("must be finite and >= 0, got {eta}"),
            ));
        }
        self.eta = eta;
        Ok(self)
    }

    /// Recompute the predicted noise from the clipped clean sample (diffusers'
    /// `use_clipped_model_output`).
    pub fn with_clipped_model_output(mut self, on: bool) -> Self {
        self.use_clipped_model_output = on;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }
}

impl Scheduler for DdimScheduler {
    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        check_steps(num_inference_steps, self.config.num_train_timesteps)?;
        let timesteps = integer_timesteps(&self.config, num_inference_steps);
        for &t in &timesteps {
            train_index(t, self.config.num_train_timesteps)?;
        }
        self.timesteps = timesteps;
        self.num_inference_steps = Some(num_inference_steps);
        Ok(())
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn step(
        &mut self,
        model_output: Tensor<4>,
        timestep: f64,
        sample: Tensor<4>,
        noise: &mut dyn NoiseSource,
    ) -> Result<StepOutput> {
        let steps = self.num_inference_steps.ok_or_else(|| {
            Error::invalid_argument("set_timesteps", "DDIM needs set_timesteps before step")
        })?;
        same_shape(&sample, &model_output, "DDIM step model_output")?;
        let t = train_index(timestep, self.alphas_cumprod.len())?;
        // DDIM steps back by the stride, whatever the spacing.
        let prev = t as i64 - (self.config.num_train_timesteps / steps) as i64;
        let alpha_prod_t = self.alphas_cumprod[t];
        let alpha_prod_t_prev =
            if prev >= 0 { self.alphas_cumprod[prev as usize] } else { self.final_alpha_cumprod };
        let beta_prod_t = 1.0 - alpha_prod_t;

        let (x0, eps) = match self.config.prediction_type {
            PredictionType::Epsilon => (
                (sample.clone() - model_output.clone() * beta_prod_t.sqrt()) / alpha_prod_t.sqrt(),
                model_output.clone(),
            ),
            PredictionType::Sample => (
                model_output.clone(),
                (sample.clone() - model_output.clone() * alpha_prod_t.sqrt()) / beta_prod_t.sqrt(),
            ),
            PredictionType::VPrediction => (
                sample.clone() * alpha_prod_t.sqrt() - model_output.clone() * beta_prod_t.sqrt(),
                model_output.clone() * alpha_prod_t.sqrt() + sample.clone() * beta_prod_t.sqrt(),
            ),
        };
        let x0 = clip_or_threshold(x0, &self.config)?;

        let beta_prod_t_prev = 1.0 - alpha_prod_t_prev;
        let variance = beta_prod_t_prev / beta_prod_t * (1.0 - alpha_prod_t / alpha_prod_t_prev);
        let std_dev_t = self.eta * variance.sqrt();
        let eps = if self.use_clipped_model_output {
            (sample - x0.clone() * alpha_prod_t.sqrt()) / beta_prod_t.sqrt()
        } else {
            eps
        };
        let direction = eps * (1.0 - alpha_prod_t_prev - std_dev_t * std_dev_t).sqrt();
        let mut prev_sample = x0.clone() * alpha_prod_t_prev.sqrt() + direction;
        if self.eta > 0.0 {
            let z = noise.noise(model_output.dims(), &model_output.device())?;
            prev_sample = prev_sample + z * std_dev_t;
        }
        Ok(StepOutput::new(prev_sample, Some(x0)))
    }

    fn add_noise(
        &self,
        original: Tensor<4>,
        noise: Tensor<4>,
        timesteps: &[f64],
    ) -> Result<Tensor<4>> {
        let batch = add_noise_batch(&original, &noise, timesteps)?;
        let mut a = Vec::with_capacity(timesteps.len());
        let mut b = Vec::with_capacity(timesteps.len());
        for &t in timesteps {
            let alpha = self.alphas_cumprod[train_index(t, self.alphas_cumprod.len())?];
            a.push(alpha.sqrt());
            b.push((1.0 - alpha).sqrt());
        }
        let device = original.device();
        Ok(original * per_batch(a, batch, &device)? + noise * per_batch(b, batch, &device)?)
    }
}
