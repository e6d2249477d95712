//! Unmasked multi-head attention over whole sequences (the self- and cross-attention of
//! diffusion UNets and VAEs), for the two layouts those models keep their activations in.

use burn::tensor::Tensor;

use crate::quant::kernels::SharedMut;

/// Where a head's features sit in a `[batch, ., .]` activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadLayout {
    /// `[batch, tokens, heads * head_dim]`: a linear projection's output.
    TokenMajor,
    /// `[batch, heads * head_dim, tokens]`: a 1x1 convolution's output, flattened.
    ChannelMajor,
}

/// `softmax(q·kᵀ · scale)·v` per batch item and head, `heads` heads splitting the feature
/// dimension evenly; `q` has the queries, `k` and `v` the same number of keys. The output
/// has `q`'s layout and shape.
///
/// On a CPU device it runs on the host: blocks of queries go through a GEMM for the scores,
/// a vectorised soft-max and a GEMM with the values, split across the kernel threads, and
/// the full score matrix never exists at once.
pub fn multi_head_attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    scale: f32,
    layout: HeadLayout,
) -> Tensor<3> {
    let heads = heads.max(1);
    let [b, n, m, d] = extents(&q, &k, layout);
    let hd = d / heads;
    if super::is_cpu(&q.device()) && hd * heads == d && v.dims() == k.dims() {
        let device = q.device();
        let dims = q.dims();
        let mut out = vec![0f32; b * n * d];
        super::with_host(&q, |q| {
            super::with_host(&k, |k| {
                super::with_host(&v, |v| {
                    host_attention(q, k, v, &mut out, [b, heads, n, m, hd], scale, layout)
                })
            })
        });
        return super::from_host(out, dims, &device);
    }
    tensor_attention(q, k, v, heads, scale, layout)
}

/// Attention of a few queries over keys and values laid out once for many calls (an
/// encoder-decoder's cross-attention while decoding): `q` `[1, heads, n, hd]`, `kt` the keys
/// transposed `[1, heads, hd, m]`, `v` `[1, heads, m, hd]`; returns `softmax(q·kt · scale)·v`,
/// `[1, heads, n, hd]`. On a CPU device on the host, heads across the kernel threads, the
/// cached tensors read in place.
pub fn cached_attention(q: Tensor<4>, kt: &Tensor<4>, v: &Tensor<4>, scale: f32) -> Tensor<4> {
    let [b, heads, n, hd] = q.dims();
    let m = v.dims()[2];
    if !super::is_cpu(&q.device()) || b != 1 || kt.dims() != [1, heads, hd, m] {
        let scores = q.matmul(kt.clone()) * scale as f64;
        return super::softmax_last(scores).matmul(v.clone());
    }
    let device = q.device();
    let mut out = vec![0f32; heads * n * hd];
    let dst = SharedMut::new(&mut out);
    super::with_host(&q, |q| {
        super::with_host(kt, |kt| {
            super::with_host(v, |v| {
                let work = |h: usize| {
                    let mut scores = vec![0f32; m];
                    for i in 0..n {
                        let qi = &q[(h * n + i) * hd..(h * n + i + 1) * hd];
                        // scores = scale * Σ_f q[f] kt[f, :]: rows of kt scaled and summed.
                        scores.fill(0.0);
                        for (f, &qf) in qi.iter().enumerate() {
                            let row = &kt[(h * hd + f) * m..(h * hd + f + 1) * m];
                            scores.iter_mut().zip(row).for_each(|(s, &k)| *s += qf * k);
                        }
                        scores.iter_mut().for_each(|s| *s *= scale);
                        super::softmax_row(&mut scores);
                        // SAFETY: row i of head h of the output belongs to this unit.
                        let o = unsafe { dst.slice((h * n + i) * hd, hd) };
                        for (j, &p) in scores.iter().enumerate() {
                            let row = &v[(h * m + j) * hd..(h * m + j + 1) * hd];
                            o.iter_mut().zip(row).for_each(|(o, &x)| *o += p * x);
                        }
                    }
                };
                crate::quant::kernels::for_each_unit(heads * n * m * hd >= 1 << 14, heads, &work);
            })
        })
    });
    super::from_host(out, [1, heads, n, hd], &device)
}

