//! DPM-Solver++ multistep (Lu et al., "DPM-Solver++: Fast Solver for Guided Sampling of
//! Diffusion Probabilistic Models", <https://arxiv.org/abs/2211.01095>), after diffusers'
//! `scheduling_dpmsolver_multistep.py` with `algorithm_type="dpmsolver++"`.

use burn::tensor::Tensor;

use super::{
    BetaSchedule, FinalSigmas, NoiseSource, PredictionType, Scheduler, SchedulerConfig, StepOutput,
    TimestepSpacing, add_noise_batch, check_steps, interp_index, karras, np_arange_down,
    np_linspace, per_batch, same_shape, schedule_finished, sigma_to_t, threshold_sample,
    train_sigmas,
};
use crate::error::{Error, Result};

/// The second-order update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverType {
    /// The midpoint rule (diffusers' default).
    Midpoint,
    /// Heun's rule.
    Heun,
}

/// The options of `DPMSolverMultistepScheduler` beyond [`SchedulerConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct DpmSolverOptions {
    /// 1, 2 (recommended for guided sampling) or 3.
    pub solver_order: usize,
    /// The second-order rule.
    pub solver_type: SolverType,
    /// Use lower-order steps at the end (stabilises fewer than 15 steps).
    pub lower_order_final: bool,
    /// A first-order (Euler) final step whatever the step count.
    pub euler_at_final: bool,
    /// Timesteps whose log-SNR is below this are never used (`-inf`: none clipped).
    pub lambda_min_clipped: f64,
}

impl Default for DpmSolverOptions {
    /// diffusers' defaults: order 2, midpoint, lower order at the end.
    fn default() -> Self {
        Self {
            solver_order: 2,
            solver_type: SolverType::Midpoint,
            lower_order_final: true,
            euler_at_final: false,
            lambda_min_clipped: f64::NEG_INFINITY,
        }
    }
}

/// diffusers' `DPMSolverMultistepScheduler`, algorithm `dpmsolver++` (the data-prediction
/// form). Deterministic; it keeps the last `solver_order` clean-sample estimates.
#[derive(Debug, Clone)]
pub struct DpmSolverMultistepScheduler {
    config: SchedulerConfig,
    options: DpmSolverOptions,
    alphas_cumprod: Vec<f32>,
    lambdas: Vec<f32>,
    timesteps: Vec<f64>,
    sigmas: Vec<f32>,
    model_outputs: Vec<Option<Tensor<4>>>,
    lower_order_nums: usize,
    step_index: Option<usize>,
}

/// `alpha_t` and `sigma_t` for a sigma of the variance-exploding form.
fn alpha_sigma(sigma: f32) -> (f32, f32) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

impl DpmSolverMultistepScheduler {
    /// A DPM-Solver++ scheduler with [`DpmSolverOptions::default`].
    pub fn new(config: SchedulerConfig) -> Result<Self> {
        Self::with_options(config, DpmSolverOptions::default())
    }

