//! Code completion: fill-in-the-middle prompts when the vocabulary has FIM tokens, and stop
//! rules suited to code (end of the block, stop strings).
//!
//! ```
//! use aigc_text::Generator;
//! use aigc_text::code::{CodeParams, Language, complete_code};
//!
//! # fn main() -> aigc_text::Result<()> {
//! let path = aigc_core::models::model_file("smollm2-135m-instruct")?;
//! # if !path.exists() { return Ok(()); }
//! let device = aigc_core::parse_device("flex")?;
//! let mut generator = Generator::open(&path, &device)?;
//! let prefix = "def is_prime(n):\n    \"\"\"Return True if n is a prime number.\"\"\"\n";
//! let params = CodeParams::greedy(Language::Python, 96);
//! let out = complete_code(&mut generator, prefix, None, &params)?;
//! // The body, up to where the indentation returns to the `def`'s level.
//! assert!(out.text.contains("return"), "{}", out.text);
//! println!("{prefix}{}[{}]", out.text, out.finish_reason.as_str());
//! # Ok(()) }
//! ```
//!
//! # Prompts
//!
//! - [`PromptMode::Fim`]: prefix-suffix-middle (PSM) with the model's own FIM tokens, found by
//!   name in the vocabulary ([`FimTokens::find`]): StarCoder's `<fim_prefix>`, Qwen2.5-Coder's
//!   and CodeGemma's `<|fim_prefix|>`, CodeLlama's `▁<PRE>`, DeepSeek-Coder's
//!   `<｜fim▁begin｜>`. SmolLM2 and Gemma 3 have none.
//! - [`PromptMode::Prefix`]: the prefix as plain text, for the model to continue.
//! - [`PromptMode::Instruct`]: the model's chat template with an instruction, the assistant's
//!   answer begun with a Markdown code fence and the prefix, so that the model continues the
//!   code inside its answer.
//! - [`PromptMode::Auto`] (the default): FIM when the vocabulary has FIM tokens, else the
//!   instruct prompt when the model has a chat template, else the prefix. On eight Python
//!   functions with docstrings, greedy, the instruct prompt gave 4 correct bodies on both
//!   SmolLM2-135M-Instruct and Gemma 3 270M, the plain prefix 3 (see `docs/code.md`).
//!
//! Outside FIM, trailing whitespace (the newline and indentation where the cursor sits) is
//! left out of the prompt: a byte-level BPE model has seen `\n` and indentation merged with
//! the next token, so a prompt that ends in them is out of distribution. The model writes
//! them again, and they are taken off the front of the completion.
//!
//! # Stop rules
//!
//! Generation stops at the first of: the end of the block ([`block_end`]), a stop string
//! ([`CodeParams::stop`], a Markdown fence (` ``` `), the text of the model's
//! end-of-file tokens such as `<file_sep>` or `<|endoftext|>`, and outside FIM the first line
//! of the suffix), an end-of-generation token, or the token budget. The completion is cut
//! there; [`CodeFinishReason`] says which rule ended it.

use std::path::Path;

use aigc_core::sampling::SamplingParams;

use crate::chat::Message;
use crate::error::{Error, Result};
use crate::generator::{FinishReason, GenerationConfig, Generator, Prompt, Timings};
use crate::tokenizer::Tokenizer;

/// The language of the code, which selects the block rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// Blocks by indentation (`def`, `class`, `if`, ... ending in `:`).
    Python,
    /// Blocks by braces; nested block comments, raw strings, lifetimes.
    Rust,
    /// Blocks by braces (C, C++, Java, JavaScript, Go, ...).
    CLike,
    /// No block rule: stop strings, end of generation and the token budget only.
    #[default]
    Other,
}

impl Language {
    /// From a name: `python`/`py`, `rust`/`rs`, `c`/`cpp`/`c++`/`java`/`js`/`go`/..., `other`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "python" | "py" => Language::Python,
            "rust" | "rs" => Language::Rust,
            "c" | "h" | "cpp" | "c++" | "cc" | "hpp" | "cxx" | "java" | "js" | "javascript"
            | "ts" | "typescript" | "go" | "cs" | "csharp" | "kotlin" | "kt" | "swift"
            | "clike" | "c-like" => Language::CLike,
            "other" | "text" | "none" => Language::Other,
            _ => return None,
        })
    }

    /// From a file's extension (`None` when the extension is unknown or missing).
    pub fn from_path(path: impl AsRef<Path>) -> Option<Self> {
        let ext = path.as_ref().extension()?.to_str()?;
        Self::from_name(ext).filter(|l| *l != Language::Other)
    }

    /// The language's name in a Markdown code fence (`python`, `rust`, `c`, empty).
    pub fn fence_tag(&self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Rust => "rust",
            Language::CLike => "c",
            Language::Other => "",
        }
    }

    /// A human name, for instructions (`Python`, `Rust`, `C`, `the`).
    fn display_name(&self) -> &'static str {
        match self {
            Language::Python => "Python",
            Language::Rust => "Rust",
            Language::CLike => "C",
            Language::Other => "the following",
        }
    }
}

/// How the prompt is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptMode {
    /// FIM when the vocabulary has FIM tokens, else [`Instruct`](Self::Instruct) when the model
    /// has a chat template, else [`Prefix`](Self::Prefix).
    #[default]
    Auto,
    /// Fill-in-the-middle, prefix-suffix-middle order; an error without FIM tokens.
    Fim,
    /// The prefix as text to continue (a suffix only becomes a stop string).
    Prefix,
    /// The chat template, with the prefix begun in the assistant's answer; an error when the
    /// model has no chat template.
    Instruct,
}

