//! Euler ancestral sampling: an Euler step to a lower sigma, then fresh noise back up to the
//! next sigma (k-diffusion's `sample_euler_ancestral`), after diffusers'
//! `scheduling_euler_ancestral_discrete.py`.

use burn::tensor::Tensor;

use super::euler::{sigma_add_noise, sigma_alphas_cumprod, sigma_init_noise, sigma_x0};
use super::{
    NoiseSource, PredictionType, Scheduler, SchedulerConfig, StepOutput, check_steps,
    float_timesteps, init_step_index, interp_index, np_linspace, same_shape, schedule_finished,
    train_sigmas,
};
use crate::error::Result;

/// diffusers' `EulerAncestralDiscreteScheduler`. Draws noise at every step.
#[derive(Debug, Clone)]
pub struct EulerAncestralScheduler {
    config: SchedulerConfig,
    alphas_cumprod: Vec<f32>,
    timesteps: Vec<f64>,
    sigmas: Vec<f32>,
    step_index: Option<usize>,
}

impl EulerAncestralScheduler {
    /// An Euler ancestral scheduler. `Sample` prediction, Karras sigmas, clipping and
    /// thresholding are not options of it (diffusers does not implement them).
    pub fn new(config: SchedulerConfig) -> Result<Self> {
        let name = "EulerAncestralDiscreteScheduler";
        config.reject(
            config.prediction_type == PredictionType::Sample,
            name,
            "prediction_type=sample",
        )?;
        config.reject(config.use_karras_sigmas, name, "use_karras_sigmas")?;
        config.reject(config.clip_sample, name, "clip_sample")?;
        config.reject(config.thresholding, name, "thresholding")?;
        config.reject(
            config.final_sigmas_type != super::FinalSigmas::Zero,
            name,
            "final_sigmas_type",
        )?;
        let alphas_cumprod = sigma_alphas_cumprod(&config)?;
        let mut sigmas: Vec<f32> = train_sigmas(&alphas_cumprod).into_iter().rev().collect();
        sigmas.push(0.0);
        let n = config.num_train_timesteps;
        let timesteps = np_linspace(0.0, (n - 1) as f64, n).into_iter().rev().collect();
        Ok(Self { config, alphas_cumprod, timesteps, sigmas, step_index: None })
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The sigmas of the current schedule, ending with 0.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    fn init_step_index(&mut self, timestep: f64) -> Result<usize> {
        init_step_index(&mut self.step_index, &self.timesteps, timestep)
    }
}

impl Scheduler for EulerAncestralScheduler {
    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        check_steps(num_inference_steps, self.config.num_train_timesteps)?;
        let timesteps = float_timesteps(&self.config, num_inference_steps);
        let train = train_sigmas(&self.alphas_cumprod);
        self.sigmas =
            timesteps.iter().map(|&t| interp_index(t, &train) as f32).chain([0.0]).collect();
        self.timesteps = timesteps;
        self.step_index = None;
        Ok(())
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        sigma_init_noise(&self.config, &self.sigmas)
    }

    fn scale_model_input(&mut self, sample: Tensor<4>, timestep: f64) -> Result<Tensor<4>> {
        let i = self.init_step_index(timestep)?;
        let sigma = self.sigmas[i];
        Ok(sample / (sigma * sigma + 1.0).sqrt())
    }

    fn step(
        &mut self,
        model_output: Tensor<4>,
        timestep: f64,
        sample: Tensor<4>,
        noise: &mut dyn NoiseSource,
    ) -> Result<StepOutput> {
        same_shape(&sample, &model_output, "Euler ancestral step model_output")?;
        let i = self.init_step_index(timestep)?;
        let sigma_to = *self.sigmas.get(i + 1).ok_or_else(schedule_finished)?;
        let sigma = self.sigmas[i];
        let (dims, device) = (model_output.dims(), model_output.device());
        let x0 = sigma_x0(self.config.prediction_type, model_output, sample.clone(), sigma);

        let sigma_from = sigma;
        let sigma_up = (sigma_to * sigma_to * (sigma_from * sigma_from - sigma_to * sigma_to)
            / (sigma_from * sigma_from))
            .sqrt();
        let sigma_down = (sigma_to * sigma_to - sigma_up * sigma_up).sqrt();
        let derivative = (sample.clone() - x0.clone()) / sigma;
        let dt = sigma_down - sigma;
        let prev_sample = sample + derivative * dt;
        let z = noise.noise(dims, &device)?;
        let prev_sample = prev_sample + z * sigma_up;
        self.step_index = Some(i + 1);
        Ok(StepOutput::new(prev_sample, Some(x0)))
    }

    fn add_noise(
        &self,
        original: Tensor<4>,
        noise: Tensor<4>,
        timesteps: &[f64],
    ) -> Result<Tensor<4>> {
        sigma_add_noise(&self.timesteps, &self.sigmas, original, noise, timesteps)
    }
}
