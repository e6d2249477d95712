//! Schedulers in the EDM parameterisation (Karras et al., "Elucidating the Design Space of
//! Diffusion-Based Generative Models", <https://arxiv.org/abs/2206.00364>), where the model
//! works on sigmas directly:
//!
//! - [`ConsistencyScheduler`]: the multistep consistency sampler of Song et al., "Consistency
//!   Models" (<https://arxiv.org/abs/2303.01469>), after diffusers'
//!   `scheduling_consistency_models.py` (`CMStochasticIterativeScheduler`);
//! - [`EdmEulerScheduler`]: Euler on the EDM ODE, after `scheduling_edm_euler.py`.

use burn::tensor::Tensor;

use super::{
    FinalSigmas, NoiseSource, PredictionType, Scheduler, StepOutput, add_noise_batch,
    index_for_timestep, init_step_index, karras, np_linspace, per_batch, same_shape,
    schedule_finished, torch_linspace_f32, torch_linspace_f64,
};
use crate::error::{Error, Result};

/// `CMStochasticIterativeScheduler`'s configuration, with its defaults (the ImageNet 64
/// consistency models).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsistencyConfig {
    /// Discretisation steps of the training schedule (40).
    pub num_train_timesteps: usize,
    /// Smallest sigma (0.002).
    pub sigma_min: f64,
    /// Largest sigma (80).
    pub sigma_max: f64,
    /// Standard deviation of the data distribution (0.5).
    pub sigma_data: f64,
    /// Scale of the noise added back at each step (1).
    pub s_noise: f64,
    /// Karras ramp exponent (7).
    pub rho: f64,
    /// Clamp the denoised sample to `[-1, 1]` (true).
    pub clip_denoised: bool,
}

impl Default for ConsistencyConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 40,
            sigma_min: 0.002,
            sigma_max: 80.0,
            sigma_data: 0.5,
            s_noise: 1.0,
            rho: 7.0,
            clip_denoised: true,
        }
    }
}

/// Checks the sigma range, data sigma and rho shared by the EDM schedulers.
fn check_sigmas(sigma_min: f64, sigma_max: f64, sigma_data: f64, rho: f64) -> Result<()> {
    if !(sigma_min > 0.0 && sigma_min < sigma_max && sigma_max.is_finite()) {
        return Err(Error::invalid_argument(
            "sigma_min/sigma_max",
            format!("need 0 < sigma_min < sigma_max < inf, got {sigma_min} and {sigma_max}"),
        ));
    }
    if !(sigma_data > 0.0 && sigma_data.is_finite()) {
        return Err(Error::invalid_argument(
            "sigma_data",
            format!("must be positive, got {sigma_data}"),
        ));
    }
    if !(rho > 0.0 && rho.is_finite()) {
        return Err(Error::invalid_argument("rho", format!("must be positive, got {rho}")));
    }
    Ok(())
}

/// diffusers' `CMStochasticIterativeScheduler`: each step maps the sample to the clean-sample
/// estimate through the consistency model's boundary-condition scalings, then adds noise
/// back to the next sigma. Timesteps are `250 * ln(sigma)`; noise is drawn at every step when
/// there is more than one.
#[derive(Debug, Clone)]
pub struct ConsistencyScheduler {
    config: ConsistencyConfig,
    timesteps: Vec<f64>,
    sigmas: Vec<f32>,
    step_index: Option<usize>,
}

impl ConsistencyScheduler {
    /// A consistency-model scheduler.
    pub fn new(config: ConsistencyConfig) -> Result<Self> {
        let c = &config;
        check_sigmas(c.sigma_min, c.sigma_max, c.sigma_data, c.rho)?;
        if c.num_train_timesteps < 2 {
            return Err(Error::invalid_argument("num_train_timesteps", "must be at least 2"));
        }
        if !(c.s_noise.is_finite() && c.s_noise >= 0.0) {
            return Err(Error::invalid_argument("s_noise", "must be finite and >= 0"));
        }
        let sigmas =
            karras(&np_linspace(0.0, 1.0, c.num_train_timesteps), c.sigma_min, c.sigma_max, c.rho);
        let timesteps = sigmas.iter().map(|&s| Self::sigma_to_t(s)).collect();
        let sigmas = sigmas.iter().map(|&s| s as f32).collect();
        Ok(Self { config, timesteps, sigmas, step_index: None })
    }

    /// The configuration.
    pub fn config(&self) -> &ConsistencyConfig {
        &self.config
    }

    /// The sigmas of the current schedule, ending with `sigma_min`.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// The timestep the model is conditioned on for `sigma`: `1000 * 0.25 * ln(sigma)`.
    pub fn sigma_to_t(sigma: f64) -> f64 {
        1000.0 * 0.25 * (sigma + 1e-44).ln()
    }

    fn init_step_index(&mut self, timestep: f64) -> Result<usize> {
        init_step_index(&mut self.step_index, &self.timesteps, timestep)
    }
}

