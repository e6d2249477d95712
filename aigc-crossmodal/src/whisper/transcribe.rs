//! Transcription: the tokenizer's special tokens, greedy decoding with Whisper's suppressions
//! and timestamp rules, temperature fallback on repetitive or unlikely output, and long audio
//! window by window (`whisper.transcribe` of openai-whisper, with its defaults).

use std::io::Write;
use std::path::Path;

use aigc_core::burn::tensor::Device;
use aigc_core::sampling::Xoshiro256StarStar as SeededRng;
use aigc_core::{Error, Result};

use super::mel::{HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE, WhisperFrontEnd};
use super::model::{DecoderState, WhisperModel};

/// Seconds per timestamp step (20 ms: one encoder position).
const TIME_PRECISION: f64 = 0.02;
/// Mel frames per encoder position.
const INPUT_STRIDE: usize = 2;

/// Options of [`Whisper::transcribe`] (openai-whisper's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct TranscribeOptions {
    /// Temperatures tried in turn while the output looks like a failure.
    pub temperatures: Vec<f32>,
    /// Above this gzip compression ratio the text is taken as repetitive.
    pub compression_ratio_threshold: Option<f32>,
    /// Below this average log-probability the text is taken as unlikely.
    pub logprob_threshold: Option<f32>,
    /// Above this no-speech probability (with an unlikely text) the window is silence.
    pub no_speech_threshold: Option<f32>,
    /// Predict timestamps (segments with times); otherwise one segment per window.
    pub timestamps: bool,
    /// Prompt each window with the previous window's text.
    pub condition_on_previous_text: bool,
    /// The latest first timestamp, in seconds.
    pub max_initial_timestamp: f64,
    /// Language code for multilingual models (`en`, `de`, ...); English-only models ignore it.
    pub language: Option<String>,
    /// Seed of the sampling at non-zero temperatures.
    pub seed: u64,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: Some(2.4),
            logprob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            timestamps: true,
            condition_on_previous_text: true,
            max_initial_timestamp: 1.0,
            language: None,
            seed: 0,
        }
    }
}

/// A stretch of transcribed speech.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// The segment's text as the tokenizer decodes it (usually with a leading space).
    pub text: String,
    /// Its token ids (timestamps excluded).
    pub tokens: Vec<u32>,
    /// The temperature the window's text was decoded at.
    pub temperature: f32,
    /// Mean log-probability of the window's tokens.
    pub avg_logprob: f32,
    /// gzip compression ratio of the window's text.
    pub compression_ratio: f32,
    /// The probability of `<|nospeech|>` at the window's first step.
    pub no_speech_prob: f32,
}

/// A transcription.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// All segments' text.
    pub text: String,
    /// The segments in order.
    pub segments: Vec<Segment>,
    /// Seconds of audio.
    pub duration: f64,
}

/// The special tokens of one tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Specials {
    eot: u32,
    sot: u32,
    sot_prev: Option<u32>,
    sot_lm: Option<u32>,
    no_speech: Option<u32>,
    no_timestamps: u32,
    transcribe: Option<u32>,
    translate: Option<u32>,
    timestamp_begin: u32,
}

/// A Whisper model with its tokenizer and front end.
pub struct Whisper {
    model: WhisperModel,
    tokenizer: tokenizers::Tokenizer,
    front: WhisperFrontEnd,
    specials: Specials,
    /// Ids never sampled (non-speech symbols), from `config.json` (`suppress_ids` of
    /// CTranslate2, `suppress_tokens` of Hugging Face's generation config).
    suppress: Vec<u32>,
    /// Ids not sampled first (a space, end of text).
    suppress_begin: Vec<u32>,
    multilingual: bool,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper").field("model", &self.model.config()).finish()
    }
}

