//! The Piper voice en_US-joe-medium against Piper's own tools and onnxruntime
//! (`tools/piper_golden.py` → `tools/fixtures/audio/piper/`): phoneme ids from Piper's
//! phonemes for 12 texts, and the decoder (HiFi-GAN) on onnxruntime's decoder input.

use std::path::PathBuf;

use aigc_audio::piper::{PiperConfig, PiperVoice};
use aigc_core::npy;
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/audio/piper")
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join(name)).unwrap()).unwrap()
}

#[test]
fn phoneme_ids_match_piper_phonemize() {
    let Some(path) = aigc_core::models::installed_or_skip("piper-en-us-joe-medium") else {
        return;
    };
    let json = std::fs::read_to_string(format!("{}.json", path.display())).unwrap();
    let config = PiperConfig::from_json(&json).unwrap();
    let phonemes = fixture_json("phonemes.json");
    let mut count = 0;
    for text in phonemes["sentences"].as_array().unwrap() {
        for sentence in text["sentences"].as_array().unwrap() {
            let ipa: String = sentence["phonemes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            let want: Vec<i64> =
                sentence["ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
            let (ids, missing) = config.phoneme_ids(&ipa);
            assert!(missing.is_empty(), "{}: unknown {missing:?}", text["text"]);
            assert_eq!(ids, want, "{}", text["text"]);
            count += 1;
        }
    }
    assert!(count >= 12, "{count} sentences");
}

#[test]
fn decoder_matches_onnxruntime() {
    let Some(path) = aigc_core::models::installed_or_skip("piper-en-us-joe-medium") else {
        return;
    };
    let device = aigc_core::parse_device("flex").unwrap();
    let voice = PiperVoice::open(&path, &device).unwrap();
    let (shape, z) = npy::read_f32(fixtures().join("inter_hello_z.npy")).unwrap();
    assert_eq!(shape, [1, 192, 72]);
    let (_, want) = npy::read_f32(fixtures().join("wave_hello.npy")).unwrap();
    let got = voice.decode(&z, 72).unwrap();
    assert_eq!(got.len(), want.len());
    let diff = got.iter().zip(&want).fold(0f32, |m, (g, w)| m.max((g - w).abs()));
    eprintln!("piper decoder: max |diff| {diff:.2e} over {} samples", got.len());
    assert!(diff <= 1e-3, "max |diff| {diff}");
}

#[test]
fn bad_configs_are_refused() {
    assert!(PiperConfig::from_json("{}").is_err());
    let no_pad = r#"{"audio": {"sample_rate": 22050}, "phoneme_id_map": {"^": [1], "$": [2]}}"#;
    assert!(PiperConfig::from_json(no_pad).unwrap_err().to_string().contains("'_'"));
    let out_of_range = r#"{"audio": {"sample_rate": 22050}, "num_symbols": 4,
        "phoneme_id_map": {"^": [1], "$": [2], "_": [0], "a": [9]}}"#;
    assert!(PiperConfig::from_json(out_of_range).is_err());
    let ok = r#"{"audio": {"sample_rate": 22050, "quality": "ultra"}, "phoneme_id_map": {"^": [1], "$": [2], "_": [0]}}"#;
    assert!(PiperConfig::from_json(ok).unwrap().decoder_config().is_err());
}

#[test]
fn text_encoder_matches_onnxruntime() {
    let Some(path) = aigc_core::models::installed_or_skip("piper-en-us-joe-medium") else {
        return;
    };
    let device = aigc_core::parse_device("flex").unwrap();
    let voice = PiperVoice::open(&path, &device).unwrap();
    let manifest = fixture_json("manifest.json");
    let hello = &manifest["waves"][0];
    let ids: Vec<i64> =
        hello["ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    let enc = voice.encode(&ids).unwrap();
    for (name, got) in [("enc_x", enc.x), ("m_p", enc.m_p), ("logs_p", enc.logs_p)] {
        let (shape, want) =
            npy::read_f32(fixtures().join(format!("inter_hello_{name}.npy"))).unwrap();
        assert_eq!(got.dims().to_vec(), shape, "{name}");
        let got = got.into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
        let diff = got.iter().zip(&want).fold(0f32, |m, (g, w)| m.max((g - w).abs()));
        eprintln!("piper text encoder {name}: max |diff| {diff:.2e}");
        assert!(diff <= 1e-3, "{name}: max |diff| {diff}");
    }
    assert!(voice.encode(&[]).is_err());
    assert!(voice.encode(&[1, 999]).is_err());
}

#[test]
fn flow_matches_onnxruntime() {
    let Some(path) = aigc_core::models::installed_or_skip("piper-en-us-joe-medium") else {
        return;
    };
    let device = aigc_core::parse_device("flex").unwrap();
    let voice = PiperVoice::open(&path, &device).unwrap();
    // With noise_scale 0 the prior sample is m_p repeated by the rounded-up durations.
    let (_, m_p) = npy::read_f32(fixtures().join("inter_hello_m_p.npy")).unwrap();
    let (_, w_ceil) = npy::read_f32(fixtures().join("inter_hello_w_ceil.npy")).unwrap();
    let (shape, want) = npy::read_f32(fixtures().join("inter_hello_z.npy")).unwrap();
    let (c, t) = (192, w_ceil.len());
    let frames: usize = w_ceil.iter().map(|&w| w as usize).sum();
    assert_eq!(shape, [1, c, frames]);
    let mut z_p = Vec::with_capacity(c * frames);
    for ch in 0..c {
        for (i, &w) in w_ceil.iter().enumerate() {
            z_p.extend(std::iter::repeat_n(m_p[ch * t + i], w as usize));
        }
    }
    let z_p = aigc_core::burn::tensor::Tensor::<3>::from_data(
        aigc_core::burn::tensor::TensorData::new(z_p, [1, c, frames]),
        &device,
    );
    let got = voice.flow_reverse(z_p).into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
    let diff = got.iter().zip(&want).fold(0f32, |m, (g, w)| m.max((g - w).abs()));
    eprintln!("piper flow: max |diff| {diff:.2e}");
    assert!(diff <= 1e-3, "max |diff| {diff}");
}

#[test]
fn durations_match_onnxruntime() {
    let Some(path) = aigc_core::models::installed_or_skip("piper-en-us-joe-medium") else {
        return;
    };
    let device = aigc_core::parse_device("flex").unwrap();
    let voice = PiperVoice::open(&path, &device).unwrap();
    let manifest = fixture_json("manifest.json");
    for (i, key) in ["hello", "question"].iter().enumerate() {
        let ids: Vec<i64> = manifest["waves"][i]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        let enc = voice.encode(&ids).unwrap();
        let logw = voice.log_durations(&enc, &vec![0.0; 2 * ids.len()], 0.0).unwrap();
        let (_, want) = npy::read_f32(fixtures().join(format!("inter_{key}_w.npy"))).unwrap();
        let (_, want_ceil) =
            npy::read_f32(fixtures().join(format!("inter_{key}_w_ceil.npy"))).unwrap();
        let w: Vec<f32> = logw.iter().map(|l| l.exp()).collect();
        let diff = w.iter().zip(&want).fold(0f32, |m, (g, w)| m.max((g - w).abs()));
        eprintln!("piper durations {key}: max |diff| {diff:.2e}");
        assert!(diff <= 1e-3, "{key}: max |diff| {diff}");
        let ceil: Vec<f32> = w.iter().map(|v| v.ceil()).collect();
        assert_eq!(ceil, want_ceil, "{key}");
    }
}

#[test]
fn synthesis_with_zero_noise_matches_onnxruntime() {
    use aigc_audio::piper::SynthesisOptions;
    let Some(path) = aigc_core::models::installed_or_skip("piper-en-us-joe-medium") else {
        return;
    };
    let device = aigc_core::parse_device("flex").unwrap();
    let voice = PiperVoice::open(&path, &device).unwrap();
    let manifest = fixture_json("manifest.json");
    let options = SynthesisOptions { noise_scale: 0.0, length_scale: 1.0, noise_w: 0.0, seed: 0 };
    for wave in manifest["waves"].as_array().unwrap() {
        let ids: Vec<i64> =
            wave["ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        let (_, want) = npy::read_f32(fixtures().join(wave["file"].as_str().unwrap())).unwrap();
        let got = voice.synthesize_ids(&ids, &options).unwrap();
        assert_eq!(got.len(), want.len(), "{}", wave["text"]);
        let diff = got.iter().zip(&want).fold(0f32, |m, (g, w)| m.max((g - w).abs()));
        eprintln!("piper {}: max |diff| {diff:.2e} over {} samples", wave["text"], got.len());
        assert!(diff <= 1e-3, "{}: max |diff| {diff}", wave["text"]);
    }
    // Seeded noise is reproducible, and different seeds differ.
    let ids: Vec<i64> = manifest["waves"][0]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    let noisy = SynthesisOptions::defaults(voice.config(), 7);
    let a = voice.synthesize_ids(&ids, &noisy).unwrap();
    assert_eq!(a, voice.synthesize_ids(&ids, &noisy).unwrap());
    assert_ne!(a, voice.synthesize_ids(&ids, &SynthesisOptions { seed: 8, ..noisy }).unwrap());
    assert!(voice.synthesize_ids(&ids, &SynthesisOptions { length_scale: 0.0, ..noisy }).is_err());
}

#[test]
fn espeak_phonemes_match_piper_phonemize() {
    if !aigc_audio::espeak::available() {
        if std::env::var("AIGC_REQUIRE_MODELS").is_ok_and(|v| v == "1") {
            panic!("AIGC_REQUIRE_MODELS=1 but espeak-ng cannot be loaded");
        }
        eprintln!("\n**** SKIPPED: espeak-ng is not installed ****\n");
        return;
    }
    let phonemes = fixture_json("phonemes.json");
    let texts = phonemes["sentences"].as_array().unwrap();
    assert!(texts.len() >= 12);
    for text in texts {
        let want: Vec<String> = text["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                s["phonemes"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect()
            })
            .collect();
        let got = aigc_audio::espeak::phonemize(text["text"].as_str().unwrap(), "en-us").unwrap();
        assert_eq!(got, want, "{}", text["text"]);
    }
}
