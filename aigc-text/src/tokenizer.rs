//! Tokenizers: from a `tokenizer.json`, or rebuilt from a GGUF file's metadata.
//!
//! Both paths end in a [`tokenizers::Tokenizer`]. A GGUF file carries the vocabulary (and for
//! byte-level BPE the merges) but not the normalizer, pre-tokenizer and decoder; those are
//! rebuilt here the way transformers' GGUF loader rebuilds them
//! (`transformers/integrations/gguf/gguf_tokenizer_mapping.py`), with llama.cpp's
//! pre-tokenizer regexes (`src/llama-vocab.cpp`) for the `tokenizer.ggml.pre` names:
//!
//! - `gpt2` (byte-level BPE): the file's merges; the split regex that `tokenizer.ggml.pre`
//!   names; an unknown name is an error rather than a silently different split.
//! - `llama` (SentencePiece vocabulary with scores and byte fallback): a BPE whose merges are
//!   recovered from the vocabulary, best score first; Gemma files order merges by vocabulary
//!   position instead and spell their whitespace tokens with real spaces.
//!
//! Control tokens become special added tokens and user-defined tokens plain added tokens, so
//! that both are matched whole in the text.

use std::collections::HashMap;
use std::path::Path;

use aigc_core::weights::GgufFile;
use aigc_core::weights::gguf::MetadataArray;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, DecoderWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::error::{Error, Result};

/// GGML token types (`tokenizer.ggml.token_type`).
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

/// Texts of tokens that end a turn in the families we know, besides the declared EOS: the
/// tokens llama.cpp treats as end-of-generation when they are control tokens.
const END_OF_TURN_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "</s>",
    "<|return|>",
    "<|end_of_text|>",
];

/// Split regexes of llama.cpp's byte-level pre-tokenizers, by `tokenizer.ggml.pre`.
fn pre_tokenizer_regexes(pre: &str) -> Option<&'static [&'static str]> {
    const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    Some(match pre {
        "default" | "gpt2" | "gpt-2" => &[GPT2],
        // SmolLM: single digits, then GPT-2's split (HF: Digits(individual) + ByteLevel).
        "smollm" => &[r"\p{N}", GPT2],
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" | "dbrx" | "smaug-bpe" => {
            &[LLAMA3]
        }
        "qwen2" | "deepseek-r1-qwen" | "megrez" => &[QWEN2],
        "tekken" => &[TEKKEN],
        "gpt-4o" | "llama4" => &[GPT4O],
        _ => return None,
    })
}

/// A tokenizer with the model's special tokens and its BOS/EOS conventions.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    /// The `tokenizer.json` post-processor adds BOS/EOS itself.
    post_processor_adds: bool,
    end_of_generation: Vec<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("end_of_generation", &self.end_of_generation)
            .finish()
    }
}

fn tok_err(what: impl std::fmt::Display) -> Error {
    Error::Tokenizer(what.to_string())
}

/// GPT-2's byte-to-character table: printable bytes map to themselves, the rest to U+0100..
fn bytes_to_unicode() -> [char; 256] {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut table = ['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        table[b as usize] = char::from_u32(c).expect("valid code point");
    }
    table
}

