//! Pipelines across crates: speech round trips scored by word error rate, and semantic search
//! over texts.
//!
//! - [`word_error_rate`] and [`WerStats`]: the word error rate (substitutions, deletions and
//!   insertions of a minimal word alignment over the reference's word count) on
//!   [`normalize_words`]' normalised words, for one sentence or summed over a corpus.
//! - [`speak_and_transcribe`]: text → Piper voice → 16 kHz → Whisper → text, with the WER of
//!   the transcription against the input ([`RoundTrip`]).
//! - [`SemanticIndex`]: texts embedded once with a [`SentenceEmbedder`], ranked by cosine
//!   similarity to a query.
//!
//! ```no_run
//! use aigc_audio::piper::{PiperVoice, SynthesisOptions};
//! use aigc_core::models::resolve_or_fetch;
//! use aigc_crossmodal::pipelines::speak_and_transcribe;
//! use aigc_crossmodal::whisper::Whisper;
//!
//! let device = aigc_core::parse_device("flex")?;
//! let voice = PiperVoice::open(resolve_or_fetch("piper-en-us-joe-medium")?, &device)?;
//! let whisper = Whisper::open(resolve_or_fetch("whisper-tiny-en")?, &device)?;
//! let options = SynthesisOptions::defaults(voice.config(), 0);
//! let trip = speak_and_transcribe(&voice, &whisper, "It was a bright cold day.", &options)?;
//! println!("{} (WER {:.1}%)", trip.transcript.text.trim(), 100.0 * trip.wer);
//! # Ok::<(), aigc_core::Error>(())
//! ```

use std::ops::{Add, AddAssign};
use std::time::Instant;

use aigc_audio::piper::{PiperVoice, SynthesisOptions};
use aigc_audio::wav::Audio;
use aigc_core::{Error, Result};

use crate::embed::{SentenceEmbedder, cosine_similarity};
use crate::whisper::{TranscribeOptions, Transcript, Whisper};

// ---------------------------------------------------------------------------------------------
// Text normalisation

/// The words of `text` as the word error rate compares them: lower-cased; split at whitespace
/// and at punctuation, which is dropped, except an apostrophe between letters or digits
/// ("don't", with `’` written as `'`), a period between letters ("u.s." is "us"), and a period
/// or thousands comma inside a number; `%` is the word "percent" and `&` "and"; numbers
/// written in digits are spelled out in English words ("25" is "twenty five", "3.5" "three
/// point five", "1,000" "one thousand", "21st" "twenty first", "007" "zero zero seven").
///
/// ```
/// use aigc_crossmodal::pipelines::normalize_words;
/// assert_eq!(normalize_words("It's 25 past—Dr. Smith's!"),
///            ["it's", "twenty", "five", "past", "dr", "smith's"]);
/// ```
pub fn normalize_words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.to_lowercase().chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let is_word = |c: char| c.is_alphanumeric();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let between = |f: &dyn Fn(char) -> bool| prev.is_some_and(f) && next.is_some_and(f);
        match c {
            c if is_word(c) => word.push(c),
            '\'' | '\u{2019}' if between(&is_word) => word.push('\''),
            // A decimal point (kept) or an abbreviation's period (dropped): "3.5", "u.s.".
            '.' if between(&|c| c.is_ascii_digit()) => word.push('.'),
            '.' if between(&|c: char| c.is_alphabetic()) => {}
            // "1,000": a thousands separator is followed by three digits and no fourth.
            ',' if prev.is_some_and(|c| c.is_ascii_digit())
                && chars.len() >= i + 4
                && chars[i + 1..i + 4].iter().all(char::is_ascii_digit)
                && !chars.get(i + 4).is_some_and(char::is_ascii_digit) => {}
            _ => {
                flush(&mut word, &mut words);
                match c {
                    '%' => words.push("percent".to_string()),
                    '&' => words.push("and".to_string()),
                    _ => {}
                }
            }
        }
    }
    flush(&mut word, &mut words);
    words
}

fn flush(word: &mut String, words: &mut Vec<String>) {
    if word.is_empty() {
        return;
    }
    match spell_number(word) {
        Some(spelled) => words.extend(spelled.split(' ').map(str::to_string)),
        None => words.push(word.clone()),
    }
    word.clear();
}

