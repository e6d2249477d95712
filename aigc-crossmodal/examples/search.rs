//! Semantic search over generated text: SmolLM2 writes one short sentence about each of a few
//! topics, MiniLM embeds them, and they are ranked by cosine similarity to a query.
//!
//! ```text
//! cargo run --release -p aigc-crossmodal --example search -- "animals in the sea"
//! cargo run --release -p aigc-crossmodal --example search -- "music" --topic guitars --topic rain --seed 3
//! ```
//!
//! The default models (`smollm2-135m-instruct`, `all-minilm-l6-v2`) are fetched with
//! `scripts/fetch-models.sh` on first use.

use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::Instant;

use aigc_core::models;
use aigc_crossmodal::embed::SentenceEmbedder;
use aigc_crossmodal::pipelines::SemanticIndex;
use aigc_text::{FinishReason, GenerationConfig, Generator, Message};

const TOPICS: [&str; 8] = [
    "whales in the ocean",
    "cooking pasta",
    "a rocket launch",
    "playing the guitar",
    "a rainy day in the city",
    "learning a programming language",
    "a dog playing in the park",
    "climbing a mountain",
];

const USAGE: &str = "usage: search QUERY [--topic TEXT]... [--n N] [--max-tokens N] [--seed S]
              [--temperature T] [--top K] [--text-model ID|PATH] [--model ID|DIR] [--json]
              [--device NAME]

  QUERY          what to search for (required)
  --topic        a topic to write about (repeatable; default: the first N built-in topics)
  --n            how many built-in topics (default 6, at most 8)
  --max-tokens   at most this many tokens per text (default 24; a text ends at its first
                 sentence end)
  --seed         sampling seed (default 0; text i uses seed + i)
  --temperature  sampling temperature (default 0.7; 0 is greedy)
  --top          how many results to print (default all)
  --text-model   the generator (default smollm2-135m-instruct)
  --model        the sentence embedder (default all-minilm-l6-v2)
  --json         print the texts and the ranking as JSON
  --device       flex (default), ndarray, wgpu, cuda (as compiled in); or set AIGC_DEVICE";

struct Args {
    query: String,
    topics: Vec<String>,
    n: usize,
    max_tokens: usize,
    seed: u64,
    temperature: f32,
    top: Option<usize>,
    text_model: String,
    model: String,
    json: bool,
    device: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        query: String::new(),
        topics: Vec::new(),
        n: 6,
        max_tokens: 24,
        seed: 0,
        temperature: 0.7,
        top: None,
        text_model: models::DEFAULT_TEXT_MODEL.into(),
        model: "all-minilm-l6-v2".into(),
        json: false,
        device: None,
    };
    let mut flags = aigc_core::cli::Flags::from_env();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--topic" => args.topics.push(flags.value()?),
            "--n" => args.n = flags.parse()?,
            "--max-tokens" => args.max_tokens = flags.parse()?,
            "--seed" => args.seed = flags.parse()?,
            "--temperature" => args.temperature = flags.parse()?,
            "--top" => args.top = Some(flags.parse()?),
            "--text-model" => args.text_model = flags.value()?,
            "--model" => args.model = flags.value()?,
            "--json" => args.json = true,
            "--device" => args.device = Some(flags.value()?),
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with("--") => return Err(format!("unknown argument `{other}`")),
            query if args.query.is_empty() => args.query = query.to_string(),
            extra => return Err(format!("one query only (`{extra}` is a second)")),
        }
    }
    if args.query.trim().is_empty() {
        return Err("a query is required".into());
    }
    if args.topics.is_empty() {
        if args.n == 0 || args.n > TOPICS.len() {
            return Err(format!("--n must be 1 to {}", TOPICS.len()));
        }
        args.topics = TOPICS[..args.n].iter().map(|t| t.to_string()).collect();
    }
    Ok(args)
}

fn run(args: Args) -> Result<(), String> {
    let device = aigc_core::device::device_from_arg_or_env(args.device.as_deref())
        .map_err(|e| e.to_string())?;

    // Generate: one sentence per topic, each with its own seed, stopped at the first
    // sentence end (or line break).
    let text_path = models::resolve_or_fetch(&args.text_model).map_err(|e| e.to_string())?;
    // A short context: the prompts and the texts are a few dozen tokens.
    let mut generator =
        Generator::open_with_context(&text_path, &device, 256).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut texts = Vec::new();
    for (i, topic) in args.topics.iter().enumerate() {
        let mut config = GenerationConfig { max_new_tokens: args.max_tokens, ..Default::default() };
        config.sampling.temperature = args.temperature;
        config.sampling.seed = args.seed.wrapping_add(i as u64);
        config.stop.push("\n".into());
        let messages = vec![Message::user(format!("Write one short sentence about {topic}."))];
        let out = generator
            .generate_with(&messages, &config, |piece| match piece.contains(['.', '!', '?']) {
                true => ControlFlow::Break(()),
                false => ControlFlow::Continue(()),
            })
            .map_err(|e| e.to_string())?;
        let cut = out.finish_reason == FinishReason::MaxTokens;
        texts.push(first_sentence(&out.text, cut));
    }
    let generation_s = start.elapsed().as_secs_f64();

    // Embed and rank.
    let embed_path = models::resolve_or_fetch(&args.model).map_err(|e| e.to_string())?;
    let embedder = SentenceEmbedder::open(&embed_path, &device).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let index = SemanticIndex::new(embedder, &texts).map_err(|e| e.to_string())?;
    let k = args.top.unwrap_or(texts.len());
    let ranking = index.search(&args.query, k).map_err(|e| e.to_string())?;
    let search_s = start.elapsed().as_secs_f64();

    if args.json {
        let results: Vec<_> = ranking
            .iter()
            .map(|&(i, score)| {
                serde_json::json!({ "index": i, "score": score, "topic": args.topics[i], "text": texts[i] })
            })
            .collect();
        let json = serde_json::json!({
            "query": args.query,
            "texts": texts,
            "results": results,
            "generation_s": generation_s,
            "search_s": search_s,
        });
        println!("{json}");
    } else {
        println!("query: {}", args.query);
        for (rank, &(i, score)) in ranking.iter().enumerate() {
            println!("{:>2}. {score:6.3}  [{}] {}", rank + 1, args.topics[i], texts[i]);
        }
        eprintln!(
            "{} texts generated in {generation_s:.2} s, embedded and searched in {search_s:.2} s",
            texts.len()
        );
    }
    Ok(())
}

/// `text` up to its first `.`, `!` or `?` (a piece of text may run past it); `…` marks a
/// sentence that the token budget `cut` short.
fn first_sentence(text: &str, cut: bool) -> String {
    match text.find(['.', '!', '?']) {
        Some(i) => text[..=i].trim().to_string(),
        None if cut => format!("{}…", text.trim()),
        None => text.trim().to_string(),
    }
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