/// Merges recovered from a vocabulary, as transformers' `generate_merges` recovers them: every
/// split of a token into two vocabulary tokens, sorted by the token's score (higher first),
/// then by the lengths of the left and right pieces (longer first), then in vocabulary order.
fn generate_merges(
    tokens: &[String],
    vocab: &HashMap<String, u32>,
    score: impl Fn(usize) -> f64,
) -> Vec<(String, String)> {
    struct M {
        score: f64,
        len_l: usize,
        len_r: usize,
        l: u32,
        r: u32,
        seq: usize,
    }
    let mut seen = std::collections::HashSet::new();
    let mut all: Vec<M> = Vec::new();
    for (index, merged) in tokens.iter().enumerate() {
        // Python iterates a dict: each distinct token once, at its first position, with the
        // score of its last occurrence.
        if !seen.insert(merged.as_str()) {
            continue;
        }
        let last = vocab[merged] as usize;
        let s = score(if tokens.get(last) == Some(merged) { last } else { index });
        let mut local: Vec<(u32, u32, usize, usize)> = Vec::new();
        for (split, _) in merged.char_indices().skip(1) {
            let (l, r) = merged.split_at(split);
            if let (Some(&li), Some(&ri)) = (vocab.get(l), vocab.get(r)) {
                local.push((li, ri, l.chars().count(), r.chars().count()));
            }
        }
        local.sort_by_key(|&(l, r, _, _)| (l, r));
        for (l, r, len_l, len_r) in local {
            let seq = all.len();
            all.push(M { score: s, len_l, len_r, l, r, seq });
        }
    }
    // Python's stable sort with reverse=True: descending keys, ties keep their order.
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.len_l.cmp(&a.len_l))
            .then(b.len_r.cmp(&a.len_r))
            .then(a.seq.cmp(&b.seq))
    });
    let by_id: HashMap<u32, &str> = vocab.iter().map(|(t, &i)| (i, t.as_str())).collect();
    all.into_iter().map(|m| (by_id[&m.l].to_string(), by_id[&m.r].to_string())).collect()
}

struct GgufVocab<'a> {
    tokens: &'a [String],
    token_types: Vec<i32>,
    scores: Option<Vec<f32>>,
}

impl<'a> GgufVocab<'a> {
    fn read(g: &'a GgufFile) -> Result<Self> {
        let tokens = g.get_string_array("tokenizer.ggml.tokens")?;
        let token_types = match g.get("tokenizer.ggml.token_type") {
            None => vec![1; tokens.len()],
            Some(_) => match g.get_array("tokenizer.ggml.token_type")? {
                MetadataArray::I32(v) => v.clone(),
                MetadataArray::U32(v) => v.iter().map(|&x| x as i32).collect(),
                other => {
                    return Err(tok_err(format!(
                        "tokenizer.ggml.token_type is {}[], expected int32[]",
                        other.element_type_name()
                    )));
                }
            },
        };
        if token_types.len() != tokens.len() {
            return Err(tok_err(format!(
                "tokenizer.ggml.token_type has {} entries for {} tokens",
                token_types.len(),
                tokens.len()
            )));
        }
        let scores = match g.get("tokenizer.ggml.scores") {
            None => None,
            Some(_) => match g.get_array("tokenizer.ggml.scores")? {
                MetadataArray::F32(v) if v.len() == tokens.len() => Some(v.clone()),
                MetadataArray::F32(v) => {
                    return Err(tok_err(format!(
                        "tokenizer.ggml.scores has {} entries for {} tokens",
                        v.len(),
                        tokens.len()
                    )));
                }
                other => {
                    return Err(tok_err(format!(
                        "tokenizer.ggml.scores is {}[], expected float32[]",
                        other.element_type_name()
                    )));
                }
            },
        };
        Ok(Self { tokens, token_types, scores })
    }
}

fn vocab_map(tokens: &[String]) -> HashMap<String, u32> {
    let mut vocab = HashMap::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), i as u32);
    }
    vocab
}

fn optional_id(g: &GgufFile, key: &str, vocab_size: usize) -> Result<Option<u32>> {
    if g.get(key).is_none() {
        return Ok(None);
    }
    let id = g.get_u32(key)?;
    if id as usize >= vocab_size {
        return Err(tok_err(format!("{key} = {id} is outside the vocabulary of {vocab_size}")));
    }
    Ok(Some(id))
}

fn optional_bool(g: &GgufFile, key: &str) -> Result<Option<bool>> {
    g.get(key).map(|_| g.get_bool(key)).transpose().map_err(Into::into)
}

