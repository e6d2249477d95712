//! Token sampling: logits processors composed in llama.cpp's order, then a seeded draw.
//!
//! A [`Sampler`] turns one decoding step's logits into a token id. It owns its random number
//! generator, the window of recent tokens that the repetition penalties look at, and a
//! candidate buffer sized to the vocabulary once, so sampling a token allocates nothing.
//!
//! ```
//! use aigc_core::sampling::{Sampler, SamplingParams};
//!
//! let params = SamplingParams { temperature: 0.7, top_k: 2, seed: 42, ..Default::default() };
//! let mut sampler = Sampler::new(params, 4)?;
//! sampler.accept_all(&[3, 3])?; // prompt tokens, if they should count for the penalties
//!
//! let logits = [2.0, 1.0, 0.5, -1.0]; // from the model, one per vocabulary entry
//! let token = sampler.sample(&logits)?;
//! sampler.accept(token)?; // record what was generated
//! assert!(token == 0 || token == 1); // top-k 2 leaves tokens 0 and 1
//!
//! // Temperature 0 is greedy: the highest logit after logit bias and penalties.
//! let mut greedy = Sampler::new(SamplingParams::greedy(), 4)?;
//! assert_eq!(greedy.sample(&logits)?, 0);
//! # Ok::<(), aigc_core::Error>(())
//! ```
//!
//! # The chain
//!
//! [`Sampler::sample`] applies, in this order:
//!
//! 1. logit bias ([`apply_logit_bias`]),
//! 2. repetition penalties over the last `penalty_last_n` accepted tokens ([`Penalties`]),
//! 3. then, if `temperature == 0`, returns the argmax ([`greedy`]); otherwise
//! 4. top-k ([`top_k`]) → typical ([`typical`]) → top-p ([`top_p`]) → min-p ([`min_p`]) →
//!    temperature ([`temperature`]) → a draw from the softmax ([`sample_distribution`]).
//!
//! This is llama.cpp's default: `common_sampler_init` in `common/sampling.cpp` adds the logit
//! bias sampler first, then the samplers of `common_params_sampling::samplers`
//! (`common/common.h`: penalties, DRY, top-n-σ, top-k, typical, top-p, min-p, XTC,
//! temperature), then `dist`. DRY, top-n-σ and XTC are off by default there and are not
//! implemented here. Each step follows the matching sampler in llama.cpp's
//! `src/llama-sampling.cpp` (master as of 2026: `llama_sampler_logit_bias_apply`,
//! `llama_sampler_penalties_apply`/`_accept`, `llama_sampler_top_k_impl`,
//! `llama_sampler_typical_apply`, `llama_sampler_top_p_apply`, `llama_sampler_min_p_apply`,
//! `llama_sampler_temp_impl`, `llama_sampler_dist_apply`); each function's documentation gives
//! the exact rule. Every step is a public function on [`Candidates`], so a caller can compose
//! a different chain.
//!
//! # Differences from llama.cpp, on purpose
//!
//! - **Greedy.** `temperature == 0` returns the argmax right after bias and penalties and
//!   draws no random number. llama.cpp runs the truncation samplers first and then keeps the
//!   best survivor; the two agree except when typical sampling (off by default) drops the
//!   argmax. Ties go to the lowest id (llama.cpp: whichever comes first after its unstable
//!   partial sort); every sort here breaks ties by id, so results never depend on the sort
//!   algorithm.
//! - **Random numbers.** xoshiro256** seeded through SplitMix64 ([`Xoshiro256StarStar`])
//!   instead of `std::mt19937`, and `exp`/`ln` written in plain IEEE arithmetic instead of the
//!   platform's libm: the same logits and seed give the same tokens on every platform (not the
//!   same tokens as llama.cpp). There is no "random seed" value like llama.cpp's
//!   `LLAMA_DEFAULT_SEED`; pass a fresh seed for a fresh run.
//! - **Invalid logits.** NaN or +inf logits are errors (llama.cpp does not check them and
//!   samples garbage); -inf is allowed and means "never this token". If every token ends up at
//!   -inf, [`Sampler::sample`] returns an error.
//! - **Temperature** shifts the logits so the largest is 0 before dividing (the distribution is
//!   the same; a tiny temperature cannot overflow).
//! - **Typical** counts tokens of probability 0 as adding nothing to the entropy (llama.cpp gets
//!   a NaN from `0 * ln 0`).
//! - **Top-k** with `k` at least the number of candidates leaves them unsorted (llama.cpp sorts
//!   them); the set, and so the distribution, is the same.
//! - Probabilities are computed in f64 (llama.cpp: f32, with an f64 sum in `dist`).

