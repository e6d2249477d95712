//! Euler's method on the probability-flow ODE in sigma space (Karras et al., "Elucidating the
//! Design Space of Diffusion-Based Generative Models", <https://arxiv.org/abs/2206.00364>,
//! Algorithm 2 without churn), after diffusers' `scheduling_euler_discrete.py`.

use burn::tensor::Tensor;

use super::{
    FinalSigmas, NoiseSource, PredictionType, Scheduler, SchedulerConfig, StepOutput,
    TimestepSpacing, add_noise_batch, check_steps, float_timesteps, index_for_timestep,
    init_step_index, interp_index, karras, np_linspace, per_batch, same_shape, schedule_finished,
    sigma_to_t, train_sigmas,
};
use crate::error::Result;

/// diffusers' `EulerDiscreteScheduler` (discrete timesteps, linear interpolation, no churn).
#[derive(Debug, Clone)]
pub struct EulerDiscreteScheduler {
    config: SchedulerConfig,
    alphas_cumprod: Vec<f32>,
    timesteps: Vec<f64>,
    sigmas: Vec<f32>,
    step_index: Option<usize>,
}

/// The alphas product of the sigma schedulers: with zero terminal SNR the last one is set to
/// 2^-24 so that its sigma stays finite, as diffusers does.
pub(super) fn sigma_alphas_cumprod(config: &SchedulerConfig) -> Result<Vec<f32>> {
    let mut alphas_cumprod = config.alphas_cumprod()?;
    if config.rescale_betas_zero_snr
        && let Some(last) = alphas_cumprod.last_mut()
    {
        *last = 2f32.powi(-24);
    }
    Ok(alphas_cumprod)
}

/// Inference sigmas (`f64`, before the final sigma) and timesteps for Euler and Heun: the
/// training sigmas interpolated at the spaced timesteps, or the Karras ramp between their ends
/// with timesteps mapped back from sigma.
pub(super) fn inference_sigmas(
    config: &SchedulerConfig,
    alphas_cumprod: &[f32],
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut timesteps = float_timesteps(config, n);
    let train = train_sigmas(alphas_cumprod);
    let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| interp_index(t, &train)).collect();
    if config.use_karras_sigmas {
        let log_sigmas: Vec<f32> = train.iter().map(|s| s.ln()).collect();
        sigmas = karras(&np_linspace(0.0, 1.0, n), sigmas[n - 1], sigmas[0], 7.0);
        timesteps = sigmas.iter().map(|&s| sigma_to_t(s, &log_sigmas) as f32 as f64).collect();
    }
    (sigmas, timesteps)
}

/// `init_noise_sigma` of the sigma schedulers: the largest sigma, or `sqrt(max^2 + 1)` for
/// `Leading` spacing.
pub(super) fn sigma_init_noise(config: &SchedulerConfig, sigmas: &[f32]) -> f32 {
    let max = sigmas.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    match config.timestep_spacing {
        TimestepSpacing::Linspace | TimestepSpacing::Trailing => max,
        TimestepSpacing::Leading => (max * max + 1.0).sqrt(),
    }
}

/// The clean-sample estimate of the sigma schedulers for a model output at `sigma`.
pub(super) fn sigma_x0(
    prediction_type: PredictionType,
    model_output: Tensor<4>,
    sample: Tensor<4>,
    sigma: f32,
) -> Tensor<4> {
    match prediction_type {
        PredictionType::Epsilon => sample - model_output * sigma,
        PredictionType::VPrediction => {
            let var = sigma * sigma + 1.0;
            model_output * (-sigma / var.sqrt()) + sample / var
        }
        PredictionType::Sample => model_output,
    }
}

/// `add_noise` of the sigma schedulers: `original + noise * sigma(t)`.
pub(super) fn sigma_add_noise(
    schedule: &[f64],
    sigmas: &[f32],
    original: Tensor<4>,
    noise: Tensor<4>,
    timesteps: &[f64],
) -> Result<Tensor<4>> {
    let batch = add_noise_batch(&original, &noise, timesteps)?;
    let s = timesteps
        .iter()
        .map(|&t| index_for_timestep(schedule, t).map(|i| sigmas[i]))
        .collect::<Result<Vec<f32>>>()?;
    let device = original.device();
    Ok(original + noise * per_batch(s, batch, &device)?)
}

impl EulerDiscreteScheduler {
    /// An Euler scheduler; `config.clip_sample` and thresholding are not options of it.
    pub fn new(config: SchedulerConfig) -> Result<Self> {
        config.reject(config.clip_sample, "EulerDiscreteScheduler", "clip_sample")?;
        config.reject(config.thresholding, "EulerDiscreteScheduler", "thresholding")?;
        let alphas_cumprod = sigma_alphas_cumprod(&config)?;
        let mut sigmas: Vec<f32> = train_sigmas(&alphas_cumprod).into_iter().rev().collect();
        sigmas.push(0.0);
        let n = config.num_train_timesteps;
        let timesteps =
            np_linspace(0.0, (n - 1) as f64, n).iter().rev().map(|&t| t as f32 as f64).collect();
        Ok(Self { config, alphas_cumprod, timesteps, sigmas, step_index: None })
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The sigmas of the current schedule, one more than the timesteps (the final sigma).
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    fn init_step_index(&mut self, timestep: f64) -> Result<usize> {
        init_step_index(&mut self.step_index, &self.timesteps, timestep)
    }
}

impl Scheduler for EulerDiscreteScheduler {
    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        check_steps(num_inference_steps, self.config.num_train_timesteps)?;
        let (sigmas, timesteps) =
            inference_sigmas(&self.config, &self.alphas_cumprod, num_inference_steps);
        let last = match self.config.final_sigmas_type {
            FinalSigmas::Zero => 0.0,
            FinalSigmas::SigmaMin => {
                let a = self.alphas_cumprod[0];
                ((1.0 - a) / a).sqrt()
            }
        };
        self.sigmas = sigmas.iter().map(|&s| s as f32).chain([last]).collect();
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
        _noise: &mut dyn NoiseSource,
    ) -> Result<StepOutput> {
        same_shape(&sample, &model_output, "Euler step model_output")?;
        let i = self.init_step_index(timestep)?;
        let sigma_next = *self.sigmas.get(i + 1).ok_or_else(schedule_finished)?;
        // No churn (s_churn = 0): sigma_hat = sigma.
        let sigma_hat = self.sigmas[i];
        let x0 = sigma_x0(self.config.prediction_type, model_output, sample.clone(), sigma_hat);
        let derivative = (sample.clone() - x0.clone()) / sigma_hat;
        let dt = sigma_next - sigma_hat;
        let prev_sample = sample + derivative * dt;
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
