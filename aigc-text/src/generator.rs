//! [`Generator`]: a model, its tokenizer, chat template and KV cache, and the decoding loop.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use aigc_core::burn::tensor::{Device, Tensor};
use aigc_core::layers::KvCache;
use aigc_core::sampling::{Sampler, SamplingParams};
use aigc_core::traits::CausalLm;
use aigc_core::weights::GgufFile;
use serde::{Deserialize, Serialize};

use crate::chat::{ChatTemplate, GEMMA3_TEMPLATE, Message};
use crate::config::{Architecture, ModelConfig};
use crate::error::{Error, Result};
use crate::model::{self, LoadedModel};
use crate::tokenizer::{IncrementalDecoder, Tokenizer};

/// The context a [`Generator`] prepares for when not told otherwise (capped at the model's).
pub const DEFAULT_CONTEXT: usize = 4096;

/// What to generate from.
#[derive(Debug, Clone, Copy)]
pub enum Prompt<'a> {
    /// Plain text, tokenized with the model's BOS convention.
    Text(&'a str),
    /// A conversation, rendered with the chat template (ending with the assistant's turn).
    Messages(&'a [Message]),
    /// Token ids, used as they are.
    Tokens(&'a [u32]),
}

impl<'a> From<&'a str> for Prompt<'a> {
    fn from(s: &'a str) -> Self {
        Prompt::Text(s)
    }
}

impl<'a> From<&'a String> for Prompt<'a> {
    fn from(s: &'a String) -> Self {
        Prompt::Text(s)
    }
}

impl<'a> From<&'a [Message]> for Prompt<'a> {
    fn from(m: &'a [Message]) -> Self {
        Prompt::Messages(m)
    }
}

impl<'a> From<&'a Vec<Message>> for Prompt<'a> {
    fn from(m: &'a Vec<Message>) -> Self {
        Prompt::Messages(m)
    }
}

impl<'a> From<&'a [u32]> for Prompt<'a> {
    fn from(t: &'a [u32]) -> Self {
        Prompt::Tokens(t)
    }
}

/// How to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// The most tokens to generate. Default 256.
    pub max_new_tokens: usize,
    /// The sampler chain and seed (`temperature: 0` is greedy). Default: llama.cpp's defaults.
    pub sampling: SamplingParams,
    /// Generation ends before the first occurrence of any of these strings (which is not part
    /// of the text returned).
    pub stop: Vec<String>,
    /// Keep going past end-of-generation tokens (EOS, end of turn). Default false.
    pub ignore_eos: bool,
    /// Whether prompt tokens count for the repetition penalties (llama.cpp: they do).
    /// Default true.
    pub penalize_prompt: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            ignore_eos: false,
            penalize_prompt: true,
        }
    }
}

impl GenerationConfig {
    /// Greedy decoding of at most `max_new_tokens`.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self { max_new_tokens, sampling: SamplingParams::greedy(), ..Self::default() }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-generation token (EOS, end of turn) was sampled.
    Eos,
    /// A stop string appeared; the text ends before it.
    Stop,
    /// `max_new_tokens` were generated.
    MaxTokens,
    /// The context is full.
    ContextFull,
    /// The caller's callback asked to stop.
    Cancelled,
}

impl FinishReason {
    /// `eos`, `stop`, `max_tokens`, `context_full`, `cancelled`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Eos => "eos",
            FinishReason::Stop => "stop",
            FinishReason::MaxTokens => "max_tokens",
            FinishReason::ContextFull => "context_full",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// Where the time went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Prompt tokens processed.
    pub prompt_tokens: usize,
    /// Time to process the prompt (one batched forward pass), in seconds.
    pub prompt_secs: f64,
    /// Tokens sampled, the one that stopped generation included.
    pub generated_tokens: usize,
    /// Time from the first sampled token to the end, in seconds.
    pub generation_secs: f64,
}

impl Timings {
    /// Prompt tokens per second.
    pub fn prompt_tokens_per_s(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt_secs)
    }

    /// Generated tokens per second.
    pub fn tokens_per_s(&self) -> f64 {
        rate(self.generated_tokens, self.generation_secs)
    }
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// The result of [`Generator::generate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The generated text (without a stop string or end-of-generation token).
    pub text: String,
    /// The prompt's token ids.
    pub prompt_ids: Vec<u32>,
    /// The generated token ids (including a final end-of-generation token, if one ended it).
    pub ids: Vec<u32>,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// Throughput.
    pub timings: Timings,
}

