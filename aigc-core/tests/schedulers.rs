//! Parity of the schedulers with diffusers 0.42.1.
//!
//! The fixtures in `tools/fixtures/schedulers/` come from `tools/scheduler_golden.py`: full
//! denoising loops with the closed-form model `0.1 * x + 0.05 * cos(0.01 * t)` on a
//! [1, 2, 4, 4] sample, with every noise tensor diffusers drew recorded per step. Here the
//! same loops run on the flex device with that noise replayed, and every step's model input,
//! sample, sum, mean and clean-sample estimate must agree within 1e-4 (relative to the
//! magnitude of the values where they are larger than 1).

use std::path::PathBuf;

use aigc_core::burn::tensor::{Device, Tensor, TensorData};
use aigc_core::schedulers::{
    BetaSchedule, ConsistencyConfig, ConsistencyScheduler, DdimScheduler, DdpmScheduler,
    DpmSolverMultistepScheduler, DpmSolverOptions, EdmEulerConfig, EdmEulerScheduler,
    EulerAncestralScheduler, EulerDiscreteScheduler, FinalSigmas, HeunDiscreteScheduler,
    LcmScheduler, PredictionType, ReplayNoise, Scheduler, SchedulerConfig, SigmaSchedule,
    SolverType, TimestepSpacing, VarianceType,
};
use serde_json::Value;

const TOL: f64 = 1e-4;

fn device() -> Device {
    aigc_core::parse_device("flex").expect("flex backend")
}

