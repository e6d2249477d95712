//! Unit tests: bad configurations and calls are typed errors, and the schedule helpers match
//! numpy's and torch's definitions. Parity with diffusers is in `tests/schedulers.rs`.

use burn::tensor::{Device, Tensor};

use super::*;
use crate::error::Error;

fn device() -> Device {
    crate::parse_device("flex").expect("flex is the default backend")
}

fn zeros(shape: [usize; 4]) -> Tensor<4> {
    Tensor::zeros(shape, &device())
}

fn is_invalid(r: Result<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(Error::InvalidArgument { .. }))
}

fn is_unsupported(r: Result<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(Error::Unsupported { .. }))
}

/// Every beta-based scheduler, boxed, with its default configuration.
fn all_schedulers() -> Vec<(&'static str, Box<dyn Scheduler>)> {
    vec![
        ("ddpm", Box::new(DdpmScheduler::new(SchedulerConfig::ddpm()).unwrap())),
        ("ddim", Box::new(DdimScheduler::new(SchedulerConfig::ddim()).unwrap())),
        ("euler", Box::new(EulerDiscreteScheduler::new(SchedulerConfig::euler()).unwrap())),
        (
            "euler_ancestral",
            Box::new(EulerAncestralScheduler::new(SchedulerConfig::euler_ancestral()).unwrap()),
        ),
        ("heun", Box::new(HeunDiscreteScheduler::new(SchedulerConfig::heun()).unwrap())),
        (
            "dpm_solver",
            Box::new(DpmSolverMultistepScheduler::new(SchedulerConfig::dpm_solver()).unwrap()),
        ),
        ("lcm", Box::new(LcmScheduler::new(SchedulerConfig::lcm()).unwrap())),
        ("consistency", Box::new(ConsistencyScheduler::new(ConsistencyConfig::default()).unwrap())),
        ("edm_euler", Box::new(EdmEulerScheduler::new(EdmEulerConfig::default()).unwrap())),
    ]
}

#[test]
fn zero_steps_is_an_error_for_every_scheduler() {
    for (name, mut s) in all_schedulers() {
        assert!(is_invalid(s.set_timesteps(0)), "{name}");
    }
}

#[test]
fn more_steps_than_training_timesteps_is_an_error() {
    for (name, mut s) in all_schedulers() {
        if name == "edm_euler" {
            continue; // EDM sigmas are continuous: any step count is valid.
        }
        assert!(is_invalid(s.set_timesteps(1001)), "{name}");
    }
    let mut cm = ConsistencyScheduler::new(ConsistencyConfig::default()).unwrap();
    assert!(is_invalid(cm.set_timesteps(41)));
    let mut lcm = LcmScheduler::new(SchedulerConfig::lcm()).unwrap();
    assert!(is_invalid(lcm.set_timesteps(51)), "more than original_inference_steps");
}

#[test]
fn every_scheduler_runs_a_loop_with_seeded_noise() {
    let dev = device();
    for (name, mut s) in all_schedulers() {
        s.set_timesteps(4).unwrap();
        let mut noise = SeededNoise::new(7);
        let mut sample = noise.randn([1, 2, 3, 3], &dev) * s.init_noise_sigma();
        for t in s.timesteps().to_vec() {
            let input = s.scale_model_input(sample.clone(), t).unwrap();
            let out = input * 0.1;
            sample = s.step(out, t, sample, &mut noise).unwrap().prev_sample;
        }
        let v = to_vec(sample).unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name}: {v:?}");
    }
}

#[test]
fn bad_beta_configuration_is_an_error() {
    let c = SchedulerConfig { beta_start: 0.0, ..SchedulerConfig::ddpm() };
    assert!(is_invalid(DdpmScheduler::new(c)));
    let c = SchedulerConfig { beta_start: 0.1, beta_end: 0.01, ..SchedulerConfig::ddpm() };
    assert!(is_invalid(DdimScheduler::new(c)));
    let c = SchedulerConfig { beta_end: f64::NAN, ..SchedulerConfig::euler() };
    assert!(is_invalid(EulerDiscreteScheduler::new(c)));
    let c = SchedulerConfig { num_train_timesteps: 1, ..SchedulerConfig::heun() };
    assert!(is_invalid(HeunDiscreteScheduler::new(c)));
    let c = SchedulerConfig {
        thresholding: true,
        dynamic_thresholding_ratio: 1.5,
        ..SchedulerConfig::ddpm()
    };
    assert!(is_invalid(DdpmScheduler::new(c)));
}