impl PromptMode {
    /// From `auto`, `fim`, `prefix`, `instruct`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "auto" => PromptMode::Auto,
            "fim" => PromptMode::Fim,
            "prefix" => PromptMode::Prefix,
            "instruct" | "chat" => PromptMode::Instruct,
            _ => return None,
        })
    }

    /// `auto`, `fim`, `prefix`, `instruct`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PromptMode::Auto => "auto",
            PromptMode::Fim => "fim",
            PromptMode::Prefix => "prefix",
            PromptMode::Instruct => "instruct",
        }
    }
}

/// FIM vocabularies we know: (prefix, suffix, middle) token texts, in the order tried.
const FIM_NAMES: &[(&str, &str, &str)] = &[
    // StarCoder, SantaCoder, StableCode.
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    // Qwen2.5-Coder, CodeGemma.
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    // CodeLlama (SentencePiece pieces with the word-start mark).
    ("▁<PRE>", "▁<SUF>", "▁<MID>"),
    ("<PRE>", "<SUF>", "<MID>"),
    // DeepSeek-Coder: begin = prefix, hole = suffix, end = middle.
    ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
];

/// Tokens that end a file or a middle in the FIM families; their text is a stop string when the
/// vocabulary has them.
const END_TOKEN_NAMES: &[&str] = &[
    "<|endoftext|>",
    "<file_sep>",
    "<|file_sep|>",
    "<|file_separator|>",
    "<fim_pad>",
    "<|fim_pad|>",
    "▁<EOT>",
    "<EOT>",
    "<｜end▁of▁sentence｜>",
];

/// A model's fill-in-the-middle tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FimTokens {
    /// Precedes the prefix.
    pub prefix: u32,
    /// Precedes the suffix.
    pub suffix: u32,
    /// Precedes the middle, which the model then writes.
    pub middle: u32,
}

impl FimTokens {
    /// The FIM tokens of `tokenizer`'s vocabulary, looked up by name; `None` when it has no
    /// complete set.
    pub fn find(tokenizer: &Tokenizer) -> Option<Self> {
        FIM_NAMES.iter().find_map(|(p, s, m)| {
            Some(Self {
                prefix: tokenizer.token_to_id(p)?,
                suffix: tokenizer.token_to_id(s)?,
                middle: tokenizer.token_to_id(m)?,
            })
        })
    }
}

/// The texts of the end-of-file and end-of-middle tokens in `tokenizer`'s vocabulary, as the
/// decoder writes them.
pub fn end_token_stops(tokenizer: &Tokenizer) -> Vec<String> {
    let mut out: Vec<String> = END_TOKEN_NAMES
        .iter()
        .filter_map(|name| tokenizer.token_to_id(name))
        .filter_map(|id| tokenizer.decode(&[id], false).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// How to complete code.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeParams {
    /// Selects the block rule. Default [`Language::Other`] (none).
    pub language: Language,
    /// How the prompt is built. Default [`PromptMode::Auto`].
    pub mode: PromptMode,
    /// The most tokens to generate. Default 256.
    pub max_new_tokens: usize,
    /// The sampler chain and seed; `temperature: 0` is greedy. Default greedy.
    pub sampling: SamplingParams,
    /// Stop at the end of the block. Default true.
    pub stop_at_block_end: bool,
    /// More stop strings (the completion ends before the first one found).
    pub stop: Vec<String>,
    /// The instruction of [`PromptMode::Instruct`]; default "Complete this Python code."
    /// (with the language's name).
    pub instruction: Option<String>,
}

impl Default for CodeParams {
    fn default() -> Self {
        Self {
            language: Language::Other,
            mode: PromptMode::Auto,
            max_new_tokens: 256,
            sampling: SamplingParams::greedy(),
            stop_at_block_end: true,
            stop: Vec::new(),
            instruction: None,
        }
    }
}

impl CodeParams {
    /// Greedy completion of `language` code, at most `max_new_tokens`.
    pub fn greedy(language: Language, max_new_tokens: usize) -> Self {
        Self { language, max_new_tokens, ..Self::default() }
    }
}

/// Why a completion ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeFinishReason {
    /// The block that the prefix opened (or the first top-level block) ended.
    BlockEnd,
    /// This stop string appeared; the completion ends before it.
    Stop(String),
    /// The model sampled an end-of-generation token.
    Eos,
    /// The token budget ran out.
    MaxTokens,
    /// The context is full.
    ContextFull,
}

impl CodeFinishReason {
    /// `block_end`, `stop`, `eos`, `max_tokens`, `context_full`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CodeFinishReason::BlockEnd => "block_end",
            CodeFinishReason::Stop(_) => "stop",
            CodeFinishReason::Eos => "eos",
            CodeFinishReason::MaxTokens => "max_tokens",
            CodeFinishReason::ContextFull => "context_full",
        }
    }
}

/// A prompt built for code completion; see [`build_prompt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodePrompt {
    /// Token ids to generate from.
    pub ids: Vec<u32>,
    /// The mode used ([`PromptMode::Auto`] resolved).
    pub mode: PromptMode,
    /// The prefix as the model sees it (without trailing whitespace outside FIM): what the
    /// block rule reads before the generated text.
    pub prefix: String,
    /// Trailing whitespace left out of the prompt, to take off the front of the completion.
    pub trimmed: String,
    /// Stop strings: the caller's, a Markdown fence, the end-of-file tokens' texts, and
    /// outside FIM the suffix's first line (when it has 4 characters or more, a letter or
    /// digit among them).
    pub stop: Vec<String>,
}

