//! Speech recognition with Whisper.
//!
//! ```text
//! cargo run --release -p aigc-crossmodal --example transcribe -- speech.wav [--json]
//! ```
//!
//! The default model (`whisper-tiny-en`, CTranslate2 weights) is fetched with
//! `scripts/fetch-models.sh` on first use; `--model` also takes a directory in the Hugging
//! Face layout.

use std::process::ExitCode;
use std::time::Instant;

use aigc_audio::wav::read_wav;
use aigc_core::models;
use aigc_crossmodal::whisper::{TranscribeOptions, Whisper};

const USAGE: &str =
    "usage: transcribe AUDIO.wav [--model ID|PATH] [--no-timestamps] [--language CODE]
           [--json] [--device NAME]

  AUDIO.wav        any sample rate, mono or not (resampled to 16 kHz)
  --model          a model id or directory (default whisper-tiny-en)
  --no-timestamps  one segment per 30 s window instead of timed segments
  --language       language code for multilingual models (default en)
  --json           print the text and the segments with times as JSON
  --device         flex (default), ndarray, wgpu, cuda (as compiled in); or set AIGC_DEVICE";

struct Args {
    audio: String,
    model: String,
    timestamps: bool,
    language: Option<String>,
    json: bool,
    device: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        audio: String::new(),
        model: "whisper-tiny-en".into(),
        timestamps: true,
        language: None,
        json: false,
        device: None,
    };
    let mut flags = aigc_core::cli::Flags::from_env();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--model" => args.model = flags.value()?,
            "--no-timestamps" => args.timestamps = false,
            "--language" => args.language = Some(flags.value()?),
            "--json" => args.json = true,
            "--device" => args.device = Some(flags.value()?),
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with("--") => return Err(format!("unknown argument `{other}`")),
            path => args.audio = path.to_string(),
        }
    }
    if args.audio.is_empty() {
        return Err("an audio file is required".into());
    }
    Ok(args)
}

fn run(args: Args) -> Result<(), String> {
    let device = aigc_core::device::device_from_arg_or_env(args.device.as_deref())
        .map_err(|e| e.to_string())?;
    let dir = models::resolve_or_fetch(&args.model).map_err(|e| e.to_string())?;
    let whisper = Whisper::open(&dir, &device).map_err(|e| e.to_string())?;
    let audio = read_wav(&args.audio).map_err(|e| e.to_string())?;
    let options = TranscribeOptions {
        timestamps: args.timestamps,
        language: args.language,
        ..TranscribeOptions::default()
    };
    let start = Instant::now();
    let transcript = whisper.transcribe_audio(&audio, &options).map_err(|e| e.to_string())?;
    let elapsed = start.elapsed().as_secs_f64();
    if args.json {
        let segments: Vec<_> = transcript
            .segments
            .iter()
            .map(|s| {
                serde_json::json!({
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "tokens": s.tokens,
                    "temperature": s.temperature,
                    "avg_logprob": s.avg_logprob,
                    "compression_ratio": s.compression_ratio,
                    "no_speech_prob": s.no_speech_prob,
                })
            })
            .collect();
        let json = serde_json::json!({
            "text": transcript.text,
            "segments": segments,
            "duration_s": transcript.duration,
            "transcription_s": elapsed,
            "real_time_factor": elapsed / transcript.duration.max(1e-9),
        });
        println!("{json}");
    } else {
        for s in &transcript.segments {
            println!("[{:7.2} -> {:7.2}] {}", s.start, s.end, s.text.trim());
        }
        eprintln!(
            "{:.2} s of audio in {elapsed:.2} s (real-time factor {:.3})",
            transcript.duration,
            elapsed / transcript.duration.max(1e-9)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
