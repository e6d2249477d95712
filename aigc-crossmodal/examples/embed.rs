//! Sentence embeddings and their cosine similarities.
//!
//! ```text
//! cargo run --release -p aigc-crossmodal --example embed -- "A man is eating food." \
//!     "A man is eating a piece of bread." "The sky is blue."
//! ```
//!
//! The default model (`all-minilm-l6-v2`) is fetched with `scripts/fetch-models.sh` on first
//! use.

use std::process::ExitCode;
use std::time::Instant;

use aigc_core::models;
use aigc_crossmodal::embed::{SentenceEmbedder, cosine_similarity};

const USAGE: &str = "usage: embed TEXT... [--model ID|DIR] [--json] [--device NAME]

  TEXT       one or more sentences (required)
  --model    a sentence-transformers model id or directory (default all-minilm-l6-v2)
  --json     print the vectors as JSON ({\"model\", \"dim\", \"embeddings\"}) instead of the
             similarity matrix
  --device   flex (default), ndarray, wgpu, cuda (as compiled in); or set AIGC_DEVICE";

struct Args {
    texts: Vec<String>,
    model: String,
    json: bool,
    device: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args =
        Args { texts: Vec::new(), model: "all-minilm-l6-v2".into(), json: false, device: None };
    let mut flags = aigc_core::cli::Flags::from_env();
    while let Some(arg) = flags.next() {
        match arg.as_str() {
            "--model" => args.model = flags.value()?,
            "--json" => args.json = true,
            "--device" => args.device = Some(flags.value()?),
            "-h" | "--help" => return Err(String::new()),
            "--" => {}
            flag if flag.starts_with("--") => return Err(format!("unknown argument `{flag}`")),
            _ => args.texts.push(arg),
        }
    }
    if args.texts.is_empty() {
        return Err("give at least one TEXT".into());
    }
    Ok(args)
}

fn run(args: Args) -> Result<(), String> {
    let device = aigc_core::device::device_from_arg_or_env(args.device.as_deref())
        .map_err(|e| e.to_string())?;
    let path = models::resolve_or_fetch(&args.model).map_err(|e| e.to_string())?;
    let embedder = SentenceEmbedder::open(&path, &device).map_err(|e| e.to_string())?;
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let start = Instant::now();
    let vectors = embedder.embed(&texts).map_err(|e| e.to_string())?;
    let elapsed = start.elapsed().as_secs_f64();
    if args.json {
        let json = serde_json::json!({
            "model": args.model,
            "dim": embedder.dim(),
            "embeddings": vectors,
        });
        println!("{json}");
        return Ok(());
    }
    for (i, text) in texts.iter().enumerate() {
        println!("[{i}] {text}");
    }
    print!("\n{:>5}", "");
    for j in 0..texts.len() {
        print!(" {:>6}", format!("[{j}]"));
    }
    println!();
    for (i, a) in vectors.iter().enumerate() {
        print!("{:>5}", format!("[{i}]"));
        for b in &vectors {
            print!(" {:>6.3}", cosine_similarity(a, b));
        }
        println!();
    }
    eprintln!(
        "\n{} sentences, {} dimensions, embedded in {elapsed:.3} s",
        texts.len(),
        embedder.dim()
    );
    Ok(())
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