impl Scheduler for ConsistencyScheduler {
    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        let c = &self.config;
        let n = num_inference_steps;
        super::check_steps(n, c.num_train_timesteps)?;
        let ratio = c.num_train_timesteps / n;
        // The training indices, ascending, scaled to a [0, 1] ramp.
        let ramp: Vec<f64> =
            (0..n).map(|i| (i * ratio) as f64 / (c.num_train_timesteps - 1) as f64).collect();
        let sigmas = karras(&ramp, c.sigma_min, c.sigma_max, c.rho);
        self.timesteps = sigmas.iter().map(|&s| Self::sigma_to_t(s)).collect();
        self.sigmas = sigmas.iter().map(|&s| s as f32).chain([c.sigma_min as f32]).collect();
        self.step_index = None;
        Ok(())
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.config.sigma_max as f32
    }

    fn scale_model_input(&mut self, sample: Tensor<4>, timestep: f64) -> Result<Tensor<4>> {
        let i = self.init_step_index(timestep)?;
        let sigma = self.sigmas[i];
        let sd2 = (self.config.sigma_data * self.config.sigma_data) as f32;
        Ok(sample / (sigma * sigma + sd2).sqrt())
    }

    fn step(
        &mut self,
        model_output: Tensor<4>,
        timestep: f64,
        sample: Tensor<4>,
        noise: &mut dyn NoiseSource,
    ) -> Result<StepOutput> {
        same_shape(&sample, &model_output, "consistency step model_output")?;
        let c = &self.config;
        let i = match self.step_index {
            Some(i) => i,
            None => index_for_timestep(&self.timesteps, timestep)?,
        };
        if i + 1 >= self.sigmas.len() {
            return Err(schedule_finished());
        }
        let sigma = self.sigmas[i];
        let sigma_next = if i + 1 < c.num_train_timesteps {
            self.sigmas[i + 1]
        } else {
            self.sigmas[self.sigmas.len() - 1]
        };
        let (sigma_min, sd) = (c.sigma_min as f32, c.sigma_data as f32);
        let sd2 = (c.sigma_data * c.sigma_data) as f32;
        let c_skip = sd2 / ((sigma - sigma_min) * (sigma - sigma_min) + sd2);
        let c_out = (sigma - sigma_min) * sd / (sigma * sigma + sd2).sqrt();
        let denoised = model_output.clone() * c_out + sample * c_skip;
        let denoised = if c.clip_denoised { denoised.clamp(-1.0, 1.0) } else { denoised };

        let sigma_hat = sigma_next.clamp(sigma_min, c.sigma_max as f32);
        let scale = (sigma_hat * sigma_hat - (c.sigma_min * c.sigma_min) as f32).sqrt();
        let prev_sample = if self.timesteps.len() > 1 {
            let z = noise.noise(model_output.dims(), &model_output.device())? * c.s_noise as f32;
            denoised.clone() + z * scale
        } else {
            // diffusers adds zeros; the sum is the same values.
            denoised.clone()
        };
        self.step_index = Some(i + 1);
        Ok(StepOutput::new(prev_sample, None))
    }

    fn add_noise(
        &self,
        original: Tensor<4>,
        noise: Tensor<4>,
        timesteps: &[f64],
    ) -> Result<Tensor<4>> {
        super::euler::sigma_add_noise(&self.timesteps, &self.sigmas, original, noise, timesteps)
    }
}

/// How [`EdmEulerScheduler`] spaces its sigmas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigmaSchedule {
    /// The Karras et al. rho ramp.
    Karras,
    /// Evenly spaced in log-sigma.
    Exponential,
}

/// `EDMEulerScheduler`'s configuration, with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EdmEulerConfig {
    /// Smallest sigma (0.002).
    pub sigma_min: f64,
    /// Largest sigma (80).
    pub sigma_max: f64,
    /// Standard deviation of the data distribution (0.5).
    pub sigma_data: f64,
    /// How sigmas are spaced (Karras).
    pub sigma_schedule: SigmaSchedule,
    /// Steps of the training schedule (1000).
    pub num_train_timesteps: usize,
    /// Epsilon or v-prediction.
    pub prediction_type: PredictionType,
    /// Karras ramp exponent (7).
    pub rho: f64,
    /// The sigma after the last step (zero).
    pub final_sigmas_type: FinalSigmas,
}

impl Default for EdmEulerConfig {
    fn default() -> Self {
        Self {
            sigma_min: 0.002,
            sigma_max: 80.0,
            sigma_data: 0.5,
            sigma_schedule: SigmaSchedule::Karras,
            num_train_timesteps: 1000,
            prediction_type: PredictionType::Epsilon,
            rho: 7.0,
            final_sigmas_type: FinalSigmas::Zero,
        }
    }
}

/// diffusers' `EDMEulerScheduler` without churn: the model sees `c_in * sample` at timestep
/// `0.25 * ln(sigma)`, its output is preconditioned to a clean-sample estimate, and one Euler
/// step goes to the next sigma.
#[derive(Debug, Clone)]
pub struct EdmEulerScheduler {
    config: EdmEulerConfig,
    timesteps: Vec<f64>,
    sigmas: Vec<f32>,
    step_index: Option<usize>,
}