impl Tokenizer {
    /// Rebuilds the tokenizer that a GGUF file's `tokenizer.ggml.*` metadata describes.
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let model = g.get_str("tokenizer.ggml.model")?;
        let arch = g.architecture()?;
        let v = GgufVocab::read(g)?;
        let n = v.tokens.len();
        let (inner, default_add_bos) = match model {
            "gpt2" => (Self::byte_level_from_gguf(g, &v)?, false),
            "llama" if arch.starts_with("gemma") => (Self::gemma_from_gguf(&v)?, true),
            "llama" => {
                let prefix = optional_bool(g, "tokenizer.ggml.add_space_prefix")?.unwrap_or(true);
                (Self::sentencepiece_from_gguf(&v, prefix)?, true)
            }
            other => {
                return Err(Error::Core(aigc_core::Error::unsupported(
                    "GGUF tokenizer model",
                    format!("`{other}` in tokenizer.ggml.model (supported: gpt2, llama)"),
                )));
            }
        };
        let bos = optional_id(g, "tokenizer.ggml.bos_token_id", n)?;
        let eos = optional_id(g, "tokenizer.ggml.eos_token_id", n)?;
        let eot = optional_id(g, "tokenizer.ggml.eot_token_id", n)?;
        let eom = optional_id(g, "tokenizer.ggml.eom_token_id", n)?;
        let add_bos = optional_bool(g, "tokenizer.ggml.add_bos_token")?.unwrap_or(default_add_bos);
        let add_eos = optional_bool(g, "tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        let mut end_of_generation: Vec<u32> = [eos, eot, eom].into_iter().flatten().collect();
        for (i, (t, &ty)) in v.tokens.iter().zip(&v.token_types).enumerate() {
            if ty == TOKEN_CONTROL && END_OF_TURN_TEXTS.contains(&t.as_str()) {
                end_of_generation.push(i as u32);
            }
        }
        end_of_generation.sort_unstable();
        end_of_generation.dedup();
        Ok(Self {
            inner,
            bos,
            eos,
            add_bos,
            add_eos,
            post_processor_adds: false,
            end_of_generation,
        })
    }

    fn byte_level_from_gguf(g: &GgufFile, v: &GgufVocab<'_>) -> Result<tokenizers::Tokenizer> {
        let pre = match g.get("tokenizer.ggml.pre") {
            Some(_) => g.get_str("tokenizer.ggml.pre")?,
            None => "default",
        };
        let regexes = pre_tokenizer_regexes(pre).ok_or_else(|| {
            Error::Core(aigc_core::Error::unsupported(
                "GGUF pre-tokenizer",
                format!("`{pre}` in tokenizer.ggml.pre; its split rules are not known here"),
            ))
        })?;
        let spelling = bytes_to_unicode();
        let alphabet: std::collections::HashSet<char> = spelling.iter().copied().collect();
        let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
        let spelled: Vec<String> = v
            .tokens
            .iter()
            .map(|t| {
                if in_alphabet(t) {
                    t.clone()
                } else {
                    t.bytes().map(|b| spelling[b as usize]).collect()
                }
            })
            .collect();
        let vocab = vocab_map(&spelled);
        let merges_raw = g.get_string_array("tokenizer.ggml.merges")?;
        let mut merges = Vec::with_capacity(merges_raw.len());
        for (i, m) in merges_raw.iter().enumerate() {
            let (l, r) = m.split_once(' ').ok_or_else(|| {
                tok_err(format!("tokenizer.ggml.merges[{i}] = {m:?} is not `left right`"))
            })?;
            merges.push((l.to_string(), r.to_string()));
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab.into_iter().collect::<Vocab>(), merges)
            .continuing_subword_prefix(String::new())
            .end_of_word_suffix(String::new())
            .build()
            .map_err(tok_err)?;
        let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
        for re in regexes {
            steps.push(split_isolated(re)?.into());
        }
        steps.push(ByteLevel::new(false, true, false).into());
        let mut tok = tokenizers::Tokenizer::new(bpe);
        tok.with_pre_tokenizer(Some(PreSequence::new(steps)));
        tok.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
        // Control tokens spelled outside the byte alphabet are llama.cpp mislabels: skip them.
        add_gguf_added_tokens(&mut tok, v, |t| in_alphabet(t), &spelled);
        Ok(tok)
    }

