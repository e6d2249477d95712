//! Latent consistency models' multistep sampler (Luo et al., "Latent Consistency Models",
//! <https://arxiv.org/abs/2310.04378>), after diffusers' `scheduling_lcm.py`.

use burn::tensor::Tensor;

use super::{
    NoiseSource, PredictionType, Scheduler, SchedulerConfig, StepOutput, add_noise_batch,
    clip_or_threshold, index_for_timestep, np_linspace, per_batch, same_shape, schedule_finished,
    train_index,
};
use crate::error::{Error, Result};

/// diffusers' `LCMScheduler`. Each step predicts the clean sample (`denoised`) and, except at
/// the last step, noises it again to the next timestep; the image is the last `denoised`.
#[derive(Debug, Clone)]
pub struct LcmScheduler {
    config: SchedulerConfig,
    original_inference_steps: usize,
    timestep_scaling: f32,
    alphas_cumprod: Vec<f32>,
    final_alpha_cumprod: f32,
    timesteps: Vec<f64>,
    num_inference_steps: Option<usize>,
    step_index: Option<usize>,
}

impl LcmScheduler {
    /// An LCM scheduler with diffusers' `original_inference_steps = 50` and
    /// `timestep_scaling = 10`.
    pub fn new(config: SchedulerConfig) -> Result<Self> {
        Self::with_options(config, 50, 10.0)
    }

    /// An LCM scheduler whose timesteps come from a `original_inference_steps`-step schedule
    /// (the distillation's), with the boundary-condition time scale `timestep_scaling`.
    pub fn with_options(
        config: SchedulerConfig,
        original_inference_steps: usize,
        timestep_scaling: f32,
    ) -> Result<Self> {
        config.reject(config.use_karras_sigmas, "LCMScheduler", "use_karras_sigmas")?;
        if original_inference_steps == 0 || original_inference_steps > config.num_train_timesteps {
            return Err(Error::invalid_argument(
                "original_inference_steps",
                format!(
                    "must be in 1..={}, got {original_inference_steps}",
                    config.num_train_timesteps
                ),
            ));
        }
        if !timestep_scaling.is_finite() {
            return Err(Error::invalid_argument("timestep_scaling", "must be finite"));
        }
        let alphas_cumprod = config.alphas_cumprod()?;
        let final_alpha_cumprod = if config.set_alpha_to_one { 1.0 } else { alphas_cumprod[0] };
        let timesteps = (0..config.num_train_timesteps).rev().map(|t| t as f64).collect();
        Ok(Self {
            config,
            original_inference_steps,
            timestep_scaling,
            alphas_cumprod,
            final_alpha_cumprod,
            timesteps,
            num_inference_steps: None,
            step_index: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }
}

impl Scheduler for LcmScheduler {
    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        let n = num_inference_steps;
        let t = self.config.num_train_timesteps;
        let original = self.original_inference_steps;
        if n == 0 {
            return Err(Error::invalid_argument("num_inference_steps", "must be at least 1"));
        }
        if n > original {
            return Err(Error::invalid_argument(
                "num_inference_steps",
                format!("{n} is more than original_inference_steps ({original})"),
            ));
        }
        let k = t / original;
        // The distillation schedule, newest first.
        let origin: Vec<usize> = (1..=original).rev().map(|i| i * k - 1).collect();
        let indices = np_linspace(0.0, origin.len() as f64, n + 1);
        self.timesteps = indices[..n].iter().map(|&x| origin[x.floor() as usize] as f64).collect();
        self.num_inference_steps = Some(n);
        self.step_index = None;
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
            Error::invalid_argument("set_timesteps", "LCM needs set_timesteps before step")
        })?;
        same_shape(&sample, &model_output, "LCM step model_output")?;
        let i = match self.step_index {
            Some(i) => i,
            None => index_for_timestep(&self.timesteps, timestep)?,
        };
        if i >= self.timesteps.len() {
            return Err(schedule_finished());
        }
        let t = train_index(timestep, self.alphas_cumprod.len())?;
        let prev = self.timesteps.get(i + 1).copied().unwrap_or(timestep) as usize;
        let alpha_prod_t = self.alphas_cumprod[t];
        let alpha_prod_t_prev =
            self.alphas_cumprod.get(prev).copied().unwrap_or(self.final_alpha_cumprod);
        let beta_prod_t = 1.0 - alpha_prod_t;
        let beta_prod_t_prev = 1.0 - alpha_prod_t_prev;

        // Boundary-condition scalings, in f32 as the pipeline's integer timestep tensor gives.
        let scaled = t as f32 * self.timestep_scaling;
        let c_skip = 0.25 / (scaled * scaled + 0.25);
        let c_out = scaled / (scaled * scaled + 0.25).sqrt();

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
        let denoised = x0 * c_out + sample * c_skip;

        let prev_sample = if i + 1 != steps {
            let z = noise.noise(model_output.dims(), &model_output.device())?;
            denoised.clone() * alpha_prod_t_prev.sqrt() + z * beta_prod_t_prev.sqrt()
        } else {
            denoised.clone()
        };
        self.step_index = Some(i + 1);
        Ok(StepOutput { prev_sample, pred_original_sample: None, denoised: Some(denoised) })
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
