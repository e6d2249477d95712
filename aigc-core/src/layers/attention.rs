//! Scaled dot-product attention over a KV cache that is allocated once.
//!
//! A layer's cache holds keys and values for absolute positions. A full-attention layer keeps
//! every position of the context in order. A sliding-window layer (Mistral, Gemma 3's local
//! layers) keeps only the last `window` positions in a ring: queries never look further back,
//! so the rest would be dead memory. Masks are built from the absolute position stored in each
//! slot, so the ring's order does not matter.

use burn::tensor::{Device, Tensor, TensorData, activation};

use crate::error::{Error, Result};
use crate::quant::kernels::SharedMut;

/// The keys and values of one attention layer.
///
/// On a CPU device they live in host memory and attention is computed there directly (one
/// pass per query over the keys, no intermediate tensors); elsewhere they are device tensors.
#[derive(Debug)]
pub struct LayerCache {
    // `Option` so that updates can take the tensors by value: burn writes in place only into
    // a tensor it owns uniquely, and a clone would copy the whole cache on every token.
    k: Option<Tensor<4>>,
    v: Option<Tensor<4>>,
    /// CPU: keys and values `[kv_heads, slots, head_dim]` each.
    host: Option<(Vec<f32>, Vec<f32>)>,
    /// The absolute position held by each slot.
    slot_pos: Vec<Option<usize>>,
    /// `Some(w)`: a query at position `p` sees keys at `p - w + 1 ..= p` (ring of `w` slots).
    window: Option<usize>,
}

impl LayerCache {
    /// A cache for `kv_heads` heads of `head_dim`, holding `context` positions, or a ring of
    /// `window` positions when the layer attends over a sliding window shorter than that.
    pub fn new(
        kv_heads: usize,
        head_dim: usize,
        context: usize,
        window: Option<usize>,
        device: &Device,
    ) -> Self {
        let window = window.filter(|&w| w < context);
        let slots = window.unwrap_or(context);
        let slot_pos = vec![None; slots];
        if super::is_cpu(device) {
            let zeros = || vec![0f32; kv_heads * slots * head_dim];
            return Self { k: None, v: None, host: Some((zeros(), zeros())), slot_pos, window };
        }
        let zeros = || Tensor::<4>::zeros([1, kv_heads, slots, head_dim], device);
        Self { k: Some(zeros()), v: Some(zeros()), host: None, slot_pos, window }
    }

    /// Slots held (the context, or the window of a sliding layer).
    pub fn slots(&self) -> usize {
        self.slot_pos.len()
    }

    /// The sliding window, when the layer has one shorter than the context.
    pub fn window(&self) -> Option<usize> {
        self.window
    }

    fn clear(&mut self) {
        self.slot_pos.iter_mut().for_each(|p| *p = None);
    }
}

/// The caches of every layer of a model, and how many tokens they hold.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
    context: usize,
}

impl KvCache {
    /// A cache from per-layer caches that all hold `context` positions (or their window).
    pub fn new(layers: Vec<LayerCache>, context: usize) -> Self {
        Self { layers, len: 0, context }
    }

    /// Tokens processed so far (the next token's position).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token has been processed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most positions this cache can hold.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Forgets every token, keeping the memory.
    pub fn reset(&mut self) {
        self.len = 0;
        self.layers.iter_mut().for_each(LayerCache::clear);
    }

    /// One layer's cache.
    pub fn layer_mut(&mut self, i: usize) -> &mut LayerCache {
        &mut self.layers[i]
    }

    /// Checks that `n` more tokens fit.
    pub fn check_room(&self, n: usize) -> Result<()> {
        if self.len + n > self.context {
            return Err(Error::invalid_argument(
                "tokens",
                format!(
                    "{} tokens would exceed the cache's context of {} ({} already held)",
                    n, self.context, self.len
                ),
            ));
        }
        Ok(())
    }

    /// Records that `n` tokens were processed by every layer.
    pub fn advance(&mut self, n: usize) {
        self.len += n;
    }
}