    fn sentencepiece_from_gguf(
        v: &GgufVocab<'_>,
        add_prefix_space: bool,
    ) -> Result<tokenizers::Tokenizer> {
        let scores = v.scores.as_ref().ok_or_else(|| {
            tok_err("tokenizer.ggml.scores is missing (needed for a `llama` vocabulary)")
        })?;
        let vocab = vocab_map(v.tokens);
        let merges = generate_merges(v.tokens, &vocab, |i| scores[i] as f64);
        let mut tok = tokenizers::Tokenizer::new(sentencepiece_bpe(vocab, merges)?);
        let scheme = if add_prefix_space { PrependScheme::First } else { PrependScheme::Never };
        tok.with_pre_tokenizer(Some(Metaspace::new('▁', scheme, false)));
        let mut decoders = sentencepiece_decoders()?;
        if add_prefix_space {
            decoders.push(Strip::new(' ', 1, 0).into());
        }
        tok.with_decoder(Some(DecoderSequence::new(decoders)));
        add_gguf_added_tokens(&mut tok, v, |_| true, v.tokens);
        Ok(tok)
    }

    fn gemma_from_gguf(v: &GgufVocab<'_>) -> Result<tokenizers::Tokenizer> {
        // Gemma stores tokens of two or more spaces with real spaces; the model looks them up
        // as `▁` runs. Its merges follow the token order, not the scores.
        let respelled: Vec<String> = v
            .tokens
            .iter()
            .map(|t| {
                if t.contains(' ') && t.trim().is_empty() {
                    "▁".repeat(t.chars().count())
                } else {
                    t.clone()
                }
            })
            .collect();
        let vocab = vocab_map(&respelled);
        let merges = generate_merges(&respelled, &vocab, |i| -(i as f64));
        let mut tok = tokenizers::Tokenizer::new(sentencepiece_bpe(vocab, merges)?);
        tok.with_normalizer(Some(Replace::new(" ", "▁").map_err(tok_err)?));
        tok.with_pre_tokenizer(Some(
            Split::new(
                SplitPattern::String(" ".into()),
                SplitDelimiterBehavior::MergedWithPrevious,
                false,
            )
            .map_err(tok_err)?,
        ));
        tok.with_decoder(Some(DecoderSequence::new(sentencepiece_decoders()?)));
        add_gguf_added_tokens(&mut tok, v, |_| true, &respelled);
        Ok(tok)
    }

    /// Loads a `tokenizer.json`, with BOS/EOS conventions and special tokens from the
    /// `tokenizer_config.json` next to it when there is one.
    pub fn from_file(tokenizer_json: impl AsRef<Path>) -> Result<Self> {
        Self::from_file_with_config(tokenizer_json).map(|(tokenizer, _)| tokenizer)
    }

