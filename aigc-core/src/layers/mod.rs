//! Layers that more than one model uses: linear projections, RMS normalisation, rotary
//! position embeddings, attention over a preallocated KV cache (with sliding windows), gated
//! MLPs, token embeddings, and the 2-D convolutions and group norms of UNets and VAEs.
//!
//! They are plain structs over burn tensors, built from weights by a
//! [`WeightLoader`](crate::weights::WeightLoader) and run on whatever device those tensors
//! live on.

use burn::tensor::{Device, Tensor, TensorData};

mod attention;
mod conv;
mod conv1d;
mod conv3x3;
mod direct1d;
mod embedding;
mod linear;
mod mha;
mod mlp;
mod norm;
mod resample;
mod rope;

pub use attention::{KvCache, LayerCache, attention};

/// A tensor's values as f32 on the host (CPU devices' fast paths).
pub(crate) fn to_host<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    let x = if x.device() == Device::ndarray() {
        // burn-ndarray copies a shared or strided array value by value through a dynamic-rank
        // iterator (about ten times slower than a memcpy); the result of an elementwise op is
        // a fresh contiguous array, which moves out without a copy.
        x.mul_scalar(1.0)
    } else {
        x
    };
    x.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 activations")
}

/// `f` on a tensor's values without taking or copying it where it lives in a flex tensor's
/// contiguous f32 storage (the CPU host paths read shared activations this way); otherwise
/// on a host copy.
pub(crate) fn with_host<const D: usize, R>(x: &Tensor<D>, f: impl FnOnce(&[f32]) -> R) -> R {
    #[cfg(feature = "flex")]
    if let Ok(t) = x.clone().try_into_primitive::<burn::backend::Flex>()
        && let Some(values) = t.as_slice::<f32>()
    {
        return f(values);
    }
    f(&to_host(x.clone()))
}

/// Host values back into a tensor of shape `dims` on `device`.
pub(crate) fn from_host<const D: usize>(
    v: Vec<f32>,
    dims: [usize; D],
    device: &Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, dims), device)
}

/// `x * sigmoid(x)`; on a CPU device on the host, with a vectorised exponential, across the
/// kernel threads (burn's calls libm per element on one thread).
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !is_cpu(&x.device()) {
        return burn::tensor::activation::silu(x);
    }
    let (dims, device) = (x.dims(), x.device());
    let mut v = to_host(x);
    crate::quant::kernels::par_parts(&mut v, 1 << 15, &|_, part| silu_slice(part));
    from_host(v, dims, &device)
}

/// GELU with the exact erf (`x Φ(x)`); on a CPU device on the host, with a vectorised erfc fit
/// (relative error below 1.2e-7), across the kernel threads (burn's calls libm per element on
/// one thread).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !is_cpu(&x.device()) {
        return burn::tensor::activation::gelu(x);
    }
    let (dims, device) = (x.dims(), x.device());
    let mut v = to_host(x);
    crate::quant::kernels::par_parts(&mut v, 1 << 15, &|_, part| norm::gelu_row(part));
    from_host(v, dims, &device)
}

/// Soft-max over the last dimension; on a CPU device on the host with a vectorised
/// exponential, rows split across the kernel threads.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !is_cpu(&x.device()) {
        return burn::tensor::activation::softmax(x, D - 1);
    }
    let (dims, device) = (x.dims(), x.device());
    let n = dims[D - 1].max(1);
    let mut v = to_host(x);
    let rows = v.len() / n;
    let ptr = crate::quant::kernels::SharedMut::new(&mut v);
    let work = |t: usize, threads: usize| {
        for r in crate::quant::kernels::share_rows(rows, t, threads) {
            // SAFETY: row `r` belongs to this thread alone.
            let row = unsafe { ptr.slice(r * n, n) };
            softmax_row(row);
        }
    };
    crate::quant::kernels::run_parallel(v.len() >= 1 << 15, &work);
    from_host(v, dims, &device)
}

