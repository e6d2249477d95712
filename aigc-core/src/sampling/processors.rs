//! The logits processors and the two final selectors (greedy and distribution sampling), each
//! usable on its own on a [`Candidates`] list.
//!
//! They follow llama.cpp's samplers in `src/llama-sampling.cpp` (function named on each item).
//! Parameters are not validated here (that is [`SamplingParams::validate`]'s job); values
//! outside the documented ranges get llama.cpp's treatment, noted on each function. A
//! `min_keep` of 0 counts as 1, as it does in llama.cpp. None of them allocates.
//!
//! [`SamplingParams::validate`]: super::SamplingParams::validate

use super::candidates::{Candidate, Candidates, by_logit_desc, softmax_norm, sort_prefix};
use super::detmath;
use super::rng::Xoshiro256StarStar;
use crate::error::{Error, Result};

/// Adds `bias` to the logits of the listed tokens (llama.cpp `llama_sampler_logit_bias_apply`).
///
/// A bias of `f32::NEG_INFINITY` bans a token. A token listed twice gets both biases; ids not in
/// the list are ignored. Candidates still at their id's index (as [`Candidates::fill`] leaves
/// them) are found directly, the others by a scan.
pub fn apply_logit_bias(cands: &mut Candidates, bias: &[(u32, f32)]) {
    let data = &mut cands.data;
    let mut changed = false;
    for &(id, b) in bias {
        let at = if data.get(id as usize).is_some_and(|c| c.id == id) {
            Some(id as usize)
        } else {
            data.iter().position(|c| c.id == id)
        };
        if let Some(i) = at {
            data[i].logit += b;
            changed |= b != 0.0;
        }
    }
    if changed {
        cands.sorted = false;
    }
}

/// Repetition penalties over the most recently accepted tokens (llama.cpp
/// `llama_sampler_penalties`).
///
/// For every token seen `n > 0` times in the window, [`apply`](Self::apply) divides a positive
/// logit by `repeat` and multiplies a non-positive one by it (so `repeat > 1` always makes the
/// token less likely), then subtracts `n * frequency + presence`.
///
/// Counts live in a vocabulary-sized table plus a list of the distinct tokens in the window,
/// so [`accept`](Self::accept) and `apply` cost O(1) per token and nothing on the sampling path
/// allocates.
#[derive(Debug, Clone)]
pub struct Penalties {
    vocab_size: usize,
    last_n: i32,
    repeat: f32,
    frequency: f32,
    presence: f32,
    /// The window, oldest first from `head` once full (finite windows only).
    ring: Vec<u32>,
    head: usize,
    /// Occurrences in the window, by token id (empty when the penalties are off).
    counts: Vec<u32>,
    /// The tokens whose count is non-zero, and each one's index in this list.
    distinct: Vec<u32>,
    slot: Vec<u32>,
}

impl Penalties {
    /// Penalties for a vocabulary of `vocab_size` tokens over the last `last_n` accepted tokens
    /// (`0` = off, `-1` = every token accepted since the last reset).
    ///
    /// `repeat` must be finite and positive (`1.0` = off); `frequency` and `presence` finite
    /// (`0.0` = off; negative values encourage repetition).
    pub fn new(
        vocab_size: usize,
        last_n: i32,
        repeat: f32,
        frequency: f32,
        presence: f32,
    ) -> Result<Self> {
        check_vocab_size(vocab_size)?;
        check_penalties(last_n, repeat, frequency, presence)?;
        let mut p = Self {
            vocab_size,
            last_n,
            repeat,
            frequency,
            presence,
            ring: Vec::new(),
            head: 0,
            counts: Vec::new(),
            distinct: Vec::new(),
            slot: Vec::new(),
        };
        if p.is_active() {
            p.counts = vec![0; vocab_size];
            p.slot = vec![0; vocab_size];
            if last_n > 0 {
                // Grown on demand beyond this, so that a huge window costs memory only when used.
                let n = (last_n as usize).min(4096);
                p.ring.reserve_exact(n);
                p.distinct.reserve_exact(n.min(vocab_size));
            } else {
                p.distinct.reserve_exact(vocab_size);
            }
        }
        Ok(p)
    }

    /// True when applying changes anything: a non-empty window and at least one penalty on.
    pub fn is_active(&self) -> bool {
        self.last_n != 0 && (self.repeat != 1.0 || self.frequency != 0.0 || self.presence != 0.0)
    }

