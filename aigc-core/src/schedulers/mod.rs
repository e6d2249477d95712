//! Diffusion schedulers with the diffusers contract.
//!
//! A scheduler turns a denoiser's output at one timestep into the sample for the next. Every
//! scheduler here implements [`Scheduler`], which mirrors diffusers' `SchedulerMixin`:
//! [`set_timesteps`](Scheduler::set_timesteps), [`timesteps`](Scheduler::timesteps),
//! [`init_noise_sigma`](Scheduler::init_noise_sigma),
//! [`scale_model_input`](Scheduler::scale_model_input), [`step`](Scheduler::step) and
//! [`add_noise`](Scheduler::add_noise). Options (beta schedule, prediction type, timestep
//! spacing, Karras sigmas) are values of [`SchedulerConfig`], not types, and each scheduler
//! follows its diffusers 0.42 source line by line, including which values are `f32` and which
//! `f64`, so that a full loop gives the same samples as diffusers to about 1e-6 of their
//! magnitude (`tests/schedulers.rs` asserts 1e-4 against fixtures from
//! `tools/scheduler_golden.py`).
//!
//! | scheduler | diffusers class | file |
//! |---|---|---|
//! | [`DdpmScheduler`] | `DDPMScheduler` | `ddpm.rs` |
//! | [`DdimScheduler`] | `DDIMScheduler` | `ddim.rs` |
//! | [`EulerDiscreteScheduler`] | `EulerDiscreteScheduler` | `euler.rs` |
//! | [`EulerAncestralScheduler`] | `EulerAncestralDiscreteScheduler` | `euler_ancestral.rs` |
//! | [`HeunDiscreteScheduler`] | `HeunDiscreteScheduler` | `heun.rs` |
//! | [`DpmSolverMultistepScheduler`] | `DPMSolverMultistepScheduler` (dpmsolver++) | `dpm_solver.rs` |
//! | [`LcmScheduler`] | `LCMScheduler` | `lcm.rs` |
//! | [`ConsistencyScheduler`], [`EdmEulerScheduler`] | `CMStochasticIterativeScheduler`, `EDMEulerScheduler` | `edm.rs` |
//!
//! Schedulers that draw noise take it from a [`NoiseSource`]: [`SeededNoise`] for a
//! reproducible run, [`ReplayNoise`] to replay noise drawn elsewhere (diffusers' own draws,
//! in the parity tests).
//!
//! ```
//! use aigc_core::burn::tensor::{Tensor, TensorData};
//! use aigc_core::schedulers::{EulerDiscreteScheduler, Scheduler, SchedulerConfig, SeededNoise};
//!
//! let device = aigc_core::parse_device("flex")?;
//! let mut scheduler = EulerDiscreteScheduler::new(SchedulerConfig::euler())?;
//! scheduler.set_timesteps(4)?;
//! let mut noise = SeededNoise::new(42);
//! let mut sample = noise.randn([1, 1, 2, 2], &device) * scheduler.init_noise_sigma();
//! for t in scheduler.timesteps().to_vec() {
//!     let input = scheduler.scale_model_input(sample.clone(), t)?;
//!     let model_output = input * 0.1; // the denoiser's prediction
//!     sample = scheduler.step(model_output, t, sample, &mut noise)?.prev_sample;
//! }
//! assert_eq!(sample.dims(), [1, 1, 2, 2]);
//! # Ok::<(), aigc_core::Error>(())
//! ```

use std::collections::VecDeque;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::sampling::Xoshiro256StarStar;

mod ddim;
mod ddpm;
mod dpm_solver;
mod edm;
mod euler;
mod euler_ancestral;
mod heun;
mod lcm;

