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
    let ([b, q1, q2], [_, k1, k2]) = (q.dims(), k.dims());
    let (n, m, d) = match layout {
        HeadLayout::TokenMajor => (q1, k1, q2),
        HeadLayout::ChannelMajor => (q2, k2, q1),
    };
    let hd = d / heads;
    if super::is_cpu(&q.device()) && hd * heads == d && v.dims() == k.dims() {
        let device = q.device();
        let dims = q.dims();
        let (q, k, v) = (super::to_host(q), super::to_host(k), super::to_host(v));
        let mut out = vec![0f32; q.len()];
        host_attention(&q, &k, &v, &mut out, [b, heads, n, m, hd], scale, layout);
        return super::from_host(out, dims, &device);
    }
    tensor_attention(q, k, v, heads, scale, layout)
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
    let ([b, q1, q2], [_, k1, k2]) = (q.dims(), k.dims());
    let (n, m, d) = match layout {
        HeadLayout::TokenMajor => (q1, k1, q2),
        HeadLayout::ChannelMajor => (q2, k2, q1),
    };
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
        // 70 queries (two blocks, the second partial), 45 keys, 3 heads of 5.
        let (b, heads, n, m, hd) = (2, 3, 70, 45, 5);
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
            check(host, &format!("{layout:?} host"));
            check(tensors, &format!("{layout:?} tensors"));
        }
    }
}