mod candidates;
mod detmath;
mod processors;
mod rng;
#[cfg(test)]
mod tests;

pub use candidates::{Candidate, Candidates};
pub use processors::{
    Penalties, apply_logit_bias, greedy, min_p, sample_distribution, temperature, top_k, top_p,
    typical,
};
pub use rng::{Xoshiro256StarStar, splitmix64};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use processors::{check_penalties, check_vocab_size};

/// What a [`Sampler`] does, with llama.cpp's defaults (`common_params_sampling` in
/// `common/common.h`).
///
/// Plain data: build it with struct-update syntax from [`Default`] or [`greedy`](Self::greedy),
/// or deserialize it (missing fields take their defaults). In JSON, `logit_bias` is a list of
/// `[token, bias]` pairs, and since JSON has no infinity a ban is written `[token, "-inf"]`.
/// [`validate`](Self::validate) (called by [`Sampler::new`]) checks every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Softmax temperature, `>= 0`; 0 means greedy (argmax). Default 0.8.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 = off. Default 40.
    pub top_k: usize,
    /// Nucleus: keep the most likely tokens until their probability reaches `top_p`, in
    /// `(0, 1]`; 1 = off. Default 0.95.
    pub top_p: f32,
    /// Keep tokens at least `min_p` times as likely as the most likely one, in `[0, 1]`;
    /// 0 = off. Default 0.05.
    pub min_p: f32,
    /// Locally typical sampling mass, in `(0, 1]`; 1 = off. Default 1.
    pub typical_p: f32,
    /// Divide positive (multiply non-positive) logits of recent tokens by this, `> 0`;
    /// 1 = off. Default 1.
    pub repeat_penalty: f32,
    /// Subtracted once from the logit of every recent token; 0 = off. Default 0.
    pub presence_penalty: f32,
    /// Subtracted per occurrence from the logit of every recent token; 0 = off. Default 0.
    pub frequency_penalty: f32,
    /// How many of the last accepted tokens the penalties look at: 0 = off, -1 = all of them
    /// since the last reset. Default 64.
    pub penalty_last_n: i32,
    /// `(token id, bias)` pairs added to the logits before anything else;
    /// `f32::NEG_INFINITY` bans a token. A token listed twice gets both. Default empty.
    #[serde(with = "bias_serde")]
    pub logit_bias: Vec<(u32, f32)>,
    /// Seed of the random number generator; the same seed and logits give the same tokens.
    /// Default 0.
    pub seed: u64,
    /// The fewest candidates that typical, top-p and min-p may leave (0 counts as 1).
    /// Default 1.
    pub min_keep: usize,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            logit_bias: Vec::new(),
            seed: 0,
            min_keep: 1,
        }
    }
}