pub use ddim::DdimScheduler;
pub use ddpm::{DdpmScheduler, VarianceType};
pub use dpm_solver::{DpmSolverMultistepScheduler, DpmSolverOptions, SolverType};
pub use edm::{
    ConsistencyConfig, ConsistencyScheduler, EdmEulerConfig, EdmEulerScheduler, SigmaSchedule,
};
pub use euler::EulerDiscreteScheduler;
pub use euler_ancestral::EulerAncestralScheduler;
pub use heun::HeunDiscreteScheduler;
pub use lcm::LcmScheduler;

/// How the betas (per-step noise variances) are laid out over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BetaSchedule {
    /// `linspace(beta_start, beta_end)` (diffusers `"linear"`).
    Linear,
    /// `linspace(sqrt(beta_start), sqrt(beta_end))^2`, Stable Diffusion's schedule
    /// (`"scaled_linear"`).
    ScaledLinear,
    /// The cosine schedule of Nichol and Dhariwal, betas capped at 0.999
    /// (`"squaredcos_cap_v2"`).
    SquaredcosCapV2,
}

/// What the denoiser predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionType {
    /// The added noise (`"epsilon"`).
    Epsilon,
    /// The velocity `sqrt(alpha) * noise - sqrt(1 - alpha) * sample` (`"v_prediction"`).
    VPrediction,
    /// The clean sample itself (`"sample"`).
    Sample,
}

/// How inference timesteps are picked from the training range (Table 2 of "Common Diffusion
/// Noise Schedules and Sample Steps are Flawed", <https://arxiv.org/abs/2305.08891>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestepSpacing {
    /// Evenly spaced from 0 to `num_train_timesteps - 1`, both included.
    Linspace,
    /// Multiples of `num_train_timesteps / steps` from 0, plus `steps_offset`.
    Leading,
    /// Multiples of `num_train_timesteps / steps` down from `num_train_timesteps`, minus one.
    Trailing,
}

/// The sigma appended after the last inference sigma.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalSigmas {
    /// Zero: the last step lands on a clean sample.
    Zero,
    /// The smallest training sigma.
    SigmaMin,
}

/// The configuration the beta-based schedulers share, with diffusers' field names.
///
/// Each scheduler has a constructor giving its own diffusers defaults
/// ([`SchedulerConfig::ddpm`], [`SchedulerConfig::euler`], ...); [`Default`] is DDPM's. A
/// scheduler given an option it does not have (Karras sigmas for DDPM, clipping for Euler)
/// returns [`Error::Unsupported`] rather than ignoring it.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// Number of diffusion steps the model was trained with.
    pub num_train_timesteps: usize,
    /// First beta of the schedule.
    pub beta_start: f64,
    /// Last beta of the schedule.
    pub beta_end: f64,
    /// How betas go from `beta_start` to `beta_end`.
    pub beta_schedule: BetaSchedule,
    /// What the model predicts.
    pub prediction_type: PredictionType,
    /// How inference timesteps are spaced.
    pub timestep_spacing: TimestepSpacing,
    /// Added to `Leading` timesteps (Stable Diffusion uses 1).
    pub steps_offset: usize,
    /// Clamp the predicted clean sample to `[-clip_sample_range, clip_sample_range]`.
    pub clip_sample: bool,
    /// The clamp bound when `clip_sample` is set.
    pub clip_sample_range: f64,
    /// Imagen's dynamic thresholding of the predicted clean sample (wins over `clip_sample`).
    pub thresholding: bool,
    /// The quantile of absolute values that dynamic thresholding clamps to.
    pub dynamic_thresholding_ratio: f64,
    /// The largest threshold dynamic thresholding uses.
    pub sample_max_value: f64,
    /// DDIM and LCM: the alpha product "before" the first timestep is 1 (else `alphas_cumprod[0]`).
    pub set_alpha_to_one: bool,
    /// Euler, Heun, DPM-Solver: sigmas on the Karras et al. (2022) rho=7 ramp.
    pub use_karras_sigmas: bool,
    /// Rescale betas to zero terminal SNR (arXiv 2305.08891, Algorithm 1).
    pub rescale_betas_zero_snr: bool,
    /// Euler and DPM-Solver: the sigma after the last step.
    pub final_sigmas_type: FinalSigmas,
}

