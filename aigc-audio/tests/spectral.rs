//! Spectral parity with librosa and scipy (`tools/audio_golden.py` →
//! `tools/fixtures/audio/`): mel filterbanks, STFT magnitudes, four mel spectrogram
//! configurations, Griffin-Lim and polyphase resampling on the same test signal.

use std::path::PathBuf;

use aigc_audio::resample::resample_poly;
use aigc_audio::spectral::{
    MelConfig, MelNorm, MelScale, MelSpectrogram, PadMode, Spectrogram, Stft, StftConfig,
    griffin_lim, mel_filterbank,
};
use aigc_core::npy;

fn fixture(name: &str) -> (Vec<usize>, Vec<f32>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/audio").join(name);
    npy::read_f32(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Largest difference relative to the reference's largest magnitude.
fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &w| m.max(w.abs() as f64));
    let diff = got.iter().zip(want).fold(0f64, |m, (&g, &w)| m.max((g as f64 - w as f64).abs()));
    diff / scale.max(f64::MIN_POSITIVE)
}

fn check(what: &str, got: &[f32], want: &[f32], bound: f64) {
    let err = relative_error(got, want);
    println!("{what}: max |diff| / max |ref| = {err:.2e}");
    assert!(err <= bound, "{what}: {err:.2e} > {bound:.0e}");
}

fn stft(n_fft: usize, hop: usize, win: usize, center: bool) -> StftConfig {
    StftConfig { n_fft, hop_length: hop, win_length: win, center, pad_mode: PadMode::Reflect }
}

#[test]
fn mel_filterbanks_match_librosa() {
    for (name, scale, norm) in [
        ("mel_filters_a.npy", MelScale::Slaney, MelNorm::Slaney),
        ("mel_filters_b.npy", MelScale::Htk, MelNorm::None),
    ] {
        let (shape, want) = fixture(name);
        assert_eq!(shape, [80, 513]);
        let got = mel_filterbank(22050, 1024, 80, 0.0, Some(8000.0), scale, norm).unwrap();
        check(name, &got, &want, 1e-6);
    }
}

#[test]
fn stft_magnitude_matches_librosa() {
    let (_, signal) = fixture("signal.npy");
    let (shape, want) = fixture("stft_mag_a.npy");
    let got = Stft::new(stft(1024, 256, 1024, true)).unwrap().power(&signal, 1.0).unwrap();
    assert_eq!([got.bins, got.frames], [shape[0], shape[1]]);
    check("stft |X|", &got.data, &want, 1e-5);
}

#[test]
fn mel_spectrograms_match_librosa() {
    let (_, signal) = fixture("signal.npy");
    let (_, signal_16k) = fixture("signal_16k.npy");
    let cases = [
        (
            "mel_a.npy",
            &signal,
            22050,
            stft(1024, 256, 1024, true),
            80,
            0.0,
            Some(8000.0),
            MelScale::Slaney,
            MelNorm::Slaney,
            1.0,
        ),
        (
            "mel_b.npy",
            &signal,
            22050,
            stft(1024, 256, 1024, true),
            80,
            0.0,
            Some(8000.0),
            MelScale::Htk,
            MelNorm::None,
            2.0,
        ),
        (
            "mel_c.npy",
            &signal,
            22050,
            stft(512, 128, 400, false),
            40,
            50.0,
            None,
            MelScale::Slaney,
            MelNorm::Slaney,
            2.0,
        ),
        (
            "mel_d.npy",
            &signal_16k,
            16000,
            stft(400, 160, 400, true),
            80,
            0.0,
            None,
            MelScale::Slaney,
            MelNorm::Slaney,
            2.0,
        ),
    ];
    for (name, y, sample_rate, stft, n_mels, fmin, fmax, scale, norm, power) in cases {
        let (shape, want) = fixture(name);
        let cfg = MelConfig { sample_rate, stft, n_mels, fmin, fmax, scale, norm, power };
        let got = MelSpectrogram::new(cfg).unwrap().compute(y).unwrap();
        assert_eq!([got.bins, got.frames], [shape[0], shape[1]], "{name}");
        check(name, &got.data, &want, 1e-4);
    }
}

#[test]
fn griffin_lim_matches_librosa() {
    let (_, signal) = fixture("signal.npy");
    let (shape, magnitude) = fixture("stft_mag_a.npy");
    let (_, want) = fixture("griffinlim_a.npy");
    let magnitude = Spectrogram { bins: shape[0], frames: shape[1], data: magnitude };
    let got =
        griffin_lim(&magnitude, stft(1024, 256, 1024, true), 8, 0.99, Some(signal.len())).unwrap();
    check("griffin-lim", &got, &want, 1e-3);
}

#[test]
fn resampling_matches_scipy() {
    let (_, signal) = fixture("signal.npy");
    let (_, want) = fixture("signal_16k.npy");
    let got = resample_poly(&signal, 320, 441).unwrap();
    assert_eq!(got.len(), want.len());
    check("resample_poly 320/441", &got, &want, 1e-5);
}