    /// Like [`from_file`](Self::from_file), also returning the `tokenizer_config.json` it read
    /// (which holds the chat template).
    pub fn from_file_with_config(
        tokenizer_json: impl AsRef<Path>,
    ) -> Result<(Self, Option<TokenizerConfig>)> {
        let path = tokenizer_json.as_ref();
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| tok_err(format!("{}: {e}", path.display())))?;
        let config_path = path.with_file_name("tokenizer_config.json");
        let config =
            if config_path.exists() { Some(TokenizerConfig::read(&config_path)?) } else { None };
        Ok((Self::from_parts(inner, config.as_ref())?, config))
    }

    /// Wraps a loaded [`tokenizers::Tokenizer`], with the settings of a `tokenizer_config.json`.
    pub fn from_parts(
        inner: tokenizers::Tokenizer,
        config: Option<&TokenizerConfig>,
    ) -> Result<Self> {
        let lookup = |t: &Option<String>| t.as_deref().and_then(|t| inner.token_to_id(t));
        let bos = config.and_then(|c| lookup(&c.bos_token));
        let eos = config.and_then(|c| lookup(&c.eos_token));
        let add_bos = config.and_then(|c| c.add_bos_token).unwrap_or(false);
        let add_eos = config.and_then(|c| c.add_eos_token).unwrap_or(false);
        let mut end_of_generation: Vec<u32> = eos.into_iter().collect();
        for (id, tok) in inner.get_added_tokens_decoder() {
            if tok.special && END_OF_TURN_TEXTS.contains(&tok.content.as_str()) {
                end_of_generation.push(id);
            }
        }
        end_of_generation.sort_unstable();
        end_of_generation.dedup();
        let post_processor_adds = inner.get_post_processor().is_some_and(|_| {
            inner
                .encode_fast("", true)
                .is_ok_and(|e| e.get_ids().iter().any(|id| Some(*id) == bos || Some(*id) == eos))
        });
        Ok(Self { inner, bos, eos, add_bos, add_eos, post_processor_adds, end_of_generation })
    }

    /// Token ids of `text`. With `add_special`, BOS/EOS are added as the model's metadata says
    /// (by the `tokenizer.json` post-processor when it has one). Special tokens written in the text (such
    /// as `<|im_start|>`) are always recognised as such.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode_fast(text, add_special).map_err(tok_err)?;
        let mut ids = enc.get_ids().to_vec();
        // Like transformers and llama.cpp, a BOS written in the text does not stop another
        // being added (llama.cpp warns about the double BOS).
        if add_special && !self.post_processor_adds {
            if let Some(bos) = self.bos.filter(|_| self.add_bos) {
                ids.insert(0, bos);
            }
            if let Some(eos) = self.eos.filter(|_| self.add_eos) {
                ids.push(eos);
            }
        }
        Ok(ids)
    }

    /// The text of `ids`; with `skip_special`, special tokens are left out.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(tok_err)
    }

    /// Entries in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The vocabulary string of `id` (`Ġworld`, `▁the`, `<|im_end|>`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a vocabulary string.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The beginning-of-sequence token.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The BOS token's text.
    pub fn bos_token(&self) -> Option<String> {
        self.bos.and_then(|i| self.inner.id_to_token(i))
    }

    /// The EOS token's text.
    pub fn eos_token(&self) -> Option<String> {
        self.eos.and_then(|i| self.inner.id_to_token(i))
    }

    /// Whether [`encode`](Self::encode) with `add_special` puts BOS first.
    pub fn adds_bos(&self) -> bool {
        self.add_bos && self.bos.is_some()
    }

    /// Tokens that end generation: EOS, end-of-turn and end-of-message tokens.
    pub fn end_of_generation(&self) -> &[u32] {
        &self.end_of_generation
    }

    /// Whether `id` ends generation.
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation.contains(&id)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

fn split_isolated(regex: &str) -> Result<Split> {
    Split::new(SplitPattern::Regex(regex.to_string()), SplitDelimiterBehavior::Isolated, false)
        .map_err(tok_err)
}

fn sentencepiece_bpe(vocab: HashMap<String, u32>, merges: Vec<(String, String)>) -> Result<BPE> {
    let unk = vocab.contains_key("<unk>").then(|| "<unk>".to_string());
    let mut b = BPE::builder()
        .vocab_and_merges(vocab.into_iter().collect::<Vocab>(), merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk {
        b = b.unk_token(unk);
    }
    b.build().map_err(tok_err)
}

fn sentencepiece_decoders() -> Result<Vec<DecoderWrapper>> {
    Ok(vec![
        Replace::new("▁", " ").map_err(tok_err)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ])
}

/// Adds control tokens as special tokens and user-defined ones as plain added tokens (only
/// those whose original spelling is in the vocabulary, as transformers does).
fn add_gguf_added_tokens(
    tok: &mut tokenizers::Tokenizer,
    v: &GgufVocab<'_>,
    keep_control: impl Fn(&str) -> bool,
    vocab_tokens: &[String],
) {
    let control: Vec<AddedToken> = v
        .tokens
        .iter()
        .zip(&v.token_types)
        .filter(|&(t, &ty)| ty == TOKEN_CONTROL && keep_control(t))
        .map(|(t, _)| AddedToken::from(t.clone(), true).normalized(false))
        .collect();
    if !control.is_empty() {
        tok.add_special_tokens(&control);
    }
    let known: std::collections::HashSet<&str> = vocab_tokens.iter().map(String::as_str).collect();
    let user: Vec<AddedToken> = v
        .tokens
        .iter()
        .zip(&v.token_types)
        .filter(|&(t, &ty)| ty == TOKEN_USER_DEFINED && known.contains(t.as_str()))
        .map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false))
        .collect();
    if !user.is_empty() {
        tok.add_tokens(&user);
    }
}