/// Attention of `q` (`[1, heads, n, d]`) over the cached keys and values plus the new ones
/// (`[1, kv_heads, n, d]`, at positions `start..start + n`), which are then stored.
///
/// Heads share key/value heads in groups (`heads / kv_heads`, grouped-query attention).
/// Scores are `q k^T * scale`, optionally soft-capped (`tanh(s / cap) * cap`), causally masked
/// (and windowed), soft-maxed in f32. Returns `[1, heads, n, d]`.
pub fn attention(
    q: Tensor<4>,
    k_new: Tensor<4>,
    v_new: Tensor<4>,
    cache: &mut LayerCache,
    start: usize,
    scale: f32,
    softcap: Option<f32>,
) -> Result<Tensor<4>> {
    let [_, heads, n, d] = q.dims();
    let [_, kv_heads, _, _] = k_new.dims();
    if heads % kv_heads != 0 {
        return Err(Error::invalid_argument(
            "heads",
            format!("{heads} query heads are not a multiple of {kv_heads} key/value heads"),
        ));
    }
    let group = heads / kv_heads;
    let device = q.device();
    let slots = cache.slots();
    if cache.window.is_none() && start + n > slots {
        return Err(Error::invalid_argument(
            "tokens",
            format!("positions up to {} exceed the cache's {slots}", start + n),
        ));
    }
    if cache.host.is_some() {
        let host = |t: Tensor<4>| t.into_data().convert::<f32>().try_into_vec::<f32>();
        let (q, k_new, v_new) = match (host(q), host(k_new), host(v_new)) {
            (Ok(q), Ok(k), Ok(v)) => (q, k, v),
            _ => return Err(Error::invalid_argument("attention", "activations are not f32")),
        };
        let shape = HostShape { heads, kv_heads, n, d };
        let out = host_attention(&q, &k_new, &v_new, cache, start, shape, scale, softcap);
        return Ok(Tensor::from_data(TensorData::new(out, [1, heads, n, d]), &device));
    }

    // Keys and values to attend over, with the absolute position of each.
    let (keys, values, key_pos): (Tensor<4>, Tensor<4>, Vec<Option<usize>>) = match cache.window {
        None => {
            let range = [0..1, 0..kv_heads, start..start + n, 0..d];
            let k = cache.k.take().expect("cache present").slice_assign(range.clone(), k_new);
            let v = cache.v.take().expect("cache present").slice_assign(range, v_new);
            cache.k = Some(k.clone());
            cache.v = Some(v.clone());
            for p in start..start + n {
                cache.slot_pos[p] = Some(p);
            }
            let len = start + n;
            (k.narrow(2, 0, len), v.narrow(2, 0, len), (0..len).map(Some).collect())
        }
        Some(_) => {
            // Until the ring wraps, slots `0..start` hold positions `0..start` and the rest are
            // empty: attend over the filled ones only.
            let filled = start.min(slots);
            let (keys, values) = if filled == 0 {
                (k_new.clone(), v_new.clone())
            } else {
                let k_old = cache.k.clone().expect("cache present").narrow(2, 0, filled);
                let v_old = cache.v.clone().expect("cache present").narrow(2, 0, filled);
                (
                    Tensor::cat(vec![k_old, k_new.clone()], 2),
                    Tensor::cat(vec![v_old, v_new.clone()], 2),
                )
            };
            let mut pos = cache.slot_pos[..filled].to_vec();
            pos.extend((start..start + n).map(Some));
            // Store the newest `min(n, slots)` tokens in their ring slots.
            let keep = n.min(slots);
            let k_in = k_new.narrow(2, n - keep, keep);
            let v_in = v_new.narrow(2, n - keep, keep);
            let mut k = cache.k.take().expect("cache present");
            let mut v = cache.v.take().expect("cache present");
            // The ring slots of positions p0..p0 + keep: at most two contiguous runs.
            let p0 = start + n - keep;
            let first = p0 % slots;
            let run1 = keep.min(slots - first);
            for (slot, from, len) in [(first, 0, run1), (0, run1, keep - run1)] {
                if len == 0 {
                    continue;
                }
                let range = [0..1, 0..kv_heads, slot..slot + len, 0..d];
                k = k.slice_assign(range.clone(), k_in.clone().narrow(2, from, len));
                v = v.slice_assign(range, v_in.clone().narrow(2, from, len));
                for j in 0..len {
                    cache.slot_pos[slot + j] = Some(p0 + from + j);
                }
            }
            cache.k = Some(k);
            cache.v = Some(v);
            (keys, values, pos)
        }
    };

    // Mask [1, 1, group * n, L]: query i (position start + i) sees key j when the key is not
    // in the future and, for windowed layers, less than `window` positions back.
    let len = key_pos.len();
    let window = cache.window;
    let mut mask = vec![f32::NEG_INFINITY; group * n * len];
    for i in 0..n {
        let qp = start + i;
        for (j, kp) in key_pos.iter().enumerate() {
            if let Some(kp) = *kp
                && kp <= qp
                && window.is_none_or(|w| qp - kp < w)
            {
                for g in 0..group {
                    mask[(g * n + i) * len + j] = 0.0;
                }
            }
        }
    }
    let mask = Tensor::<4>::from_data(TensorData::new(mask, [1, 1, group * n, len]), &device);

    // Group query heads by their key/value head: [1, kv_heads, group * n, d].
    let q = q.reshape([1, kv_heads, group * n, d]);
    let mut scores = q.matmul(keys.swap_dims(2, 3)) * scale;
    if let Some(cap) = softcap {
        scores = (scores / cap).tanh() * cap;
    }
    let probs = activation::softmax(scores + mask, 3);
    let out = probs.matmul(values); // [1, kv_heads, group * n, d]
    Ok(out.reshape([1, heads, n, d]))
}

