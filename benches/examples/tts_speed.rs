//! Times Piper synthesis the way `benches/compare-tts.sh` times onnxruntime: a warm-up call,
//! then the best and median of N calls on the same phoneme ids with zero noise. Prints one
//! JSON line with the audio's length.
//!
//! `cargo run --release -p aigc-benches --example tts_speed -- VOICE.onnx [RUNS]`

use std::time::Instant;

use aigc_audio::piper::{PiperVoice, SynthesisOptions};

/// The ids of "How are you doing today?" (tools/fixtures/audio/piper/manifest.json).
const IDS: [i64; 57] = [
    1, 0, 20, 0, 121, 0, 14, 0, 100, 0, 3, 0, 51, 0, 122, 0, 88, 0, 3, 0, 22, 0, 33, 0, 122, 0, 3,
    0, 17, 0, 121, 0, 33, 0, 122, 0, 74, 0, 44, 0, 3, 0, 32, 0, 59, 0, 17, 0, 120, 0, 18, 0, 74, 0,
    13, 0, 2,
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("usage: tts_speed VOICE.onnx [RUNS]")?;
    let runs: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let device = aigc_core::device_from_env()?;
    let voice = PiperVoice::open(path, &device)?;
    let options = SynthesisOptions { noise_scale: 0.0, length_scale: 1.0, noise_w: 0.0, seed: 0 };
    let audio = voice.synthesize_ids(&IDS, &options)?;
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            voice.synthesize_ids(&IDS, &options).map(|_| t.elapsed().as_secs_f64())
        })
        .collect::<Result<_, _>>()?;
    times.sort_by(f64::total_cmp);
    let audio_s = audio.len() as f64 / voice.config().sample_rate as f64;
    println!(
        "{{\"best_s\": {:.4}, \"median_s\": {:.4}, \"audio_s\": {audio_s:.4}}}",
        times[0],
        times[times.len() / 2]
    );
    Ok(())
}