impl Default for SchedulerConfig {
    /// diffusers' `DDPMScheduler` defaults.
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            prediction_type: PredictionType::Epsilon,
            timestep_spacing: TimestepSpacing::Leading,
            steps_offset: 0,
            clip_sample: true,
            clip_sample_range: 1.0,
            thresholding: false,
            dynamic_thresholding_ratio: 0.995,
            sample_max_value: 1.0,
            set_alpha_to_one: true,
            use_karras_sigmas: false,
            rescale_betas_zero_snr: false,
            final_sigmas_type: FinalSigmas::Zero,
        }
    }
}

impl SchedulerConfig {
    /// `DDPMScheduler`'s defaults.
    pub fn ddpm() -> Self {
        Self::default()
    }

    /// `DDIMScheduler`'s defaults (the same as DDPM's).
    pub fn ddim() -> Self {
        Self::default()
    }

    /// `EulerDiscreteScheduler`'s defaults.
    pub fn euler() -> Self {
        Self { timestep_spacing: TimestepSpacing::Linspace, clip_sample: false, ..Self::default() }
    }

    /// `EulerAncestralDiscreteScheduler`'s defaults.
    pub fn euler_ancestral() -> Self {
        Self::euler()
    }

    /// `HeunDiscreteScheduler`'s defaults (note its own beta range).
    pub fn heun() -> Self {
        Self { beta_start: 0.00085, beta_end: 0.012, ..Self::euler() }
    }

    /// `DPMSolverMultistepScheduler`'s defaults.
    pub fn dpm_solver() -> Self {
        Self::euler()
    }

    /// `LCMScheduler`'s defaults (Stable Diffusion's scaled-linear betas).
    pub fn lcm() -> Self {
        Self {
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            clip_sample: false,
            ..Self::default()
        }
    }

    /// Checks what every beta-based scheduler needs.
    fn validate(&self) -> Result<()> {
        if self.num_train_timesteps < 2 {
            return Err(Error::invalid_argument(
                "num_train_timesteps",
                format!("must be at least 2, got {}", self.num_train_timesteps),
            ));
        }
        let finite =
            [self.beta_start, self.beta_end, self.clip_sample_range, self.sample_max_value];
        if finite.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid_argument("config", "beta and clip values must be finite"));
        }
        if !(self.beta_start > 0.0 && self.beta_start <= self.beta_end && self.beta_end < 1.0) {
            return Err(Error::invalid_argument(
                "beta_start/beta_end",
                format!(
                    "need 0 < beta_start <= beta_end < 1, got {} and {}",
                    self.beta_start, self.beta_end
                ),
            ));
        }
        if self.thresholding
            && !(self.dynamic_thresholding_ratio > 0.0 && self.dynamic_thresholding_ratio <= 1.0)
        {
            return Err(Error::invalid_argument(
                "dynamic_thresholding_ratio",
                format!("must be in (0, 1], got {}", self.dynamic_thresholding_ratio),
            ));
        }
        Ok(())
    }

    /// `Err(Unsupported)` naming `scheduler` when `set` is true.
    fn reject(&self, set: bool, scheduler: &str, option: &str) -> Result<()> {
        if set {
            return Err(Error::unsupported(
                "scheduler option",
                format!("{scheduler} has no `{option}` option"),
            ));
        }
        Ok(())
    }

    /// The betas, as `f32` like diffusers' `self.betas`, rescaled to zero terminal SNR when set.
    pub fn betas(&self) -> Result<Vec<f32>> {
        self.validate()?;
        let n = self.num_train_timesteps;
        let betas = match self.beta_schedule {
            BetaSchedule::Linear => torch_linspace_f32(self.beta_start, self.beta_end, n),
            BetaSchedule::ScaledLinear => {
                torch_linspace_f32(self.beta_start.sqrt(), self.beta_end.sqrt(), n)
                    .into_iter()
                    .map(|b| b * b)
                    .collect()
            }
            BetaSchedule::SquaredcosCapV2 => betas_for_alpha_bar(n, 0.999),
        };
        Ok(if self.rescale_betas_zero_snr { rescale_zero_terminal_snr(&betas) } else { betas })
    }

    /// `cumprod(1 - betas)` as diffusers computes it (accumulated in `f64`, stored as `f32`).
    pub fn alphas_cumprod(&self) -> Result<Vec<f32>> {
        let alphas: Vec<f32> = self.betas()?.iter().map(|b| 1.0 - b).collect();
        Ok(cumprod(&alphas))
    }
}