#[derive(Clone, Copy)]
struct HostShape {
    heads: usize,
    kv_heads: usize,
    n: usize,
    d: usize,
}

/// [`attention`] on the host: `q` `[heads, n, d]`, new keys and values `[kv_heads, n, d]`;
/// returns `[heads, n, d]` and stores the new keys and values in `cache`.
///
/// Each query's scores over the keys it may see are computed into a buffer, soft-maxed and
/// used to sum the value rows. (head, query) rows are split across the quantized kernels'
/// threads when there is enough work.
#[allow(clippy::too_many_arguments)]
fn host_attention(
    q: &[f32],
    k_new: &[f32],
    v_new: &[f32],
    cache: &mut LayerCache,
    start: usize,
    shape: HostShape,
    scale: f32,
    softcap: Option<f32>,
) -> Vec<f32> {
    let HostShape { heads, kv_heads, n, d } = shape;
    let group = heads / kv_heads;
    let slots = cache.slots();
    let window = cache.window;
    let mut out = vec![0f32; heads * n * d];
    {
        let (ck, cv) = cache.host.as_ref().expect("host cache");
        // The keys: cached slots holding positions before `start` (slots of later positions,
        // left from an earlier sequence, are ignored), then the new tokens (stored after).
        KEYS.with_borrow_mut(|keys| {
            keys.clear();
            keys.extend(
                cache
                    .slot_pos
                    .iter()
                    .enumerate()
                    .filter_map(|(s, p)| p.filter(|&p| p < start).map(|p| (Key::Slot(s), p))),
            );
            keys.extend((0..n).map(|j| (Key::New(j), start + j)));
            let keys = &*keys;
            let rows = heads * n;
            let dst = SharedMut::new(&mut out);
            let work = |t: usize, threads: usize| {
                ROW_SCRATCH.with_borrow_mut(|(scores, picked)| {
                    for r in crate::quant::kernels::share_rows(rows, t, threads) {
                        let (h, i) = (r / n, r % n);
                        let kv = h / group;
                        let qp = start + i;
                        picked.clear();
                        picked.extend(
                            keys.iter()
                                .filter(|&&(_, kp)| kp <= qp && window.is_none_or(|w| qp - kp < w))
                                .map(|&(key, _)| match key {
                                    Key::Slot(s) => Key::Slot((kv * slots + s) * d),
                                    Key::New(j) => Key::New((kv * n + j) * d),
                                }),
                        );
                        let kv = Sources { cache: (ck, cv), new: (k_new, v_new), d };
                        let qv = &q[(h * n + i) * d..(h * n + i + 1) * d];
                        // SAFETY: each (head, query) row of `out` is written by one thread only.
                        let row = unsafe { dst.slice(r * d, d) };
                        attend_one(qv, &kv, picked, scale, softcap, scores, row);
                    }
                });
            };
            // Split when there is enough work to pay for waking the other threads.
            crate::quant::kernels::run_parallel(rows * keys.len() * d >= 64 * 1024, &work);
        });
    }
    // Store the newest `min(n, slots)` tokens in their slots (ring slots when windowed).
    let (ck, cv) = cache.host.as_mut().expect("host cache");
    let keep = n.min(slots);
    for j in n - keep..n {
        let p = start + j;
        let s = if window.is_some() { p % slots } else { p };
        for kv in 0..kv_heads {
            let (src, dst) = ((kv * n + j) * d, (kv * slots + s) * d);
            ck[dst..dst + d].copy_from_slice(&k_new[src..src + d]);
            cv[dst..dst + d].copy_from_slice(&v_new[src..src + d]);
        }
        cache.slot_pos[s] = Some(p);
    }
    out
}

/// Where a key and its value are: a cache slot, or the `j`-th new token (or, once a head is
/// chosen, the offset of its row in the cache or in the new keys).
#[derive(Clone, Copy)]
enum Key {
    Slot(usize),
    New(usize),
}

/// The key and value rows of one head: in the cache and among the new tokens.
struct Sources<'a> {
    cache: (&'a [f32], &'a [f32]),
    new: (&'a [f32], &'a [f32]),
    d: usize,
}

impl Sources<'_> {
    #[inline(always)]
    fn get(&self, key: Key) -> (&[f32], &[f32]) {
        let ((k, v), o) = match key {
            Key::Slot(o) => (self.cache, o),
            Key::New(o) => (self.new, o),
        };
        (&k[o..o + self.d], &v[o..o + self.d])
    }
}