/// Batch, queries, keys and features of an attention call.
fn extents(q: &Tensor<3>, k: &Tensor<3>, layout: HeadLayout) -> [usize; 4] {
    let ([b, q1, q2], [_, k1, k2]) = (q.dims(), k.dims());
    match layout {
        HeadLayout::TokenMajor => [b, q1, k1, q2],
        HeadLayout::ChannelMajor => [b, q2, k2, q1],
    }
}

/// The device-neutral path of [`multi_head_attention`], in burn tensor ops.
fn tensor_attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    scale: f32,
    layout: HeadLayout,
) -> Tensor<3> {
    let [b, n, m, d] = extents(&q, &k, layout);
    let hd = d / heads;
    // [batch, tokens, features] views, heads split off: [batch, heads, tokens, head_dim].
    let split = |x: Tensor<3>, tokens: usize| {
        let x = match layout {
            HeadLayout::TokenMajor => x,
            HeadLayout::ChannelMajor => x.swap_dims(1, 2),
        };
        x.reshape([b, tokens, heads, hd]).swap_dims(1, 2)
    };
    let (q, k, v) = (split(q, n), split(k, m), split(v, m));
    let probs = burn::tensor::activation::softmax(q.matmul(k.swap_dims(2, 3)) * scale, 3);
    let a = probs.matmul(v).swap_dims(1, 2).reshape([b, n, d]);
    match layout {
        HeadLayout::TokenMajor => a,
        HeadLayout::ChannelMajor => a.swap_dims(1, 2),
    }
}

/// Queries per block: the block's scores (`QUERY_BLOCK x keys`) stay in L2.
const QUERY_BLOCK: usize = 64;