    /// Records `token` as generated (or as part of the prompt), evicting the oldest token once
    /// the window is full. Errors when `token` is outside the vocabulary.
    pub fn accept(&mut self, token: u32) -> Result<()> {
        if token as usize >= self.vocab_size {
            return Err(Error::invalid_argument(
                "token",
                format!("token id {token} is outside the vocabulary of {} tokens", self.vocab_size),
            ));
        }
        if !self.is_active() {
            return Ok(());
        }
        self.increment(token);
        if self.last_n > 0 {
            let n = self.last_n as usize;
            if self.ring.len() < n {
                self.ring.push(token);
            } else {
                let old = std::mem::replace(&mut self.ring[self.head], token);
                self.head = (self.head + 1) % n;
                self.decrement(old);
            }
        }
        Ok(())
    }

    /// How many times `token` occurs in the window (0 when the penalties are off).
    pub fn count(&self, token: u32) -> u32 {
        self.counts.get(token as usize).copied().unwrap_or(0)
    }

    /// Forgets every accepted token.
    pub fn reset(&mut self) {
        for &t in &self.distinct {
            self.counts[t as usize] = 0;
        }
        self.distinct.clear();
        self.ring.clear();
        self.head = 0;
    }

    /// Applies the penalties to the candidates' logits.
    pub fn apply(&self, cands: &mut Candidates) {
        if !self.is_active() || self.distinct.is_empty() {
            return;
        }
        let data = &mut cands.data;
        let in_place =
            self.distinct.iter().all(|&t| data.get(t as usize).is_some_and(|c| c.id == t));
        if in_place {
            for &t in &self.distinct {
                self.penalize(&mut data[t as usize], self.counts[t as usize]);
            }
        } else {
            for c in data.iter_mut() {
                if let Some(&n) = self.counts.get(c.id as usize)
                    && n > 0
                {
                    self.penalize(c, n);
                }
            }
        }
        cands.sorted = false;
    }

    fn penalize(&self, c: &mut Candidate, count: u32) {
        // Dividing a negative logit would raise it; llama.cpp multiplies those instead.
        if c.logit <= 0.0 {
            c.logit *= self.repeat;
        } else {
            c.logit /= self.repeat;
        }
        c.logit -= count as f32 * self.frequency + self.presence;
    }

    fn increment(&mut self, t: u32) {
        let i = t as usize;
        if self.counts[i] == 0 {
            self.slot[i] = self.distinct.len() as u32;
            self.distinct.push(t);
        }
        self.counts[i] += 1;
    }

    fn decrement(&mut self, t: u32) {
        let i = t as usize;
        self.counts[i] -= 1;
        if self.counts[i] == 0 {
            let at = self.slot[i] as usize;
            self.distinct.swap_remove(at);
            if let Some(&moved) = self.distinct.get(at) {
                self.slot[moved as usize] = at as u32;
            }
        }
    }
}

/// Keeps the `k` candidates with the highest logits, sorted (llama.cpp
/// `llama_sampler_top_k_impl`). `k == 0` is off.
///
/// Equal logits keep the lower id. Unlike llama.cpp, which sorts the whole list when `k` is at
/// least its length, a `k` that removes nothing leaves the list untouched.
pub fn top_k(cands: &mut Candidates, k: usize) {
    if k == 0 || k >= cands.len() {
        return;
    }
    if !cands.sorted {
        sort_prefix(&mut cands.data, k);
        cands.sorted = true;
    }
    cands.data.truncate(k);
}