#[test]
fn options_a_scheduler_lacks_are_unsupported() {
    let karras = SchedulerConfig { use_karras_sigmas: true, ..SchedulerConfig::ddpm() };
    assert!(is_unsupported(DdpmScheduler::new(karras.clone())));
    assert!(is_unsupported(DdimScheduler::new(karras.clone())));
    assert!(is_unsupported(LcmScheduler::new(SchedulerConfig {
        use_karras_sigmas: true,
        ..SchedulerConfig::lcm()
    })));
    assert!(is_unsupported(EulerAncestralScheduler::new(SchedulerConfig {
        use_karras_sigmas: true,
        ..SchedulerConfig::euler_ancestral()
    })));
    assert!(is_unsupported(EulerDiscreteScheduler::new(SchedulerConfig::ddpm())), "clip_sample");
    assert!(is_unsupported(EulerAncestralScheduler::new(SchedulerConfig {
        prediction_type: PredictionType::Sample,
        ..SchedulerConfig::euler_ancestral()
    })));
    assert!(is_unsupported(DpmSolverMultistepScheduler::new(SchedulerConfig::ddpm())));
    assert!(is_unsupported(EdmEulerScheduler::new(EdmEulerConfig {
        prediction_type: PredictionType::Sample,
        ..EdmEulerConfig::default()
    })));
}

#[test]
fn bad_solver_and_sigma_options_are_errors() {
    let opts = DpmSolverOptions { solver_order: 4, ..DpmSolverOptions::default() };
    assert!(is_invalid(DpmSolverMultistepScheduler::with_options(
        SchedulerConfig::dpm_solver(),
        opts
    )));
    let opts =
        DpmSolverOptions { lambda_min_clipped: f64::INFINITY, ..DpmSolverOptions::default() };
    let mut s =
        DpmSolverMultistepScheduler::with_options(SchedulerConfig::dpm_solver(), opts).unwrap();
    assert!(is_invalid(s.set_timesteps(10)), "every timestep clipped");
    let c = ConsistencyConfig { sigma_min: 100.0, ..ConsistencyConfig::default() };
    assert!(is_invalid(ConsistencyScheduler::new(c)));
    let c = EdmEulerConfig { rho: 0.0, ..EdmEulerConfig::default() };
    assert!(is_invalid(EdmEulerScheduler::new(c)));
    assert!(is_invalid(LcmScheduler::with_options(SchedulerConfig::lcm(), 0, 10.0)));
    assert!(is_invalid(LcmScheduler::with_options(SchedulerConfig::lcm(), 2000, 10.0)));
    assert!(is_invalid(DdimScheduler::new(SchedulerConfig::ddim()).unwrap().with_eta(-1.0)));
}

#[test]
fn a_leading_offset_past_the_range_is_an_error() {
    let c = SchedulerConfig { steps_offset: 5, ..SchedulerConfig::ddpm() };
    let mut s = DdpmScheduler::new(c).unwrap();
    // Leading spacing with 1000 steps reaches 999; the offset pushes it to 1004.
    assert!(is_invalid(s.set_timesteps(1000)));
    assert!(s.set_timesteps(10).is_ok());
}

#[test]
fn step_with_a_timestep_off_the_schedule_is_an_error() {
    let mut s = EulerDiscreteScheduler::new(SchedulerConfig::euler()).unwrap();
    s.set_timesteps(5).unwrap();
    let x = zeros([1, 1, 2, 2]);
    assert!(is_invalid(s.scale_model_input(x.clone(), 123.25)));
    let mut ddpm = DdpmScheduler::new(SchedulerConfig::ddpm()).unwrap();
    ddpm.set_timesteps(5).unwrap();
    let mut noise = SeededNoise::new(0);
    assert!(is_invalid(ddpm.step(x.clone(), 3.5, x.clone(), &mut noise).map(|o| o.prev_sample)));
    assert!(is_invalid(ddpm.step(x.clone(), 7.0, x.clone(), &mut noise).map(|o| o.prev_sample)));
}

#[test]
fn ddim_and_lcm_step_before_set_timesteps_is_an_error() {
    let x = zeros([1, 1, 2, 2]);
    let mut noise = SeededNoise::new(0);
    let mut ddim = DdimScheduler::new(SchedulerConfig::ddim()).unwrap();
    assert!(is_invalid(ddim.step(x.clone(), 999.0, x.clone(), &mut noise).map(|o| o.prev_sample)));
    let mut lcm = LcmScheduler::new(SchedulerConfig::lcm()).unwrap();
    assert!(is_invalid(lcm.step(x.clone(), 999.0, x, &mut noise).map(|o| o.prev_sample)));
}

#[test]
fn stepping_past_the_end_is_an_error() {
    let mut s = EulerDiscreteScheduler::new(SchedulerConfig::euler()).unwrap();
    s.set_timesteps(2).unwrap();
    let x = zeros([1, 1, 2, 2]);
    let mut noise = SeededNoise::new(0);
    let ts = s.timesteps().to_vec();
    for &t in &ts {
        s.step(x.clone(), t, x.clone(), &mut noise).unwrap();
    }
    assert!(is_invalid(s.step(x.clone(), ts[1], x, &mut noise).map(|o| o.prev_sample)));
}