impl SamplingParams {
    /// The defaults with temperature 0: always the most likely token (after logit bias and
    /// penalties), as transformers' `do_sample=False`.
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }

    /// True when these parameters select greedily (`temperature == 0`).
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Checks every field for a vocabulary of `vocab_size` tokens; the error names the first
    /// offending field.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        check_vocab_size(vocab_size)?;
        let t = self.temperature;
        if !(t.is_finite() && t >= 0.0) {
            return Err(Error::invalid_argument(
                "temperature",
                format!("must be finite and >= 0 (0 = greedy), got {t}"),
            ));
        }
        let in_range = |name: &'static str, v: f32, lo_open: bool, range: &str| {
            let lo_ok = if lo_open { v > 0.0 } else { v >= 0.0 };
            if lo_ok && v <= 1.0 {
                Ok(())
            } else {
                Err(Error::invalid_argument(name, format!("must be in {range}, got {v}")))
            }
        };
        in_range("top_p", self.top_p, true, "(0, 1] (1 = off)")?;
        in_range("min_p", self.min_p, false, "[0, 1] (0 = off)")?;
        in_range("typical_p", self.typical_p, true, "(0, 1] (1 = off)")?;
        check_penalties(
            self.penalty_last_n,
            self.repeat_penalty,
            self.frequency_penalty,
            self.presence_penalty,
        )?;
        for &(id, bias) in &self.logit_bias {
            if id as usize >= vocab_size {
                return Err(Error::invalid_argument(
                    "logit_bias",
                    format!("token id {id} is outside the vocabulary of {vocab_size} tokens"),
                ));
            }
            if bias.is_nan() || bias == f32::INFINITY {
                return Err(Error::invalid_argument(
                    "logit_bias",
                    format!("bias for token {id} is {bias}; it must be a number or -inf (to ban)"),
                ));
            }
        }
        Ok(())
    }
}

/// Turns logits into token ids: logit bias, penalties, truncation, temperature and a seeded
/// draw, as described in the [module documentation](self).
///
/// Call [`accept`](Self::accept) with every generated token (and, if they should count for the
/// penalties, the prompt's tokens: llama.cpp's CLI and server do) so the penalty window stays
/// current; [`sample`](Self::sample) does not record its result by itself.
#[derive(Clone)]
pub struct Sampler {
    params: SamplingParams,
    vocab_size: usize,
    min_keep: usize,
    rng: Xoshiro256StarStar,
    penalties: Penalties,
    candidates: Candidates,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("params", &self.params)
            .field("vocab_size", &self.vocab_size)
            .field("rng", &self.rng)
            .finish_non_exhaustive()
    }
}

impl Sampler {
    /// A sampler for a model with `vocab_size` logits per step; errors name the first invalid
    /// parameter.
    pub fn new(params: SamplingParams, vocab_size: usize) -> Result<Self> {
        params.validate(vocab_size)?;
        let penalties = Penalties::new(
            vocab_size,
            params.penalty_last_n,
            params.repeat_penalty,
            params.frequency_penalty,
            params.presence_penalty,
        )?;
        Ok(Self {
            min_keep: params.min_keep.max(1),
            rng: Xoshiro256StarStar::new(params.seed),
            vocab_size,
            penalties,
            candidates: Candidates::with_capacity(vocab_size),
            params,
        })
    }

    /// The parameters (with the seed last given to [`set_seed`](Self::set_seed)).
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The number of logits [`sample`](Self::sample) expects.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The penalty window, e.g. to read how often a token occurred recently.
    pub fn penalties(&self) -> &Penalties {
        &self.penalties
    }

    /// The candidates left by the last [`sample`](Self::sample): after a draw, the truncated
    /// and temperature-scaled list the token was drawn from (its
    /// [`probabilities`](Candidates::probabilities) are the draw's); after a greedy step, the
    /// full list after bias and penalties.
    pub fn candidates(&self) -> &Candidates {
        &self.candidates
    }

    /// Records `token` in the penalty window; errors when it is outside the vocabulary.
    pub fn accept(&mut self, token: u32) -> Result<()> {
        self.penalties.accept(token)
    }