/// A word in digits spelled out (`None` when it is not a number): an integer, a decimal, or
/// an ordinal with its suffix ("2nd").
fn spell_number(word: &str) -> Option<String> {
    if !word.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let digits_end = word.find(|c: char| !c.is_ascii_digit()).unwrap_or(word.len());
    let (int, rest) = word.split_at(digits_end);
    match rest {
        "" => Some(spell_integer(int)),
        "st" | "nd" | "rd" | "th" => Some(ordinal(&spell_integer(int))),
        _ => {
            let frac = rest.strip_prefix('.')?;
            if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(format!("{} point {}", spell_integer(int), spell_digits(frac)))
        }
    }
}

/// Digits one by one ("zero zero seven").
fn spell_digits(digits: &str) -> String {
    let words: Vec<&str> = digits.bytes().map(|b| ONES[(b - b'0') as usize]).collect();
    words.join(" ")
}

/// An integer in digits: by value, or digit by digit with a leading zero or too many digits.
fn spell_integer(digits: &str) -> String {
    match digits.parse::<u64>() {
        Ok(n) if !(digits.len() > 1 && digits.starts_with('0')) => number_to_words(n),
        _ => spell_digits(digits),
    }
}

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] =
    ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
const SCALES: [&str; 7] =
    ["", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion"];

/// `n` in English words, American style without "and" (`125` is "one hundred twenty five").
///
/// ```
/// use aigc_crossmodal::pipelines::number_to_words;
/// assert_eq!(number_to_words(1969), "one thousand nine hundred sixty nine");
/// ```
pub fn number_to_words(n: u64) -> String {
    if n == 0 {
        return ONES[0].to_string();
    }
    let mut groups = Vec::new(); // three-digit groups, least significant first
    let mut rest = n;
    while rest > 0 {
        groups.push((rest % 1000) as usize);
        rest /= 1000;
    }
    let mut words: Vec<&str> = Vec::new();
    for (scale, &g) in groups.iter().enumerate().rev() {
        if g == 0 {
            continue;
        }
        if g >= 100 {
            words.extend([ONES[g / 100], "hundred"]);
        }
        match g % 100 {
            0 => {}
            r if r < 20 => words.push(ONES[r]),
            r => {
                words.push(TENS[r / 10]);
                if r % 10 != 0 {
                    words.push(ONES[r % 10]);
                }
            }
        }
        if scale > 0 {
            words.push(SCALES[scale]);
        }
    }
    words.join(" ")
}

/// The ordinal of a spelled cardinal ("twenty one" → "twenty first").
fn ordinal(cardinal: &str) -> String {
    let (head, last) = match cardinal.rsplit_once(' ') {
        Some((h, l)) => (format!("{h} "), l),
        None => (String::new(), cardinal),
    };
    let last = match last {
        "one" => "first".to_string(),
        "two" => "second".to_string(),
        "three" => "third".to_string(),
        "five" => "fifth".to_string(),
        "eight" => "eighth".to_string(),
        "nine" => "ninth".to_string(),
        "twelve" => "twelfth".to_string(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    head + &last
}

// ---------------------------------------------------------------------------------------------
// Word error rate

/// The edits of a minimal word alignment of a hypothesis to a reference. Add them up over
/// sentences for a corpus-level rate (all errors over all reference words, as jiwer and the
/// speech literature compute it, not the mean of the sentences' rates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WerStats {
    /// Reference words replaced by another word.
    pub substitutions: usize,
    /// Reference words missing from the hypothesis.
    pub deletions: usize,
    /// Hypothesis words not in the reference.
    pub insertions: usize,
    /// Words in the reference (after [`normalize_words`]): the rate's denominator.
    pub reference_words: usize,
}

impl WerStats {
    /// The alignment of `hypothesis` to `reference`, both normalised with [`normalize_words`].
    pub fn between(reference: &str, hypothesis: &str) -> Self {
        Self::between_words(&normalize_words(reference), &normalize_words(hypothesis))
    }

    /// The alignment of two word lists as they are (no normalisation): a Levenshtein
    /// alignment with unit costs; among alignments of equal cost, the one the backtrace meets
    /// first, preferring a substitution to a deletion to an insertion.
    pub fn between_words<S: AsRef<str>>(reference: &[S], hypothesis: &[S]) -> Self {
        let (n, m) = (reference.len(), hypothesis.len());
        // d[i][j]: edits between the first i reference words and the first j hypothesis words.
        let w = m + 1;
        let mut d = vec![0usize; (n + 1) * w];
        for i in 0..=n {
            d[i * w] = i;
        }
        for (j, x) in d[..=m].iter_mut().enumerate() {
            *x = j;
        }
        for i in 1..=n {
            for j in 1..=m {
                let same = reference[i - 1].as_ref() == hypothesis[j - 1].as_ref();
                let diagonal = d[(i - 1) * w + j - 1] + usize::from(!same);
                d[i * w + j] = diagonal.min(d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1);
            }
        }
        let mut stats = Self { reference_words: n, ..Self::default() };
        let (mut i, mut j) = (n, m);
        while i > 0 || j > 0 {
            let here = d[i * w + j];
            if i > 0 && j > 0 {
                let same = reference[i - 1].as_ref() == hypothesis[j - 1].as_ref();
                if here == d[(i - 1) * w + j - 1] + usize::from(!same) {
                    stats.substitutions += usize::from(!same);
                    (i, j) = (i - 1, j - 1);
                    continue;
                }
            }
            if i > 0 && here == d[(i - 1) * w + j] + 1 {
                stats.deletions += 1;
                i -= 1;
            } else {
                stats.insertions += 1;
                j -= 1;
            }
        }
        stats
    }

    /// Substitutions, deletions and insertions together: the edit distance.
    pub fn errors(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }

    /// Errors over reference words. With no reference words: 0 when the hypothesis is empty
    /// too, infinite otherwise.
    pub fn wer(&self) -> f64 {
        match (self.errors(), self.reference_words) {
            (0, _) => 0.0,
            (_, 0) => f64::INFINITY,
            (e, r) => e as f64 / r as f64,
        }
    }
}

impl Add for WerStats {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            substitutions: self.substitutions + other.substitutions,
            deletions: self.deletions + other.deletions,
            insertions: self.insertions + other.insertions,
            reference_words: self.reference_words + other.reference_words,
        }
    }
}

