//! Text to speech with a Piper voice.
//!
//! ```text
//! cargo run --release -p aigc-audio --example tts -- --text "Hello there. How are you?" --out hello.wav
//! ```
//!
//! The default voice (`piper-en-us-joe-medium`) is fetched with `scripts/fetch-models.sh` on
//! first use; phonemes come from the system's espeak-ng (`apt-get install espeak-ng`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use aigc_audio::piper::{PiperVoice, SynthesisOptions};
use aigc_audio::wav::{Audio, SampleFormat, write_wav};
use aigc_core::models;

const USAGE: &str = "usage: tts --text TEXT [--voice ID|PATH] [--noise-scale X] [--noise-w X]
           [--length-scale X] [--seed S] [--out FILE.wav] [--json] [--device NAME]

  --text          what to say (required)
  --voice         a Piper voice id or .onnx path (default piper-en-us-joe-medium)
  --noise-scale   variation in delivery (default: the voice's, 0.667)
  --noise-w       variation in timing (default: the voice's, 0.8)
  --length-scale  above 1 speaks slower (default: the voice's, 1)
  --seed          noise seed (default 0); the same seed gives the same audio
  --out           16-bit WAV, peak-normalised as Piper writes it (default speech.wav)
  --json          print the phoneme ids, the sample rate and the duration as JSON
  --device        flex (default), ndarray, wgpu, cuda (as compiled in); or set AIGC_DEVICE";

struct Args {
    text: String,
    voice: String,
    noise_scale: Option<f32>,
    noise_w: Option<f32>,
    length_scale: Option<f32>,
    seed: u64,
    out: PathBuf,
    json: bool,
    device: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        text: String::new(),
        voice: "piper-en-us-joe-medium".into(),
        noise_scale: None,
        noise_w: None,
        length_scale: None,
        seed: 0,
        out: PathBuf::from("speech.wav"),
        json: false,
        device: None,
    };
    let mut flags = aigc_core::cli::Flags::from_env();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--text" => args.text = flags.value()?,
            "--voice" => args.voice = flags.value()?,
            "--noise-scale" => args.noise_scale = Some(flags.parse()?),
            "--noise-w" => args.noise_w = Some(flags.parse()?),
            "--length-scale" => args.length_scale = Some(flags.parse()?),
            "--seed" => args.seed = flags.parse()?,
            "--out" => args.out = flags.value()?.into(),
            "--json" => args.json = true,
            "--device" => args.device = Some(flags.value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.text.trim().is_empty() {
        return Err("--text is required".into());
    }
    Ok(args)
}

fn run(args: Args) -> Result<(), String> {
    let device = aigc_core::device::device_from_arg_or_env(args.device.as_deref())
        .map_err(|e| e.to_string())?;
    let path = models::resolve_or_fetch(&args.voice).map_err(|e| e.to_string())?;
    let voice = PiperVoice::open(&path, &device).map_err(|e| e.to_string())?;
    let mut options = SynthesisOptions::defaults(voice.config(), args.seed);
    options.noise_scale = args.noise_scale.unwrap_or(options.noise_scale);
    options.noise_w = args.noise_w.unwrap_or(options.noise_w);
    options.length_scale = args.length_scale.unwrap_or(options.length_scale);
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut ids = Vec::new();
    for sentence in voice.sentences(&args.text, &options).map_err(|e| e.to_string())? {
        let sentence = sentence.map_err(|e| e.to_string())?;
        if !args.json {
            eprintln!("{}", sentence.phonemes);
        }
        ids.push(sentence.ids);
        samples.extend(sentence.samples);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rate = voice.config().sample_rate;
    // Piper's output: scaled so that the peak is full scale (quiet audio is not amplified
    // more than 100x).
    let peak = samples.iter().fold(0f32, |m, s| m.max(s.abs())).max(0.01);
    let audio = Audio::mono(samples.iter().map(|s| s / peak).collect(), rate);
    write_wav(&args.out, &audio, SampleFormat::Pcm16).map_err(|e| e.to_string())?;
    let duration = audio.duration_s();
    if args.json {
        let json = serde_json::json!({
            "phoneme_ids": ids,
            "sample_rate": rate,
            "duration_s": duration,
            "synthesis_s": elapsed,
            "real_time_factor": elapsed / duration.max(1e-9),
            "out": args.out,
        });
        println!("{json}");
    } else {
        eprintln!(
            "wrote {} ({duration:.2} s of audio in {elapsed:.2} s, real-time factor {:.3})",
            args.out.display(),
            elapsed / duration.max(1e-9)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