/// A model with everything needed to generate text from it.
///
/// The KV cache is allocated once, for [`context`](Self::context) positions; each call to
/// [`generate`](Self::generate) or [`stream`](Self::stream) starts from an empty cache, so a
/// dropped stream leaves the generator ready for the next call.
pub struct Generator {
    model: Box<dyn CausalLm>,
    config: ModelConfig,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    cache: KvCache,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("architecture", &self.config.architecture)
            .field("context", &self.cache.context())
            .field("tokenizer", &self.tokenizer)
            .field("template", &self.template.is_some())
            .finish()
    }
}

impl Generator {
    /// Puts the parts together, with a cache for `context` positions.
    pub fn new(
        loaded: LoadedModel,
        tokenizer: Tokenizer,
        template: Option<ChatTemplate>,
        context: usize,
    ) -> Result<Self> {
        let LoadedModel { model, config } = loaded;
        let cache = model.new_cache(context.min(model.max_context()))?;
        Ok(Self { model, config, tokenizer, template, cache })
    }

    /// Opens a GGUF file or a Hugging Face directory with a [`DEFAULT_CONTEXT`]-token context.
    ///
    /// Fails when the files cannot be read ([`Error::Core`]: I/O, format, or a load report
    /// naming every missing or misshaped tensor), the architecture is not supported, the
    /// configuration lacks a value ([`Error::Config`]), or the tokenizer or chat template
    /// cannot be built.
    pub fn open(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::open_with_context(path, device, DEFAULT_CONTEXT)
    }

    /// Like [`open`](Self::open) with the context to allocate (capped at the model's).
    pub fn open_with_context(
        path: impl AsRef<Path>,
        device: &Device,
        context: usize,
    ) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            Self::from_hf_dir(path, device, context)
        } else {
            Self::from_gguf(path, device, context)
        }
    }

    /// Loads model, tokenizer and chat template from one GGUF file.
    pub fn from_gguf(path: impl AsRef<Path>, device: &Device, context: usize) -> Result<Self> {
        let g = GgufFile::open(path)?;
        let tokenizer = Tokenizer::from_gguf(&g)?;
        let loaded = model::load_gguf(&g, device, context)?;
        let source = match g.get("tokenizer.chat_template") {
            Some(_) => Some(g.get_str("tokenizer.chat_template")?.to_string()),
            None => None,
        };
        let template = template_for(source, loaded.config.architecture, &tokenizer)?;
        Self::new(loaded, tokenizer, template, context)
    }

    /// Loads a Hugging Face directory: `config.json`, `model.safetensors` (or sharded),
    /// `tokenizer.json` and, when present, `tokenizer_config.json` (special tokens, template).
    pub fn from_hf_dir(dir: impl AsRef<Path>, device: &Device, context: usize) -> Result<Self> {
        let dir = dir.as_ref();
        let (tokenizer, config) = Tokenizer::from_file_with_config(dir.join("tokenizer.json"))?;
        let mut source = config.and_then(|c| c.chat_template);
        let jinja = dir.join("chat_template.jinja");
        if source.is_none() && jinja.exists() {
            source = Some(
                std::fs::read_to_string(&jinja)
                    .map_err(|e| Error::Core(aigc_core::Error::io(&jinja, e)))?,
            );
        }
        let loaded = model::load_hf_dir(dir, device, context)?;
        let template = template_for(source, loaded.config.architecture, &tokenizer)?;
        Self::new(loaded, tokenizer, template, context)
    }

    /// The model's tokenizer, for counting or encoding text as the generator does.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The chat template, if the model has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    /// The model's configuration.
    pub fn model_config(&self) -> &ModelConfig {
        &self.config
    }

    /// Positions the cache holds: prompt plus generated tokens must fit.
    pub fn context(&self) -> usize {
        self.cache.context()
    }

    /// Renders a conversation with the model's template.
    pub fn apply_chat_template(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let t = self.template.as_ref().ok_or_else(|| {
            Error::Template(format!(
                "this {:?} model has no chat template (none in its files, and its family defines none); \
                 pass plain text instead",
                self.config.architecture
            ))
        })?;
        t.render(messages, add_generation_prompt)
    }

    /// The token ids of a prompt: text gets the model's BOS; a rendered conversation is
    /// tokenized as is (the template writes its own special tokens).
    pub fn encode_prompt(&self, prompt: Prompt<'_>) -> Result<Vec<u32>> {
        match prompt {
            Prompt::Text(t) => self.tokenizer.encode(t, true),
            Prompt::Messages(m) => {
                self.tokenizer.encode(&self.apply_chat_template(m, true)?, false)
            }
            Prompt::Tokens(t) => Ok(t.to_vec()),
        }
    }

    /// Logits of the next token after `tokens` (`[vocab]`), from an empty cache; with
    /// `all_positions`, one row per token, flattened.
    pub fn logits(&mut self, tokens: &[u32], all_positions: bool) -> Result<Vec<f32>> {
        self.cache.reset();
        let out = self.model.forward(tokens, &mut self.cache, all_positions)?;
        tensor_to_vec(out)
    }

    /// Generates a completion of `prompt` (text, chat messages rendered with the model's
    /// template, or token ids) until [`FinishReason`] says why it stopped; running out of
    /// context ends generation with [`FinishReason::ContextFull`] rather than an error.
    ///
    /// Fails when the prompt has no tokens or is longer than the context
    /// ([`Error::ContextOverflow`]), a stop string is empty or a sampling parameter is out of
    /// range, or messages are given to a model without a chat template ([`Error::Template`]).
    ///
    /// ```no_run
    /// # fn main() -> aigc_text::Result<()> {
    /// use aigc_text::{GenerationConfig, Generator, Message};
    /// let device = aigc_core::parse_device("flex")?;
    /// let mut generator = Generator::open("SmolLM2-135M-Instruct.Q4_1.gguf", &device)?;
    /// let messages = vec![Message::user("Name a colour.")];
    /// let out = generator.generate(&messages, &GenerationConfig::greedy(16))?;
    /// println!("{} ({:?})", out.text, out.finish_reason);
    /// # Ok(()) }
    /// ```
    pub fn generate<'p>(
        &mut self,
        prompt: impl Into<Prompt<'p>>,
        config: &GenerationConfig,
    ) -> Result<Generation> {
        self.generate_with(prompt, config, |_| ControlFlow::Continue(()))
    }

    /// Generates, calling `on_text` with each piece of text as it is produced; returning
    /// `ControlFlow::Break(())` stops generation ([`FinishReason::Cancelled`]).
    pub fn generate_with<'p>(
        &mut self,
        prompt: impl Into<Prompt<'p>>,
        config: &GenerationConfig,
        mut on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        let mut stream = self.stream(prompt, config)?;
        while let Some(piece) = stream.next() {
            if on_text(&piece?).is_break() {
                stream.cancel();
                break;
            }
        }
        stream.into_generation()
    }

    /// Starts generating and returns an iterator of text pieces (each whole UTF-8
    /// characters). After the iterator ends, [`TextStream::into_generation`] gives the ids,
    /// finish reason and timings. Dropping it early simply stops.
    pub fn stream<'p>(
        &mut self,
        prompt: impl Into<Prompt<'p>>,
        config: &GenerationConfig,
    ) -> Result<TextStream<'_>> {
        let prompt_ids = self.encode_prompt(prompt.into())?;
        TextStream::start(self, prompt_ids, config)
    }
}

