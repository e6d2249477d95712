//! HiFi-GAN parity with transformers' `SpeechT5HifiGan` on a tiny random-weight
//! configuration (`tools/audio_golden.py` → `tools/fixtures/audio/hifigan-tiny/`).

use std::path::PathBuf;

use aigc_audio::hifigan::HifiGan;
use aigc_core::npy;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/audio")
}

#[test]
fn tiny_speecht5_hifigan_matches_transformers() {
    let device = aigc_core::device_from_env().unwrap();
    let model = HifiGan::open(fixtures().join("hifigan-tiny"), &device).unwrap();
    let (shape, mel) = npy::read_f32(fixtures().join("hifigan_input.npy")).unwrap();
    let (_, want) = npy::read_f32(fixtures().join("hifigan_output.npy")).unwrap();
    let got = model.vocode(&mel, shape[0]).unwrap();
    assert_eq!(got.len(), want.len());
    let diff = got.iter().zip(&want).fold(0f32, |m, (g, w)| m.max((g - w).abs()));
    println!("hifigan: max |diff| {diff:.2e} over {} samples", got.len());
    assert!(diff < 1e-4, "max |diff| {diff}");
}

#[test]
fn bad_input_is_refused() {
    let device = aigc_core::device_from_env().unwrap();
    let model = HifiGan::open(fixtures().join("hifigan-tiny"), &device).unwrap();
    assert!(model.vocode(&[0.0; 15], 1).is_err());
    assert!(model.vocode(&[], 0).is_err());
    assert!(HifiGan::open(fixtures().join("missing"), &device).is_err());
}
