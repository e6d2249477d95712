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
mod embedding;
mod linear;
mod mlp;
mod norm;
mod rope;

pub use attention::{KvCache, LayerCache, attention};

/// A tensor's values as f32 on the host (CPU devices' fast paths).
pub(crate) fn to_host<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 activations")
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

/// A weight vector's values on the host, when it lives on a CPU device.
pub(crate) fn host_copy(t: &Tensor<1>) -> Option<Vec<f32>> {
    is_cpu(&t.device()).then(|| to_host(t.clone()))
}
pub use conv::{Conv2d, GroupNorm};
pub use embedding::Embedding;
pub use linear::{QLinear, forward_group, is_cpu};
pub use mlp::{Activation, GatedMlp};
pub use norm::RmsNorm;
pub use rope::{RopeMode, RopeScaling, RotaryEmbedding, inverse_frequencies};

#[cfg(test)]
mod silu_tests {
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
}
