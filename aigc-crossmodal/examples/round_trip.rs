//! Text → speech → text: a Piper voice speaks the text, Whisper transcribes it, and the word
//! error rate says how much came back.
//!
//! ```text
//! cargo run --release -p aigc-crossmodal --example round_trip -- --text "It was a bright cold day in April."
//! ```
//!
//! The default models (`piper-en-us-joe-medium`, `whisper-tiny-en`) are fetched with
//! `scripts/fetch-models.sh` on first use; phonemes come from the system's espeak-ng.

use std::process::ExitCode;

use aigc_audio::piper::{PiperVoice, SynthesisOptions};
use aigc_audio::wav::{SampleFormat, write_wav};
use aigc_core::models;
use aigc_crossmodal::pipelines::speak_and_transcribe;
use aigc_crossmodal::whisper::Whisper;

const DEFAULT_TEXT: &str = "The library opens at 9 in the morning. \
                            Can you meet me there before the lecture starts?";

const USAGE: &str = "usage: round_trip [--text TEXT] [--voice ID|PATH] [--model ID|PATH] [--seed S]
                  [--out FILE.wav] [--json] [--device NAME]

  --text     what to say (default: two short sentences)
  --voice    a Piper voice id or .onnx path (default piper-en-us-joe-medium)
  --model    a Whisper model id or directory (default whisper-tiny-en)
  --seed     the voice's noise seed (default 0)
  --out      also write the synthesised speech (16-bit WAV at the voice's rate)
  --json     print the text, the transcription, the WER and its counts as JSON
  --device   flex (default), ndarray, wgpu, cuda (as compiled in); or set AIGC_DEVICE";

struct Args {
    text: String,
    voice: String,
    model: String,
    seed: u64,
    out: Option<String>,
    json: bool,
    device: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        text: DEFAULT_TEXT.into(),
        voice: "piper-en-us-joe-medium".into(),
        model: "whisper-tiny-en".into(),
        seed: 0,
        out: None,
        json: false,
        device: None,
    };
    let mut flags = aigc_core::cli::Flags::from_env();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--text" => args.text = flags.value()?,
            "--voice" => args.voice = flags.value()?,
            "--model" => args.model = flags.value()?,
            "--seed" => {
                let v = flags.value()?;
                args.seed = v.parse().map_err(|_| format!("--seed: `{v}` is not a number"))?;
            }
            "--out" => args.out = Some(flags.value()?),
            "--json" => args.json = true,
            "--device" => args.device = Some(flags.value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.text.trim().is_empty() {
        return Err("--text is empty".into());
    }
    Ok(args)
}

fn run(args: Args) -> Result<(), String> {
    let device = aigc_core::device::device_from_arg_or_env(args.device.as_deref())
        .map_err(|e| e.to_string())?;
    let voice_path = models::resolve_or_fetch(&args.voice).map_err(|e| e.to_string())?;
    let voice = PiperVoice::open(&voice_path, &device).map_err(|e| e.to_string())?;
    let whisper_path = models::resolve_or_fetch(&args.model).map_err(|e| e.to_string())?;
    let whisper = Whisper::open(&whisper_path, &device).map_err(|e| e.to_string())?;
    let options = SynthesisOptions::defaults(voice.config(), args.seed);
    let trip =
        speak_and_transcribe(&voice, &whisper, &args.text, &options).map_err(|e| e.to_string())?;
    if let Some(out) = &args.out {
        write_wav(out, &trip.speech, SampleFormat::Pcm16).map_err(|e| e.to_string())?;
    }
    if args.json {
        let json = serde_json::json!({
            "text": trip.text,
            "transcription": trip.transcript.text.trim(),
            "wer": trip.wer,
            "substitutions": trip.stats.substitutions,
            "deletions": trip.stats.deletions,
            "insertions": trip.stats.insertions,
            "reference_words": trip.stats.reference_words,
            "audio_s": trip.audio_seconds,
            "synthesis_s": trip.synthesis_seconds,
            "transcription_s": trip.transcription_seconds,
        });
        println!("{json}");
    } else {
        let s = trip.stats;
        println!("text:          {}", trip.text);
        println!("transcription: {}", trip.transcript.text.trim());
        println!(
            "WER:           {:.1}% ({} substitutions, {} deletions, {} insertions over {} words)",
            100.0 * trip.wer,
            s.substitutions,
            s.deletions,
            s.insertions,
            s.reference_words
        );
        eprintln!(
            "{:.2} s of speech: synthesised in {:.2} s, transcribed in {:.2} s",
            trip.audio_seconds, trip.synthesis_seconds, trip.transcription_seconds
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