/// The host path of [`multi_head_attention`] on contiguous buffers.
fn host_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    [b, heads, n, m, hd]: [usize; 5],
    scale: f32,
    layout: HeadLayout,
) {
    let d = heads * hd;
    // (offset of head h of batch item bi, token stride, feature stride) for `tokens` tokens.
    let view = |bi: usize, h: usize, tokens: usize| match layout {
        HeadLayout::TokenMajor => (bi * tokens * d + h * hd, d as isize, 1isize),
        HeadLayout::ChannelMajor => (bi * d * tokens + h * hd * tokens, 1, tokens as isize),
    };
    #[cfg(target_arch = "x86_64")]
    if crate::quant::kernels::has_avx2() && hd.is_multiple_of(8) {
        let views = |tokens: usize| {
            move |bh: usize| {
                let (o, t, f) = view(bh / heads, bh % heads, tokens);
                (o, t as usize, f as usize)
            }
        };
        let sizes = Sizes { heads: b * heads, n, m, hd };
        avx2::attention(q, k, v, out, &sizes, views(n), views(m), scale);
        return;
    }
    let blocks = n.div_ceil(QUERY_BLOCK);
    let units = b * heads * blocks;
    let dst = SharedMut::new(out);
    let work = |unit: usize| {
        SCORES.with_borrow_mut(|scores| {
            let (bh, blk) = (unit / blocks, unit % blocks);
            let (bi, h) = (bh / heads, bh % heads);
            let (i0, i1) = (blk * QUERY_BLOCK, ((blk + 1) * QUERY_BLOCK).min(n));
            let rows = i1 - i0;
            scores.resize(rows * m, 0.0);
            let (qo, qt, qf) = view(bi, h, n);
            let (ko, kt, kf) = view(bi, h, m);
            // SAFETY: the operands' offsets and strides stay inside q, k, v and this
            // unit's queries of the output, which no other thread writes.
            unsafe {
                // scores[i, j] = scale * Σ_f q[i0 + i, f] k[j, f]
                gemm::gemm(
                    rows,
                    m,
                    hd,
                    scores.as_mut_ptr(),
                    1,
                    m as isize,
                    false,
                    q.as_ptr().add(qo + i0 * qt as usize),
                    qf,
                    qt,
                    k.as_ptr().add(ko),
                    kt,
                    kf,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            for row in scores.chunks_exact_mut(m) {
                super::softmax_row(row);
            }
            // SAFETY: as above.
            unsafe {
                // out[i0 + i, f] = Σ_j scores[i, j] v[j, f]
                gemm::gemm(
                    rows,
                    hd,
                    m,
                    dst.at(qo + i0 * qt as usize),
                    qf,
                    qt,
                    false,
                    scores.as_ptr(),
                    1,
                    m as isize,
                    v.as_ptr().add(ko),
                    kf,
                    kt,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        })
    };
    crate::quant::kernels::for_each_unit(b * heads * n * m * hd >= 1 << 16, units, &work);
}

/// The extents of one attention call: batch items times heads, queries, keys, head size.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Sizes {
    heads: usize,
    n: usize,
    m: usize,
    hd: usize,
}

/// Attention written for AVX2: keys and values rearranged once per head (keys in tiles of 16,
/// values token-major), then per block of queries a register-tiled q·k, the soft-max, and a
/// register-tiled p·v, both going through the keys in chunks that stay in L1. Head sizes that
/// are multiples of 8.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::Sizes;
    use crate::quant::kernels::{SharedMut, for_each_unit};

    /// Queries per unit of work.
    const QB: usize = 32;
    /// Keys per chunk (a multiple of 16).
    const KC: usize = 128;

    /// `out = softmax(q·kᵀ · scale)·v` for every head; `qv(h)` and `kv(h)` give head h's
    /// (offset, token stride, feature stride) in q and out, and in k and v.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attention(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        out: &mut [f32],
        s: &Sizes,
        qv: impl Fn(usize) -> (usize, usize, usize) + Sync,
        kv: impl Fn(usize) -> (usize, usize, usize) + Sync,
        scale: f32,
    ) {
        let &Sizes { heads, n, m, hd } = s;
        // Keys padded to a multiple of 16 (zeros), so that q·k runs in whole tiles.
        let m16 = m.next_multiple_of(16);
        let per_head = hd * m16 + m * hd;
        let mut prep = vec![0f32; heads * per_head];
        let prep_ptr = SharedMut::new(&mut prep);
        for_each_unit(heads * per_head >= 1 << 14, heads, &|h| {
            // SAFETY: head h's part of `prep` belongs to this unit alone.
            let dst = unsafe { prep_ptr.slice(h * per_head, per_head) };
            let (kt, vt) = dst.split_at_mut(hd * m16);
            let (o, t, f) = kv(h);
            // kt in tiles of 16 keys: [m16 / 16][hd][16], one tile's features contiguous.
            for fi in 0..hd {
                for j in 0..m {
                    kt[(j / 16 * hd + fi) * 16 + j % 16] = k[o + j * t + fi * f];
                    vt[j * hd + fi] = v[o + j * t + fi * f];
                }
            }
        });
        let blocks = n.div_ceil(QB);
        let dst = SharedMut::new(out);
        let work = |unit: usize| {
            let (h, blk) = (unit / blocks, unit % blocks);
            let (i0, rows) = (blk * QB, QB.min(n - blk * QB));
            let (kt, vt) = prep[h * per_head..(h + 1) * per_head].split_at(hd * m16);
            let (qo, qt, qf) = qv(h);
            super::SCORES.with_borrow_mut(|scratch| {
                // Scores [rows][m16], then the block's queries and outputs ([rows][hd] each).
                scratch.resize(rows * m16 + 2 * rows * hd, 0.0);
                let (scores, rest) = scratch.split_at_mut(rows * m16);
                let (qs, acc) = rest.split_at_mut(rows * hd);
                for r in 0..rows {
                    for fi in 0..hd {
                        qs[r * hd + fi] = q[qo + (i0 + r) * qt + fi * qf];
                    }
                }
                for j0 in (0..m16).step_by(KC) {
                    let j1 = (j0 + KC).min(m16);
                    let mut i = 0;
                    while i < rows {
                        let nq = (rows - i).min(4);
                        let (qp, kp) = (qs[i * hd..].as_ptr(), kt[j0 * hd..].as_ptr());
                        let sp = scores[i * m16 + j0..].as_mut_ptr();
                        let args = (qp, kp, hd, j1 - j0, m16, scale, sp);
                        // SAFETY: AVX2/FMA checked by the caller; qs holds rows i..i+nq,
                        // kt's tiles j0..j1, scores [rows][m16].
                        unsafe {
                            match nq {
                                4 => qk::<4>(args),
                                3 => qk::<3>(args),
                                2 => qk::<2>(args),
                                _ => qk::<1>(args),
                            }
                        }
                        i += nq;
                    }
                }
                for row in scores.chunks_exact_mut(m16) {
                    crate::layers::softmax_row(&mut row[..m]);
                }
                acc.fill(0.0);
                for j0 in (0..m).step_by(KC) {
                    let j1 = (j0 + KC).min(m);
                    let mut i = 0;
                    while i < rows {
                        let nq = (rows - i).min(3);
                        let mut f0 = 0;
                        while f0 < hd {
                            let nv = ((hd - f0) / 8).min(4);
                            let sp = scores[i * m16 + j0..].as_ptr();
                            let vp = vt[j0 * hd + f0..].as_ptr();
                            let ap = acc[i * hd + f0..].as_mut_ptr();
                            let args = (sp, m16, vp, hd, j1 - j0, ap);
                            // SAFETY: as above; vt is [m][hd], acc [rows][hd].
                            unsafe {
                                macro_rules! pv_for {
                                    ($($q:literal, $v:literal);*) => {
                                        match (nq, nv) {
                                            $(($q, $v) => pv::<$q, $v>(args),)*
                                            _ => unreachable!(),
                                        }
                                    };
                                }
                                pv_for!(3, 4; 3, 3; 3, 2; 3, 1; 2, 4; 2, 3; 2, 2; 2, 1; 1, 4; 1, 3;
                                    1, 2; 1, 1);
                            }
                            f0 += nv * 8;
                        }
                        i += nq;
                    }
                }
                for r in 0..rows {
                    for fi in 0..hd {
                        // SAFETY: query i0+r's output features belong to this unit.
                        unsafe { *dst.at(qo + (i0 + r) * qt + fi * qf) = acc[r * hd + fi] };
                    }
                }
            });
        };
        for_each_unit(heads * n * m * hd >= 1 << 16, heads * blocks, &work);
    }

    /// Scores of NQ queries (`q` `[NQ][hd]`) against `keys` keys (`kt`: tiles `[hd][16]`):
    /// `s[qi][j] = scale * Σ_f q[qi][f] k[j][f]`, rows of `s` `stride` apart.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn qk<const NQ: usize>(
        (q, kt, hd, keys, stride, scale, s): (
            *const f32,
            *const f32,
            usize,
            usize,
            usize,
            f32,
            *mut f32,
        ),
    ) {
        // SAFETY: the caller guarantees the extents.
        unsafe {
            let sc = _mm256_set1_ps(scale);
            for j0 in (0..keys).step_by(16) {
                let tile = kt.add(j0 * hd);
                let mut acc = [[_mm256_setzero_ps(); 2]; NQ];
                for f in 0..hd {
                    let k0 = _mm256_loadu_ps(tile.add(f * 16));
                    let k1 = _mm256_loadu_ps(tile.add(f * 16 + 8));
                    for (qi, acc) in acc.iter_mut().enumerate() {
                        let x = _mm256_broadcast_ss(&*q.add(qi * hd + f));
                        acc[0] = _mm256_fmadd_ps(x, k0, acc[0]);
                        acc[1] = _mm256_fmadd_ps(x, k1, acc[1]);
                    }
                }
                for (qi, acc) in acc.iter().enumerate() {
                    _mm256_storeu_ps(s.add(qi * stride + j0), _mm256_mul_ps(acc[0], sc));
                    _mm256_storeu_ps(s.add(qi * stride + j0 + 8), _mm256_mul_ps(acc[1], sc));
                }
            }
        }
    }

    /// `acc[qi][0..8 NV] += Σ_j p[qi][j] vt[j][0..8 NV]` over `keys` keys, for NQ rows of
    /// probabilities (`ps` apart) and of `acc` (`hd` apart).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pv<const NQ: usize, const NV: usize>(
        (p, ps, vt, hd, keys, out): (*const f32, usize, *const f32, usize, usize, *mut f32),
    ) {
        // SAFETY: the caller guarantees the extents.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); NV]; NQ];
            for (qi, acc) in acc.iter_mut().enumerate() {
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_loadu_ps(out.add(qi * hd + c * 8));
                }
            }
            for j in 0..keys {
                // NQ broadcasts, then one value vector at a time: 3 x 4 accumulators, three
                // probabilities and one vector fit the sixteen registers.
                let x: [__m256; NQ] =
                    std::array::from_fn(|qi| _mm256_broadcast_ss(&*p.add(qi * ps + j)));
                for c in 0..NV {
                    let vv = _mm256_loadu_ps(vt.add(j * hd + c * 8));
                    for (a, &x) in acc.iter_mut().zip(&x) {
                        a[c] = _mm256_fmadd_ps(x, vv, a[c]);
                    }
                }
            }
            for (qi, acc) in acc.iter().enumerate() {
                for (c, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(out.add(qi * hd + c * 8), *a);
                }
            }
        }
    }
}