impl AddAssign for WerStats {
    fn add_assign(&mut self, other: Self) {
        *self = *self + other;
    }
}

impl std::iter::Sum for WerStats {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}

/// The word error rate of `hypothesis` against `reference` after [`normalize_words`]:
/// (substitutions + deletions + insertions) / reference words. It can exceed 1 (many
/// insertions).
///
/// ```
/// use aigc_crossmodal::pipelines::word_error_rate;
/// assert_eq!(word_error_rate("There are 25 cats.", "there are twenty-five cats"), 0.0);
/// assert_eq!(word_error_rate("the cat sat", "the cat sat down"), 1.0 / 3.0);
/// ```
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    WerStats::between(reference, hypothesis).wer()
}

// ---------------------------------------------------------------------------------------------
// Speech round trip

/// One text spoken and transcribed back.
#[derive(Debug, Clone)]
pub struct RoundTrip {
    /// The text spoken.
    pub text: String,
    /// Whisper's transcription.
    pub transcript: Transcript,
    /// The word error rate of the transcription against the text.
    pub wer: f64,
    /// The alignment behind `wer`.
    pub stats: WerStats,
    /// The synthesised speech (the voice's raw output, at its sample rate).
    pub speech: Audio,
    /// Seconds of speech.
    pub audio_seconds: f64,
    /// Seconds spent synthesising.
    pub synthesis_seconds: f64,
    /// Seconds spent resampling and transcribing.
    pub transcription_seconds: f64,
}

/// Speaks `text` with `voice`, resamples the speech to Whisper's 16 kHz and transcribes it
/// with openai-whisper's default options, then scores the transcription against `text`.
pub fn speak_and_transcribe(
    voice: &PiperVoice,
    whisper: &Whisper,
    text: &str,
    options: &SynthesisOptions,
) -> Result<RoundTrip> {
    speak_and_transcribe_with(voice, whisper, text, options, &TranscribeOptions::default())
}

