//! The backend matrix: real models and reference fixtures on every compiled backend.
//!
//! Each test runs the same model on each backend of the build (`--features ndarray,wgpu` in
//! CI: flex, ndarray, and wgpu on Mesa's software Vulkan driver) and holds every backend to the
//! reference implementation's values with the bound of that model's own parity test, and to
//! flex where the reference gives no value (sampled tokens). A backend that cannot run here is
//! skipped with a message, unless CI requires it (`AIGC_REQUIRE_WGPU=1`): then it fails.
//! `cuda` is type-checked only (`DOCS_RS=1 cargo check --features cuda`): no GPU in CI.

use std::path::PathBuf;
use std::sync::OnceLock;

use aigc_core::burn::tensor::Device;
use aigc_core::device::describe;
use aigc_core::npy;
use aigc_core::sampling::SamplingParams;
use aigc_text::{GenerationConfig, Generator, Prompt};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures")
}

fn devices() -> &'static [(&'static str, Device)] {
    static DEVICES: OnceLock<Vec<(&'static str, Device)>> = OnceLock::new();
    DEVICES.get_or_init(|| {
        let aigc_core::device::RunnableBackends { devices, skipped } =
            aigc_core::device::runnable_backends().unwrap();
        skipped.iter().for_each(|s| eprintln!("\n**** SKIPPED: {s} ****\n"));
        devices.iter().for_each(|(name, d)| eprintln!("backend {name}: {}", describe(d)));
        devices
    })
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn smollm2_fixture() -> Value {
    let path = fixtures().join("text/smollm2-135m-instruct.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// SmolLM2-135M (Q4_1 GGUF) on each backend: the last prompt position's top-20 logits within
/// 2e-2 of transformers, and greedy tokens equal to transformers' up to the first step whose
/// top-1/top-2 margin is under 0.05 (as `aigc-text/tests/real_models.rs`).
#[test]
fn smollm2_greedy_on_every_backend() {
    let Some(path) = aigc_core::models::installed_or_skip("smollm2-135m-instruct") else {
        return;
    };
    let fx = smollm2_fixture();
    let case = &fx["logits"][0];
    let top_ids = ids(&case["last"]["top_ids"]);
    let top_values: Vec<f32> = case["last"]["top_values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let block = &fx["greedy"][0];
    let prompt = ids(&block["prompt_ids"]);
    // 16 of the reference's 40 steps keep the slow software-Vulkan run short.
    let want = &ids(&block["tokens"])[..16];
    let exact_until = block["steps"].as_array().unwrap()[..16]
        .iter()
        .position(|s| s["margin"].as_f64().unwrap() < 0.05)
        .unwrap_or(16);
    for (name, device) in devices() {
        let mut g = Generator::open(&path, device).unwrap();
        let logits = g.logits(&ids(&case["ids"]), false).unwrap();
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        let mut ours: Vec<u32> = order[..20].iter().map(|&i| i as u32).collect();
        let mut theirs = top_ids[..20].to_vec();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs, "{name}: top-20 ids differ from transformers");
        let worst = top_ids[..20]
            .iter()
            .zip(&top_values)
            .map(|(&id, &v)| (logits[id as usize] - v).abs())
            .fold(0f32, f32::max);
        let cfg = GenerationConfig { ignore_eos: true, ..GenerationConfig::greedy(want.len()) };
        let out = g.generate(Prompt::Tokens(&prompt), &cfg).unwrap();
        let same = out.ids.iter().zip(want).take_while(|(a, b)| a == b).count();
        eprintln!(
            "{name}: SmolLM2 top-20 logits max |diff| {worst:.2e} (bound 2e-2); greedy {same}/{} \
             tokens as transformers (required {exact_until})",
            want.len()
        );
        assert!(worst <= 2e-2, "{name}: logits differ from transformers by {worst}");
        assert_eq!(out.ids[..exact_until], want[..exact_until], "{name}: greedy tokens");
    }
}

/// The sampler chain (repetition penalty, top-k, top-p, min-p, temperature, seeded draw) over
/// SmolLM2's logits on each backend: the same seed gives the same tokens as on flex.
#[test]
fn sampler_chain_on_every_backend() {
    let Some(path) = aigc_core::models::installed_or_skip("smollm2-135m-instruct") else {
        return;
    };
    let cfg = GenerationConfig {
        max_new_tokens: 12,
        ignore_eos: true,
        sampling: SamplingParams {
            temperature: 0.9,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.1,
            seed: 1234,
            ..SamplingParams::default()
        },
        ..GenerationConfig::default()
    };
    let prompt = "Once upon a time, in a small village by the sea,";
    let mut reference: Option<Vec<u32>> = None;
    for (name, device) in devices() {
        let mut g = Generator::open(&path, device).unwrap();
        let out = g.generate(Prompt::Text(prompt), &cfg).unwrap();
        let again = g.generate(Prompt::Text(prompt), &cfg).unwrap();
        eprintln!("{name}: sampled {:?} {:?}", out.ids, out.text);
        assert_eq!(out.ids, again.ids, "{name}: the same seed gave other tokens");
        match &reference {
            None => reference = Some(out.ids),
            Some(r) => assert_eq!(&out.ids, r, "{name}: sampled tokens differ from flex"),
        }
    }
}

/// The terrain consistency UNet (ONNX) on each backend against onnxruntime on the same
/// noise, within 1e-3 (`aigc-image/tests/terrain.rs`'s bound), at sigma 80 and difficulty 50
/// (the package's one-step sampler).
#[test]
fn terrain_unet_on_every_backend() {
    let Some(path) = aigc_core::models::installed_or_skip("terrain-consistency-unet") else {
        return;
    };
    let dir = fixtures().join("image/terrain");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("terrain.json")).unwrap()).unwrap();
    let (_, noise) = npy::read_f32(dir.join("noise.npy")).unwrap();
    let case = meta["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["sigma"].as_f64() == Some(80.0))
        .expect("a sigma-80 case");
    let sigma = 80.0f32;
    let difficulty = case["difficulty"].as_u64().unwrap() as u32;
    let (_, want) = npy::read_f32(dir.join(case["file"].as_str().unwrap())).unwrap();
    let noisy: Vec<f32> = noise.iter().map(|z| z * sigma).collect();
    for (name, device) in devices() {
        let model = aigc_image::terrain::TerrainModel::open(&path, device).unwrap();
        let got = model.denoise(&noisy, sigma, difficulty).unwrap();
        let worst = max_diff(&got, &want);
        eprintln!(
            "{name}: terrain UNet (difficulty {difficulty}) max |diff| {worst:.2e} vs onnxruntime"
        );
        assert!(worst <= 1e-3, "{name}: terrain UNet differs from onnxruntime by {worst}");
    }
}

/// HiFi-GAN (transformers' SpeechT5HifiGan layout, tiny random weights) on each backend
/// against transformers, within 1e-4 (`aigc-audio/tests/hifigan.rs`'s bound).
#[test]
fn hifigan_on_every_backend() {
    let dir = fixtures().join("audio");
    let (shape, mel) = npy::read_f32(dir.join("hifigan_input.npy")).unwrap();
    let (_, want) = npy::read_f32(dir.join("hifigan_output.npy")).unwrap();
    for (name, device) in devices() {
        let model = aigc_audio::hifigan::HifiGan::open(dir.join("hifigan-tiny"), device).unwrap();
        let got = model.vocode(&mel, shape[0]).unwrap();
        let worst = max_diff(&got, &want);
        eprintln!("{name}: HiFi-GAN max |diff| {worst:.2e} vs transformers");
        assert!(worst <= 1e-4, "{name}: HiFi-GAN differs from transformers by {worst}");
    }
}