fn template_for(
    source: Option<String>,
    arch: Architecture,
    tokenizer: &Tokenizer,
) -> Result<Option<ChatTemplate>> {
    let source = match (source, arch) {
        (Some(s), _) => s,
        // Gemma defines its turn format; files of base models often carry no template.
        (None, Architecture::Gemma3) => GEMMA3_TEMPLATE.to_string(),
        (None, _) => return Ok(None),
    };
    let bos = tokenizer.bos_token().unwrap_or_default();
    let eos = tokenizer.eos_token().unwrap_or_default();
    ChatTemplate::new(&source, &bos, &eos).map(Some)
}

fn tensor_to_vec(t: Tensor<2>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Core(aigc_core::Error::tensor("logits", format!("{e:?}"))))
}

/// Text pieces as tokens are generated; see [`Generator::stream`].
pub struct TextStream<'g> {
    generator: &'g mut Generator,
    sampler: Sampler,
    config: GenerationConfig,
    prompt_ids: Vec<u32>,
    ids: Vec<u32>,
    logits: Vec<f32>,
    decoder: IncrementalDecoder,
    /// Decoded text not yet handed out (it might begin a stop string).
    held: String,
    text: String,
    finish: Option<FinishReason>,
    timings: Timings,
    started: Instant,
    failed: bool,
}

impl std::fmt::Debug for TextStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextStream")
            .field("prompt_tokens", &self.prompt_ids.len())
            .field("generated", &self.ids.len())
            .field("finish", &self.finish)
            .finish()
    }
}