thread_local! {
    /// The keys a call attends over, with their positions (on the calling thread).
    static KEYS: std::cell::RefCell<Vec<(Key, usize)>> = Default::default();
    /// Per thread: scores and the rows a query sees.
    static ROW_SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<Key>)> = Default::default();
}

/// `dst = softmax(q·k * scale) · v` over the `keys` rows of `kv`.
fn attend_one(
    q: &[f32],
    kv: &Sources<'_>,
    keys: &[Key],
    scale: f32,
    softcap: Option<f32>,
    scores: &mut Vec<f32>,
    dst: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::quant::kernels::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { attend_one_avx2(q, kv, keys, scale, softcap, scores, dst) };
            return;
        }
    }
    attend_one_generic(q, kv, keys, scale, softcap, scores, dst)
}

/// [`attend_one_generic`] compiled with AVX2 and FMA, so that LLVM vectorises its loops.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn attend_one_avx2(
    q: &[f32],
    kv: &Sources<'_>,
    keys: &[Key],
    scale: f32,
    softcap: Option<f32>,
    scores: &mut Vec<f32>,
    dst: &mut [f32],
) {
    attend_one_generic(q, kv, keys, scale, softcap, scores, dst)
}

#[inline(always)]
fn attend_one_generic(
    q: &[f32],
    kv: &Sources<'_>,
    keys: &[Key],
    scale: f32,
    softcap: Option<f32>,
    scores: &mut Vec<f32>,
    dst: &mut [f32],
) {
    scores.clear();
    scores.extend(keys.iter().map(|&key| dot(q, kv.get(key).0) * scale));
    if let Some(cap) = softcap {
        scores.iter_mut().for_each(|s| *s = (*s / cap).tanh() * cap);
    }
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = exp(*s - max);
        sum += *s;
    }
    dst.fill(0.0);
    for (&p, &key) in scores.iter().zip(keys) {
        dst.iter_mut().zip(kv.get(key).1).for_each(|(o, &v)| *o += p * v);
    }
    if sum > 0.0 {
        let inv = 1.0 / sum;
        dst.iter_mut().for_each(|o| *o *= inv);
    }
}

/// `e^x` within about 2 ulp, in plain arithmetic that LLVM vectorises (Cephes' `expf`
/// polynomial after reducing by powers of two); `e^x` of anything below -87 is 0, and above
/// 88 it is `e^88`.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.0, 88.0);
    // Round to nearest with the 1.5 * 2^23 trick (no libm call): t's low mantissa bits hold
    // n as an integer, read off by subtracting the bits of 1.5 * 2^23 (an `as i32` cast would
    // be a saturating conversion, which LLVM does one lane at a time).
    const MAGIC: f32 = 12_582_912.0;
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let ni = t.to_bits().wrapping_sub(MAGIC.to_bits());
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scaled = y * f32::from_bits(ni.wrapping_add(127) << 23);
    if x < -87.0 { 0.0 } else { scaled }
}

/// [`exp`] on eight lanes with AVX2 and FMA (the same reduction and polynomial, each step a
/// fused multiply-add).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn exp8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    const MAGIC: f32 = 12_582_912.0;
    let xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0)), _mm256_set1_ps(88.0));
    let t = _mm256_fmadd_ps(xc, _mm256_set1_ps(std::f32::consts::LOG2_E), _mm256_set1_ps(MAGIC));
    let n = _mm256_sub_ps(t, _mm256_set1_ps(MAGIC));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), xc);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0));
    let bits = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(_mm256_set1_ps(MAGIC)));
    let scale =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(127)), 23));
    let scaled = _mm256_mul_ps(y, scale);
    // Below -87 (and NaN compares false): 0.
    let keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0), _CMP_GE_OQ);
    _mm256_and_ps(scaled, keep)
}

/// An 8-lane dot product (vectorised by LLVM).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_a_few_ulp() {
        let mut x = -90.0f32;
        while x <= 88.0 {
            let (got, want) = (exp(x), (x as f64).exp());
            if x >= -87.0 {
                assert!(((got as f64 - want) / want).abs() < 3e-7, "{x}: {got} vs {want}");
            } else {
                assert_eq!(got, 0.0);
            }
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exp8_matches_exp() {
        if !crate::quant::kernels::has_avx2() {
            return;
        }
        let mut x = -90.0f32;
        while x <= 88.0 {
            let lanes: [f32; 8] = std::array::from_fn(|i| x + i as f32 * 0.001);
            let mut got = [0f32; 8];
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe {
                use std::arch::x86_64::*;
                _mm256_storeu_ps(got.as_mut_ptr(), exp8(_mm256_loadu_ps(lanes.as_ptr())));
            }
            for (g, &l) in got.iter().zip(&lanes) {
                let want = exp(l);
                assert!((g - want).abs() <= want * 4e-7, "{l}: {g} vs {want}");
            }
            x += 0.0137;
        }
    }
}
