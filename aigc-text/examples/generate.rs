//! Generate text with a real model.
//!
//! ```text
//! cargo run --release -p aigc-text --example generate -- --prompt "The capital of France is"
//! cargo run --release -p aigc-text --example generate -- --chat --prompt "Write a haiku" --temperature 0.7 --seed 1
//! cargo run --release -p aigc-text --example generate -- --model gemma-3-270m --prompt "Once" --json
//! ```
//!
//! The default model is SmolLM2-135M-Instruct; a known model id that is not installed yet is
//! fetched with `scripts/fetch-models.sh` first.

use std::io::Write;
use std::process::ExitCode;

use aigc_core::models;
use aigc_text::{GenerationConfig, Generator, Message, Prompt, SamplingParams};

const USAGE: &str =
    "usage: generate [--model PATH|ID] --prompt TEXT [--chat] [--system TEXT] [--max-tokens N]
                [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R]
                [--seed S] [--stop TEXT]... [--ignore-eos] [--context N] [--device NAME]
                [--threads N] [--activations f32|q8] [--json]

  --model       a GGUF file, a Hugging Face directory, or a model id (default smollm2-135m-instruct)
  --chat        render the prompt as a user message with the model's chat template
  --temperature 0 is greedy (default 0.8); other sampler defaults are llama.cpp's
  --device      flex (default), ndarray, wgpu, cuda (as compiled in); or set AIGC_DEVICE
  --threads     CPU threads for the quantized kernels (default: one per core; or AIGC_THREADS)
  --activations q8: quantize activations to 8 bits when decoding on a CPU, as llama.cpp does
                (faster; logits move by a few tenths); f32 (default): as transformers computes
  --json        print one JSON object instead of streaming text";

struct Args {
    model: String,
    prompt: String,
    chat: bool,
    system: Option<String>,
    json: bool,
    device: Option<String>,
    context: usize,
    config: GenerationConfig,
}

fn parse_args() -> Result<Args, String> {
    let mut flags = aigc_core::cli::Flags::from_env();
    let mut args = Args {
        model: models::DEFAULT_TEXT_MODEL.to_string(),
        prompt: String::new(),
        chat: false,
        system: None,
        json: false,
        device: None,
        context: aigc_text::DEFAULT_CONTEXT,
        config: GenerationConfig::default(),
    };
    let mut prompt = None;
    let s: &mut SamplingParams = &mut args.config.sampling;
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--model" => args.model = flags.value()?,
            "--prompt" => prompt = Some(flags.value()?),
            "--system" => args.system = Some(flags.value()?),
            "--chat" => args.chat = true,
            "--json" => args.json = true,
            "--device" => args.device = Some(flags.value()?),
            "--max-tokens" => args.config.max_new_tokens = flags.parse()?,
            "--context" => args.context = flags.parse()?,
            "--temperature" => s.temperature = flags.parse()?,
            "--top-k" => s.top_k = flags.parse()?,
            "--top-p" => s.top_p = flags.parse()?,
            "--min-p" => s.min_p = flags.parse()?,
            "--repeat-penalty" => s.repeat_penalty = flags.parse()?,
            "--seed" => s.seed = flags.parse()?,
            "--stop" => args.config.stop.push(flags.value()?),
            "--ignore-eos" => args.config.ignore_eos = true,
            "--threads" => {
                let n: usize = flags.parse()?;
                aigc_core::quant::kernels::set_num_threads(n).map_err(|e| e.to_string())?;
            }
            "--activations" => {
                use aigc_core::quant::kernels::{Activations, set_activations};
                set_activations(match flags.value()?.as_str() {
                    "f32" => Activations::F32,
                    "q8" => Activations::Q8,
                    other => return Err(format!("--activations: `{other}` is not f32 or q8")),
                });
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    args.prompt = prompt.ok_or("--prompt is required")?;
    Ok(args)
}

fn run(args: Args) -> Result<(), String> {
    let path = models::resolve_or_fetch(&args.model).map_err(|e| e.to_string())?;
    let device = aigc_core::device::device_from_arg_or_env(args.device.as_deref())
        .map_err(|e| e.to_string())?;
    let mut generator =
        Generator::open_with_context(&path, &device, args.context).map_err(|e| e.to_string())?;
    let messages: Vec<Message> = args
        .system
        .iter()
        .map(Message::system)
        .chain(std::iter::once(Message::user(&args.prompt)))
        .collect();
    let prompt = if args.chat { Prompt::Messages(&messages) } else { Prompt::Text(&args.prompt) };

    if args.json {
        let out = generator.generate(prompt, &args.config).map_err(|e| e.to_string())?;
        let json = serde_json::json!({
            "prompt_ids": out.prompt_ids,
            "ids": out.ids,
            "text": out.text,
            "finish_reason": out.finish_reason.as_str(),
            "prompt_tokens_per_s": out.timings.prompt_tokens_per_s(),
            "tokens_per_s": out.timings.tokens_per_s(),
        });
        println!("{json}");
        return Ok(());
    }

    let mut stdout = std::io::stdout().lock();
    let mut stream = generator.stream(prompt, &args.config).map_err(|e| e.to_string())?;
    while let Some(piece) = stream.next() {
        let piece = piece.map_err(|e| e.to_string())?;
        if stdout.write_all(piece.as_bytes()).and_then(|()| stdout.flush()).is_err() {
            stream.cancel(); // the reader went away
        }
    }
    let out = stream.into_generation().map_err(|e| e.to_string())?;
    let _ = writeln!(stdout).and_then(|()| stdout.flush());
    let t = out.timings;
    eprintln!(
        "[{} prompt tokens at {:.1}/s, {} generated at {:.1}/s, finish: {}]",
        t.prompt_tokens,
        t.prompt_tokens_per_s(),
        t.generated_tokens,
        t.tokens_per_s(),
        out.finish_reason.as_str()
    );
    Ok(())
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