/// What one [`Scheduler::step`] returns.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The sample at the next (less noisy) timestep.
    pub prev_sample: Tensor<4>,
    /// The scheduler's estimate of the clean sample, where diffusers returns one.
    pub pred_original_sample: Option<Tensor<4>>,
    /// LCM's `denoised`: the consistency-model estimate of the clean sample, which is the
    /// image to decode after the last step.
    pub denoised: Option<Tensor<4>>,
}

impl StepOutput {
    fn new(prev_sample: Tensor<4>, pred_original_sample: Option<Tensor<4>>) -> Self {
        Self { prev_sample, pred_original_sample, denoised: None }
    }
}

/// A source of standard normal noise for the schedulers that draw some.
///
/// Schedulers draw only when diffusers does (DDPM not at `t = 0`, LCM not at the last step,
/// ...), one tensor of the sample's shape per draw, so replaying diffusers' draws in order
/// reproduces its run.
pub trait NoiseSource {
    /// A tensor of `shape` on `device` with independent standard normal values.
    fn noise(&mut self, shape: [usize; 4], device: &Device) -> Result<Tensor<4>>;
}

/// Seeded Gaussian noise: xoshiro256** (see [`Xoshiro256StarStar`]) through Box-Muller.
///
/// The same seed gives the same values on every platform and backend.
#[derive(Debug, Clone)]
pub struct SeededNoise {
    rng: Xoshiro256StarStar,
    spare: Option<f64>,
}

impl SeededNoise {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rng: Xoshiro256StarStar::new(seed), spare: None }
    }

    /// The next standard normal value.
    pub fn next_normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1: f64 = 1.0 - self.rng.next_f64();
        let u2 = self.rng.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }

    /// A tensor of `shape` on `device` filled with standard normal values.
    pub fn randn(&mut self, shape: [usize; 4], device: &Device) -> Tensor<4> {
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| self.next_normal() as f32).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}

impl NoiseSource for SeededNoise {
    fn noise(&mut self, shape: [usize; 4], device: &Device) -> Result<Tensor<4>> {
        Ok(self.randn(shape, device))
    }
}

/// Noise given in advance, handed out in order: for reproducing a run whose draws were
/// recorded elsewhere. Running out, or a draw of the wrong size, is an error.
#[derive(Debug, Clone, Default)]
pub struct ReplayNoise {
    queue: VecDeque<Vec<f32>>,
}

impl ReplayNoise {
    /// A source that returns `draws` in order, each in row-major order.
    pub fn new(draws: impl IntoIterator<Item = Vec<f32>>) -> Self {
        Self { queue: draws.into_iter().collect() }
    }

    /// How many draws are left.
    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
}

impl NoiseSource for ReplayNoise {
    fn noise(&mut self, shape: [usize; 4], device: &Device) -> Result<Tensor<4>> {
        let values = self
            .queue
            .pop_front()
            .ok_or_else(|| Error::invalid_argument("noise", "the replayed noise ran out"))?;
        let n: usize = shape.iter().product();
        if values.len() != n {
            return Err(Error::Shape {
                context: "replayed scheduler noise".into(),
                expected: shape.to_vec(),
                found: vec![values.len()],
            });
        }
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }
}