/// What `tokenizer_config.json` says about special tokens and the chat template.
#[derive(Debug, Clone, Default)]
pub struct TokenizerConfig {
    /// `bos_token` (a string, or an object with `content`).
    pub bos_token: Option<String>,
    /// `eos_token`, the text of the token that ends a turn or a document (same forms as
    /// `bos_token`).
    pub eos_token: Option<String>,
    /// `add_bos_token`: whether encoding prepends `bos_token` (`None`: the file does not say).
    pub add_bos_token: Option<bool>,
    /// `add_eos_token`: whether encoding appends `eos_token` (`None`: the file does not say).
    pub add_eos_token: Option<bool>,
    /// `chat_template`: a string, or the template named `default` in a list.
    pub chat_template: Option<String>,
}

impl TokenizerConfig {
    /// Reads a `tokenizer_config.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Core(aigc_core::Error::io(path, e)))?;
        Self::parse(&text).map_err(|reason| Error::config(path.display().to_string(), reason))
    }

    /// Parses the JSON text of a `tokenizer_config.json`.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let token = |key: &str| match v.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Object(o)) => {
                o.get("content").and_then(|c| c.as_str()).map(String::from)
            }
            _ => None,
        };
        let chat_template = match v.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(String::from),
            _ => None,
        };
        Ok(Self {
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
            add_bos_token: v.get("add_bos_token").and_then(|b| b.as_bool()),
            add_eos_token: v.get("add_eos_token").and_then(|b| b.as_bool()),
            chat_template,
        })
    }
}

/// Turns token ids into text as they arrive, emitting only complete UTF-8 characters.
///
/// Each new token is decoded together with the tokens since the last emitted piece, so that
/// decoders that look at neighbours (SentencePiece's leading space, byte fallback) give the
/// same text as decoding everything at once.
#[derive(Debug, Clone, Default)]
pub struct IncrementalDecoder {
    ids: Vec<u32>,
    prefix_start: usize,
    read_start: usize,
}

impl IncrementalDecoder {
    /// A decoder with nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token; returns the text it completes, if any.
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix = tokenizer.decode(&self.ids[self.prefix_start..self.read_start], false)?;
        let full = tokenizer.decode(&self.ids[self.prefix_start..], false)?;
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') && full.starts_with(&prefix) {
            let piece = full[prefix.len()..].to_string();
            self.prefix_start = self.read_start;
            self.read_start = self.ids.len();
            Ok(Some(piece))
        } else {
            Ok(None)
        }
    }

    /// Text held back (an incomplete character at the end), decoded lossily.
    pub fn flush(&mut self, tokenizer: &Tokenizer) -> Result<Option<String>> {
        let prefix = tokenizer.decode(&self.ids[self.prefix_start..self.read_start], false)?;
        let full = tokenizer.decode(&self.ids[self.prefix_start..], false)?;
        self.prefix_start = self.ids.len();
        self.read_start = self.ids.len();
        Ok((full.len() > prefix.len() && full.starts_with(&prefix))
            .then(|| full[prefix.len()..].to_string()))
    }
}