fn fixture(kind: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/fixtures/schedulers")
        .join(format!("{kind}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tools/scheduler_golden.py)", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn shape(v: &Value) -> [usize; 4] {
    let s: Vec<usize> =
        v.as_array().expect("shape").iter().map(|x| x.as_u64().expect("dim") as usize).collect();
    s.try_into().expect("rank 4")
}

fn tensor(values: Vec<f32>, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn host(t: Tensor<4>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 values")
}

fn str_of<'a>(cfg: &'a Value, key: &str) -> Option<&'a str> {
    cfg.get(key).and_then(Value::as_str)
}

/// The shared configuration from a diffusers config dict, starting from `base` for the keys
/// the scheduler does not have.
fn beta_config(cfg: &Value, base: SchedulerConfig) -> SchedulerConfig {
    let mut c = base;
    let f = |k: &str| cfg.get(k).and_then(Value::as_f64);
    let b = |k: &str| cfg.get(k).and_then(Value::as_bool);
    if let Some(v) = cfg.get("num_train_timesteps").and_then(Value::as_u64) {
        c.num_train_timesteps = v as usize;
    }
    if let Some(v) = f("beta_start") {
        c.beta_start = v;
    }
    if let Some(v) = f("beta_end") {
        c.beta_end = v;
    }
    if let Some(v) = str_of(cfg, "beta_schedule") {
        c.beta_schedule = match v {
            "linear" => BetaSchedule::Linear,
            "scaled_linear" => BetaSchedule::ScaledLinear,
            "squaredcos_cap_v2" => BetaSchedule::SquaredcosCapV2,
            other => panic!("beta_schedule {other}"),
        };
    }
    if let Some(v) = str_of(cfg, "prediction_type") {
        c.prediction_type = prediction(v);
    }
    if let Some(v) = str_of(cfg, "timestep_spacing") {
        c.timestep_spacing = match v {
            "linspace" => TimestepSpacing::Linspace,
            "leading" => TimestepSpacing::Leading,
            "trailing" => TimestepSpacing::Trailing,
            other => panic!("timestep_spacing {other}"),
        };
    }
    if let Some(v) = cfg.get("steps_offset").and_then(Value::as_u64) {
        c.steps_offset = v as usize;
    }
    if let Some(v) = b("clip_sample") {
        c.clip_sample = v;
    }
    if let Some(v) = f("clip_sample_range") {
        c.clip_sample_range = v;
    }
    if let Some(v) = b("thresholding") {
        c.thresholding = v;
    }
    if let Some(v) = f("dynamic_thresholding_ratio") {
        c.dynamic_thresholding_ratio = v;
    }
    if let Some(v) = f("sample_max_value") {
        c.sample_max_value = v;
    }
    if let Some(v) = b("set_alpha_to_one") {
        c.set_alpha_to_one = v;
    }
    if let Some(v) = b("use_karras_sigmas") {
        c.use_karras_sigmas = v;
    }
    if let Some(v) = b("rescale_betas_zero_snr") {
        c.rescale_betas_zero_snr = v;
    }
    if let Some(v) = str_of(cfg, "final_sigmas_type") {
        c.final_sigmas_type = final_sigmas(v);
    }
    // Options these schedulers do not implement must be at diffusers' defaults.
    for key in ["use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas"] {
        assert_ne!(b(key), Some(true), "{key}");
    }
    assert!(cfg.get("trained_betas").is_none_or(Value::is_null));
    c
}

fn prediction(v: &str) -> PredictionType {
    match v {
        "epsilon" => PredictionType::Epsilon,
        "v_prediction" => PredictionType::VPrediction,
        "sample" => PredictionType::Sample,
        other => panic!("prediction_type {other}"),
    }
}

fn final_sigmas(v: &str) -> FinalSigmas {
    match v {
        "zero" => FinalSigmas::Zero,
        "sigma_min" => FinalSigmas::SigmaMin,
        other => panic!("final_sigmas_type {other}"),
    }
}

/// The scheduler a fixture case describes.
fn make(kind: &str, cfg: &Value, kwargs: &Value) -> Box<dyn Scheduler> {
    let f = |k: &str| cfg[k].as_f64().unwrap_or_else(|| panic!("{k}"));
    match kind {
        "ddpm" => {
            let variance = match str_of(cfg, "variance_type") {
                Some("fixed_small") => VarianceType::FixedSmall,
                Some("fixed_small_log") => VarianceType::FixedSmallLog,
                Some("fixed_large") => VarianceType::FixedLarge,
                other => panic!("variance_type {other:?}"),
            };
            let c = beta_config(cfg, SchedulerConfig::ddpm());
            Box::new(DdpmScheduler::with_variance(c, variance).unwrap())
        }
        "ddim" => {
            let eta = kwargs.get("eta").and_then(Value::as_f64).unwrap_or(0.0) as f32;
            let s = DdimScheduler::new(beta_config(cfg, SchedulerConfig::ddim())).unwrap();
            Box::new(s.with_eta(eta).unwrap())
        }
        "euler" => {
            assert_eq!(str_of(cfg, "interpolation_type"), Some("linear"));
            assert_eq!(str_of(cfg, "timestep_type"), Some("discrete"));
            assert!(cfg["sigma_min"].is_null() && cfg["sigma_max"].is_null());
            let c = beta_config(cfg, SchedulerConfig::euler());
            Box::new(EulerDiscreteScheduler::new(c).unwrap())
        }
        "euler_ancestral" => {
            let c = beta_config(cfg, SchedulerConfig::euler_ancestral());
            Box::new(EulerAncestralScheduler::new(c).unwrap())
        }
        "heun" => {
            let c = beta_config(cfg, SchedulerConfig::heun());
            Box::new(HeunDiscreteScheduler::new(c).unwrap())
        }
        "dpm_solver" => {
            assert_eq!(str_of(cfg, "algorithm_type"), Some("dpmsolver++"));
            let options = DpmSolverOptions {
                solver_order: cfg["solver_order"].as_u64().unwrap() as usize,
                solver_type: match str_of(cfg, "solver_type") {
                    Some("midpoint") => SolverType::Midpoint,
                    Some("heun") => SolverType::Heun,
                    other => panic!("solver_type {other:?}"),
                },
                lower_order_final: cfg["lower_order_final"].as_bool().unwrap(),
                euler_at_final: cfg["euler_at_final"].as_bool().unwrap(),
                lambda_min_clipped: match &cfg["lambda_min_clipped"] {
                    Value::String(s) => s.parse().unwrap(),
                    v => v.as_f64().unwrap(),
                },
            };
            let c = beta_config(cfg, SchedulerConfig::dpm_solver());
            Box::new(DpmSolverMultistepScheduler::with_options(c, options).unwrap())
        }
        "lcm" => {
            let c = beta_config(cfg, SchedulerConfig::lcm());
            let original = cfg["original_inference_steps"].as_u64().unwrap() as usize;
            let scaling = f("timestep_scaling") as f32;
            Box::new(LcmScheduler::with_options(c, original, scaling).unwrap())
        }
        "consistency" => {
            let c = ConsistencyConfig {
                num_train_timesteps: cfg["num_train_timesteps"].as_u64().unwrap() as usize,
                sigma_min: f("sigma_min"),
                sigma_max: f("sigma_max"),
                sigma_data: f("sigma_data"),
                s_noise: f("s_noise"),
                rho: f("rho"),
                clip_denoised: cfg["clip_denoised"].as_bool().unwrap(),
            };
            Box::new(ConsistencyScheduler::new(c).unwrap())
        }
        "edm_euler" => {
            let c = EdmEulerConfig {
                sigma_min: f("sigma_min"),
                sigma_max: f("sigma_max"),
                sigma_data: f("sigma_data"),
                sigma_schedule: match str_of(cfg, "sigma_schedule") {
                    Some("karras") => SigmaSchedule::Karras,
                    Some("exponential") => SigmaSchedule::Exponential,
                    other => panic!("sigma_schedule {other:?}"),
                },
                num_train_timesteps: cfg["num_train_timesteps"].as_u64().unwrap() as usize,
                prediction_type: prediction(str_of(cfg, "prediction_type").unwrap()),
                rho: f("rho"),
                final_sigmas_type: final_sigmas(str_of(cfg, "final_sigmas_type").unwrap()),
            };
            Box::new(EdmEulerScheduler::new(c).unwrap())
        }
        other => panic!("unknown scheduler {other}"),
    }
}

/// The largest differences seen, absolute and relative to the values' magnitude.
#[derive(Default)]
struct Worst {
    abs: f64,
    scaled: f64,
}

impl Worst {
    /// Asserts `got` is within `TOL * max(1, scale)` of `want`.
    fn check(&mut self, what: &str, got: f64, want: f64, scale: f64) {
        let diff = (got - want).abs();
        let scaled = diff / scale.max(1.0);
        assert!(
            scaled <= TOL || (got.is_nan() && want.is_nan()),
            "{what}: got {got}, diffusers {want} (difference {diff:e})"
        );
        self.abs = self.abs.max(diff);
        self.scaled = self.scaled.max(scaled);
    }

    /// Element by element, each relative to its own magnitude.
    fn check_all(&mut self, what: &str, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            self.check(&format!("{what}[{i}]"), g as f64, w as f64, (w as f64).abs());
        }
    }
}

/// The fixture's dummy model: `0.1 * x + 0.05 * cos(0.01 * t)`, in f32 like torch.
fn model(x: Tensor<4>, t: f64) -> Tensor<4> {
    x * 0.1f32 + (0.05 * (0.01 * t).cos()) as f32
}

fn check_scheduler(kind: &str) {
    let doc = fixture(kind);
    let dev = device();
    let cases = doc["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    let mut overall = Worst::default();
    for case in cases {
        let mut worst = Worst::default();
        let name = format!("{kind}/{}", case["name"].as_str().unwrap());
        let (cfg, kwargs) = (&case["config"], &case["step_kwargs"]);
        let steps = case["num_inference_steps"].as_u64().unwrap() as usize;
        let mut s = make(kind, cfg, kwargs);
        s.set_timesteps(steps).unwrap_or_else(|e| panic!("{name}: {e}"));

        let want_ts = f64s(&case["timesteps"]);
        assert_eq!(s.timesteps().len(), want_ts.len(), "{name}: timesteps {:?}", s.timesteps());
        for (i, (&g, &w)) in s.timesteps().iter().zip(&want_ts).enumerate() {
            // f32 timesteps: one part in 1e6 of their size.
            let ok = (g - w).abs() <= 1e-6 * w.abs().max(1.0);
            assert!(ok, "{name}: timestep {i}: {g} vs {w}: {:?} vs {want_ts:?}", s.timesteps());
        }
        let sigma0 = s.init_noise_sigma();
        worst.check(
            &format!("{name}: init_noise_sigma"),
            sigma0 as f64,
            case["init_noise_sigma"].as_f64().unwrap(),
            sigma0 as f64,
        );

        let sh = shape(&case["shape"]);
        let records = case["steps"].as_array().unwrap();
        let draws: Vec<Vec<f32>> = records
            .iter()
            .flat_map(|r| r["noise"].as_array().unwrap().iter().map(floats))
            .collect();
        let mut noise = ReplayNoise::new(draws);
        let mut sample = tensor(floats(&case["initial_noise"]), sh, &dev) * sigma0;
        let timesteps = s.timesteps().to_vec();
        assert_eq!(timesteps.len(), records.len(), "{name}: one record per timestep");
        for (k, (rec, &t)) in records.iter().zip(&timesteps).enumerate() {
            let at = format!("{name}: step {k} (t = {t})");
            let before = noise.remaining();
            let input =
                s.scale_model_input(sample.clone(), t).unwrap_or_else(|e| panic!("{at}: {e}"));
            worst.check_all(
                &format!("{at}: model input"),
                &host(input.clone()),
                &floats(&rec["model_input"]),
            );
            let out = s
                .step(model(input, t), t, sample, &mut noise)
                .unwrap_or_else(|e| panic!("{at}: {e}"));
            let draws = rec["noise"].as_array().unwrap().len();
            assert_eq!(before - noise.remaining(), draws, "{at}: noise draws");

            let got = host(out.prev_sample.clone());
            let want = floats(&rec["prev_sample"]);
            worst.check_all(&format!("{at}: prev_sample"), &got, &want);
            let magnitude: f64 = want.iter().map(|v| v.abs() as f64).sum();
            let sum: f64 = got.iter().map(|&v| v as f64).sum();
            worst.check(&format!("{at}: sum"), sum, rec["sum"].as_f64().unwrap(), magnitude);
            let n = got.len() as f64;
            worst.check(
                &format!("{at}: mean"),
                sum / n,
                rec["mean"].as_f64().unwrap(),
                magnitude / n,
            );
            for (key, value) in
                [("pred_original_sample", &out.pred_original_sample), ("denoised", &out.denoised)]
            {
                match (rec.get(key), value) {
                    (Some(w), Some(g)) => {
                        worst.check_all(&format!("{at}: {key}"), &host(g.clone()), &floats(w))
                    }
                    (None, None) => {}
                    (w, g) => panic!(
                        "{at}: {key}: diffusers has {}, we have {}",
                        w.is_some(),
                        g.is_some()
                    ),
                }
            }
            sample = out.prev_sample;
        }
        assert_eq!(noise.remaining(), 0, "{name}: unused noise");

        // add_noise on a fresh scheduler, as the script does.
        let an = &case["add_noise"];
        let mut fresh = make(kind, cfg, kwargs);
        fresh.set_timesteps(steps).unwrap();
        let ash = shape(&an["shape"]);
        // The schedule's own values: f32 timesteps may differ from torch's in the last bit
        // (already compared above), and add_noise looks them up exactly.
        let an_ts: Vec<f64> = f64s(&an["timesteps"])
            .iter()
            .map(|&w| {
                let near = |g: &&f64| (**g - w).abs() <= 1e-6 * w.abs().max(1.0);
                *fresh.timesteps().iter().find(near).expect("add_noise timestep in the schedule")
            })
            .collect();
        let noisy = fresh
            .add_noise(
                tensor(floats(&an["original"]), ash, &dev),
                tensor(floats(&an["noise"]), ash, &dev),
                &an_ts,
            )
            .unwrap_or_else(|e| panic!("{name}: add_noise: {e}"));
        worst.check_all(&format!("{name}: add_noise"), &host(noisy), &floats(&an["noisy"]));
        println!("{name}: largest difference {:.2e} (scaled {:.2e})", worst.abs, worst.scaled);
        overall.abs = overall.abs.max(worst.abs);
        overall.scaled = overall.scaled.max(worst.scaled);
    }
    println!(
        "{kind}: {} cases, largest difference {:.2e} (scaled {:.2e})",
        cases.len(),
        overall.abs,
        overall.scaled
    );
}

#[test]
fn ddpm_matches_diffusers() {
    check_scheduler("ddpm");
}

#[test]
fn ddim_matches_diffusers() {
    check_scheduler("ddim");
}

#[test]
fn euler_matches_diffusers() {
    check_scheduler("euler");
}

#[test]
fn euler_ancestral_matches_diffusers() {
    check_scheduler("euler_ancestral");
}

#[test]
fn heun_matches_diffusers() {
    check_scheduler("heun");
}

#[test]
fn dpm_solver_matches_diffusers() {
    check_scheduler("dpm_solver");
}

#[test]
fn lcm_matches_diffusers() {
    check_scheduler("lcm");
}

#[test]
fn consistency_matches_diffusers() {
    check_scheduler("consistency");
}

#[test]
fn edm_euler_matches_diffusers() {
    check_scheduler("edm_euler");
}