/// The diffusers scheduler contract.
///
/// A denoising loop is, for every `t` in [`timesteps`](Self::timesteps): scale the sample
/// with [`scale_model_input`](Self::scale_model_input), run the model on the scaled sample at
/// `t`, and [`step`](Self::step) with the model's output and the unscaled sample. The first
/// sample is standard normal noise times [`init_noise_sigma`](Self::init_noise_sigma).
pub trait Scheduler {
    /// Chooses `num_inference_steps` timesteps and resets the step state. Zero steps, or more
    /// than the scheduler can take, is [`Error::InvalidArgument`].
    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()>;

    /// The timesteps of the loop, in order (descending noise). Heun repeats every timestep
    /// but the first, because it calls the model twice per step. Euler-family timesteps are
    /// fractional; they are `f32` values held as `f64`.
    fn timesteps(&self) -> &[f64];

    /// The standard deviation of the initial noise (1 unless the scheduler works in sigmas).
    fn init_noise_sigma(&self) -> f32 {
        1.0
    }

    /// Scales the sample before the model sees it at `timestep` (the identity unless the
    /// scheduler works in sigmas, as for DDPM, DDIM, DPM-Solver and LCM). `timestep` must be
    /// one of [`timesteps`](Self::timesteps).
    fn scale_model_input(&mut self, sample: Tensor<4>, timestep: f64) -> Result<Tensor<4>> {
        let _ = timestep;
        Ok(sample)
    }

    /// One step back from `timestep`, given the model's output on the (scaled) sample.
    /// Noise, where the scheduler draws any, comes from `noise`.
    fn step(
        &mut self,
        model_output: Tensor<4>,
        timestep: f64,
        sample: Tensor<4>,
        noise: &mut dyn NoiseSource,
    ) -> Result<StepOutput>;

    /// Noises clean samples to the given timesteps, one per batch entry (or one for all):
    /// what training does, and what image-to-image starts from.
    fn add_noise(
        &self,
        original: Tensor<4>,
        noise: Tensor<4>,
        timesteps: &[f64],
    ) -> Result<Tensor<4>>;

    /// Model calls per step in diffusers' sense (2 for Heun).
    fn order(&self) -> usize {
        1
    }
}

// ---------------------------------------------------------------------------------------------
// Schedules: the numerics diffusers, torch and numpy use, reproduced.

/// `torch.linspace(start, end, n, dtype=float32)`: the step in `f32`, the first half counted up
/// from `start`, the second half down from `end`.
pub(crate) fn torch_linspace_f32(start: f64, end: f64, n: usize) -> Vec<f32> {
    let (s, e) = (start as f32, end as f32);
    if n == 1 {
        return vec![s];
    }
    let step = (e - s) / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| if i < half { s + step * i as f32 } else { e - step * (n - 1 - i) as f32 })
        .collect()
}

/// `torch.linspace(start, end, n, dtype=float64)`.
pub(crate) fn torch_linspace_f64(start: f64, end: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f64;
    let half = n / 2;
    (0..n)
        .map(|i| if i < half { start + step * i as f64 } else { end - step * (n - 1 - i) as f64 })
        .collect()
}

/// `numpy.linspace(start, stop, n)` (endpoint included), in `f64`.
pub(crate) fn np_linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (stop - start) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    v[n - 1] = stop;
    v
}

/// `numpy.arange(start, stop, step)` for a negative float `step`, as numpy fills it: the
/// length is `ceil((stop - start) / step)` and element `i` is `start + i * (x1 - start)`,
/// where `x1 = start + step`.
pub(crate) fn np_arange_down(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil().max(0.0) as usize;
    let second = start + step;
    let delta = second - start;
    (0..len)
        .map(|i| match i {
            0 => start,
            1 => second,
            _ => start + i as f64 * delta,
        })
        .collect()
}

