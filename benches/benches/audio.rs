//! Speech: Piper en_US-joe-medium synthesising a fixed sentence ("How are you doing today?",
//! 57 phoneme ids, 1.15 s of audio) from phoneme ids with zero noise, per runnable backend
//! (flex; ndarray and wgpu when compiled in). The real-time factor is the time over 1.149 s.
//!
//! `cargo bench -p aigc-benches --bench audio` (the voice from `scripts/fetch-models.sh`).
//! `benches/compare-tts.sh` times onnxruntime on the same ids in the same run.

use std::hint::black_box;
use std::time::Duration;

use aigc_audio::piper::{PiperVoice, SynthesisOptions};
use criterion::{Criterion, criterion_group, criterion_main};

/// The ids of "How are you doing today?" (tools/fixtures/audio/piper/manifest.json).
pub const QUESTION_IDS: [i64; 57] = [
    1, 0, 20, 0, 121, 0, 14, 0, 100, 0, 3, 0, 51, 0, 122, 0, 88, 0, 3, 0, 22, 0, 33, 0, 122, 0, 3,
    0, 17, 0, 121, 0, 33, 0, 122, 0, 74, 0, 44, 0, 3, 0, 32, 0, 59, 0, 17, 0, 120, 0, 18, 0, 74, 0,
    13, 0, 2,
];

fn piper(c: &mut Criterion) {
    let Some(path) = aigc_core::models::installed_or_skip("piper-en-us-joe-medium") else {
        return;
    };
    let options = SynthesisOptions { noise_scale: 0.0, length_scale: 1.0, noise_w: 0.0, seed: 0 };
    for (backend, device, time) in aigc_benches::backends(Duration::from_secs(10)) {
        let voice = PiperVoice::open(&path, &device).unwrap();
        let mut group = c.benchmark_group(format!("piper-joe-medium/{backend}"));
        group.sample_size(10).measurement_time(time);
        group.bench_function("synthesize_question", |b| {
            b.iter(|| black_box(voice.synthesize_ids(&QUESTION_IDS, &options).unwrap()))
        });
        group.finish();
    }
}

criterion_group!(benches, piper);
criterion_main!(benches);