impl<'g> TextStream<'g> {
    fn start(
        generator: &'g mut Generator,
        prompt_ids: Vec<u32>,
        config: &GenerationConfig,
    ) -> Result<Self> {
        if prompt_ids.is_empty() {
            return Err(Error::InvalidArgument {
                name: "prompt",
                reason: "the prompt has no tokens".into(),
            });
        }
        if config.stop.iter().any(String::is_empty) {
            return Err(Error::InvalidArgument {
                name: "stop",
                reason: "an empty stop string".into(),
            });
        }
        let context = generator.cache.context();
        if prompt_ids.len() > context {
            return Err(Error::ContextOverflow {
                prompt_tokens: prompt_ids.len(),
                max_new_tokens: config.max_new_tokens,
                context,
            });
        }
        let mut sampler = Sampler::new(config.sampling.clone(), generator.model.vocab_size())?;
        if config.penalize_prompt {
            sampler.accept_all(&prompt_ids)?;
        }
        generator.cache.reset();
        let t0 = Instant::now();
        let out = generator.model.forward(&prompt_ids, &mut generator.cache, false)?;
        let logits = tensor_to_vec(out)?;
        let prompt_secs = t0.elapsed().as_secs_f64();
        let finish = (config.max_new_tokens == 0).then_some(FinishReason::MaxTokens);
        Ok(Self {
            generator,
            sampler,
            config: config.clone(),
            timings: Timings { prompt_tokens: prompt_ids.len(), prompt_secs, ..Timings::default() },
            prompt_ids,
            ids: Vec::new(),
            logits,
            decoder: IncrementalDecoder::new(),
            held: String::new(),
            text: String::new(),
            finish,
            started: Instant::now(),
            failed: false,
        })
    }

    /// Stops generating; the stream then yields whatever text was held back and ends.
    pub fn cancel(&mut self) {
        if self.finish.is_none() {
            self.finish = Some(FinishReason::Cancelled);
        }
    }

    /// Token ids generated so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Why generation ended, once it has.
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.finish.as_ref()
    }

    /// Runs to the end (if not there yet) and returns the whole result.
    pub fn into_generation(mut self) -> Result<Generation> {
        for piece in self.by_ref() {
            piece?;
        }
        Ok(Generation {
            text: std::mem::take(&mut self.text),
            prompt_ids: std::mem::take(&mut self.prompt_ids),
            ids: std::mem::take(&mut self.ids),
            finish_reason: self.finish.clone().unwrap_or(FinishReason::Cancelled),
            timings: self.timings,
        })
    }

    /// Moves up to `upto` bytes of held text out as a piece.
    fn release(&mut self, upto: usize) -> String {
        let piece: String = self.held.drain(..upto).collect();
        self.text.push_str(&piece);
        piece
    }

    /// One token: sample, decode, check stops, run the model for the next. Returns the text
    /// that became final.
    fn step(&mut self) -> Result<String> {
        let token = self.sampler.sample(&self.logits)?;
        self.sampler.accept(token)?;
        self.ids.push(token);
        self.timings.generated_tokens = self.ids.len();
        let tok = &self.generator.tokenizer;
        if !self.config.ignore_eos && tok.is_end_of_generation(token) {
            self.finish = Some(FinishReason::Eos);
            return Ok(self.release(self.held.len()));
        }
        if let Some(piece) = self.decoder.push(tok, token)? {
            self.held.push_str(&piece);
        }
        // A stop string in the held text ends generation before it.
        if let Some(pos) = self.config.stop.iter().filter_map(|s| self.held.find(s.as_str())).min()
        {
            self.finish = Some(FinishReason::Stop);
            let out = self.release(pos);
            self.held.clear();
            return Ok(out);
        }
        if self.ids.len() >= self.config.max_new_tokens {
            self.finish = Some(FinishReason::MaxTokens);
        } else if self.generator.cache.len() >= self.generator.cache.context() {
            self.finish = Some(FinishReason::ContextFull);
        }
        if self.finish.is_some() {
            if let Some(rest) = self.decoder.flush(&self.generator.tokenizer)? {
                self.held.push_str(&rest);
            }
            return Ok(self.release(self.held.len()));
        }
        let out = self.generator.model.forward(&[token], &mut self.generator.cache, false)?;
        self.logits = tensor_to_vec(out)?;
        // Hold back the longest tail that could begin a stop string.
        let keep = longest_stop_prefix(&self.held, &self.config.stop);
        Ok(self.release(self.held.len() - keep))
    }
}

/// Bytes at the end of `text` that are a proper prefix of some stop string.
fn longest_stop_prefix(text: &str, stops: &[String]) -> usize {
    let mut best = 0;
    for s in stops {
        let max = (s.len() - 1).min(text.len());
        for len in (best + 1..=max).rev() {
            let start = text.len() - len;
            if text.is_char_boundary(start) && s.starts_with(&text[start..]) {
                best = len;
                break;
            }
        }
    }
    best
}

impl Iterator for TextStream<'_> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if self.finish.is_some() {
                // Hand out what was held when generation was cancelled, then end.
                if self.held.is_empty() {
                    return None;
                }
                let n = self.held.len();
                return Some(Ok(self.release(n)));
            }
            let r = self.step();
            self.timings.generation_secs = self.started.elapsed().as_secs_f64();
            match r {
                Ok(piece) if piece.is_empty() => continue,
                Ok(piece) => return Some(Ok(piece)),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