/// [`speak_and_transcribe`] with Whisper's options given.
pub fn speak_and_transcribe_with(
    voice: &PiperVoice,
    whisper: &Whisper,
    text: &str,
    options: &SynthesisOptions,
    transcribe: &TranscribeOptions,
) -> Result<RoundTrip> {
    if text.trim().is_empty() {
        return Err(Error::invalid_argument("text", "nothing to say"));
    }
    let start = Instant::now();
    let speech = voice.speak(text, options)?;
    let synthesis_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let transcript = whisper.transcribe_audio(&speech, transcribe)?;
    let transcription_seconds = start.elapsed().as_secs_f64();
    let stats = WerStats::between(text, &transcript.text);
    Ok(RoundTrip {
        text: text.to_string(),
        wer: stats.wer(),
        stats,
        audio_seconds: speech.duration_s(),
        speech,
        transcript,
        synthesis_seconds,
        transcription_seconds,
    })
}

// ---------------------------------------------------------------------------------------------
// Semantic search

/// Texts with their sentence embeddings, searched by cosine similarity to a query.
///
/// ```no_run
/// use aigc_crossmodal::embed::SentenceEmbedder;
/// use aigc_crossmodal::pipelines::SemanticIndex;
///
/// let device = aigc_core::parse_device("flex")?;
/// let model = aigc_core::models::resolve_or_fetch("all-minilm-l6-v2")?;
/// let embedder = SentenceEmbedder::open(&model, &device)?;
/// let index = SemanticIndex::new(embedder, ["Cats purr.", "Rust has no garbage collector."])?;
/// let best = index.search("programming languages", 1)?;
/// assert_eq!(best[0].0, 1);
/// # Ok::<(), aigc_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SemanticIndex {
    embedder: SentenceEmbedder,
    texts: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

impl SemanticIndex {
    /// Embeds `texts` (none is allowed: an empty index).
    pub fn new<S: AsRef<str>>(
        embedder: SentenceEmbedder,
        texts: impl IntoIterator<Item = S>,
    ) -> Result<Self> {
        let mut index = Self { embedder, texts: Vec::new(), vectors: Vec::new() };
        index.add(texts)?;
        Ok(index)
    }

    /// Embeds more texts; their indices follow the ones already there.
    pub fn add<S: AsRef<str>>(&mut self, texts: impl IntoIterator<Item = S>) -> Result<()> {
        let texts: Vec<String> = texts.into_iter().map(|s| s.as_ref().to_string()).collect();
        if texts.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = self.embedder.embed(&refs)?;
        self.texts.extend(texts);
        self.vectors.extend(vectors);
        Ok(())
    }