/// One row soft-maxed in place, compiled for AVX2 where the CPU has it.
fn softmax_row(v: &mut [f32]) {
    #[inline(always)]
    fn generic(v: &mut [f32]) {
        // Eight running maxima and sums, so that both loops vectorise.
        let mut lanes = [f32::NEG_INFINITY; 8];
        let mut chunks = v.chunks_exact(8);
        for c in &mut chunks {
            for l in 0..8 {
                lanes[l] = lanes[l].max(c[l]);
            }
        }
        let max = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let max = lanes.iter().fold(max, |m, &x| m.max(x));
        let mut sums = [0f32; 8];
        let mut chunks = v.chunks_exact_mut(8);
        for c in &mut chunks {
            for l in 0..8 {
                c[l] = attention::exp(c[l] - max);
                sums[l] += c[l];
            }
        }
        let mut sum: f32 = sums.iter().sum();
        for x in chunks.into_remainder() {
            *x = attention::exp(*x - max);
            sum += *x;
        }
        let inv = 1.0 / sum;
        v.iter_mut().for_each(|x| *x *= inv);
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn avx2(v: &mut [f32]) {
        use std::arch::x86_64::*;
        let tail_max =
            v.chunks_exact(8).remainder().iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let mut chunks = v.chunks_exact_mut(8);
        let mut mx = _mm256_set1_ps(tail_max);
        for c in &mut chunks {
            // SAFETY: c holds eight values.
            mx = _mm256_max_ps(mx, unsafe { _mm256_loadu_ps(c.as_ptr()) });
        }
        let mut lanes = [0f32; 8];
        // SAFETY: lanes holds eight values.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), mx) };
        let max = lanes.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let (vmax, mut vsum) = (_mm256_set1_ps(max), _mm256_setzero_ps());
        let mut chunks = v.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: c holds eight values.
            unsafe {
                let e = attention::exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), vmax));
                _mm256_storeu_ps(c.as_mut_ptr(), e);
                vsum = _mm256_add_ps(vsum, e);
            }
        }
        let mut sum = 0f32;
        for x in chunks.into_remainder() {
            *x = attention::exp(*x - max);
            sum += *x;
        }
        // SAFETY: lanes holds eight values.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), vsum) };
        let inv = 1.0 / (sum + lanes.iter().sum::<f32>());
        v.iter_mut().for_each(|x| *x *= inv);
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::kernels::has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        unsafe { avx2(v) };
        return;
    }
    generic(v)
}

