//! Speech recognition: Whisper tiny.en (CTranslate2 weights) transcribing the committed espeak-ng
//! utterance (tools/fixtures/crossmodal/whisper/espeak.wav, 2.9 s) without timestamps, greedy,
//! per runnable backend (flex; ndarray and wgpu when compiled in). The real-time factor is the
//! time over the audio's length; a 30 s window costs one encoder pass whatever the audio's
//! length, so short audio has a high factor.
//!
//! `cargo bench -p aigc-benches --bench crossmodal` (the model from `scripts/fetch-models.sh`).
//! `benches/compare-whisper.sh` times CTranslate2 on the same audio in the same run.

use std::hint::black_box;
use std::time::Duration;

use aigc_crossmodal::whisper::{TranscribeOptions, Whisper};
use criterion::{Criterion, criterion_group, criterion_main};

fn whisper(c: &mut Criterion) {
    let Some(path) = aigc_core::models::installed_or_skip("whisper-tiny-en") else {
        return;
    };
    let wav =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/fixtures/crossmodal/whisper/espeak.wav");
    let audio = aigc_audio::wav::read_wav(wav).unwrap();
    let options = TranscribeOptions {
        timestamps: false,
        temperatures: vec![0.0],
        condition_on_previous_text: false,
        ..TranscribeOptions::default()
    };
    for (backend, device, time) in aigc_benches::backends(Duration::from_secs(15)) {
        let whisper = Whisper::open(&path, &device).unwrap();
        let mut group = c.benchmark_group(format!("whisper-tiny-en/{backend}"));
        group.sample_size(10).measurement_time(time);
        group.bench_function("transcribe_espeak_2.9s", |b| {
            b.iter(|| black_box(whisper.transcribe_audio(&audio, &options).unwrap()))
        });
        group.finish();
    }
}

criterion_group!(benches, whisper);
criterion_main!(benches);