/// `cumprod` of `f32` values, as torch computes it on the CPU: accumulated in `f64`.
fn cumprod(values: &[f32]) -> Vec<f32> {
    let mut acc = 1f64;
    values
        .iter()
        .map(|&v| {
            acc *= v as f64;
            acc as f32
        })
        .collect()
}

/// diffusers' `betas_for_alpha_bar` with the cosine transform.
fn betas_for_alpha_bar(n: usize, max_beta: f64) -> Vec<f32> {
    let alpha_bar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0).cos().powi(2);
    (0..n)
        .map(|i| {
            let t1 = i as f64 / n as f64;
            let t2 = (i + 1) as f64 / n as f64;
            (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(max_beta) as f32
        })
        .collect()
}

/// diffusers' `rescale_zero_terminal_snr`, in `f32` like its torch code.
fn rescale_zero_terminal_snr(betas: &[f32]) -> Vec<f32> {
    let alphas: Vec<f32> = betas.iter().map(|b| 1.0 - b).collect();
    let mut sqrt_bar: Vec<f32> = cumprod(&alphas).iter().map(|a| a.sqrt()).collect();
    let first = sqrt_bar[0];
    let last = sqrt_bar[sqrt_bar.len() - 1];
    let scale = first / (first - last);
    for s in &mut sqrt_bar {
        *s = (*s - last) * scale;
    }
    let bar: Vec<f32> = sqrt_bar.iter().map(|s| s * s).collect();
    let mut out = Vec::with_capacity(bar.len());
    out.push(1.0 - bar[0]);
    for i in 1..bar.len() {
        out.push(1.0 - bar[i] / bar[i - 1]);
    }
    out
}

/// The training sigmas `sqrt((1 - alphas_cumprod) / alphas_cumprod)`, in `f32`.
fn train_sigmas(alphas_cumprod: &[f32]) -> Vec<f32> {
    alphas_cumprod.iter().map(|a| ((1.0 - a) / a).sqrt()).collect()
}

/// `numpy.interp(x, arange(len(fp)), fp)`.
fn interp_index(x: f64, fp: &[f32]) -> f64 {
    let last = fp.len() - 1;
    if x <= 0.0 {
        return fp[0] as f64;
    }
    if x >= last as f64 {
        return fp[last] as f64;
    }
    let j = x.floor() as usize;
    if j as f64 == x {
        return fp[j] as f64;
    }
    // numpy divides the rise by the run, which is 1 on this grid.
    let slope = fp[j + 1] as f64 - fp[j] as f64;
    slope * (x - j as f64) + fp[j] as f64
}

/// The Karras et al. (2022) sigma ramp from `sigma_max` down to `sigma_min` at `ramp` points
/// in `[0, 1]`, in `f64`.
fn karras(ramp: &[f64], sigma_min: f64, sigma_max: f64, rho: f64) -> Vec<f64> {
    let min_inv_rho = sigma_min.powf(1.0 / rho);
    let max_inv_rho = sigma_max.powf(1.0 / rho);
    ramp.iter().map(|r| (max_inv_rho + r * (min_inv_rho - max_inv_rho)).powf(rho)).collect()
}

/// diffusers' `_sigma_to_t`: the fractional training timestep whose log-sigma interpolates
/// `sigma`. `log_sigmas` are `f32` (numpy's log of an `f32` array).
fn sigma_to_t(sigma: f64, log_sigmas: &[f32]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    let n = log_sigmas.len();
    let low_idx =
        log_sigmas.iter().rposition(|&l| log_sigma - l as f64 >= 0.0).unwrap_or(0).min(n - 2);
    let high_idx = low_idx + 1;
    let (low, high) = (log_sigmas[low_idx], log_sigmas[high_idx]);
    let w = ((low as f64 - log_sigma) / (low - high) as f64).clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f64 + w * high_idx as f64
}

