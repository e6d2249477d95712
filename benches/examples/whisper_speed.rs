//! Times Whisper the way `benches/compare-whisper.sh` times CTranslate2: resampling, log-mel
//! and greedy decoding without timestamps (one temperature, no prompt from the previous
//! window) of the WAV in `AIGC_BENCH_WAV`; a warm-up call, then the best and median of N calls.
//! Prints one JSON line with the audio's length.
//!
//! `AIGC_BENCH_WAV=speech.wav cargo run --release -p aigc-benches --example whisper_speed -- MODEL.bin [RUNS]`

use std::time::Instant;

use aigc_crossmodal::whisper::{TranscribeOptions, Whisper};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("usage: whisper_speed MODEL [RUNS] (AIGC_BENCH_WAV=FILE)")?;
    let runs: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let wav = std::env::var("AIGC_BENCH_WAV").map_err(|_| "set AIGC_BENCH_WAV to a WAV file")?;
    let device = aigc_core::device_from_env()?;
    let whisper = Whisper::open(path, &device)?;
    let audio = aigc_audio::wav::read_wav(&wav)?;
    let options = TranscribeOptions {
        timestamps: false,
        temperatures: vec![0.0],
        condition_on_previous_text: false,
        ..TranscribeOptions::default()
    };
    let first = whisper.transcribe_audio(&audio, &options)?;
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            whisper.transcribe_audio(&audio, &options).map(|_| t.elapsed().as_secs_f64())
        })
        .collect::<Result<_, _>>()?;
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"best_s\": {:.4}, \"median_s\": {:.4}, \"audio_s\": {:.4}}}",
        times[0],
        times[times.len() / 2],
        first.duration
    );
    Ok(())
}