impl Whisper {
    /// Loads a model directory (CTranslate2 or Hugging Face layout, or a file in one) with its
    /// `tokenizer.json`.
    pub fn open(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let dir = if path.is_file() { path.parent().unwrap_or(Path::new(".")) } else { path };
        let model = WhisperModel::open(path, device)?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| {
            Error::invalid_argument("tokenizer.json", format!("{}: {e}", tok_path.display()))
        })?;
        let id = |t: &str| tokenizer.token_to_id(t);
        let need = |t: &str| {
            id(t).ok_or_else(|| Error::invalid_argument("tokenizer.json", format!("no {t} token")))
        };
        let eot = need("<|endoftext|>")?;
        let no_timestamps = need("<|notimestamps|>")?;
        let specials = Specials {
            eot,
            sot: need("<|startoftranscript|>")?,
            sot_prev: id("<|startofprev|>"),
            sot_lm: id("<|startoflm|>"),
            no_speech: id("<|nospeech|>").or_else(|| id("<|nocaptions|>")),
            no_timestamps,
            transcribe: id("<|transcribe|>"),
            translate: id("<|translate|>"),
            // Timestamps follow <|notimestamps|> (<|0.00|> may be absent from older files).
            timestamp_begin: id("<|0.00|>").unwrap_or(no_timestamps + 1),
        };
        let multilingual = model.config().vocab >= 51865;
        let mut suppress = Vec::new();
        let mut suppress_begin = vec![specials.eot];
        let config = dir.join("config.json");
        let generation = dir.join("generation_config.json");
        for path in [config, generation] {
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            let ids = |k: &str| -> Vec<u32> {
                v.get(k)
                    .and_then(|x| x.as_array())
                    .map(|a| a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32).collect())
                    .unwrap_or_default()
            };
            suppress.extend(ids("suppress_ids"));
            suppress.extend(ids("suppress_tokens"));
            suppress_begin.extend(ids("suppress_ids_begin"));
            suppress_begin.extend(ids("begin_suppress_tokens"));
        }
        if let Some(space) = tokenizer.token_to_id("Ġ") {
            suppress_begin.push(space);
        }
        suppress.sort_unstable();
        suppress.dedup();
        suppress_begin.sort_unstable();
        suppress_begin.dedup();
        let vocab = model.config().vocab as u32;
        suppress.retain(|&t| t < vocab);
        suppress_begin.retain(|&t| t < vocab);
        Ok(Self {
            front: WhisperFrontEnd::new(model.config().n_mels)?,
            model,
            tokenizer,
            specials,
            suppress,
            suppress_begin,
            multilingual,
        })
    }

    /// The encoder-decoder, for running it step by step.
    pub fn model(&self) -> &WhisperModel {
        &self.model
    }

    /// The log-mel front end.
    pub fn front_end(&self) -> &WhisperFrontEnd {
        &self.front
    }

    /// Text of token ids, special tokens and timestamps left out.
    pub fn decode_text(&self, ids: &[u32]) -> Result<String> {
        let ids: Vec<u32> = ids.iter().copied().filter(|&t| t < self.specials.eot).collect();
        self.tokenizer
            .decode(&ids, true)
            .map_err(|e| Error::invalid_argument("token ids", e.to_string()))
    }

    /// The tokens that start a window: `<|startoftranscript|>`, the language and task for
    /// multilingual models, `<|notimestamps|>` without timestamps.
    pub fn start_tokens(&self, options: &TranscribeOptions) -> Result<Vec<u32>> {
        let s = &self.specials;
        let mut tokens = vec![s.sot];
        if self.multilingual {
            let lang = options.language.as_deref().unwrap_or("en");
            let id = self
                .tokenizer
                .token_to_id(&format!("<|{lang}|>"))
                .ok_or_else(|| Error::invalid_argument("language", lang.to_string()))?;
            tokens.push(id);
            tokens.extend(s.transcribe);
        }
        if !options.timestamps {
            tokens.push(s.no_timestamps);
        }
        Ok(tokens)
    }

    /// Transcribes audio of any sample rate and channel count (mixed to mono, resampled to
    /// 16 kHz as scipy's `resample_poly` does).
    pub fn transcribe_audio(
        &self,
        audio: &aigc_audio::wav::Audio,
        options: &TranscribeOptions,
    ) -> Result<Transcript> {
        let mono = audio.to_mono();
        let samples = if audio.sample_rate == SAMPLE_RATE {
            mono
        } else {
            aigc_audio::resample::resample(&mono, audio.sample_rate, SAMPLE_RATE)?
        };
        self.transcribe(&samples, options)
    }

    /// Transcribes 16 kHz mono audio (samples in `[-1, 1]`), 30-second window by window, with
    /// openai-whisper's temperature fallback and no-speech rules from `options`. Fails when
    /// `options.temperatures` is empty or holds a negative or non-finite value.
    pub fn transcribe(&self, audio: &[f32], options: &TranscribeOptions) -> Result<Transcript> {
        if options.temperatures.is_empty()
            || options.temperatures.iter().any(|t| !t.is_finite() || *t < 0.0)
        {
            return Err(Error::invalid_argument(
                "temperatures",
                format!("{:?}", options.temperatures),
            ));
        }
        let mel = self.front.compute(audio, N_SAMPLES)?;
        let content = audio.len() / HOP_LENGTH;
        let duration = audio.len() as f64 / SAMPLE_RATE as f64;
        let mut rng = SeededRng::new(options.seed);
        let mut segments: Vec<Segment> = Vec::new();
        let mut previous: Vec<u32> = Vec::new();
        let mut seek = 0;
        while seek < content {
            let size = (content - seek).min(N_FRAMES);
            let offset = seek as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
            let window = mel.window(seek);
            let prompt = if options.condition_on_previous_text { &previous[..] } else { &[] };
            let result = self.decode_with_fallback(&window, prompt, options, &mut rng)?;
            let skip = options.no_speech_threshold.is_some_and(|th| {
                result.no_speech_prob > th
                    && options.logprob_threshold.is_none_or(|lp| result.avg_logprob < lp)
            });
            if skip {
                seek += size;
                continue;
            }
            let (mut new, advance) = self.segments(&result, offset, size, options.timestamps)?;
            seek += advance;
            for s in &new {
                previous.extend(&s.tokens);
            }
            // openai-whisper resets the prompt after a high-temperature window.
            if result.temperature > 0.5 {
                previous.clear();
            }
            segments.append(&mut new);
        }
        let text = segments.iter().map(|s| s.text.as_str()).collect::<String>();
        Ok(Transcript { text: text.trim().to_string(), segments, duration })
    }

    /// Decodes a window at increasing temperatures until the output passes the thresholds.
    fn decode_with_fallback(
        &self,
        mel: &[f32],
        prompt: &[u32],
        options: &TranscribeOptions,
        rng: &mut SeededRng,
    ) -> Result<Decoded> {
        let encoded = self.model.encode(mel)?;
        let mut last = None;
        for &t in &options.temperatures {
            let r = self.decode_window(&encoded, prompt, t, options, rng)?;
            let too_repetitive =
                options.compression_ratio_threshold.is_some_and(|th| r.compression_ratio > th);
            let too_unlikely = options.logprob_threshold.is_some_and(|th| r.avg_logprob < th);
            let silence = options.no_speech_threshold.is_some_and(|th| r.no_speech_prob > th);
            let done = !too_repetitive && (!too_unlikely || silence);
            last = Some(r);
            if done {
                break;
            }
        }
        Ok(last.expect("at least one temperature"))
    }

    /// One pass of decoding over an encoded window.
    fn decode_window(
        &self,
        encoded: &aigc_core::burn::tensor::Tensor<3>,
        prompt: &[u32],
        temperature: f32,
        options: &TranscribeOptions,
        rng: &mut SeededRng,
    ) -> Result<Decoded> {
        let s = self.specials;
        let text_ctx = self.model.config().text_ctx;
        let sample_len = text_ctx / 2;
        let mut tokens: Vec<u32> = Vec::new();
        if let (Some(prev), false) = (s.sot_prev, prompt.is_empty()) {
            tokens.push(prev);
            let keep = (text_ctx / 2 - 1).min(prompt.len());
            tokens.extend(&prompt[prompt.len() - keep..]);
        }
        tokens.extend(self.start_tokens(options)?);
        let sample_begin = tokens.len();
        let mut state: DecoderState = self.model.decoder_state(encoded);
        // The tokens up to <|startoftranscript|> first: the no-speech probability is read
        // from the logits there.
        let sot_end = tokens.iter().position(|&t| t == s.sot).map_or(tokens.len(), |i| i + 1);
        let mut logits = self.model.decode(&mut state, &tokens[..sot_end])?;
        let no_speech_prob = s.no_speech.map_or(0.0, |ns| softmax(&logits)[ns as usize]);
        if sot_end < tokens.len() {
            logits = self.model.decode(&mut state, &tokens[sot_end..])?;
        }
        let mut sum_logprob = 0f64;
        let mut sampled: Vec<u32> = Vec::new();
        let max_initial = (options.max_initial_timestamp / TIME_PRECISION).round() as u32;
        while sampled.len() < sample_len {
            self.filter(&mut logits, &sampled, options.timestamps, max_initial);
            let logprobs = log_softmax(&logits);
            let next = if temperature == 0.0 {
                argmax(&logits)
            } else {
                let scaled: Vec<f32> = logits.iter().map(|l| l / temperature).collect();
                sample(&softmax(&scaled), rng)
            };
            sum_logprob += logprobs[next as usize] as f64;
            sampled.push(next);
            if next == s.eot || sample_begin + sampled.len() >= text_ctx {
                break;
            }
            logits = self.model.decode(&mut state, &[next])?;
        }
        let text_tokens: Vec<u32> = sampled.iter().copied().filter(|&t| t != s.eot).collect();
        let text = self.decode_text(&text_tokens)?;
        let avg_logprob = (sum_logprob / (text_tokens.len() + 1) as f64) as f32;
        Ok(Decoded {
            tokens: text_tokens,
            compression_ratio: compression_ratio(&text),
            avg_logprob,
            no_speech_prob,
            temperature,
        })
    }

    /// Whisper's logit filters: suppressed tokens, the blank/end suppression at the first
    /// step, and the timestamp rules.
    fn filter(&self, logits: &mut [f32], sampled: &[u32], timestamps: bool, max_initial: u32) {
        let s = self.specials;
        let n = logits.len();
        let vocab = n as u32;
        let mut ban = |t: u32| {
            if t < vocab {
                logits[t as usize] = f32::NEG_INFINITY;
            }
        };
        for &t in &self.suppress {
            ban(t);
        }
        if sampled.is_empty() {
            for &t in &self.suppress_begin {
                ban(t);
            }
        }
        // Special tokens other than the end of text are never sampled.
        for t in [s.sot, s.no_timestamps]
            .into_iter()
            .chain(s.sot_prev)
            .chain(s.sot_lm)
            .chain(s.no_speech)
            .chain(s.transcribe)
            .chain(s.translate)
        {
            ban(t);
        }
        if self.multilingual {
            // Language tokens lie between <|startoftranscript|> and <|translate|>.
            let end = s.translate.unwrap_or(s.sot + 1);
            for t in s.sot + 1..end {
                ban(t);
            }
        }
        let tb = s.timestamp_begin as usize;
        if !timestamps {
            logits[tb.min(n)..].fill(f32::NEG_INFINITY);
            return;
        }
        let is_ts = |t: u32| t >= s.timestamp_begin;
        let last_ts = sampled.last().is_some_and(|&t| is_ts(t));
        let penultimate_ts = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
        if last_ts {
            if penultimate_ts {
                // A closed pair: text (or the end) must follow.
                logits[tb..].fill(f32::NEG_INFINITY);
            } else {
                // An open pair: a timestamp (or the end) must follow.
                logits[..s.eot as usize].fill(f32::NEG_INFINITY);
            }
        }
        // Timestamps do not decrease (and a pair's second one does not repeat the first).
        if let Some(&last) = sampled.iter().rev().find(|&&t| is_ts(t)) {
            let floor = if last_ts && !penultimate_ts { last } else { last + 1 };
            logits[tb..(floor as usize).min(n)].fill(f32::NEG_INFINITY);
        }
        if sampled.is_empty() {
            // The first token is a timestamp, no later than `max_initial`.
            logits[..tb].fill(f32::NEG_INFINITY);
            let latest = tb + max_initial as usize + 1;
            if latest < logits.len() {
                logits[latest..].fill(f32::NEG_INFINITY);
            }
        }
        // When timestamps are likelier than any text token together, take one.
        let logprobs = log_softmax(logits);
        let ts_mass = log_sum_exp(&logprobs[tb..]);
        let text_max = logprobs[..tb].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if ts_mass > text_max {
            logits[..tb].fill(f32::NEG_INFINITY);
        }
    }

    /// The segments of a decoded window starting at `offset` seconds, and how many mel frames
    /// to advance.
    fn segments(
        &self,
        r: &Decoded,
        offset: f64,
        size: usize,
        timestamps: bool,
    ) -> Result<(Vec<Segment>, usize)> {
        let tb = self.specials.timestamp_begin;
        let make = |start: f64, end: f64, toks: &[u32]| -> Result<Segment> {
            let tokens: Vec<u32> = toks.iter().copied().filter(|&t| t < tb).collect();
            Ok(Segment {
                start,
                end,
                text: self.decode_text(&tokens)?,
                tokens,
                temperature: r.temperature,
                avg_logprob: r.avg_logprob,
                compression_ratio: r.compression_ratio,
                no_speech_prob: r.no_speech_prob,
            })
        };
        let window_end = offset + size as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
        let toks = &r.tokens;
        let is_ts = |t: u32| t >= tb;
        // Timestamps past the audio in the window (the model may predict them) are clipped.
        let time = |t: u32| (offset + (t - tb) as f64 * TIME_PRECISION).min(window_end);
        if !timestamps || !toks.iter().any(|&t| is_ts(t)) {
            if r.tokens.is_empty() {
                return Ok((Vec::new(), size));
            }
            return Ok((vec![make(offset, window_end, toks)?], size));
        }
        let single_ending =
            toks.len() >= 2 && is_ts(toks[toks.len() - 1]) && !is_ts(toks[toks.len() - 2]);
        // Consecutive timestamps close one segment and open the next.
        let cuts: Vec<usize> =
            (1..toks.len()).filter(|&i| is_ts(toks[i]) && is_ts(toks[i - 1])).collect();
        let mut out = Vec::new();
        if !cuts.is_empty() {
            let mut from = 0;
            let mut ends = cuts.clone();
            if single_ending {
                ends.push(toks.len());
            }
            for &to in &ends {
                let part = &toks[from..to];
                if let (Some(&a), Some(&b)) = (part.first(), part.last())
                    && is_ts(a)
                    && is_ts(b)
                    && part.len() > 2
                {
                    out.push(make(time(a), time(b), part)?);
                }
                from = to;
            }
            let advance = if single_ending {
                size
            } else {
                // Resume at the last timestamp.
                let last = toks[*cuts.last().expect("a cut") - 1];
                (last - tb) as usize * INPUT_STRIDE
            };
            return Ok((out, advance.max(1)));
        }
        // No closed pair: one segment over the window, ending at the last timestamp if any.
        let end = toks.iter().rev().find(|&&t| is_ts(t)).map(|&t| time(t)).filter(|&e| e > offset);
        let seg = make(offset, end.unwrap_or(window_end), toks)?;
        if !seg.tokens.is_empty() {
            out.push(seg);
        }
        Ok((out, size))
    }
}