/// Inference timesteps for the integer-timestep schedulers (DDPM, DDIM), as diffusers picks
/// them.
fn integer_timesteps(config: &SchedulerConfig, n: usize) -> Vec<f64> {
    let t = config.num_train_timesteps;
    match config.timestep_spacing {
        TimestepSpacing::Linspace => {
            np_linspace(0.0, (t - 1) as f64, n).iter().rev().map(|v| v.round_ties_even()).collect()
        }
        TimestepSpacing::Leading => {
            let ratio = t / n;
            (0..n).rev().map(|i| (i * ratio + config.steps_offset) as f64).collect()
        }
        TimestepSpacing::Trailing => np_arange_down(t as f64, 0.0, -(t as f64 / n as f64))
            .iter()
            .map(|v| v.round_ties_even() - 1.0)
            .collect(),
    }
}

/// Inference timesteps for the sigma schedulers (Euler, Euler ancestral, Heun): `f32`
/// values, fractional for `Linspace`.
fn float_timesteps(config: &SchedulerConfig, n: usize) -> Vec<f64> {
    let t = config.num_train_timesteps;
    match config.timestep_spacing {
        TimestepSpacing::Linspace => {
            np_linspace(0.0, (t - 1) as f64, n).iter().rev().map(|&v| v as f32 as f64).collect()
        }
        TimestepSpacing::Leading => {
            let ratio = t / n;
            (0..n).rev().map(|i| ((i * ratio) as f32 + config.steps_offset as f32) as f64).collect()
        }
        TimestepSpacing::Trailing => np_arange_down(t as f64, 0.0, -(t as f64 / n as f64))
            .iter()
            .map(|v| (v.round_ties_even() as f32 - 1.0) as f64)
            .collect(),
    }
}

/// Checks a requested step count against the training range.
fn check_steps(num_inference_steps: usize, num_train_timesteps: usize) -> Result<()> {
    if num_inference_steps == 0 {
        return Err(Error::invalid_argument("num_inference_steps", "must be at least 1"));
    }
    if num_inference_steps > num_train_timesteps {
        return Err(Error::invalid_argument(
            "num_inference_steps",
            format!(
                "{num_inference_steps} is more than the {num_train_timesteps} timesteps the model \
                 was trained with"
            ),
        ));
    }
    Ok(())
}

/// diffusers' `index_for_timestep`: the position of `timestep` in `schedule`, the second one
/// when it appears more than once (so that a restart from the middle does not skip a sigma).
/// The step index of the sigma schedulers: set from `timestep`'s place in `schedule` on the
/// first call of a run (diffusers' `_init_step_index`), then kept.
pub(crate) fn init_step_index(
    step_index: &mut Option<usize>,
    schedule: &[f64],
    timestep: f64,
) -> Result<usize> {
    match *step_index {
        Some(i) => Ok(i),
        None => {
            let i = index_for_timestep(schedule, timestep)?;
            *step_index = Some(i);
            Ok(i)
        }
    }
}

/// The error of a step past the end of the schedule.
pub(crate) fn schedule_finished() -> Error {
    Error::invalid_argument("step", "the schedule is finished; call set_timesteps again")
}

fn index_for_timestep(schedule: &[f64], timestep: f64) -> Result<usize> {
    let mut hits = schedule.iter().enumerate().filter(|(_, t)| **t == timestep).map(|(i, _)| i);
    let first = hits.next().ok_or_else(|| {
        Error::invalid_argument(
            "timestep",
            format!("{timestep} is not one of the scheduler's timesteps; call set_timesteps and use timesteps()"),
        )
    })?;
    Ok(hits.next().unwrap_or(first))
}

/// A training timestep given as `f64` that must be an integer in `0..len`.
fn train_index(timestep: f64, len: usize) -> Result<usize> {
    if timestep.fract() != 0.0 || timestep < 0.0 || timestep >= len as f64 {
        return Err(Error::invalid_argument(
            "timestep",
            format!("{timestep} is not an integer training timestep in 0..{len}"),
        ));
    }
    Ok(timestep as usize)
}