    /// A DPM-Solver++ scheduler with the given options.
    pub fn with_options(config: SchedulerConfig, options: DpmSolverOptions) -> Result<Self> {
        config.reject(config.clip_sample, "DPMSolverMultistepScheduler", "clip_sample")?;
        if !(1..=3).contains(&options.solver_order) {
            return Err(Error::invalid_argument(
                "solver_order",
                format!("must be 1, 2 or 3, got {}", options.solver_order),
            ));
        }
        if options.lambda_min_clipped.is_nan() {
            return Err(Error::invalid_argument("lambda_min_clipped", "is NaN"));
        }
        let mut alphas_cumprod = config.alphas_cumprod()?;
        if config.rescale_betas_zero_snr
            && let Some(last) = alphas_cumprod.last_mut()
        {
            *last = 2f32.powi(-24);
        }
        let lambdas =
            alphas_cumprod.iter().map(|a| a.sqrt().ln() - (1.0 - a).sqrt().ln()).collect();
        let sigmas = train_sigmas(&alphas_cumprod);
        let n = config.num_train_timesteps;
        let timesteps = np_linspace(0.0, (n - 1) as f64, n).into_iter().rev().collect();
        let model_outputs = vec![None; options.solver_order];
        Ok(Self {
            config,
            options,
            alphas_cumprod,
            lambdas,
            timesteps,
            sigmas,
            model_outputs,
            lower_order_nums: 0,
            step_index: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The solver options.
    pub fn options(&self) -> &DpmSolverOptions {
        &self.options
    }

    /// The sigmas of the current schedule, one more than the timesteps.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// The model output turned into a clean-sample estimate (`convert_model_output`).
    fn convert_model_output(
        &self,
        model_output: Tensor<4>,
        sample: Tensor<4>,
        i: usize,
    ) -> Result<Tensor<4>> {
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[i]);
        let x0 = match self.config.prediction_type {
            PredictionType::Epsilon => (sample - model_output * sigma_t) / alpha_t,
            PredictionType::Sample => model_output,
            PredictionType::VPrediction => sample * alpha_t - model_output * sigma_t,
        };
        if self.config.thresholding {
            threshold_sample(
                x0,
                self.config.dynamic_thresholding_ratio,
                self.config.sample_max_value,
            )
        } else {
            Ok(x0)
        }
    }

    fn first_order(&self, m0: Tensor<4>, sample: Tensor<4>, i: usize) -> Tensor<4> {
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[i + 1]);
        let (alpha_s, sigma_s) = alpha_sigma(self.sigmas[i]);
        let h = (alpha_t.ln() - sigma_t.ln()) - (alpha_s.ln() - sigma_s.ln());
        sample * (sigma_t / sigma_s) - m0 * (alpha_t * ((-h).exp() - 1.0))
    }

    fn second_order(&self, m0: Tensor<4>, m1: Tensor<4>, sample: Tensor<4>, i: usize) -> Tensor<4> {
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[i + 1]);
        let (alpha_s0, sigma_s0) = alpha_sigma(self.sigmas[i]);
        let (alpha_s1, sigma_s1) = alpha_sigma(self.sigmas[i - 1]);
        let lambda_t = alpha_t.ln() - sigma_t.ln();
        let lambda_s0 = alpha_s0.ln() - sigma_s0.ln();
        let lambda_s1 = alpha_s1.ln() - sigma_s1.ln();
        let (h, h_0) = (lambda_t - lambda_s0, lambda_s0 - lambda_s1);
        let r0 = h_0 / h;
        let d1 = (m0.clone() - m1) * (1.0 / r0);
        let e = (-h).exp() - 1.0;
        let x = sample * (sigma_t / sigma_s0) - m0 * (alpha_t * e);
        match self.options.solver_type {
            SolverType::Midpoint => x - d1 * (0.5 * (alpha_t * e)),
            SolverType::Heun => x + d1 * (alpha_t * (e / h + 1.0)),
        }
    }

    fn third_order(&self, m: [Tensor<4>; 3], sample: Tensor<4>, i: usize) -> Tensor<4> {
        let [m0, m1, m2] = m;
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[i + 1]);
        let (alpha_s0, sigma_s0) = alpha_sigma(self.sigmas[i]);
        let (alpha_s1, sigma_s1) = alpha_sigma(self.sigmas[i - 1]);
        let (alpha_s2, sigma_s2) = alpha_sigma(self.sigmas[i - 2]);
        let lambda_t = alpha_t.ln() - sigma_t.ln();
        let lambda_s0 = alpha_s0.ln() - sigma_s0.ln();
        let lambda_s1 = alpha_s1.ln() - sigma_s1.ln();
        let lambda_s2 = alpha_s2.ln() - sigma_s2.ln();
        let (h, h_0, h_1) = (lambda_t - lambda_s0, lambda_s0 - lambda_s1, lambda_s1 - lambda_s2);
        let (r0, r1) = (h_0 / h, h_1 / h);
        let d1_0 = (m0.clone() - m1.clone()) * (1.0 / r0);
        let d1_1 = (m1 - m2) * (1.0 / r1);
        let d1 = d1_0.clone() + (d1_0.clone() - d1_1.clone()) * (r0 / (r0 + r1));
        let d2 = (d1_0 - d1_1) * (1.0 / (r0 + r1));
        let e = (-h).exp() - 1.0;
        sample * (sigma_t / sigma_s0) - m0 * (alpha_t * e) + d1 * (alpha_t * (e / h + 1.0))
            - d2 * (alpha_t * ((e + h) / (h * h) - 0.5))
    }

    /// DPM-Solver's `index_for_timestep`: a timestep not in the schedule means the last step.
    fn index_for(&self, timestep: f64) -> usize {
        let hits: Vec<usize> = self
            .timesteps
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == timestep)
            .map(|(i, _)| i)
            .collect();
        match hits.len() {
            0 => self.timesteps.len() - 1,
            1 => hits[0],
            _ => hits[1],
        }
    }
}