/// One decoded window.
#[derive(Debug, Clone)]
struct Decoded {
    tokens: Vec<u32>,
    avg_logprob: f32,
    compression_ratio: f32,
    no_speech_prob: f32,
    temperature: f32,
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn log_sum_exp(v: &[f32]) -> f32 {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + v.iter().map(|&x| ((x - max) as f64).exp()).sum::<f64>().ln() as f32
}

fn log_softmax(v: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(v);
    v.iter().map(|&x| x - lse).collect()
}

fn softmax(v: &[f32]) -> Vec<f32> {
    log_softmax(v).iter().map(|&x| x.exp()).collect()
}

fn sample(p: &[f32], rng: &mut SeededRng) -> u32 {
    let total: f64 = p.iter().map(|&x| x as f64).sum();
    let mut u = rng.next_f64() * total;
    for (i, &x) in p.iter().enumerate() {
        u -= x as f64;
        if u <= 0.0 && x > 0.0 {
            return i as u32;
        }
    }
    argmax(p)
}

/// `len(text) / len(zlib.compress(text))` in bytes, as openai-whisper measures repetition.
pub fn compression_ratio(text: &str) -> f32 {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    let compressed = z.write_all(bytes).and_then(|_| z.finish()).map(|v| v.len()).unwrap_or(1);
    bytes.len() as f32 / compressed.max(1) as f32
}
