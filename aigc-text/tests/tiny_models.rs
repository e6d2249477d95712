//! Tiny random-weight Qwen2, Qwen3, Mistral, Llama (llama3 RoPE scaling) and Gemma 3 models
//! saved by transformers (`tools/text_tiny_models.py` → `tools/fixtures/text/tiny/`), loaded
//! from their Hugging Face directories, against transformers' float32 logits: every prompt
//! position of the batched pass, and every step of cached greedy decoding, within 1e-4.
//! The same directories exercise the `Generator` (tokenizer.json, chat template, streaming,
//! stop strings, cancellation, reuse).

use std::ops::ControlFlow;
use std::path::PathBuf;

use aigc_text::{FinishReason, GenerationConfig, Generator, Message, Prompt, load_hf_dir};
use serde_json::Value;

const TOL: f32 = 1e-4;
const MODELS: [&str; 5] = ["qwen2", "qwen3", "mistral", "llama", "gemma3"];

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/text/tiny").join(name)
}

fn reference(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir(name).join("reference.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn device() -> aigc_core::burn::tensor::Device {
    aigc_core::parse_device("flex").unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn to_vec(t: aigc_core::burn::tensor::Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

fn check_model(name: &str) {
    let r = reference(name);
    let loaded = load_hf_dir(&dir(name), &device(), 64).unwrap();
    let model = loaded.model;
    let prompt = ids(&r["prompt_ids"]);
    let vocab = model.vocab_size();

    // The batched prompt pass, every position.
    let mut cache = model.new_cache(64).unwrap();
    let all = to_vec(model.forward(&prompt, &mut cache, true).unwrap());
    let want: Vec<f32> = r["prefill_logits"].as_array().unwrap().iter().flat_map(floats).collect();
    let d = max_diff(&all, &want);
    assert!(d <= TOL, "{name}: prefill logits differ by {d}");

    // Cached decoding, one token at a time, along the reference's greedy path.
    let mut cache = model.new_cache(64).unwrap();
    let mut last = to_vec(model.forward(&prompt, &mut cache, false).unwrap());
    assert_eq!(last.len(), vocab);
    let greedy = ids(&r["greedy_ids"]);
    let mut worst = max_diff(&last, &want[want.len() - vocab..]);
    for (step, want_step) in r["greedy_step_logits"].as_array().unwrap().iter().enumerate() {
        let want_step = floats(want_step);
        let d = max_diff(&last, &want_step);
        assert!(d <= TOL, "{name}: step {step} logits differ by {d}");
        worst = worst.max(d);
        last = to_vec(model.forward(&greedy[step..step + 1], &mut cache, false).unwrap());
    }
    eprintln!(
        "{name} ({}): prefill max |diff| {:.2e}, decode max |diff| {worst:.2e}",
        r["stored_dtype"], d
    );

    // The generator, greedy, gives the reference's tokens.
    let mut g = Generator::from_hf_dir(dir(name), &device(), 64).unwrap();
    let cfg = GenerationConfig { ignore_eos: true, ..GenerationConfig::greedy(greedy.len()) };
    let out = g.generate(Prompt::Tokens(&prompt), &cfg).unwrap();
    assert_eq!(out.ids, greedy, "{name}: greedy ids");
    assert_eq!(out.finish_reason, FinishReason::MaxTokens);
}

#[test]
fn qwen2() {
    check_model("qwen2");
}

#[test]
fn qwen3() {
    check_model("qwen3");
}

#[test]
fn mistral_with_sliding_window() {
    check_model("mistral");
}

#[test]
fn llama_with_llama3_rope_scaling() {
    check_model("llama");
}

#[test]
fn gemma3_from_hf_names() {
    check_model("gemma3");
}

#[test]
fn configs_read_as_transformers_wrote_them() {
    use aigc_text::Architecture::*;
    for (name, arch) in MODELS.iter().zip([Qwen2, Qwen3, Mistral, Llama, Gemma3]) {
        let loaded = load_hf_dir(&dir(name), &device(), 32).unwrap();
        assert_eq!(loaded.config.architecture, arch);
        assert_eq!(loaded.model.max_context(), 32);
    }
    let gemma = load_hf_dir(&dir("gemma3"), &device(), 32).unwrap().config;
    let windows: Vec<_> = gemma.layers.iter().map(|l| l.sliding_window).collect();
    assert_eq!(windows, [Some(5), Some(5), None]);
    assert_eq!(
        gemma.layers[2].rope_scaling,
        Some(aigc_core::layers::RopeScaling::Linear { factor: 2.0 })
    );
    assert!((gemma.attention_scale - 1.0 / 24f32.sqrt()).abs() < 1e-7);
}

fn generator() -> Generator {
    Generator::from_hf_dir(dir("qwen2"), &device(), 64).unwrap()
}

#[test]
fn generator_is_send() {
    fn send<T: Send>() {}
    send::<Generator>();
}

#[test]
fn chat_template_from_tokenizer_config() {
    let g = generator();
    let msgs = [Message::system("be brief"), Message::user("the cat")];
    let text = g.apply_chat_template(&msgs, true).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nthe cat<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = g.encode_prompt(Prompt::Messages(&msgs)).unwrap();
    let im_start = g.tokenizer().token_to_id("<|im_start|>").unwrap();
    assert_eq!(ids[0], im_start, "special tokens in the rendered text are matched whole");
    assert!(g.tokenizer().is_end_of_generation(g.tokenizer().token_to_id("<|im_end|>").unwrap()));
}

#[test]
fn streaming_equals_generate_and_stops_cleanly_when_dropped() {
    let mut g = generator();
    let cfg = GenerationConfig { ignore_eos: true, ..GenerationConfig::greedy(12) };
    let full = g.generate("the cat sat", &cfg).unwrap();
    assert_eq!(full.text, g.tokenizer().decode(&full.ids, false).unwrap());

    let pieces: Vec<String> = g.stream("the cat sat", &cfg).unwrap().map(Result::unwrap).collect();
    assert_eq!(pieces.concat(), full.text);

    // Drop a stream after one piece: the generator is reusable and gives the same result.
    {
        let mut s = g.stream("the cat sat", &cfg).unwrap();
        let _ = s.next();
    }
    let again = g.generate("the cat sat", &cfg).unwrap();
    assert_eq!(again.ids, full.ids);
    assert_eq!(again.text, full.text);
    assert!(again.timings.prompt_tokens_per_s() > 0.0 && again.timings.tokens_per_s() > 0.0);
}

#[test]
fn callback_can_cancel() {
    let mut g = generator();
    let cfg = GenerationConfig { ignore_eos: true, ..GenerationConfig::greedy(12) };
    let mut calls = 0;
    let out = g
        .generate_with("the cat sat", &cfg, |_| {
            calls += 1;
            if calls == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .unwrap();
    assert_eq!(out.finish_reason, FinishReason::Cancelled);
    assert!(out.ids.len() < 12);
}

#[test]
fn stop_strings_across_token_boundaries() {
    let mut g = generator();
    let cfg = GenerationConfig { ignore_eos: true, ..GenerationConfig::greedy(12) };
    let full = g.generate("the cat sat", &cfg).unwrap();
    // Pick a stop string that straddles the boundary between two generated tokens.
    let tok = g.tokenizer();
    let mut at = None;
    let mut text = String::new();
    for i in 0..full.ids.len() - 1 {
        let before = tok.decode(&full.ids[..=i], false).unwrap();
        let after = tok.decode(&full.ids[..=i + 1], false).unwrap();
        if before.len() >= 2
            && after.len() >= before.len() + 2
            && before.is_char_boundary(before.len() - 1)
        {
            at = Some(before.len() - 1);
            text = after;
            break;
        }
    }
    let at = at.expect("a pair of tokens to stop across");
    let stop = text[at..at + 2].to_string();
    let first = full.text.find(&stop).unwrap();
    let cfg = GenerationConfig { stop: vec![stop.clone()], ..cfg };
    let out = g.generate("the cat sat", &cfg).unwrap();
    assert_eq!(out.finish_reason, FinishReason::Stop);
    assert_eq!(out.text, full.text[..first], "stop {stop:?}");
    // The streamed pieces never include text past the stop string.
    let streamed: String = g.stream("the cat sat", &cfg).unwrap().map(Result::unwrap).collect();
    assert_eq!(streamed, out.text);
}

#[test]
fn seeded_sampling_is_reproducible() {
    let mut g = generator();
    let cfg = GenerationConfig {
        max_new_tokens: 16,
        ignore_eos: true,
        sampling: aigc_text::SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 7,
            ..Default::default()
        },
        ..Default::default()
    };
    let a = g.generate("the cat", &cfg).unwrap();
    let b = g.generate("the cat", &cfg).unwrap();
    assert_eq!(a.ids, b.ids);
    let other = GenerationConfig {
        sampling: aigc_text::SamplingParams { seed: 8, ..cfg.sampling.clone() },
        ..cfg.clone()
    };
    let c = g.generate("the cat", &other).unwrap();
    assert_ne!(a.ids, c.ids, "a different seed should change 16 samples at temperature 1");
}

#[test]
fn bad_inputs_are_errors() {
    let mut g = generator();
    let err = g.generate("", &GenerationConfig::greedy(4)).unwrap_err();
    assert!(matches!(err, aigc_text::Error::InvalidArgument { name: "prompt", .. }), "{err}");
    let err = g.generate(Prompt::Tokens(&[100_000]), &GenerationConfig::greedy(4)).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    let long: Vec<u32> = vec![5; 65];
    let err = g.generate(Prompt::Tokens(&long), &GenerationConfig::greedy(4)).unwrap_err();
    assert!(
        matches!(err, aigc_text::Error::ContextOverflow { prompt_tokens: 65, context: 64, .. }),
        "{err}"
    );
    let bad = GenerationConfig {
        sampling: aigc_text::SamplingParams { temperature: -1.0, ..Default::default() },
        ..Default::default()
    };
    assert!(g.generate("the cat", &bad).is_err());
    let bad = GenerationConfig { stop: vec![String::new()], ..Default::default() };
    assert!(g.generate("the cat", &bad).is_err());
    // And the generator still works.
    assert_eq!(g.generate("the cat", &GenerationConfig::greedy(3)).unwrap().ids.len(), 3);
}

#[test]
fn missing_and_misshaped_tensors_are_reported() {
    let tmp = std::env::temp_dir().join(format!("aigc-tiny-broken-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"] {
        std::fs::copy(dir("qwen2").join(f), tmp.join(f)).unwrap();
    }
    // A config that claims a wider MLP than the weights have.
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.join("config.json")).unwrap()).unwrap();
    cfg["intermediate_size"] = 100.into();
    std::fs::write(tmp.join("config.json"), cfg.to_string()).unwrap();
    let err = load_hf_dir(&tmp, &device(), 16).unwrap_err().to_string();
    assert!(err.contains("mlp.gate_proj.weight") && err.contains("100"), "{err}");
    // An unknown architecture.
    cfg["model_type"] = "mamba".into();
    std::fs::write(tmp.join("config.json"), cfg.to_string()).unwrap();
    let err = load_hf_dir(&tmp, &device(), 16).unwrap_err().to_string();
    assert!(err.contains("mamba"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