// ---------------------------------------------------------------------------------------------
// Tensor helpers.

/// Errors unless `a` and `b` have the same shape.
fn same_shape(a: &Tensor<4>, b: &Tensor<4>, context: &str) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(Error::Shape {
            context: context.into(),
            expected: a.dims().to_vec(),
            found: b.dims().to_vec(),
        });
    }
    Ok(())
}

/// One coefficient per batch entry as a `[batch, 1, 1, 1]` tensor; a single coefficient
/// applies to every entry.
fn per_batch(coeffs: Vec<f32>, batch: usize, device: &Device) -> Result<Tensor<4>> {
    let coeffs = match coeffs.len() {
        1 => vec![coeffs[0]; batch],
        n if n == batch => coeffs,
        n => {
            return Err(Error::Shape {
                context: "add_noise timesteps (one per batch entry)".into(),
                expected: vec![batch],
                found: vec![n],
            });
        }
    };
    Ok(Tensor::from_data(TensorData::new(coeffs, [batch, 1, 1, 1]), device))
}

/// Checks `add_noise`'s inputs and returns the batch size.
fn add_noise_batch(original: &Tensor<4>, noise: &Tensor<4>, timesteps: &[f64]) -> Result<usize> {
    same_shape(original, noise, "add_noise noise")?;
    if timesteps.is_empty() {
        return Err(Error::invalid_argument("timesteps", "add_noise needs at least one timestep"));
    }
    Ok(original.dims()[0])
}

/// Imagen's dynamic thresholding (diffusers' `_threshold_sample`): per batch entry, `s` is the
/// `ratio` quantile of the absolute values (torch's linear interpolation) clamped to
/// `[1, max_value]`; values are clamped to `[-s, s]` and divided by `s`.
fn threshold_sample(sample: Tensor<4>, ratio: f64, max_value: f64) -> Result<Tensor<4>> {
    let (dims, device) = (sample.dims(), sample.device());
    let mut values = to_vec(sample)?;
    let per = dims[1] * dims[2] * dims[3];
    if per == 0 {
        return Ok(from_vec(values, dims, &device));
    }
    let q = ratio as f32;
    for row in values.chunks_mut(per) {
        let mut abs: Vec<f32> = row.iter().map(|v| v.abs()).collect();
        abs.sort_by(f32::total_cmp);
        let rank = q * (per - 1) as f32;
        let below = rank.floor();
        let above = (below as usize + 1).min(per - 1);
        let (lo, hi, w) = (abs[below as usize], abs[above], rank - below);
        // torch.lerp's two-sided formula.
        let quantile = if w < 0.5 { lo + w * (hi - lo) } else { hi - (hi - lo) * (1.0 - w) };
        let s = quantile.clamp(1.0, max_value as f32);
        for v in row.iter_mut() {
            *v = v.clamp(-s, s) / s;
        }
    }
    Ok(from_vec(values, dims, &device))
}

/// Clipping or dynamic thresholding of a predicted clean sample, as the config asks.
fn clip_or_threshold(x0: Tensor<4>, config: &SchedulerConfig) -> Result<Tensor<4>> {
    if config.thresholding {
        threshold_sample(x0, config.dynamic_thresholding_ratio, config.sample_max_value)
    } else if config.clip_sample {
        let r = config.clip_sample_range as f32;
        Ok(x0.clamp(-r, r))
    } else {
        Ok(x0)
    }
}

/// A tensor's values on the host, as `f32`.
fn to_vec(t: Tensor<4>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::tensor("scheduler sample", format!("cannot read values: {e:?}")))
}

/// Host values as a tensor.
fn from_vec(values: Vec<f32>, dims: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, dims), device)
}

#[cfg(test)]
mod tests;