impl EdmEulerScheduler {
    /// An EDM Euler scheduler; `Sample` prediction is not an option of it.
    pub fn new(config: EdmEulerConfig) -> Result<Self> {
        check_sigmas(config.sigma_min, config.sigma_max, config.sigma_data, config.rho)?;
        if config.prediction_type == PredictionType::Sample {
            return Err(Error::unsupported(
                "scheduler option",
                "EDMEulerScheduler takes epsilon or v_prediction, not sample",
            ));
        }
        if config.num_train_timesteps < 2 {
            return Err(Error::invalid_argument("num_train_timesteps", "must be at least 2"));
        }
        let n = config.num_train_timesteps;
        let ramp: Vec<f64> = (0..=n).map(|i| i as f64 / n as f64).collect();
        let mut s = Self { config, timesteps: Vec::new(), sigmas: Vec::new(), step_index: None };
        s.set_sigmas(&ramp);
        Ok(s)
    }

    /// The configuration.
    pub fn config(&self) -> &EdmEulerConfig {
        &self.config
    }

    /// The sigmas of the current schedule, one more than the timesteps.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    fn set_sigmas(&mut self, ramp: &[f64]) {
        let c = &self.config;
        let sigmas: Vec<f32> = match c.sigma_schedule {
            SigmaSchedule::Karras => {
                karras(ramp, c.sigma_min, c.sigma_max, c.rho).iter().map(|&s| s as f32).collect()
            }
            SigmaSchedule::Exponential => {
                torch_linspace_f32(c.sigma_min.ln(), c.sigma_max.ln(), ramp.len())
                    .iter()
                    .rev()
                    .map(|l| l.exp())
                    .collect()
            }
        };
        self.timesteps = sigmas.iter().map(|s| (0.25 * s.ln()) as f64).collect();
        let last = match c.final_sigmas_type {
            FinalSigmas::Zero => 0.0,
            FinalSigmas::SigmaMin => sigmas[sigmas.len() - 1],
        };
        self.sigmas = sigmas.into_iter().chain([last]).collect();
        self.step_index = None;
    }

    fn init_step_index(&mut self, timestep: f64) -> Result<usize> {
        init_step_index(&mut self.step_index, &self.timesteps, timestep)
    }
}

impl Scheduler for EdmEulerScheduler {
    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        if num_inference_steps == 0 {
            return Err(Error::invalid_argument("num_inference_steps", "must be at least 1"));
        }
        self.set_sigmas(&torch_linspace_f64(0.0, 1.0, num_inference_steps));
        Ok(())
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        (self.config.sigma_max * self.config.sigma_max + 1.0).sqrt() as f32
    }

    fn scale_model_input(&mut self, sample: Tensor<4>, timestep: f64) -> Result<Tensor<4>> {
        let i = self.init_step_index(timestep)?;
        let sigma = self.sigmas[i];
        let sd2 = (self.config.sigma_data * self.config.sigma_data) as f32;
        Ok(sample * (1.0 / (sigma * sigma + sd2).sqrt()))
    }

    fn step(
        &mut self,
        model_output: Tensor<4>,
        timestep: f64,
        sample: Tensor<4>,
        _noise: &mut dyn NoiseSource,
    ) -> Result<StepOutput> {
        same_shape(&sample, &model_output, "EDM Euler step model_output")?;
        let i = self.init_step_index(timestep)?;
        let sigma_next = *self.sigmas.get(i + 1).ok_or_else(schedule_finished)?;
        let sigma_hat = self.sigmas[i];
        let sd = self.config.sigma_data as f32;
        let sd2 = (self.config.sigma_data * self.config.sigma_data) as f32;
        let c_skip = sd2 / (sigma_hat * sigma_hat + sd2);
        let signed = if self.config.prediction_type == PredictionType::VPrediction {
            -sigma_hat
        } else {
            sigma_hat
        };
        let c_out = signed * sd / (sigma_hat * sigma_hat + sd2).sqrt();
        let x0 = sample.clone() * c_skip + model_output * c_out;
        let derivative = (sample.clone() - x0.clone()) / sigma_hat;
        let prev_sample = sample + derivative * (sigma_next - sigma_hat);
        self.step_index = Some(i + 1);
        Ok(StepOutput::new(prev_sample, Some(x0)))
    }

    fn add_noise(
        &self,
        original: Tensor<4>,
        noise: Tensor<4>,
        timesteps: &[f64],
    ) -> Result<Tensor<4>> {
        let batch = add_noise_batch(&original, &noise, timesteps)?;
        let s = timesteps
            .iter()
            .map(|&t| index_for_timestep(&self.timesteps, t).map(|i| self.sigmas[i]))
            .collect::<Result<Vec<f32>>>()?;
        let device = original.device();
        Ok(original + noise * per_batch(s, batch, &device)?)
    }
}