impl Scheduler for DpmSolverMultistepScheduler {
    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        let c = &self.config;
        let n = num_inference_steps;
        check_steps(n, c.num_train_timesteps)?;
        // searchsorted(flip(lambda_t), lambda_min_clipped): how many log-SNRs are below it.
        let clipped =
            self.lambdas.iter().filter(|&&l| (l as f64) < self.options.lambda_min_clipped).count();
        let last_timestep = c.num_train_timesteps - clipped;
        if last_timestep == 0 {
            return Err(Error::invalid_argument("lambda_min_clipped", "clips every timestep"));
        }
        let mut timesteps: Vec<f64> = match c.timestep_spacing {
            TimestepSpacing::Linspace => {
                let v = np_linspace(0.0, (last_timestep - 1) as f64, n + 1);
                v.iter().rev().take(n).map(|t| t.round_ties_even()).collect()
            }
            TimestepSpacing::Leading => {
                let ratio = last_timestep / (n + 1);
                (1..=n).rev().map(|i| (i * ratio + c.steps_offset) as f64).collect()
            }
            TimestepSpacing::Trailing => {
                let ratio = c.num_train_timesteps as f64 / n as f64;
                np_arange_down(last_timestep as f64, 0.0, -ratio)
                    .iter()
                    .map(|t| t.round_ties_even() - 1.0)
                    .collect()
            }
        };
        let train = train_sigmas(&self.alphas_cumprod);
        let sigmas: Vec<f64> = if c.use_karras_sigmas {
            let log_sigmas: Vec<f32> = train.iter().map(|s| s.ln()).collect();
            let (min, max) = (train[0] as f64, train[train.len() - 1] as f64);
            let sigmas = karras(&np_linspace(0.0, 1.0, n), min, max, 7.0);
            timesteps = sigmas
                .iter()
                .map(|&s| {
                    let t = sigma_to_t(s, &log_sigmas);
                    // Cast to int64 as diffusers does: rounded, except for the cosine schedule.
                    if c.beta_schedule == BetaSchedule::SquaredcosCapV2 {
                        t.trunc()
                    } else {
                        t.round_ties_even()
                    }
                })
                .collect();
            sigmas
        } else {
            timesteps.iter().map(|&t| interp_index(t, &train)).collect()
        };
        for &t in &timesteps {
            if t < 0.0 || t >= c.num_train_timesteps as f64 {
                return Err(Error::invalid_argument(
                    "num_inference_steps",
                    format!("{n} steps give timestep {t}, outside the training range"),
                ));
            }
        }
        let last = match c.final_sigmas_type {
            FinalSigmas::Zero => 0.0,
            FinalSigmas::SigmaMin => {
                let a = self.alphas_cumprod[0];
                ((1.0 - a) / a).sqrt()
            }
        };
        self.sigmas = sigmas.iter().map(|&s| s as f32).chain([last]).collect();
        self.timesteps = timesteps;
        self.model_outputs = vec![None; self.options.solver_order];
        self.lower_order_nums = 0;
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
        _noise: &mut dyn NoiseSource,
    ) -> Result<StepOutput> {
        same_shape(&sample, &model_output, "DPM-Solver step model_output")?;
        let i = match self.step_index {
            Some(i) => i,
            None => self.index_for(timestep),
        };
        let len = self.timesteps.len();
        if i >= len || i + 1 >= self.sigmas.len() {
            return Err(schedule_finished());
        }
        let o = &self.options;
        let lower_order_final = i == len - 1
            && (o.euler_at_final
                || (o.lower_order_final && len < 15)
                || self.config.final_sigmas_type == FinalSigmas::Zero);
        let lower_order_second = i + 2 == len && o.lower_order_final && len < 15;

        let x0 = self.convert_model_output(model_output, sample.clone(), i)?;
        self.model_outputs.rotate_left(1);
        let last = self.model_outputs.len() - 1;
        self.model_outputs[last] = Some(x0.clone());

        let output = |k: usize| -> Result<Tensor<4>> {
            self.model_outputs[last - k]
                .clone()
                .ok_or_else(|| Error::invalid_argument("step", "missing earlier model output"))
        };
        let order = o.solver_order;
        let prev_sample = if order == 1 || self.lower_order_nums < 1 || lower_order_final {
            self.first_order(x0, sample, i)
        } else if order == 2 || self.lower_order_nums < 2 || lower_order_second {
            self.second_order(output(0)?, output(1)?, sample, i)
        } else {
            self.third_order([output(0)?, output(1)?, output(2)?], sample, i)
        };
        if self.lower_order_nums < order {
            self.lower_order_nums += 1;
        }
        self.step_index = Some(i + 1);
        Ok(StepOutput::new(prev_sample, None))
    }

    fn add_noise(
        &self,
        original: Tensor<4>,
        noise: Tensor<4>,
        timesteps: &[f64],
    ) -> Result<Tensor<4>> {
        let batch = add_noise_batch(&original, &noise, timesteps)?;
        let (mut a, mut s) = (Vec::new(), Vec::new());
        for &t in timesteps {
            let (alpha, sigma) = alpha_sigma(self.sigmas[self.index_for(t)]);
            a.push(alpha);
            s.push(sigma);
        }
        let device = original.device();
        Ok(original * per_batch(a, batch, &device)? + noise * per_batch(s, batch, &device)?)
    }
}
