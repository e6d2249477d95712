//! The candidate list that every processor works on: (token id, logit) pairs plus a flag saying
//! whether they are sorted, like llama.cpp's `llama_token_data_array`.

use std::cmp::Ordering;

use super::detmath;

/// One token still in the running: its id and its current (processed) logit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The token id (an index into the model's vocabulary).
    pub id: u32,
    /// The logit after the processors applied so far.
    pub logit: f32,
}

/// The tokens a sampler may still choose from, with their logits.
///
/// [`fill`](Self::fill) loads one step's logits in id order, reusing the buffer, so a
/// [`Sampler`](super::Sampler) allocates it once. Processors reorder and shrink the list;
/// [`is_sorted`](Self::is_sorted) says whether it is known to be in descending logit order,
/// which lets later steps skip a sort.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    pub(super) data: Vec<Candidate>,
    pub(super) sorted: bool,
}

/// Descending logit, then ascending id: the order [`Candidates::sort`] produces.
///
/// A total order even for NaN (which the `Sampler` rejects but hand-built lists may hold), so
/// the standard sorts never see an inconsistent comparator; `+ 0.0` makes -0.0 and +0.0 tie.
pub(super) fn by_logit_desc(a: &Candidate, b: &Candidate) -> Ordering {
    (b.logit + 0.0).total_cmp(&(a.logit + 0.0)).then(a.id.cmp(&b.id))
}

/// Sorts the `k` best candidates of `data` (by [`by_logit_desc`]) into `data[..k]`, in place.
pub(super) fn sort_prefix(data: &mut [Candidate], k: usize) {
    if k == 0 {
        return;
    }
    if k < data.len() {
        data.select_nth_unstable_by(k - 1, by_logit_desc);
    }
    let k = k.min(data.len());
    data[..k].sort_unstable_by(by_logit_desc);
}

/// The largest logit and `sum(exp(logit - max))` in f64, summed in list order; `None` when the
/// list is empty or its largest logit is not finite (every token banned, or invalid input).
pub(super) fn softmax_norm(data: &[Candidate], sorted: bool) -> Option<(f64, f64)> {
    let max =
        if sorted { data.first()?.logit } else { data.iter().map(|c| c.logit).reduce(f32::max)? };
    if !max.is_finite() {
        return None;
    }
    let max = f64::from(max);
    let sum = data.iter().map(|c| detmath::exp(f64::from(c.logit) - max)).sum();
    Some((max, sum))
}

impl Candidates {
    /// An empty list with room for `capacity` candidates.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { data: Vec::with_capacity(capacity), sorted: false }
    }

    /// A list holding `logits` in id order (token `i` has logit `logits[i]`).
    pub fn from_logits(logits: &[f32]) -> Self {
        let mut c = Self::with_capacity(logits.len());
        c.fill(logits);
        c
    }

    /// Replaces the contents with `logits` in id order, reusing the buffer.
    ///
    /// Ids are `u32`; a vocabulary never comes close to 2^32 tokens.
    pub fn fill(&mut self, logits: &[f32]) {
        self.data.clear();
        self.data
            .extend(logits.iter().enumerate().map(|(i, &logit)| Candidate { id: i as u32, logit }));
        self.sorted = false;
    }

    /// Appends a candidate (the list is then no longer known to be sorted).
    pub fn push(&mut self, id: u32, logit: f32) {
        self.data.push(Candidate { id, logit });
        self.sorted = false;
    }

    /// Removes every candidate, keeping the buffer.
    pub fn clear(&mut self) {
        self.data.clear();
        self.sorted = false;
    }

    /// How many candidates remain.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when no candidate remains.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The candidates in their current order.
    pub fn as_slice(&self) -> &[Candidate] {
        &self.data
    }

    /// The candidates, to edit in place; the list is then no longer known to be sorted.
    pub fn as_mut_slice(&mut self) -> &mut [Candidate] {
        self.sorted = false;
        &mut self.data
    }

    /// Iterates over the candidates in their current order.
    pub fn iter(&self) -> std::slice::Iter<'_, Candidate> {
        self.data.iter()
    }

    /// The ids in their current order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.data.iter().map(|c| c.id)
    }

    /// True when the list is known to be in descending logit order.
    pub fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// Sorts by descending logit; equal logits in ascending id order.
    pub fn sort(&mut self) {
        if !self.sorted {
            self.data.sort_unstable_by(by_logit_desc);
            self.sorted = true;
        }
    }

    /// Keeps the first `len` candidates in the current order.
    pub fn truncate(&mut self, len: usize) {
        self.data.truncate(len);
    }

    /// The largest logit, or `None` for an empty list.
    pub fn max_logit(&self) -> Option<f32> {
        if self.sorted {
            self.data.first().map(|c| c.logit)
        } else {
            self.data.iter().map(|c| c.logit).reduce(f32::max)
        }
    }

    /// The softmax of the logits, in the current order: what the final draw would use.
    ///
    /// Computed in f64 with this module's platform-independent `exp`. When every logit is
    /// -inf (every token banned) there is no distribution and every value is 0.
    pub fn probabilities(&self) -> impl Iterator<Item = f64> + '_ {
        let (max, sum) = softmax_norm(&self.data, self.sorted).unwrap_or((0.0, 0.0));
        self.data.iter().map(move |c| {
            if sum > 0.0 { detmath::exp(f64::from(c.logit) - max) / sum } else { 0.0 }
        })
    }
}