    /// The `k` texts most similar to `query`, best first: (index, cosine similarity). Fewer
    /// when the index holds fewer; equal scores keep the order of the texts.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<(usize, f32)>> {
        if self.texts.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let query = self.embedder.embed(&[query])?.swap_remove(0);
        Ok(self.search_vector(&query, k))
    }

    /// [`search`](Self::search) with the query's embedding given.
    pub fn search_vector(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        let mut scored: Vec<(usize, f32)> =
            self.vectors.iter().map(|v| cosine_similarity(query, v)).enumerate().collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
    }

    /// The text at `index`.
    pub fn text(&self, index: usize) -> Option<&str> {
        self.texts.get(index).map(String::as_str)
    }

    /// All texts, in the order they were added.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// Their embeddings.
    pub fn vectors(&self) -> &[Vec<f32>] {
        &self.vectors
    }

    /// How many texts there are.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// The embedder the texts were embedded with (queries must use the same one).
    pub fn embedder(&self) -> &SentenceEmbedder {
        &self.embedder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        normalize_words(s)
    }

    #[test]
    fn normalisation() {
        assert_eq!(words("  Hello,   WORLD!\n"), ["hello", "world"]);
        assert_eq!(
            words("Don’t stop—it's 'quoted' rock-and-roll."),
            ["don't", "stop", "it's", "quoted", "rock", "and", "roll"]
        );
        assert_eq!(words("The U.S. and e.g. this"), ["the", "us", "and", "eg", "this"]);
        assert_eq!(words("50% & more"), ["fifty", "percent", "and", "more"]);
        assert!(words(" ... !? ").is_empty());
        assert_eq!(words("Café déjà-vu"), ["café", "déjà", "vu"]);
        // Dr. is not expanded.
        assert_ne!(words("Dr. Smith"), words("Doctor Smith"));
    }

    #[test]
    fn numbers_are_spelled() {
        assert_eq!(words("25"), words("twenty five"));
        assert_eq!(words("25"), words("twenty-five"));
        assert_eq!(words("0"), ["zero"]);
        assert_eq!(
            words("13 100 101 110"),
            ["thirteen", "one", "hundred", "one", "hundred", "one", "one", "hundred", "ten"]
        );
        assert_eq!(
            words("1,000 and 1,234,567").join(" "),
            "one thousand and one million two hundred thirty four thousand five hundred sixty seven"
        );
        assert_eq!(words("in 1969,").join(" "), "in one thousand nine hundred sixty nine");
        assert_eq!(words("3.14").join(" "), "three point one four");
        assert_eq!(words("It costs 3.").join(" "), "it costs three");
        assert_eq!(
            words("1st 2nd 3rd 4th 12th 20th 21st 100th").join(" "),
            "first second third fourth twelfth twentieth twenty first one hundredth"
        );
        assert_eq!(words("007").join(" "), "zero zero seven");
        assert_eq!(words("1, 2, 3").join(" "), "one two three");
        assert_eq!(words("1,00").join(" "), "one zero zero");
        assert_eq!(words("mp3 b12"), ["mp3", "b12"]);
        assert_eq!(number_to_words(u64::MAX).split(' ').next(), Some("eighteen"));
        assert_eq!(number_to_words(1_000_000), "one million");
        assert_eq!(number_to_words(2_000_017), "two million seventeen");
        // Beyond u64: digit by digit.
        assert_eq!(words("123456789012345678901234").len(), 24);
    }

    #[test]
    fn known_edit_distances() {
        let s = |r: &str, h: &str| WerStats::between(r, h);
        let stats = |sub, del, ins, n| WerStats {
            substitutions: sub,
            deletions: del,
            insertions: ins,
            reference_words: n,
        };
        assert_eq!(s("the cat sat on the mat", "the cat sat on the mat"), stats(0, 0, 0, 6));
        assert_eq!(s("the cat sat on the mat", "the cat sit on the mat"), stats(1, 0, 0, 6));
        assert_eq!(s("the cat sat on the mat", "the cat on the mat"), stats(0, 1, 0, 6));
        assert_eq!(s("the cat sat on the mat", "the big cat sat on the mat"), stats(0, 0, 1, 6));
        assert_eq!(s("a b c d", "x a b d"), stats(0, 1, 1, 4));
        assert_eq!(s("a b c", ""), stats(0, 3, 0, 3));
        assert_eq!(s("", "a b"), stats(0, 0, 2, 0));
        assert_eq!(s("", ""), stats(0, 0, 0, 0));
        // kitten -> sitting as words: 2 substitutions and an insertion (edit distance 3).
        let k = WerStats::between_words(
            &["k", "i", "t", "t", "e", "n"],
            &["s", "i", "t", "t", "i", "n", "g"],
        );
        assert_eq!((k.errors(), k.substitutions, k.insertions), (3, 2, 1));
        assert_eq!(word_error_rate("a b c d", "x a b d"), 0.5);
        assert_eq!(word_error_rate("one two", "one two three four five"), 1.5);
        assert_eq!(word_error_rate("", ""), 0.0);
        assert!(word_error_rate("", "extra").is_infinite());
        // Normalisation first: case, punctuation and digits do not count.
        assert_eq!(word_error_rate("I have 2 dogs.", "i have two dogs"), 0.0);
        assert_eq!(word_error_rate("Where's Sarah?", "Where is Sarah?"), 2.0 / 2.0);
    }

    #[test]
    fn corpus_rate_sums_errors() {
        let a = WerStats::between("a b c d", "a b c x"); // 1 of 4
        let b = WerStats::between("e f", "g h"); // 2 of 2
        let total: WerStats = [a, b].into_iter().sum();
        assert_eq!(total.errors(), 3);
        assert_eq!(total.reference_words, 6);
        assert_eq!(total.wer(), 0.5); // not the mean of 0.25 and 1.0
        let mut acc = WerStats::default();
        acc += a;
        acc += b;
        assert_eq!(acc, total);
    }
}