/// Locally typical sampling (Meister et al. 2022; llama.cpp `llama_sampler_typical_apply`):
/// keeps the tokens whose surprisal `-ln p` is closest to the entropy `H` of the distribution,
/// the fewest whose total probability exceeds `p`, and at least `min_keep`. `p >= 1` is off.
///
/// The result is ordered by `|-ln p_i - H|`, not by logit, so it may not hold the most likely
/// token. Tokens with probability 0 (logit -inf) add nothing to `H` (llama.cpp computes
/// `0 * ln 0`, a NaN, there).
pub fn typical(cands: &mut Candidates, p: f32, min_keep: usize) {
    if p >= 1.0 || p.is_nan() || cands.len() <= 1 {
        return;
    }
    let Some((max, sum)) = softmax_norm(&cands.data, cands.sorted) else { return };
    let ln_sum = detmath::ln(sum);
    // -ln p_i = max + ln(sum) - logit_i, so H = sum_i p_i (max + ln(sum) - logit_i) and the
    // score |-ln p_i - H| is |center - logit_i|: no per-token logarithm needed.
    let mut entropy = 0.0;
    for c in &cands.data {
        let l = f64::from(c.logit);
        let e = detmath::exp(l - max);
        if e > 0.0 {
            entropy += e / sum * (max + ln_sum - l);
        }
    }
    let center = max + ln_sum - entropy;
    let score = |c: &Candidate| (center - f64::from(c.logit)).abs();
    cands
        .data
        .sort_unstable_by(|a, b| score(a).total_cmp(&score(b)).then_with(|| by_logit_desc(a, b)));
    let keep = cumulative_cut(&cands.data, max, sum, min_keep, |cum| cum > f64::from(p));
    cands.data.truncate(keep);
    cands.sorted = false;
}

/// Nucleus sampling (Holtzman et al. 2020; llama.cpp `llama_sampler_top_p_apply`): sorts by
/// logit and keeps the smallest prefix whose probability reaches `p` (`cumulative >= p`), and
/// at least `min_keep`. `p >= 1` is off.
///
/// For large unsorted lists it sorts only the best 256 first and the rest only if the nucleus
/// is larger, as llama.cpp does; the result is the same as a full sort.
pub fn top_p(cands: &mut Candidates, p: f32, min_keep: usize) {
    if p >= 1.0 || p.is_nan() || cands.len() <= 1 {
        return;
    }
    let Some((max, sum)) = softmax_norm(&cands.data, cands.sorted) else { return };
    let n = cands.len();
    let mut sorted_upto = n;
    if !cands.sorted {
        sorted_upto = if n > 1024 { 256 } else { n };
        sort_prefix(&mut cands.data, sorted_upto);
    }
    let p = f64::from(p);
    let min_keep = min_keep.max(1);
    let mut cum = 0.0;
    let mut keep = n;
    for i in 0..n {
        if i == sorted_upto {
            // Everything after the partially sorted head ranks below it: sorting the tail
            // completes the order.
            cands.data[i..].sort_unstable_by(by_logit_desc);
            sorted_upto = n;
        }
        cum += detmath::exp(f64::from(cands.data[i].logit) - max) / sum;
        if cum >= p && i + 1 >= min_keep {
            keep = i + 1;
            break;
        }
    }
    // The kept prefix is sorted; if the loop ended early on a partial sort, only it is kept.
    cands.data.truncate(keep);
    cands.sorted = true;
}

/// Min-p sampling (llama.cpp `llama_sampler_min_p_apply`): keeps the tokens with
/// `p_i >= p * p_max`, that is `logit_i >= logit_max + ln p`, and at least `min_keep` (the
/// best ones). `p <= 0` is off.
///
/// An unsorted list keeps its order when enough tokens pass, as in llama.cpp.
pub fn min_p(cands: &mut Candidates, p: f32, min_keep: usize) {
    if p <= 0.0 || p.is_nan() || cands.is_empty() {
        return;
    }
    let Some(max) = cands.max_logit().filter(|m| m.is_finite()) else { return };
    let threshold = f64::from(max) + detmath::ln(f64::from(p));
    let passes = |c: &Candidate| f64::from(c.logit) >= threshold;
    let min_keep = min_keep.max(1).min(cands.len());
    if cands.sorted {
        let count = cands.data.iter().take_while(|c| passes(c)).count();
        cands.data.truncate(count.max(min_keep));
        return;
    }
    let count = cands.data.iter().filter(|c| passes(c)).count();
    if count >= min_keep {
        cands.data.retain(passes);
    } else {
        sort_prefix(&mut cands.data, min_keep);
        cands.data.truncate(min_keep);
        cands.sorted = true;
    }
}