/// [`silu`] over host values, compiled for AVX2 where the CPU has it.
fn silu_slice(v: &mut [f32]) {
    #[inline(always)]
    fn generic(v: &mut [f32]) {
        v.iter_mut().for_each(|x| *x /= 1.0 + attention::exp(-*x));
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn avx2(v: &mut [f32]) {
        generic(v)
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::kernels::has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        unsafe { avx2(v) };
        return;
    }
    generic(v)
}

/// WaveNet's gate, `tanh(a) * sigmoid(b)` where `a` and `b` are the first and second halves
/// of `x`'s channels (`[batch, 2 h, time]` to `[batch, h, time]`); on a CPU device on the host,
/// with a vectorised exponential, across the kernel threads.
pub fn gated_tanh(x: Tensor<3>) -> Tensor<3> {
    let [b, c, t] = x.dims();
    let h = c / 2;
    if !is_cpu(&x.device()) || c % 2 != 0 {
        let (a, g) = (x.clone().narrow(1, 0, h), x.narrow(1, h, c - h));
        return a.tanh() * burn::tensor::activation::sigmoid(g);
    }
    let device = x.device();
    let mut y = vec![0f32; b * h * t];
    with_host(&x, |xs| {
        let dst = crate::quant::kernels::SharedMut::new(&mut y);
        crate::quant::kernels::for_each_unit(b * h * t >= 1 << 14, b * h, &|row| {
            let (bi, ch) = (row / h, row % h);
            let a = &xs[(bi * c + ch) * t..][..t];
            let g = &xs[(bi * c + h + ch) * t..][..t];
            // SAFETY: output row `row` belongs to this unit alone.
            gate_row(a, g, unsafe { dst.slice(row * t, t) });
        });
    });
    from_host(y, [b, h, t], &device)
}

/// `out = tanh(a) * sigmoid(g)`, with `tanh(a) = 1 - 2 / (1 + e^(2a))`.
fn gate_row(a: &[f32], g: &[f32], out: &mut [f32]) {
    #[inline(always)]
    fn generic(a: &[f32], g: &[f32], out: &mut [f32]) {
        for ((o, &a), &g) in out.iter_mut().zip(a).zip(g) {
            let tanh = 1.0 - 2.0 / (1.0 + attention::exp(2.0 * a));
            *o = tanh / (1.0 + attention::exp(-g));
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn avx2(a: &[f32], g: &[f32], out: &mut [f32]) {
        generic(a, g, out)
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::kernels::has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        unsafe { avx2(a, g, out) };
        return;
    }
    generic(a, g, out)
}

/// A weight vector's values on the host, when it lives on a CPU device.
pub(crate) fn host_copy(t: &Tensor<1>) -> Option<Vec<f32>> {
    is_cpu(&t.device()).then(|| to_host(t.clone()))
}
pub use conv::{Conv2d, GroupNorm};
pub use conv1d::{Conv1d, ConvTranspose1d, LeakyRelu};
pub use embedding::Embedding;
pub use linear::{QLinear, forward_group, is_cpu};
pub use mha::{HeadLayout, cached_attention, multi_head_attention};
pub use mlp::{Activation, GatedMlp};
pub use norm::{LayerNorm, RmsNorm};
pub use resample::{avg_pool2x2, cat_channels, upsample_nearest2x};
pub use rope::{RopeMode, RopeScaling, RotaryEmbedding, inverse_frequencies};

#[cfg(test)]
mod silu_tests {
    #[test]
    fn gelu_matches_burns() {
        let d = crate::parse_device("flex").unwrap();
        let xs: Vec<f32> = (-40000..40000).map(|i| i as f32 * 3e-4).collect();
        let x = burn::tensor::Tensor::<1>::from_data(
            burn::tensor::TensorData::new(xs.clone(), [xs.len()]),
            &d,
        );
        let got = super::to_host(super::gelu(x.clone()));
        let want = super::to_host(burn::tensor::activation::gelu(x));
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6 * w.abs().max(1.0), "{g} vs {w}");
        }
    }

    #[test]
    fn gated_tanh_matches_the_formula() {
        use burn::tensor::{Tensor, TensorData};
        let d = crate::parse_device("flex").unwrap();
        let (b, h, t) = (2, 3, 700);
        let xs: Vec<f32> =
            (0..b * 2 * h * t).map(|i| ((i * 37) % 1001) as f32 * 0.02 - 10.0).collect();
        let x = Tensor::<3>::from_data(TensorData::new(xs, [b, 2 * h, t]), &d);
        let got = super::to_host(super::gated_tanh(x.clone()));
        let (a, g) = (x.clone().narrow(1, 0, h), x.narrow(1, h, h));
        let want = super::to_host(a.tanh() * burn::tensor::activation::sigmoid(g));
        assert_eq!(got.len(), want.len());
        for (x, y) in got.iter().zip(&want) {
            assert!((x - y).abs() < 2e-7, "{x} vs {y}");
        }
    }

    #[test]
    fn silu_matches_the_formula() {
        let d = crate::parse_device("flex").unwrap();
        let xs: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.031).collect();
        let x = burn::tensor::Tensor::<1>::from_data(
            burn::tensor::TensorData::new(xs.clone(), [xs.len()]),
            &d,
        );
        let got = super::to_host(super::silu(x));
        for (g, x) in got.iter().zip(&xs) {
            let want = (*x as f64) / (1.0 + (-*x as f64).exp());
            assert!((*g as f64 - want).abs() <= 1e-6 * want.abs().max(1.0), "{x}: {g} vs {want}");
        }
    }

    #[test]
    fn softmax_rows_match_the_formula() {
        let d = crate::parse_device("flex").unwrap();
        let xs: Vec<f32> = (0..3 * 50).map(|i| ((i * 37) % 23) as f32 * 0.7 - 8.0).collect();
        let x = burn::tensor::Tensor::<2>::from_data(
            burn::tensor::TensorData::new(xs.clone(), [3, 50]),
            &d,
        );
        let got = super::to_host(super::softmax_last(x));
        for (row, want_row) in got.chunks(50).zip(xs.chunks(50)) {
            let max = want_row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let sum: f64 = want_row.iter().map(|&v| (v as f64 - max).exp()).sum();
            for (g, &x) in row.iter().zip(want_row) {
                let want = (x as f64 - max).exp() / sum;
                assert!((*g as f64 - want).abs() < 1e-6, "{g} vs {want}");
            }
        }
    }
}