/// Renders a conversation with a chat template, ending with the assistant's turn begun.
pub type RenderChat<'a> = &'a dyn Fn(&[Message]) -> Result<String>;

/// Builds the prompt for completing `prefix` (before `suffix`, if given) with `params.mode`.
///
/// FIM prompts are `[BOS] <prefix-token> prefix <suffix-token> suffix <middle-token>` (the
/// prefix-suffix-middle order of StarCoder, CodeLlama, Qwen2.5-Coder and llama.cpp's
/// infill), BOS only when the tokenizer adds one. `chat` renders the conversation for
/// [`PromptMode::Instruct`] (`None`: the model has no template).
pub fn build_prompt(
    tokenizer: &Tokenizer,
    chat: Option<RenderChat<'_>>,
    prefix: &str,
    suffix: Option<&str>,
    params: &CodeParams,
) -> Result<CodePrompt> {
    let fim = FimTokens::find(tokenizer);
    let mode = match (params.mode, &fim) {
        (PromptMode::Auto, Some(_)) => PromptMode::Fim,
        (PromptMode::Auto, None) if chat.is_some() => PromptMode::Instruct,
        (PromptMode::Auto, None) => PromptMode::Prefix,
        (PromptMode::Fim, None) => {
            return Err(Error::InvalidArgument {
                name: "mode",
                reason: "fill-in-the-middle needs FIM tokens (<fim_prefix>, <|fim_prefix|>, \
                         ▁<PRE>, ...) and this model's vocabulary has none"
                    .into(),
            });
        }
        (m, _) => m,
    };
    let mut stop: Vec<String> = params.stop.clone();
    if stop.iter().any(String::is_empty) {
        return Err(Error::InvalidArgument { name: "stop", reason: "an empty stop string".into() });
    }
    // A fence is never code; models trained on chat close their answer with one.
    stop.push("```".into());
    stop.extend(end_token_stops(tokenizer));
    if let (PromptMode::Fim, Some(f)) = (mode, &fim) {
        let mut ids: Vec<u32> =
            tokenizer.bos_id().filter(|_| tokenizer.adds_bos()).into_iter().collect();
        ids.push(f.prefix);
        ids.extend(tokenizer.encode(prefix, false)?);
        ids.push(f.suffix);
        ids.extend(tokenizer.encode(suffix.unwrap_or(""), false)?);
        ids.push(f.middle);
        dedup(&mut stop);
        return Ok(CodePrompt { ids, mode, prefix: prefix.into(), trimmed: String::new(), stop });
    }

    let kept = prefix.trim_end();
    let trimmed = prefix[kept.len()..].to_string();
    // Without FIM the model cannot see the suffix; it may still write the suffix's first line,
    // which is where the middle ends. A line as short as `}` would stop inner blocks too.
    if let Some(line) = suffix.and_then(|s| s.lines().map(str::trim).find(|l| !l.is_empty()))
        && line.len() >= 4
        && line.chars().any(char::is_alphanumeric)
    {
        stop.push(line.to_string());
    }
    dedup(&mut stop);
    let ids = match mode {
        PromptMode::Instruct => {
            let render = chat.ok_or_else(|| {
                Error::Template(
                    "the instruct prompt needs a chat template and this model has none; \
                 use the prefix mode"
                        .into(),
                )
            })?;
            let lang = params.language;
            let mut instruction = params
                .instruction
                .clone()
                .unwrap_or_else(|| format!("Complete this {} code.", lang.display_name()));
            if let Some(s) = suffix.filter(|s| !s.trim().is_empty()) {
                instruction.push_str(&format!(
                    " It must fit before this code:\n```{}\n{}\n```",
                    lang.fence_tag(),
                    s.trim_matches('\n')
                ));
            }
            let rendered = render(&[Message::user(instruction)])?;
            let text = format!("{rendered}```{}\n{kept}", lang.fence_tag());
            tokenizer.encode(&text, false)?
        }
        _ => tokenizer.encode(kept, true)?,
    };
    Ok(CodePrompt { ids, mode, prefix: kept.into(), trimmed, stop })
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

/// The result of [`complete_code`].
#[derive(Debug, Clone, PartialEq)]
pub struct CodeCompletion {
    /// The text to insert after the prefix, cut at the stop; a completion cut at a line end
    /// ends with one newline.
    pub text: String,
    /// Everything the model generated, before the cut (the prompt's trimmed whitespace
    /// included).
    pub raw: String,
    /// Why generation ended.
    pub finish_reason: CodeFinishReason,
    /// The prompt mode used.
    pub mode: PromptMode,
    /// The prompt's token ids.
    pub prompt_ids: Vec<u32>,
    /// The generated token ids (all of them, past the cut too).
    pub ids: Vec<u32>,
    /// Throughput.
    pub timings: Timings,
}

/// Completes code after `prefix` (and before `suffix`, with a FIM model) with `generator`'s
/// model; see the [module docs](self).
pub fn complete_code(
    generator: &mut Generator,
    prefix: &str,
    suffix: Option<&str>,
    params: &CodeParams,
) -> Result<CodeCompletion> {
    let prompt = {
        let g = &*generator;
        let render = |m: &[Message]| g.apply_chat_template(m, true);
        let chat: Option<RenderChat<'_>> = g.chat_template().is_some().then_some(&render as _);
        build_prompt(g.tokenizer(), chat, prefix, suffix, params)?
    };
    let config = GenerationConfig {
        max_new_tokens: params.max_new_tokens,
        sampling: params.sampling.clone(),
        ..GenerationConfig::default()
    };
    let mut stream = generator.stream(Prompt::Tokens(&prompt.ids), &config)?;
    let mut raw = String::new();
    let mut cut: Option<(usize, CodeFinishReason)> = None;
    while let Some(piece) = stream.next() {
        raw.push_str(&piece?);
        cut = find_stop(&prompt, params, &raw);
        if cut.is_some() {
            stream.cancel();
            break;
        }
    }
    let generation = stream.into_generation()?;
    let (text, finish_reason) = match cut {
        Some((at, reason)) => (finish_text(&raw, at), reason),
        None => {
            let reason = match generation.finish_reason {
                FinishReason::MaxTokens => CodeFinishReason::MaxTokens,
                FinishReason::ContextFull => CodeFinishReason::ContextFull,
                _ => CodeFinishReason::Eos,
            };
            let text = if reason == CodeFinishReason::MaxTokens {
                raw.clone()
            } else {
                finish_text(&raw, raw.len())
            };
            (text, reason)
        }
    };
    Ok(CodeCompletion {
        text: strip_trimmed(&text, &prompt.trimmed),
        raw,
        finish_reason,
        mode: prompt.mode,
        prompt_ids: generation.prompt_ids,
        ids: generation.ids,
        timings: generation.timings,
    })
}

/// The earliest stop in `raw`: the block end or a stop string, with the byte offset to cut at.
fn find_stop(
    prompt: &CodePrompt,
    params: &CodeParams,
    raw: &str,
) -> Option<(usize, CodeFinishReason)> {
    let mut best: Option<(usize, CodeFinishReason)> = prompt
        .stop
        .iter()
        .filter_map(|s| raw.find(s.as_str()).map(|at| (at, CodeFinishReason::Stop(s.clone()))))
        .min_by_key(|(at, _)| *at);
    if params.stop_at_block_end
        && let Some(at) = block_end(params.language, &prompt.prefix, raw)
        && best.as_ref().is_none_or(|(b, _)| at < *b)
    {
        best = Some((at, CodeFinishReason::BlockEnd));
    }
    best
}

/// `raw[..at]` without trailing whitespace, ending with one newline when the cut falls at a
/// line end.
fn finish_text(raw: &str, at: usize) -> String {
    let head = &raw[..at];
    let kept = head.trim_end();
    let line_ended = head[kept.len()..].contains('\n') || raw[at..].starts_with('\n');
    if kept.is_empty() {
        String::new()
    } else if line_ended {
        format!("{kept}\n")
    } else {
        kept.to_string()
    }
}

/// Takes the whitespace that was left out of the prompt off the front of `text` (as much of
/// it as `text` begins with).
fn strip_trimmed(text: &str, trimmed: &str) -> String {
    let common: usize = text
        .chars()
        .zip(trimmed.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    text[common..].to_string()
}

// ---------------------------------------------------------------------------------------------
// Block ends

/// Where the block ends in `completion`, which follows `prefix`: a byte offset into
/// `completion`, or `None` while the block is still open.
///
/// - **Python**: the block is the body of the innermost `def` or `class` whose body holds the
///   end of the prefix, else of the outermost compound statement there (`for`, `if`, ...);
///   it ends at the start of the first line indented no deeper than its header (`else`,
///   `elif`, `except`, `finally` at the header's level continue an `if`/`for`/`try`). Lines
///   inside brackets, strings and after a `\` continuation do not count. A prefix at the
///   top level (not in any block) ends after the first top-level block the completion
///   writes. Blank lines decide nothing, so the end is known when the next line's first
///   character arrives.
/// - **Rust, C-like**: the block is the innermost function (or `impl`, `struct`, `class`,
///   ...) body open at the end of the prefix, else the outermost open brace; it ends just
///   after the `}` that closes it. At the top level, the first `}` that closes a block the
///   completion opened. Braces in strings, character literals and comments do not count.
/// - **Other**: never.
pub fn block_end(language: Language, prefix: &str, completion: &str) -> Option<usize> {
    match language {
        Language::Python => python_block_end(prefix, completion),
        Language::Rust => brace_block_end(prefix, completion, true),
        Language::CLike => brace_block_end(prefix, completion, false),
        Language::Other => None,
    }
}

/// A logical line of Python: its indentation and whether it opens a block.
#[derive(Debug)]
struct PyLine {
    /// Offset of the physical line's first byte.
    line_start: usize,
    /// Offset of the first non-blank character.
    start: usize,
    indent: usize,
    /// The last significant character (outside strings and comments) is `:`.
    header: bool,
}

const PY_CONTINUATIONS: &[&str] = &["else", "elif", "except", "finally"];

/// The first word of a line (`async def` gives `def`).
fn first_word(s: &str) -> &str {
    fn word(s: &str) -> &str {
        let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
        &s[..end]
    }
    let w = word(s);
    if w == "async" { word(s[w.len()..].trim_start()) } else { w }
}

/// Logical lines of Python source, with the byte offsets of their starts.
fn python_lines(text: &str) -> Vec<PyLine> {
    let b = text.as_bytes();
    let mut lines: Vec<PyLine> = Vec::new();
    let mut depth = 0usize;
    // (quote byte, triple)
    let mut string: Option<(u8, bool)> = None;
    let mut comment = false;
    let mut at_line_start = true;
    let mut line_start = 0usize;
    let mut indent = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if at_line_start && string.is_none() {
            match c {
                b' ' => indent += 1,
                b'\t' => indent = (indent / 8 + 1) * 8,
                b'\r' | b'\x0c' => {}
                b'\n' => {
                    indent = 0;
                    line_start = i + 1;
                }
                _ => {
                    at_line_start = false;
                    lines.push(PyLine { line_start, start: i, indent, header: false });
                    continue; // process this byte below
                }
            }
            i += 1;
            continue;
        }
        if comment {
            if c == b'\n' {
                comment = false;
                continue; // the newline ends the line below
            }
            i += 1;
            continue;
        }
        if let Some((q, triple)) = string {
            match c {
                b'\\' => i += 1,
                _ if c == q && (!triple || b[i..].starts_with(&[q, q, q])) => {
                    string = None;
                    if triple {
                        i += 2;
                    }
                }
                b'\n' if !triple => string = None, // unterminated: the line ends it
                _ => {}
            }
            i += 1;
            continue;
        }
        let mut significant = true;
        match c {
            b'#' => {
                comment = true;
                significant = false;
            }
            b'\'' | b'"' => {
                let triple = b[i..].starts_with(&[c, c, c]);
                string = Some((c, triple));
                if triple {
                    i += 2;
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'\\' if b.get(i + 1) == Some(&b'\n') => {
                i += 2;
                continue;
            }
            b'\n' => {
                significant = false;
                if depth == 0 {
                    at_line_start = true;
                    indent = 0;
                    line_start = i + 1;
                }
            }
            b' ' | b'\t' | b'\r' | b'\x0c' => significant = false,
            _ => {}
        }
        if significant && let Some(l) = lines.last_mut() {
            l.header = c == b':';
        }
        i += 1;
    }
    lines
}

fn python_block_end(prefix: &str, completion: &str) -> Option<usize> {
    let p = prefix.len();
    let text = format!("{prefix}{completion}");
    let lines = python_lines(&text);
    let (before, after): (Vec<&PyLine>, Vec<&PyLine>) = lines.iter().partition(|l| l.start < p);
    let end_at = |l: &PyLine| Some(l.line_start.max(p) - p);
    let word = |l: &PyLine| first_word(&text[l.start..]);

    // The headers enclosing the end of the prefix, innermost first.
    let mut chain: Vec<&PyLine> = Vec::new();
    if let Some(&last) = before.last() {
        if last.header {
            chain.push(last);
        }
        let mut level = last.indent;
        for &l in before.iter().rev().skip(1) {
            if level == 0 {
                break;
            }
            if l.header && l.indent < level {
                chain.push(l);
                level = l.indent;
            }
        }
    }
    let is_def = |l: &PyLine| matches!(word(l), "def" | "class");
    let chosen = chain.iter().find(|l| is_def(l)).or(chain.last());
    // Ends the block: a line indented below `threshold`, except a continuation at `level`.
    let (threshold, continues) = match (chosen, before.last()) {
        (Some(h), _) => (h.indent + 1, !is_def(h)),
        // Inside an indented fragment without its header.
        (None, Some(last)) if last.indent > 0 => (last.indent, true),
        _ => {
            // Top level: after the first block the completion writes.
            let mut deeper = false;
            for &l in &after {
                if l.indent > 0 {
                    deeper = true;
                } else if deeper && !PY_CONTINUATIONS.contains(&word(l)) {
                    return end_at(l);
                }
            }
            return None;
        }
    };
    after
        .iter()
        .find(|l| {
            l.indent < threshold
                && !(continues && l.indent + 1 == threshold && PY_CONTINUATIONS.contains(&word(l)))
        })
        .and_then(|l| end_at(l))
}

/// Whether the text before a `{` makes it an item's body (a function, `impl`, `class`, ...).
fn opens_item(header: &str, rust: bool) -> bool {
    let words: Vec<&str> = header
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    if rust {
        return words
            .iter()
            .any(|w| matches!(*w, "fn" | "impl" | "trait" | "mod" | "struct" | "enum" | "union"));
    }
    const CONTROL: &[&str] =
        &["if", "for", "while", "switch", "else", "do", "catch", "try", "return", "foreach"];
    const ITEMS: &[&str] =
        &["class", "struct", "namespace", "union", "enum", "interface", "function", "func"];
    let first = words.first().copied().unwrap_or("");
    if ITEMS.contains(&first) || words.contains(&"function") || header.contains("=>") {
        return true;
    }
    header.contains('(') && !CONTROL.contains(&first) && !header.contains('=')
}

fn brace_block_end(prefix: &str, completion: &str, rust: bool) -> Option<usize> {
    let p = prefix.len();
    let text = format!("{prefix}{completion}");
    let b = text.as_bytes();
    // Open braces: whether each opens an item.
    let mut stack: Vec<bool> = Vec::new();
    // The index in `stack` whose closing ends the block, decided at the end of the prefix.
    let mut target: Option<Option<usize>> = None;
    let mut header_start = 0usize;
    let mut line_start = true;
    let mut i = 0;
    let ident = |j: usize| b[j].is_ascii_alphanumeric() || b[j] == b'_';
    while i < b.len() {
        if target.is_none() && i >= p {
            // The innermost item body, else the outermost brace; `None` at the top level.
            target =
                Some(stack.iter().rposition(|&item| item).or((!stack.is_empty()).then_some(0)));
        }
        let c = b[i];
        let rest = &b[i..];
        if c == b'\n' {
            line_start = true;
            i += 1;
            continue;
        }
        let was_line_start = line_start;
        if !c.is_ascii_whitespace() {
            line_start = false;
        }
        match c {
            b'/' if rest.starts_with(b"//") => {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
                continue;
            }
            b'#' if !rust && was_line_start => {
                // A preprocessor line (continued lines aside).
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
                continue;
            }
            b'/' if rest.starts_with(b"/*") => {
                let mut nest = 1;
                i += 2;
                while i < b.len() && nest > 0 {
                    if b[i..].starts_with(b"*/") {
                        nest -= 1;
                        i += 2;
                    } else if rust && b[i..].starts_with(b"/*") {
                        nest += 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            // A raw string `r"..."`, `r#"..."#`, `br"..."` (not an identifier ending in r).
            b'r' if rust
                && (i == 0 || !ident(i - 1) || (b[i - 1] == b'b' && (i == 1 || !ident(i - 2)))) =>
            {
                let hashes = b[i + 1..].iter().take_while(|&&h| h == b'#').count();
                if b.get(i + 1 + hashes) == Some(&b'"') {
                    let mut close = vec![b'"'];
                    close.extend(std::iter::repeat_n(b'#', hashes));
                    let body = i + hashes + 2;
                    i = b[body..]
                        .windows(close.len())
                        .position(|w| w == close.as_slice())
                        .map_or(b.len(), |n| body + n + close.len());
                    continue;
                }
            }
            b'"' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            b'\'' => {
                // A character literal ('a', '\n', '{'), else a Rust lifetime or label.
                if b.get(i + 1) == Some(&b'\\') {
                    let mut j = i + 3;
                    while j < b.len() && b[j] != b'\'' && b[j] != b'\n' {
                        j += 1;
                    }
                    i = j + 1;
                    continue;
                }
                if let Some(ch) = text.get(i + 1..).and_then(|s| s.chars().next())
                    && ch != '\n'
                    && b.get(i + 1 + ch.len_utf8()) == Some(&b'\'')
                {
                    i += 2 + ch.len_utf8();
                    continue;
                }
            }
            b'{' => {
                stack.push(opens_item(&text[header_start..i], rust));
                header_start = i + 1;
            }
            b'}' => {
                stack.pop();
                header_start = i + 1;
                if i >= p {
                    let closes = match target {
                        Some(Some(t)) => stack.len() == t,
                        _ => stack.is_empty(),
                    };
                    if closes {
                        return Some(i + 1 - p);
                    }
                }
            }
            b';' => header_start = i + 1,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(prefix: &str, completion: &str) -> Option<String> {
        python_block_end(prefix, completion).map(|at| completion[..at].to_string())
    }

    #[test]
    fn python_body_ends_at_dedent() {
        let prefix = "def fib(n):\n    \"\"\"The n-th Fibonacci number.\"\"\"";
        let body = "\n    if n < 2:\n        return n\n\n    return fib(n - 1) + fib(n - 2)\n";
        // Undecided until the next line's first character.
        assert_eq!(py(prefix, body), None);
        assert_eq!(py(prefix, &format!("{body}\n   ")), None);
        assert_eq!(py(prefix, &format!("{body}\nprint(fib(3))")), Some(format!("{body}\n")));
        // A column-0 comment ends it too.
        assert_eq!(py(prefix, &format!("{body}# test\n")).as_deref(), Some(body));
        // The header alone, with or without its newline.
        assert_eq!(py("def f(x):", "\n    return x\nf(1)").as_deref(), Some("\n    return x\n"));
        assert_eq!(py("def f(x):\n", "    return x\nf(1)").as_deref(), Some("    return x\n"));
    }

    #[test]
    fn python_whole_function_from_inside_a_nested_block() {
        // The cursor is in the `if`; the rest of the function still belongs to it.
        let prefix = "def f(x):\n    if x:\n        y = 1";
        let body = "\n        y += 1\n    else:\n        y = 2\n    return y\n";
        assert_eq!(py(prefix, &format!("{body}def g():")).as_deref(), Some(body));
        // Methods: the next method at the class's body level ends the method.
        let prefix = "class A:\n    def m(self):";
        let body = "\n        return 1\n\n";
        assert_eq!(py(prefix, &format!("{body}    def n(self):")).as_deref(), Some(body));
        // async def is a def.
        assert_eq!(
            py("async def f():", "\n    await g()\nx").as_deref(),
            Some("\n    await g()\n")
        );
    }

    #[test]
    fn python_continuations_of_compound_statements() {
        // An `if` at the top level: `else` continues it, the next statement ends it.
        let prefix = "if x:";
        let body = "\n    a()\nelse:\n    b()\n";
        assert_eq!(py(prefix, body), None);
        assert_eq!(py(prefix, &format!("{body}c()")).as_deref(), Some(body));
        // Inside a def, `else` at the def's level is past the function.
        assert_eq!(py("def f():", "\n    a()\nelse:").as_deref(), Some("\n    a()\n"));
    }

    #[test]
    fn python_strings_brackets_and_continuations_do_not_end_blocks() {
        let prefix = "def f():";
        let body = concat!(
            "\n    s = \"\"\"\ncolumn zero in a docstring\n\"\"\"\n",
            "    t = (1,\n2)\n    u = 1 + \\\n3\n    v = 'x:'\n    return s\n"
        );
        assert_eq!(py(prefix, body), None);
        assert_eq!(py(prefix, &format!("{body}x = f()")).as_deref(), Some(body));
        // A `:` inside a string or a comment does not make a header.
        assert_eq!(py("x = 'a:'", "\nz = 1\n"), None);
        assert_eq!(py("y = 1  # note:", "\nz = 2\n"), None);
    }

    #[test]
    fn python_top_level_prefix_ends_after_one_block() {
        let prefix = "import math\n# The n-th prime.";
        let body = "\ndef nth_prime(n):\n    return n\n\n";
        assert_eq!(py(prefix, body), None);
        assert_eq!(py(prefix, &format!("{body}print(1)")).as_deref(), Some(body));
        // A headerless indented fragment ends when the indentation drops below it.
        assert_eq!(py("    x = 1", "\n    y = 2\nz").as_deref(), Some("\n    y = 2\n"));
    }

    fn br(prefix: &str, completion: &str, rust: bool) -> Option<String> {
        brace_block_end(prefix, completion, rust).map(|at| completion[..at].to_string())
    }

    #[test]
    fn braces_balance_from_the_function_body() {
        let prefix = "fn is_prime(n: u64) -> bool {";
        let body =
            "\n    if n < 2 {\n        return false;\n    }\n    (2..n).all(|d| n % d != 0)\n}";
        assert_eq!(br(prefix, &body[..body.len() - 1], true), None);
        assert_eq!(br(prefix, &format!("{body}\n\nfn main() {{}}"), true).as_deref(), Some(body));
        // From inside an `if` in the function: the function's `}` ends it, not the `if`'s.
        let prefix = "fn f(x: u32) -> u32 {\n    if x > 1 {";
        let body = "\n        return 1;\n    }\n    0\n}";
        assert_eq!(br(prefix, &format!("{body}\n"), true).as_deref(), Some(body));
        // C: a function is a header with parentheses that is not a control statement.
        let prefix = "int add(int a, int b) {\n    if (a) {";
        let body = " b++; }\n    return a + b;\n}";
        assert_eq!(br(prefix, &format!("{body}\nint x;"), false).as_deref(), Some(body));
    }

    #[test]
    fn braces_in_strings_chars_and_comments_do_not_count() {
        let prefix = "fn f<'a>(s: &'a str) -> usize {";
        let body = concat!(
            "\n    let a = \"}\"; let b = '}'; let c = r#\"}\"#; // }\n",
            "    /* } /* } */ } */\n    let d = '\\'';\n    a.len()\n}"
        );
        assert_eq!(br(prefix, &format!("{body}\n"), true).as_deref(), Some(body));
        let prefix = "fn f() -> usize {";
        let body = "\n    let s = br\"}\\\"; let r = 1; let t = br##\"}\"#\"##; s.len() + r\n}";
        assert_eq!(br(prefix, &format!("{body}\n"), true).as_deref(), Some(body));
        let prefix = "#define X {\nint f(void) {";
        let body = " char c = '{'; const char *s = \"{\\\"\"; /* { */ // {\n return 0; }";
        assert_eq!(br(prefix, &format!("{body}\n"), false).as_deref(), Some(body));
    }

    #[test]
    fn braces_at_the_top_level_end_after_the_first_item() {
        let body = "\nfn main() {\n    let v = vec![1];\n}";
        assert_eq!(
            br("// Prints one.", &format!("{body}\nfn other() {{}}"), true).as_deref(),
            Some(body)
        );
        assert_eq!(br("// Prints one.", "\nuse std::io;\n", true), None);
        assert_eq!(block_end(Language::Other, "x {", "}}}"), None);
    }

    /// Arbitrary text (quotes, escapes, braces, multi-byte characters, cut anywhere) never
    /// panics, and a block end is a character boundary inside the completion.
    #[test]
    fn block_end_never_panics_on_arbitrary_text() {
        const PIECES: &[&str] = &[
            "{", "}", "(", ")", "\"", "'", "\\", "\n", "    ", "\t", ":", "#", "//", "/*", "*/",
            "r#\"", "\"#", "`", "é", "\u{3000}", "def ", "fn ", "else", "x", ";", "\"\"\"", "b'",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..2000 {
            let text: String = (0..next(40)).map(|_| PIECES[next(PIECES.len())]).collect();
            let mut split = next(text.len() + 1);
            while !text.is_char_boundary(split) {
                split -= 1;
            }
            let (prefix, completion) = text.split_at(split);
            for lang in [Language::Python, Language::Rust, Language::CLike, Language::Other] {
                if let Some(at) = block_end(lang, prefix, completion) {
                    assert!(completion.is_char_boundary(at), "{lang:?} {prefix:?} {completion:?}");
                    let _ = finish_text(completion, at);
                }
            }
            let _ = strip_trimmed(completion, prefix);
        }
    }

    #[test]
    fn finish_text_ends_at_a_line_end() {
        assert_eq!(finish_text("\n    return a\n\n", 15), "\n    return a\n");
        assert_eq!(finish_text("\n    return a\n```", 14), "\n    return a\n");
        assert_eq!(finish_text("    x = 1\n```", 9), "    x = 1\n");
        assert_eq!(finish_text("a + b<|endoftext|>", 5), "a + b");
        assert_eq!(finish_text("\n\n", 2), "");
        assert_eq!(strip_trimmed("\n    if x:", "\n    "), "if x:");
        assert_eq!(strip_trimmed("\n  if x:", "\n    "), "if x:");
        assert_eq!(strip_trimmed("\n        y", "\n    "), "    y");
        // Unicode whitespace shares a first byte with other characters.
        assert_eq!(strip_trimmed("\u{3001}x", "\u{3000}"), "\u{3001}x");
    }

    #[test]
    fn stops_and_block_end_take_the_earliest() {
        let prompt = CodePrompt {
            ids: vec![],
            mode: PromptMode::Prefix,
            prefix: "def f():".into(),
            trimmed: String::new(),
            stop: vec!["\n```".into(), "STOP".into()],
        };
        let params = CodeParams::greedy(Language::Python, 10);
        assert_eq!(
            find_stop(&prompt, &params, "\n    return 1\n```\nx"),
            Some((13, CodeFinishReason::Stop("\n```".into())))
        );
        assert_eq!(
            find_stop(&prompt, &params, "\n    return 1\nx = STOP"),
            Some((14, CodeFinishReason::BlockEnd))
        );
        let off = CodeParams { stop_at_block_end: false, ..params };
        assert_eq!(
            find_stop(&prompt, &off, "\n    return 1\nx = STOP"),
            Some((18, CodeFinishReason::Stop("STOP".into())))
        );
    }

    /// A word-level tokenizer over `words`, the `<...>` ones special.
    fn tokenizer(words: &[&str], bos: Option<&str>) -> Tokenizer {
        let vocab: serde_json::Map<String, serde_json::Value> =
            words.iter().enumerate().map(|(i, w)| (w.to_string(), i.into())).collect();
        let added: Vec<serde_json::Value> = words
            .iter()
            .enumerate()
            .filter(|(_, w)| w.starts_with('<') || w.starts_with('▁'))
            .map(|(i, w)| {
                serde_json::json!({"id": i, "content": w, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
        });
        let inner: tokenizers::Tokenizer = json.to_string().parse().unwrap();
        let config = crate::tokenizer::TokenizerConfig::parse(
            &serde_json::json!({"bos_token": bos, "add_bos_token": bos.is_some()}).to_string(),
        )
        .unwrap();
        Tokenizer::from_parts(inner, Some(&config)).unwrap()
    }

    #[test]
    fn fim_tokens_are_found_by_name() {
        let star = tokenizer(
            &[
                "<unk>",
                "<|endoftext|>",
                "<fim_prefix>",
                "<fim_middle>",
                "<fim_suffix>",
                "<file_sep>",
                "def",
                "f",
                "return",
            ],
            None,
        );
        let f = FimTokens::find(&star).unwrap();
        assert_eq!((f.prefix, f.suffix, f.middle), (2, 4, 3));
        let params = CodeParams::greedy(Language::Python, 8);
        let p = build_prompt(&star, None, "def f", Some("return"), &params).unwrap();
        assert_eq!(p.mode, PromptMode::Fim);
        assert_eq!(p.ids, vec![2, 6, 7, 4, 8, 3]);
        assert_eq!(p.trimmed, "");
        assert!(p.stop.contains(&"<|endoftext|>".to_string()), "{:?}", p.stop);
        assert!(p.stop.contains(&"<file_sep>".to_string()), "{:?}", p.stop);

        // Qwen/CodeGemma names, and a BOS when the tokenizer adds one.
        let qwen = tokenizer(
            &["<unk>", "<s>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "a", "b"],
            Some("<s>"),
        );
        let p = build_prompt(&qwen, None, "a", None, &params).unwrap();
        assert_eq!(p.ids, vec![1, 2, 5, 3, 4]);

        // CodeLlama's pieces carry the word-start mark.
        let llama = tokenizer(&["<unk>", "▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>", "x"], None);
        let f = FimTokens::find(&llama).unwrap();
        assert_eq!((f.prefix, f.suffix, f.middle), (1, 2, 3));
    }

    #[test]
    fn without_fim_tokens_the_prefix_is_continued() {
        // SmolLM2's vocabulary: <file_sep> but no FIM tokens.
        let smol =
            tokenizer(&["<unk>", "<|endoftext|>", "<file_sep>", "def", "f", ":", "return"], None);
        assert_eq!(FimTokens::find(&smol), None);
        let params = CodeParams::greedy(Language::Python, 8);
        let p =
            build_prompt(&smol, None, "def f :\n    ", Some("\n\nreturn f\n"), &params).unwrap();
        assert_eq!(p.mode, PromptMode::Prefix);
        assert_eq!(p.ids, vec![3, 4, 5]);
        assert_eq!(p.prefix, "def f :");
        assert_eq!(p.trimmed, "\n    ");
        // The suffix's first line stops the completion; so do the end-of-file tokens.
        assert!(p.stop.contains(&"return f".to_string()), "{:?}", p.stop);
        assert!(p.stop.contains(&"<file_sep>".to_string()), "{:?}", p.stop);
        // But not a closing brace.
        let p = build_prompt(&smol, None, "def f :", Some("\n}\n"), &params).unwrap();
        assert!(!p.stop.contains(&"}".to_string()), "{:?}", p.stop);
        // FIM asked for explicitly is an error; instruct needs a template.
        let fim = CodeParams { mode: PromptMode::Fim, ..params.clone() };
        assert!(matches!(
            build_prompt(&smol, None, "def", None, &fim),
            Err(Error::InvalidArgument { .. })
        ));
        let instruct = CodeParams { mode: PromptMode::Instruct, ..params.clone() };
        assert!(matches!(
            build_prompt(&smol, None, "def", None, &instruct),
            Err(Error::Template(_))
        ));
        let render = |_: &[Message]| Ok("<|endoftext|> ".to_string());
        let p = build_prompt(&smol, Some(&render), "def f", None, &instruct).unwrap();
        assert_eq!(p.mode, PromptMode::Instruct);
        assert_eq!(p.ids[0], 1);
        // Auto picks the instruct prompt when there is a template.
        let auto = build_prompt(&smol, Some(&render), "def f", None, &params).unwrap();
        assert_eq!(auto.mode, PromptMode::Instruct);
        let bad = CodeParams { stop: vec![String::new()], ..params };
        assert!(build_prompt(&smol, None, "def", None, &bad).is_err());
    }

    #[test]
    fn languages_by_name_and_extension() {
        assert_eq!(Language::from_name("Python"), Some(Language::Python));
        assert_eq!(Language::from_path("src/lib.rs"), Some(Language::Rust));
        assert_eq!(Language::from_path("a.cpp"), Some(Language::CLike));
        assert_eq!(Language::from_path("notes.txt"), None);
        assert_eq!(Language::from_name("cobol"), None);
        assert_eq!(PromptMode::from_name("fim"), Some(PromptMode::Fim));
    }
}
