//! Whisper against transformers (tools/whisper_golden.py): the log-mel front end against
//! `WhisperFeatureExtractor`, the real tiny.en model (CTranslate2 file) against
//! `WhisperForConditionalGeneration` holding the same weights (encoder output, raw decoder
//! logits position by position through the KV cache, the greedy transcript), and a tiny
//! random model in the Hugging Face layout.

use std::path::PathBuf;

use aigc_core::burn::tensor::Tensor;
use aigc_crossmodal::whisper::mel::{N_FRAMES, N_SAMPLES};
use aigc_crossmodal::whisper::{TranscribeOptions, Whisper, WhisperFrontEnd, WhisperModel};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/crossmodal/whisper")
}

fn json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn rows(t: &Tensor<3>, first: usize) -> Vec<f32> {
    let n = t.dims()[1];
    t.clone().narrow(1, 0, first.min(n)).into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn espeak_audio() -> Vec<f32> {
    let audio = aigc_audio::wav::read_wav(fixtures().join("espeak.wav")).unwrap();
    assert_eq!(audio.sample_rate, 16_000);
    audio.to_mono()
}

/// The reference's 30 s window: the saved frames, then the constant of padded silence.
fn reference_window(g: &Value) -> Vec<f32> {
    let (shape, saved) = aigc_core::npy::read_f32(fixtures().join("espeak_mel.npy")).unwrap();
    let (n_mels, frames) = (shape[0], shape[1]);
    let pad = g["mel_pad_value"].as_f64().unwrap() as f32;
    let mut window = vec![pad; n_mels * N_FRAMES];
    for m in 0..n_mels {
        window[m * N_FRAMES..m * N_FRAMES + frames]
            .copy_from_slice(&saved[m * frames..(m + 1) * frames]);
    }
    window
}

#[test]
fn log_mel_matches_the_feature_extractor() {
    let g = json(fixtures().join("espeak.json"));
    let audio = espeak_audio();
    assert_eq!(audio.len(), g["samples"].as_u64().unwrap() as usize);
    let front = WhisperFrontEnd::new(80).unwrap();
    let mel = front.compute(&audio, N_SAMPLES).unwrap();
    let ours = mel.window(0);
    let want = reference_window(&g);
    let worst = ours.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("log-mel: max |diff| {worst:.2e} over {} values", want.len());
    assert!(worst < 1e-4, "log-mel differs by {worst}");
    assert!(front.compute(&[f32::NAN], 0).is_err());
    assert!(WhisperFrontEnd::new(0).is_err());
}

#[test]
fn tiny_en_matches_transformers() {
    let Some(path) = aigc_core::models::installed_or_skip("whisper-tiny-en") else {
        return;
    };
    let device = aigc_core::parse_device("flex").unwrap();
    let model = WhisperModel::open(&path, &device).unwrap();
    let g = json(fixtures().join("espeak.json"));
    let encoded = model.encode(&reference_window(&g)).unwrap();
    let want: Vec<f32> =
        g["encoder_first_rows"].as_array().unwrap().iter().flat_map(floats).collect();
    let got = rows(&encoded, 3);
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("encoder: max |diff| {worst:.2e} (reference rounded to 1e-5)");
    assert!(worst < 2e-3, "encoder output differs by {worst}");

    // The prompt and the greedy tokens, one at a time through the cache.
    let prompt: Vec<u32> =
        g["prompt"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    let tokens: Vec<u32> =
        g["tokens"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    let ids: Vec<u32> = prompt.iter().chain(&tokens).copied().collect();
    let mut state = model.decoder_state(&encoded);
    let mut worst = 0f32;
    for (i, &id) in ids.iter().enumerate() {
        let logits = model.decode(&mut state, &[id]).unwrap();
        let top = &g["logits_top"][i];
        for (k, v) in top["ids"].as_array().unwrap().iter().zip(top["values"].as_array().unwrap()) {
            let (k, v) = (k.as_u64().unwrap() as usize, v.as_f64().unwrap() as f32);
            worst = worst.max((logits[k] - v).abs());
        }
        if i + 1 < ids.len() && i + 1 >= prompt.len() {
            // The top logit is the greedy choice (specials aside).
            let best = top["ids"][0].as_u64().unwrap() as u32;
            assert!(best == ids[i + 1] || best >= 50257, "position {i}");
        }
    }
    println!("decoder logits: max |diff| {worst:.2e} over the top 20 at {} positions", ids.len());
    assert!(worst < 1e-2, "decoder logits differ by {worst}");
    // Feeding the prompt at once gives the same logits as one by one.
    let mut state = model.decoder_state(&encoded);
    let at_once = model.decode(&mut state, &ids[..prompt.len() + 3]).unwrap();
    let mut state = model.decoder_state(&encoded);
    let mut one = Vec::new();
    for &id in &ids[..prompt.len() + 3] {
        one = model.decode(&mut state, &[id]).unwrap();
    }
    let worst = at_once.iter().zip(&one).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-3, "batched and stepwise decoding differ by {worst}");
}

#[test]
fn tiny_en_transcribes_the_utterance() {
    let Some(path) = aigc_core::models::installed_or_skip("whisper-tiny-en") else {
        return;
    };
    let device = aigc_core::parse_device("flex").unwrap();
    let whisper = Whisper::open(&path, &device).unwrap();
    let g = json(fixtures().join("espeak.json"));
    let want = g["transcript"].as_str().unwrap();
    let audio = espeak_audio();
    let plain = TranscribeOptions { timestamps: false, ..TranscribeOptions::default() };
    let t = whisper.transcribe(&audio, &plain).unwrap();
    println!("without timestamps: {:?}", t.text);
    assert_eq!(t.text, want);
    let t = whisper.transcribe(&audio, &TranscribeOptions::default()).unwrap();
    println!("with timestamps: {:?}", t.segments);
    assert_eq!(t.text, want);
    let first = &t.segments[0];
    assert!(first.start >= 0.0 && first.end <= t.duration + 0.5 && first.start < first.end);
    // Forced fallback (every result counts as repetitive): all temperatures are tried and
    // the last, sampled one is kept; the seed makes it reproducible.
    let forced = TranscribeOptions {
        timestamps: false,
        compression_ratio_threshold: Some(0.0),
        seed: 3,
        ..TranscribeOptions::default()
    };
    let a = whisper.transcribe(&audio, &forced).unwrap();
    let b = whisper.transcribe(&audio, &forced).unwrap();
    println!("sampled at T=1: {:?}", a.text);
    assert_eq!(a.segments[0].temperature, 1.0);
    assert_eq!(a, b);
    // Silence gives no text; bad options are refused.
    let silence = whisper.transcribe(&vec![0.0; 16_000], &plain).unwrap();
    assert!(silence.text.split_whitespace().count() <= 2, "{:?}", silence.text);
    let bad = TranscribeOptions { temperatures: vec![], ..TranscribeOptions::default() };
    assert!(whisper.transcribe(&audio, &bad).is_err());
}

#[test]
fn long_audio_is_transcribed_window_by_window() {
    let Some(path) = aigc_core::models::installed_or_skip("whisper-tiny-en") else {
        return;
    };
    let device = aigc_core::parse_device("flex").unwrap();
    let whisper = Whisper::open(&path, &device).unwrap();
    let g = json(fixtures().join("espeak.json"));
    let want = g["transcript"].as_str().unwrap();
    // The utterance, 28 s of silence, the utterance again: the second starts past the first
    // 30 s window (tiny.en's timestamps are coarse: the segment is only checked to lie in the
    // second window, within the audio).
    let speech = espeak_audio();
    let mut audio = speech.clone();
    audio.extend(std::iter::repeat_n(0.0, 28 * 16_000));
    let second_start = audio.len() as f64 / 16_000.0;
    audio.extend(&speech);
    let t = whisper.transcribe(&audio, &TranscribeOptions::default()).unwrap();
    for s in &t.segments {
        println!("[{:6.2} -> {:6.2}] {}", s.start, s.end, s.text);
    }
    assert_eq!(t.text.matches(want).count(), 2, "{:?}", t.text);
    let last = t.segments.last().unwrap();
    assert!(last.start >= 30.0 && last.start < second_start && last.end <= t.duration, "{last:?}");
    assert!(t.segments[0].end <= speech.len() as f64 / 16_000.0 + 0.5);
}

#[test]
fn hugging_face_layout_matches_transformers() {
    let dir = fixtures().join("hf-tiny");
    let g = json(dir.join("golden.json"));
    let device = aigc_core::parse_device("flex").unwrap();
    let model = WhisperModel::open(&dir, &device).unwrap();
    let cfg = *model.config();
    let mel: Vec<f32> = (0..cfg.n_mels * N_FRAMES)
        .map(|i| {
            let (m, t) = (i / N_FRAMES, i % N_FRAMES);
            ((7 * m + 13 * t) % 97) as f32 / 97.0 - 0.5
        })
        .collect();
    let encoded = model.encode(&mel).unwrap();
    let want: Vec<f32> =
        g["encoder_first_rows"].as_array().unwrap().iter().flat_map(floats).collect();
    let got = rows(&encoded, 3);
    let mut worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let last =
        encoded.clone().narrow(1, cfg.audio_ctx - 1, 1).into_data().try_to_vec::<f32>().unwrap();
    worst = last
        .iter()
        .zip(floats(&g["encoder_last_row"]))
        .map(|(a, b)| (a - b).abs())
        .fold(worst, f32::max);
    println!("hf-tiny encoder: max |diff| {worst:.2e}");
    assert!(worst < 1e-4, "encoder output differs by {worst}");
    let ids: Vec<u32> =
        g["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    let mut state = model.decoder_state(&encoded);
    let mut worst = 0f32;
    for (i, &id) in ids.iter().enumerate() {
        let logits = model.decode(&mut state, &[id]).unwrap();
        let want = floats(&g["logits"][i]);
        assert_eq!(logits.len(), want.len());
        worst = logits.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
    }
    println!("hf-tiny decoder logits: max |diff| {worst:.2e}");
    assert!(worst < 1e-4, "decoder logits differ by {worst}");
}

#[test]
fn bad_input_is_refused() {
    let dir = fixtures().join("hf-tiny");
    let device = aigc_core::parse_device("flex").unwrap();
    let model = WhisperModel::open(&dir, &device).unwrap();
    let cfg = *model.config();
    assert!(model.encode(&[0.0; 10]).is_err(), "short mel");
    let encoded = model.encode(&vec![0.0; cfg.n_mels * N_FRAMES]).unwrap();
    let mut state = model.decoder_state(&encoded);
    assert!(model.decode(&mut state, &[]).is_err(), "no tokens");
    assert!(model.decode(&mut state, &[cfg.vocab as u32]).is_err(), "id past the vocabulary");
    let too_many = vec![1u32; cfg.text_ctx + 1];
    assert!(model.decode(&mut state, &too_many).is_err(), "past the context");
    assert!(WhisperModel::open(fixtures().join("missing"), &device).is_err());
    // A config that does not fit the weights names the tensors.
    let tmp = std::env::temp_dir().join(format!("aigc-whisper-bad-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut config: Value = json(dir.join("config.json"));
    config["d_model"] = Value::from(48);
    std::fs::write(tmp.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(dir.join("model.safetensors"), tmp.join("model.safetensors")).unwrap();
    let err = WhisperModel::open(&tmp, &device).unwrap_err().to_string();
    assert!(err.contains("conv1"), "{err}");
    std::fs::remove_dir_all(&tmp).ok();
}