thread_local! {
    /// Per thread: one block's scores.
    static SCORES: std::cell::RefCell<Vec<f32>> = Default::default();
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    /// The same attention written out with f64 sums.
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        [b, heads, n, m, hd]: [usize; 5],
        scale: f32,
    ) -> Vec<f32> {
        // Token-major layout.
        let d = heads * hd;
        let mut out = vec![0f32; b * n * d];
        for bi in 0..b {
            for h in 0..heads {
                for i in 0..n {
                    let s: Vec<f64> = (0..m)
                        .map(|j| {
                            (0..hd)
                                .map(|f| {
                                    q[(bi * n + i) * d + h * hd + f] as f64
                                        * k[(bi * m + j) * d + h * hd + f] as f64
                                })
                                .sum::<f64>()
                                * scale as f64
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for f in 0..hd {
                        let a: f64 =
                            (0..m).map(|j| e[j] * v[(bi * m + j) * d + h * hd + f] as f64).sum();
                        out[(bi * n + i) * d + h * hd + f] = (a / sum) as f32;
                    }
                }
            }
        }
        out
    }

    fn transpose(x: &[f32], b: usize, rows: usize, cols: usize) -> Vec<f32> {
        let mut y = vec![0f32; x.len()];
        for bi in 0..b {
            for r in 0..rows {
                for c in 0..cols {
                    y[bi * rows * cols + c * rows + r] = x[bi * rows * cols + r * cols + c];
                }
            }
        }
        y
    }

    #[test]
    fn both_layouts_and_both_paths_match_the_formula() {
        // 70 queries (partial blocks), 45 keys, 3 heads of 5 (the GEMM path) or of 40 (the
        // AVX2 kernels where the CPU has them: a partial feature chunk, padded keys).
        for hd in [5, 40] {
            check_attention(hd);
        }
    }

    fn check_attention(hd: usize) {
        let (b, heads, n, m) = (2, 3, 70, 45);
        let d = heads * hd;
        let val = |i: usize, s: usize| ((i * s) % 97) as f32 / 97.0 * 2.0 - 1.0;
        let q: Vec<f32> = (0..b * n * d).map(|i| val(i, 31)).collect();
        let k: Vec<f32> = (0..b * m * d).map(|i| val(i, 17)).collect();
        let v: Vec<f32> = (0..b * m * d).map(|i| val(i, 7)).collect();
        let scale = 0.7;
        let want = reference(&q, &k, &v, [b, heads, n, m, hd], scale);
        let flex = crate::parse_device("flex").unwrap();
        let t = |x: &[f32], dims: [usize; 3]| {
            Tensor::<3>::from_data(TensorData::new(x.to_vec(), dims), &flex)
        };
        let check = |got: Vec<f32>, what: &str| {
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{what}: {g} vs {w}");
            }
        };
        let run = |layout| {
            let (qs, ks, vs, qd, kd) = match layout {
                HeadLayout::TokenMajor => (q.clone(), k.clone(), v.clone(), [b, n, d], [b, m, d]),
                HeadLayout::ChannelMajor => (
                    transpose(&q, b, n, d),
                    transpose(&k, b, m, d),
                    transpose(&v, b, m, d),
                    [b, d, n],
                    [b, d, m],
                ),
            };
            let args = || (t(&qs, qd), t(&ks, kd), t(&vs, kd));
            let (a, bb, c) = args();
            let host = super::super::to_host(multi_head_attention(a, bb, c, heads, scale, layout));
            let (a, bb, c) = args();
            let tensors = super::super::to_host(tensor_attention(a, bb, c, heads, scale, layout));
            let undo = |x: Vec<f32>| match layout {
                HeadLayout::TokenMajor => x,
                HeadLayout::ChannelMajor => transpose(&x, b, d, n),
            };
            (undo(host), undo(tensors))
        };
        for layout in [HeadLayout::TokenMajor, HeadLayout::ChannelMajor] {
            let (host, tensors) = run(layout);
            check(host, &format!("{layout:?} host, head size {hd}"));
            check(tensors, &format!("{layout:?} tensors, head size {hd}"));
        }
    }
}