#[test]
fn mismatched_shapes_are_shape_errors() {
    let mut noise = SeededNoise::new(0);
    for (name, mut s) in all_schedulers() {
        s.set_timesteps(3).unwrap();
        let t = s.timesteps()[0];
        let r = s.step(zeros([1, 1, 2, 2]), t, zeros([1, 2, 2, 2]), &mut noise);
        assert!(matches!(r, Err(Error::Shape { .. })), "{name}");
        let r = s.add_noise(zeros([2, 1, 2, 2]), zeros([2, 1, 2, 2]), &[t, t, t]);
        assert!(matches!(r, Err(Error::Shape { .. })), "{name}");
        let r = s.add_noise(zeros([2, 1, 2, 2]), zeros([1, 1, 2, 2]), &[t]);
        assert!(matches!(r, Err(Error::Shape { .. })), "{name}");
    }
}

#[test]
fn replay_noise_runs_out_and_checks_sizes() {
    let mut r = ReplayNoise::new([vec![1.0; 4]]);
    assert_eq!(r.remaining(), 1);
    assert!(matches!(r.noise([1, 1, 2, 3], &device()), Err(Error::Shape { .. })));
    let mut r = ReplayNoise::new([vec![1.0; 4]]);
    assert!(r.noise([1, 1, 2, 2], &device()).is_ok());
    assert!(is_invalid(r.noise([1, 1, 2, 2], &device())));
}

#[test]
fn seeded_noise_is_reproducible_and_standard_normal() {
    let mut a = SeededNoise::new(3);
    let mut b = SeededNoise::new(3);
    let xs: Vec<f64> = (0..20000).map(|_| a.next_normal()).collect();
    let ys: Vec<f64> = (0..20000).map(|_| b.next_normal()).collect();
    assert_eq!(xs, ys);
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / xs.len() as f64;
    assert!(mean.abs() < 0.03, "mean {mean}");
    assert!((var - 1.0).abs() < 0.05, "variance {var}");
}

#[test]
fn numpy_and_torch_helpers_match_their_definitions() {
    assert_eq!(np_linspace(0.0, 999.0, 4), vec![0.0, 333.0, 666.0, 999.0]);
    assert_eq!(np_arange_down(1000.0, 0.0, -250.0), vec![1000.0, 750.0, 500.0, 250.0]);
    assert_eq!(np_arange_down(1000.0, 0.0, -1000.0 / 7.0).len(), 7);
    let l = torch_linspace_f32(0.0, 1.0, 5);
    assert_eq!(l, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    // numpy.interp on an integer grid.
    assert_eq!(interp_index(1.5, &[0.0, 2.0, 4.0]), 3.0);
    assert_eq!(interp_index(5.0, &[0.0, 2.0, 4.0]), 4.0);
    // _sigma_to_t inverts the log-sigma interpolation.
    let log_sigmas: Vec<f32> = [0.1f32, 0.2, 0.4].iter().map(|s| s.ln()).collect();
    assert!((sigma_to_t(0.2, &log_sigmas) - 1.0).abs() < 1e-6);
    assert_eq!(sigma_to_t(1.0, &log_sigmas), 2.0);
    assert_eq!(sigma_to_t(0.01, &log_sigmas), 0.0);
}

#[test]
fn dynamic_thresholding_matches_torch_quantile() {
    // Absolute values 0..=9 over one batch entry: the 0.5 quantile is 4.5 (linear).
    let v: Vec<f32> = (0..10).map(|i| if i % 2 == 0 { i as f32 } else { -(i as f32) }).collect();
    let x = from_vec(v.clone(), [1, 1, 2, 5], &device());
    let out = to_vec(threshold_sample(x, 0.5, 3.0).unwrap()).unwrap();
    // s = clamp(4.5, 1, 3) = 3.
    let want: Vec<f32> = v.iter().map(|x| x.clamp(-3.0, 3.0) / 3.0).collect();
    assert_eq!(out, want);
}

#[test]
fn configs_hold_diffusers_defaults() {
    let euler = SchedulerConfig::euler();
    assert_eq!(euler.timestep_spacing, TimestepSpacing::Linspace);
    assert!(!euler.clip_sample);
    let heun = SchedulerConfig::heun();
    assert_eq!((heun.beta_start, heun.beta_end), (0.00085, 0.012));
    let lcm = SchedulerConfig::lcm();
    assert_eq!(lcm.beta_schedule, BetaSchedule::ScaledLinear);
    assert_eq!(SchedulerConfig::default().timestep_spacing, TimestepSpacing::Leading);
    let ac = SchedulerConfig::default().alphas_cumprod().unwrap();
    assert_eq!(ac.len(), 1000);
    assert!(ac.windows(2).all(|w| w[1] < w[0]));
    let zsnr = SchedulerConfig { rescale_betas_zero_snr: true, ..SchedulerConfig::default() };
    let ac = zsnr.alphas_cumprod().unwrap();
    assert!(ac[999].abs() < 1e-6, "zero terminal SNR: {}", ac[999]);
}
