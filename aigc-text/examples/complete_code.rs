//! Complete code with a real model: a function body after its signature (and docstring).
//!
//! ```text
//! cargo run --release -p aigc-text --example complete_code -- \
//!     --prefix $'def is_prime(n):\n    """Return True if n is a prime number."""\n'
//! cargo run --release -p aigc-text --example complete_code -- --lang rust \
//!     --prefix $'/// Returns true when `n` is a prime number.\nfn is_prime(n: u64) -> bool {\n'
//! cargo run --release -p aigc-text --example complete_code -- path/to/unfinished.py --json
//! ```
//!
//! Prints the prefix, the completion and the suffix (if any) on stdout, and how the completion
//! ended on stderr. The default model is SmolLM2-135M-Instruct, greedy.

use std::process::ExitCode;

use aigc_core::models;
use aigc_text::Generator;
use aigc_text::code::{CodeParams, Language, PromptMode, complete_code};

const USAGE: &str = "usage: complete_code [--model ID|PATH] [--lang python|rust|c|other] [--suffix TEXT]
                     [--mode auto|fim|prefix|instruct] [--max-tokens N] [--temperature T]
                     [--seed S] [--stop TEXT]... [--no-block-end] [--device NAME] [--json]
                     (--prefix TEXT | FILE)

  --model        a GGUF file, a Hugging Face directory, or a model id (default smollm2-135m-instruct)
  --lang         the block rule: python (default; or from FILE's extension), rust, c, other
  --mode         auto (default): fill-in-the-middle when the vocabulary has FIM tokens, else
                 prefix; instruct: the chat template with the prefix begun in the answer
  --temperature  0 (default) is greedy
  --max-tokens   default 128
  --no-block-end do not stop at the end of the block
  --json         print one JSON object instead of the code";

struct Args {
    model: String,
    prefix: String,
    suffix: Option<String>,
    device: Option<String>,
    json: bool,
    params: CodeParams,
}

fn parse_args() -> Result<Args, String> {
    let mut flags = aigc_core::cli::Flags::from_env();
    let mut params = CodeParams::greedy(Language::Python, 128);
    let mut model = models::DEFAULT_TEXT_MODEL.to_string();
    let (mut prefix, mut file, mut suffix, mut lang) = (None, None, None, None);
    let (mut device, mut json) = (None, false);
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--model" => model = flags.value()?,
            "--prefix" => prefix = Some(flags.value()?),
            "--suffix" => suffix = Some(flags.value()?),
            "--lang" => {
                let v = flags.value()?;
                lang = Some(Language::from_name(&v).ok_or(format!("--lang: unknown `{v}`"))?);
            }
            "--mode" => {
                let v = flags.value()?;
                params.mode = PromptMode::from_name(&v).ok_or(format!("--mode: unknown `{v}`"))?;
            }
            "--max-tokens" => params.max_new_tokens = flags.parse()?,
            "--temperature" => {
                params.sampling = aigc_text::SamplingParams {
                    temperature: flags.parse()?,
                    seed: params.sampling.seed,
                    ..Default::default()
                }
            }
            "--seed" => params.sampling.seed = flags.parse()?,
            "--stop" => params.stop.push(flags.value()?),
            "--no-block-end" => params.stop_at_block_end = false,
            "--device" => device = Some(flags.value()?),
            "--json" => json = true,
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with("--") => return Err(format!("unknown argument `{other}`")),
            path => file = Some(path.to_string()),
        }
    }
    let prefix = match (prefix, &file) {
        (Some(p), None) => p,
        (None, Some(f)) => std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?,
        (Some(_), Some(_)) => return Err("give either --prefix or a FILE, not both".into()),
        (None, None) => return Err("--prefix TEXT or a FILE is required".into()),
    };
    params.language =
        lang.or_else(|| file.as_deref().and_then(Language::from_path)).unwrap_or(Language::Python);
    Ok(Args { model, prefix, suffix, device, json, params })
}

fn run(args: Args) -> Result<(), String> {
    let path = models::resolve_or_fetch(&args.model).map_err(|e| e.to_string())?;
    let device = aigc_core::device::device_from_arg_or_env(args.device.as_deref())
        .map_err(|e| e.to_string())?;
    let mut generator = Generator::open(&path, &device).map_err(|e| e.to_string())?;
    let out = complete_code(&mut generator, &args.prefix, args.suffix.as_deref(), &args.params)
        .map_err(|e| e.to_string())?;
    let stop = match &out.finish_reason {
        aigc_text::code::CodeFinishReason::Stop(s) => Some(s.clone()),
        _ => None,
    };
    if args.json {
        let json = serde_json::json!({
            "mode": out.mode.as_str(),
            "completion": out.text,
            "raw": out.raw,
            "finish_reason": out.finish_reason.as_str(),
            "stop": stop,
            "prompt_tokens": out.prompt_ids.len(),
            "generated_tokens": out.ids.len(),
            "tokens_per_s": out.timings.tokens_per_s(),
        });
        println!("{json}");
        return Ok(());
    }
    println!("{}{}{}", args.prefix, out.text, args.suffix.as_deref().unwrap_or(""));
    eprintln!(
        "[{} prompt, {} prompt tokens, {} generated at {:.1}/s, finish: {}{}]",
        out.mode.as_str(),
        out.prompt_ids.len(),
        out.ids.len(),
        out.timings.tokens_per_s(),
        out.finish_reason.as_str(),
        stop.map(|s| format!(" {s:?}")).unwrap_or_default()
    );
    Ok(())
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