/// Temperature (llama.cpp `llama_sampler_temp_impl`): divides the logits by `t`.
///
/// The logits are first shifted so that the largest is 0. The softmax (and every processor
/// after temperature in the default order) is unchanged by a shift, and shifted logits divided
/// by a tiny `t` go to -inf (probability 0) instead of overflowing to +inf and breaking the
/// softmax. `t <= 0` keeps only the most likely candidate (lowest id on ties), as llama.cpp
/// does; a list whose logits are all -inf is left alone.
pub fn temperature(cands: &mut Candidates, t: f32) {
    if cands.is_empty() {
        return;
    }
    if t <= 0.0 || t.is_nan() {
        if let Some(best) = greedy_index(&cands.data) {
            cands.data.swap(0, best);
            cands.data.truncate(1);
            cands.sorted = true;
        }
        return;
    }
    let Some(max) = cands.max_logit().filter(|m| m.is_finite()) else { return };
    for c in &mut cands.data {
        c.logit = (c.logit - max) / t;
    }
    // A monotone map: a sorted list stays sorted.
}

/// The id of the candidate with the highest logit, the lowest id among equal ones (llama.cpp
/// `llama_sampler_greedy_apply` keeps the first in list order instead); `None` when empty.
pub fn greedy(cands: &Candidates) -> Option<u32> {
    greedy_index(&cands.data).map(|i| cands.data[i].id)
}

fn greedy_index(data: &[Candidate]) -> Option<usize> {
    (0..data.len()).min_by(|&a, &b| by_logit_desc(&data[a], &data[b]))
}

/// Draws a token from the softmax of the candidates' logits (llama.cpp
/// `llama_sampler_dist_apply`).
///
/// One uniform `u` in `[0, 1)` is drawn and the first candidate, in list order, at which the
/// running sum of `exp(logit - max)` exceeds `u * sum` is chosen; tokens with probability 0
/// are never chosen. A single candidate is returned without drawing, as in llama.cpp.
/// `None` when the list is empty or every logit is -inf.
pub fn sample_distribution(cands: &Candidates, rng: &mut Xoshiro256StarStar) -> Option<u32> {
    match cands.data.as_slice() {
        [] => return None,
        [only] => return only.logit.is_finite().then_some(only.id),
        _ => {}
    }
    let (max, sum) = softmax_norm(&cands.data, cands.sorted)?;
    let target = rng.next_f64() * sum;
    let mut run = 0.0;
    let mut last = None;
    for c in &cands.data {
        let e = detmath::exp(f64::from(c.logit) - max);
        if e > 0.0 {
            run += e;
            last = Some(c.id);
            if run > target {
                return last;
            }
        }
    }
    // Only reachable if `u * sum` rounded up to `sum`.
    last
}

/// The length of the shortest prefix whose cumulative probability satisfies `done`, and at
/// least `min_keep` (all of them if none does).
fn cumulative_cut(
    data: &[Candidate],
    max: f64,
    sum: f64,
    min_keep: usize,
    done: impl Fn(f64) -> bool,
) -> usize {
    let mut cum = 0.0;
    for (i, c) in data.iter().enumerate() {
        cum += detmath::exp(f64::from(c.logit) - max) / sum;
        if done(cum) && i + 1 >= min_keep {
            return i + 1;
        }
    }
    data.len()
}

pub(super) fn check_vocab_size(vocab_size: usize) -> Result<()> {
    if vocab_size == 0 || vocab_size as u64 > 1u64 << 32 {
        return Err(Error::invalid_argument(
            "vocab_size",
            format!("must be between 1 and 2^32 (token ids are u32), got {vocab_size}"),
        ));
    }
    Ok(())
}

pub(super) fn check_penalties(
    last_n: i32,
    repeat: f32,
    frequency: f32,
    presence: f32,
) -> Result<()> {
    if last_n < -1 {
        return Err(Error::invalid_argument(
            "penalty_last_n",
            format!("must be -1 (whole context), 0 (off) or a window length, got {last_n}"),
        ));
    }
    if !(repeat.is_finite() && repeat > 0.0) {
        return Err(Error::invalid_argument(
            "repeat_penalty",
            format!("must be finite and > 0 (1 = off), got {repeat}"),
        ));
    }
    if !frequency.is_finite() {
        return Err(Error::invalid_argument(
            "frequency_penalty",
            format!("must be finite, got {frequency}"),
        ));
    }
    if !presence.is_finite() {
        return Err(Error::invalid_argument(
            "presence_penalty",
            format!("must be finite, got {presence}"),
        ));
    }
    Ok(())
}