    /// Records each of `tokens` in order (e.g. the prompt). Nothing is recorded if one of them
    /// is outside the vocabulary.
    pub fn accept_all(&mut self, tokens: &[u32]) -> Result<()> {
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.vocab_size) {
            return Err(Error::invalid_argument(
                "token",
                format!("token id {bad} is outside the vocabulary of {} tokens", self.vocab_size),
            ));
        }
        tokens.iter().try_for_each(|&t| self.penalties.accept(t))
    }

    /// Back to the state of [`new`](Self::new): empties the penalty window and reseeds the
    /// generator with the current seed (llama.cpp's `llama_sampler_reset` on the chain).
    pub fn reset(&mut self) {
        self.penalties.reset();
        self.rng = Xoshiro256StarStar::new(self.params.seed);
    }

    /// Reseeds the generator now; [`reset`](Self::reset) will also use this seed.
    pub fn set_seed(&mut self, seed: u64) {
        self.params.seed = seed;
        self.rng = Xoshiro256StarStar::new(seed);
    }

    /// Picks the next token from one step's `logits` (one per vocabulary entry).
    ///
    /// Errors: [`Error::Shape`] when `logits.len()` is not the vocabulary size;
    /// [`Error::InvalidArgument`] (`logits`) when a logit is NaN or +inf, when every token is
    /// at -inf after logit bias and penalties (nothing can be chosen), or when bias or
    /// penalties overflow a logit to +inf.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        if logits.len() != self.vocab_size {
            return Err(Error::Shape {
                context: "sampling: one logit per vocabulary entry".into(),
                expected: vec![self.vocab_size],
                found: vec![logits.len()],
            });
        }
        if let Some(i) = logits.iter().position(|l| l.is_nan() || *l == f32::INFINITY) {
            return Err(Error::invalid_argument(
                "logits",
                format!("the logit of token {i} is {}; logits must be numbers or -inf", logits[i]),
            ));
        }
        let p = &self.params;
        let c = &mut self.candidates;
        c.fill(logits);
        apply_logit_bias(c, &p.logit_bias);
        self.penalties.apply(c);

        let mut max = f32::NEG_INFINITY;
        for cand in c.iter() {
            if cand.logit.is_nan() || cand.logit == f32::INFINITY {
                return Err(Error::invalid_argument(
                    "logits",
                    format!(
                        "logit bias and penalties overflowed the logit of token {} to {}",
                        cand.id, cand.logit
                    ),
                ));
            }
            max = max.max(cand.logit);
        }
        if max == f32::NEG_INFINITY {
            return Err(Error::invalid_argument(
                "logits",
                "every token's logit is -inf after logit bias and penalties: none can be chosen",
            ));
        }

        let picked = if p.temperature == 0.0 {
            greedy(c)
        } else {
            top_k(c, p.top_k);
            typical(c, p.typical_p, self.min_keep);
            top_p(c, p.top_p, self.min_keep);
            min_p(c, p.min_p, self.min_keep);
            temperature(c, p.temperature);
            sample_distribution(c, &mut self.rng)
        };
        // Unreachable: the list holds a finite logit, which every step keeps.
        picked.ok_or_else(|| Error::invalid_argument("logits", "no token could be chosen"))
    }
}

/// Serde for `logit_bias`: in human-readable formats (JSON, TOML, YAML) a non-finite bias is
/// written as a string (`"-inf"`), since JSON has no infinity; binary formats keep raw `f32`s.
mod bias_serde {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Bias {
        Number(f32),
        Text(String),
    }

    pub fn serialize<S: Serializer>(bias: &[(u32, f32)], s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return bias.serialize(s);
        }
        s.collect_seq(bias.iter().map(|&(id, b)| {
            (id, if b.is_finite() { Bias::Number(b) } else { Bias::Text(b.to_string()) })
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u32, f32)>, D::Error> {
        if !d.is_human_readable() {
            return Vec::<(u32, f32)>::deserialize(d);
        }
        Vec::<(u32, Bias)>::deserialize(d)?
            .into_iter()
            .map(|(id, b)| match b {
                Bias::Number(v) => Ok((id, v)),
                Bias::Text(t) => t.trim().parse::<f32>().map(|v| (id, v)).map_err(|_| {
                    D::Error::custom(format!(
                        "logit bias for token {id}: `{t}` is neither a number nor \"-inf\""
                    ))
                }),
            })
            .collect()
    }
}
