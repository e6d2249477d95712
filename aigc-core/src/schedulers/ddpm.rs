//! DDPM: ancestral sampling of Ho et al., "Denoising Diffusion Probabilistic Models"
//! (<https://arxiv.org/abs/2006.11239>), after diffusers' `scheduling_ddpm.py`.

use burn::tensor::Tensor;

use super::{
    NoiseSource, PredictionType, Scheduler, SchedulerConfig, StepOutput, add_noise_batch,
    check_steps, clip_or_threshold, integer_timesteps, per_batch, same_shape, train_index,
};
use crate::error::{Error, Result};

/// The variance of the noise DDPM adds at each step (diffusers' `variance_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarianceType {
    /// The posterior variance `beta~_t` (`"fixed_small"`, the default).
    FixedSmall,
    /// `beta~_t` through `exp(0.5 * log(.))` (`"fixed_small_log"`).
    FixedSmallLog,
    /// `beta_t` (`"fixed_large"`).
    FixedLarge,
}

/// diffusers' `DDPMScheduler`. Timesteps are integers; noise is drawn at every step but the
/// one at `t = 0`.
#[derive(Debug, Clone)]
pub struct DdpmScheduler {
    config: SchedulerConfig,
    variance_type: VarianceType,
    alphas_cumprod: Vec<f32>,
    timesteps: Vec<f64>,
}

impl DdpmScheduler {
    /// A DDPM scheduler with the `fixed_small` variance.
    pub fn new(config: SchedulerConfig) -> Result<Self> {
        Self::with_variance(config, VarianceType::FixedSmall)
    }

    /// A DDPM scheduler with the given variance type.
    pub fn with_variance(config: SchedulerConfig, variance_type: VarianceType) -> Result<Self> {
        config.reject(config.use_karras_sigmas, "DDPMScheduler", "use_karras_sigmas")?;
        let alphas_cumprod = config.alphas_cumprod()?;
        // Before set_timesteps diffusers steps through every training timestep.
        let timesteps = (0..config.num_train_timesteps).rev().map(|t| t as f64).collect();
        Ok(Self { config, variance_type, alphas_cumprod, timesteps })
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The timestep after `t` in the schedule, `None` after the last.
    fn previous_timestep(&self, t: f64) -> Result<Option<usize>> {
        let i = self.timesteps.iter().position(|&s| s == t).ok_or_else(|| {
            Error::invalid_argument(
                "timestep",
                format!("{t} is not one of the scheduler's timesteps"),
            )
        })?;
        Ok(self.timesteps.get(i + 1).map(|&p| p as usize))
    }
}

impl Scheduler for DdpmScheduler {
    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        check_steps(num_inference_steps, self.config.num_train_timesteps)?;
        let timesteps = integer_timesteps(&self.config, num_inference_steps);
        // A steps_offset can push leading timesteps past the training range.
        for &t in &timesteps {
            train_index(t, self.config.num_train_timesteps)?;
        }
        self.timesteps = timesteps;
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
        same_shape(&sample, &model_output, "DDPM step model_output")?;
        let t = train_index(timestep, self.alphas_cumprod.len())?;
        let prev = self.previous_timestep(timestep)?;
        let alpha_prod_t = self.alphas_cumprod[t];
        let alpha_prod_t_prev = prev.map_or(1.0, |p| self.alphas_cumprod[p]);
        let beta_prod_t = 1.0 - alpha_prod_t;
        let beta_prod_t_prev = 1.0 - alpha_prod_t_prev;
        let current_alpha_t = alpha_prod_t / alpha_prod_t_prev;
        let current_beta_t = 1.0 - current_alpha_t;

        let x0 = match self.config.prediction_type {
            PredictionType::Epsilon => {
                (sample.clone() - model_output.clone() * beta_prod_t.sqrt()) / alpha_prod_t.sqrt()
            }
            PredictionType::Sample => model_output.clone(),
            PredictionType::VPrediction => {
                sample.clone() * alpha_prod_t.sqrt() - model_output.clone() * beta_prod_t.sqrt()
            }
        };
        let x0 = clip_or_threshold(x0, &self.config)?;

        let x0_coeff = alpha_prod_t_prev.sqrt() * current_beta_t / beta_prod_t;
        let sample_coeff = current_alpha_t.sqrt() * beta_prod_t_prev / beta_prod_t;
        let mut prev_sample = x0.clone() * x0_coeff + sample * sample_coeff;

        if t > 0 {
            let z = noise.noise(model_output.dims(), &model_output.device())?;
            let variance =
                ((1.0 - alpha_prod_t_prev) / (1.0 - alpha_prod_t) * current_beta_t).max(1e-20);
            let scale = match self.variance_type {
                VarianceType::FixedSmall => variance.sqrt(),
                VarianceType::FixedSmallLog => (0.5 * variance.ln()).exp(),
                VarianceType::FixedLarge => current_beta_t.sqrt(),
            };
            prev_sample = prev_sample + z * scale;
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
