//! Heun's second-order method on the probability-flow ODE (Karras et al.,
//! <https://arxiv.org/abs/2206.00364>, Algorithm 1), after diffusers'
//! `scheduling_heun_discrete.py`: two model calls per step, the last step plain Euler.

use burn::tensor::Tensor;

use super::euler::{inference_sigmas, sigma_add_noise, sigma_init_noise, sigma_x0};
use super::{
    NoiseSource, PredictionType, Scheduler, SchedulerConfig, StepOutput, check_steps,
    init_step_index, same_shape, schedule_finished,
};
use crate::error::Result;

/// The first-order half of a Heun step, kept for the correction.
#[derive(Debug, Clone)]
struct FirstOrder {
    derivative: Tensor<4>,
    dt: f32,
    sample: Tensor<4>,
}

/// diffusers' `HeunDiscreteScheduler`. Its timesteps repeat every timestep after the first:
/// the loop calls the model once per entry, and [`step`](Scheduler::step) alternates between
/// an Euler predictor and the trapezoidal corrector.
#[derive(Debug, Clone)]
pub struct HeunDiscreteScheduler {
    config: SchedulerConfig,
    alphas_cumprod: Vec<f32>,
    timesteps: Vec<f64>,
    sigmas: Vec<f32>,
    step_index: Option<usize>,
    first: Option<FirstOrder>,
}

impl HeunDiscreteScheduler {
    /// A Heun scheduler (thresholding and `final_sigmas_type` are not options of it).
    pub fn new(config: SchedulerConfig) -> Result<Self> {
        let name = "HeunDiscreteScheduler";
        config.reject(config.thresholding, name, "thresholding")?;
        config.reject(config.rescale_betas_zero_snr, name, "rescale_betas_zero_snr")?;
        config.reject(
            config.final_sigmas_type != super::FinalSigmas::Zero,
            name,
            "final_sigmas_type",
        )?;
        let alphas_cumprod = config.alphas_cumprod()?;
        let mut s = Self {
            config,
            alphas_cumprod,
            timesteps: Vec::new(),
            sigmas: Vec::new(),
            step_index: None,
            first: None,
        };
        // diffusers starts from the full training schedule.
        s.set_timesteps(s.config.num_train_timesteps)?;
        Ok(s)
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The sigmas, doubled like the timesteps, ending with 0.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// True when the next [`step`](Scheduler::step) is a predictor (first-order) step.
    pub fn state_in_first_order(&self) -> bool {
        self.first.is_none()
    }

    fn init_step_index(&mut self, timestep: f64) -> Result<usize> {
        init_step_index(&mut self.step_index, &self.timesteps, timestep)
    }
}

impl Scheduler for HeunDiscreteScheduler {
    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        check_steps(num_inference_steps, self.config.num_train_timesteps)?;
        let (sigmas, timesteps) =
            inference_sigmas(&self.config, &self.alphas_cumprod, num_inference_steps);
        let sigmas: Vec<f32> = sigmas.iter().map(|&s| s as f32).chain([0.0]).collect();
        let n = sigmas.len();
        let mut doubled = vec![sigmas[0]];
        for &s in &sigmas[1..n - 1] {
            doubled.extend([s, s]);
        }
        doubled.push(sigmas[n - 1]);
        let mut ts = vec![timesteps[0] as f32 as f64];
        for &t in &timesteps[1..] {
            let t = t as f32 as f64;
            ts.extend([t, t]);
        }
        self.sigmas = doubled;
        self.timesteps = ts;
        self.step_index = None;
        self.first = None;
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
        _noise: &mut dyn NoiseSource,
    ) -> Result<StepOutput> {
        same_shape(&sample, &model_output, "Heun step model_output")?;
        let i = self.init_step_index(timestep)?;
        let finished = || schedule_finished();
        let (sigma, sigma_next) = if self.first.is_none() {
            (self.sigmas[i], *self.sigmas.get(i + 1).ok_or_else(finished)?)
        } else {
            (self.sigmas[i - 1], *self.sigmas.get(i).ok_or_else(finished)?)
        };
        let sigma_hat = sigma;
        let sigma_input = if self.first.is_none() { sigma_hat } else { sigma_next };
        let x0 = match self.config.prediction_type {
            PredictionType::Sample => model_output,
            p => sigma_x0(p, model_output, sample.clone(), sigma_input),
        };
        let x0 = if self.config.clip_sample {
            let r = self.config.clip_sample_range as f32;
            x0.clamp(-r, r)
        } else {
            x0
        };

        let prev_sample = match self.first.take() {
            None => {
                let derivative = (sample.clone() - x0.clone()) / sigma_hat;
                let dt = sigma_next - sigma_hat;
                let prev = sample.clone() + derivative.clone() * dt;
                self.first = Some(FirstOrder { derivative, dt, sample });
                prev
            }
            Some(first) => {
                let derivative = (sample - x0.clone()) / sigma_next;
                let derivative = (first.derivative + derivative) / 2.0;
                first.sample + derivative * first.dt
            }
        };
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

    fn order(&self) -> usize {
        2
    }
}
