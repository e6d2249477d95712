//! Root-mean-square and standard layer normalisation.

use burn::tensor::Tensor;

/// `x / sqrt(mean(x^2) + eps) * weight`, over the last dimension, in f32.
///
/// Gemma's checkpoints store `weight - 1` (the layer multiplies by `1 + weight`); such weights
/// are shifted by one when loaded, so one forward serves every family.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor<1>,
    eps: f64,
    /// CPU devices: the weight on the host, for a loop without intermediate tensors.
    host: Option<Vec<f32>>,
}

impl RmsNorm {
    /// A norm with the given scale (already including any `+1` offset) and epsilon.
    pub fn new(weight: Tensor<1>, eps: f64) -> Self {
        let host = super::host_copy(&weight);
        Self { weight, eps, host }
    }

    /// Normalises the last dimension of `x`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if let Some(w) = &self.host
            && x.dims()[D - 1] == w.len()
        {
            let (dims, device) = (x.dims(), x.device());
            let mut v = super::to_host(x);
            let eps = self.eps as f32;
            for row in v.chunks_exact_mut(w.len()) {
                let mut acc = [0f32; 8];
                for c in row.chunks(8) {
                    for (a, &x) in acc.iter_mut().zip(c) {
                        *a += x * x;
                    }
                }
                let r = 1.0 / (acc.iter().sum::<f32>() / w.len() as f32 + eps).sqrt();
                row.iter_mut().zip(w).for_each(|(x, &w)| *x = *x * r * w);
            }
            return super::from_host(v, dims, &device);
        }
        let variance = x.clone().square().mean_dim(D - 1);
        let x = x * (variance + self.eps).sqrt().recip();
        x * self.weight.clone().unsqueeze::<D>()
    }
}

/// `(x - mean) / sqrt(var + eps) * weight + bias` over the last dimension (biased variance),
/// as `torch.nn.LayerNorm` computes it in f32.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor<1>,
    bias: Tensor<1>,
    eps: f64,
    /// CPU devices: weight and bias on the host.
    host: Option<(Vec<f32>, Vec<f32>)>,
}

impl LayerNorm {
    /// A norm from its tensors (`[dim]` each).
    pub fn new(weight: Tensor<1>, bias: Tensor<1>, eps: f64) -> Self {
        let host = super::host_copy(&weight).zip(super::host_copy(&bias));
        Self { weight, bias, eps, host }
    }

    /// `{prefix}.weight` and `{prefix}.bias` (`[dim]`) from `w`.
    pub fn load(w: &crate::weights::WeightLoader<'_>, prefix: &str, dim: usize, eps: f64) -> Self {
        Self::new(
            w.tensor(&format!("{prefix}.weight"), [dim]),
            w.tensor(&format!("{prefix}.bias"), [dim]),
            eps,
        )
    }

    /// Normalises the last dimension of `x`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mean = x.clone().mean_dim(D - 1);
        let centered = x - mean;
        let var = centered.clone().square().mean_dim(D - 1);
        centered * (var + self.eps).sqrt().recip() * self.weight.clone().unsqueeze::<D>()
            + self.bias.clone().unsqueeze::<D>()
    }

    /// Normalises the channels of `x` (`[batch, channels, time]`) at each position, as
    /// convolutional models that keep channels first do (VITS), then applies the exact GELU
    /// if `gelu`. On a CPU device on the host, a row at a time, without the two transposes
    /// and the dozen tensor operations of the general path.
    pub fn forward_channels(&self, x: Tensor<3>, gelu: bool) -> Tensor<3> {
        let [b, c, t] = x.dims();
        let Some((w, bias)) = self.host.as_ref().filter(|(w, _)| w.len() == c) else {
            let y = self.forward(x.swap_dims(1, 2)).swap_dims(1, 2);
            return if gelu { burn::tensor::activation::gelu(y) } else { y };
        };
        let device = x.device();
        let mut v = super::to_host(x);
        let (mut mean, mut var) = (vec![0f64; t], vec![0f64; t]);
        for item in v.chunks_exact_mut(c * t) {
            // Statistics per position over the channel rows, in f64.
            mean.fill(0.0);
            var.fill(0.0);
            for row in item.chunks_exact(t) {
                mean.iter_mut().zip(row).for_each(|(m, &x)| *m += x as f64);
            }
            mean.iter_mut().for_each(|m| *m /= c as f64);
            for row in item.chunks_exact(t) {
                for ((s, &m), &x) in var.iter_mut().zip(&mean).zip(row) {
                    *s += (x as f64 - m) * (x as f64 - m);
                }
            }
            let rstd: Vec<f32> =
                var.iter().map(|s| (1.0 / (s / c as f64 + self.eps).sqrt()) as f32).collect();
            let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
            for ((row, &wc), &bc) in item.chunks_exact_mut(t).zip(w).zip(bias) {
                for ((x, &m), &r) in row.iter_mut().zip(&mean).zip(&rstd) {
                    *x = (*x - m) * r * wc + bc;
                }
                if gelu {
                    gelu_row(row);
                }
            }
        }
        super::from_host(v, [b, c, t], &device)
    }
}

/// `x Φ(x)` with Φ from `erfc` (Numerical Recipes' Chebyshev fit, relative error below
/// 1.2e-7), with the kernels' exponential: no libm call, so that the loop vectorises. The
/// coefficients are the published ones, digits beyond f32 included.
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn gelu_erf(x: f32) -> f32 {
    let z = (x * std::f32::consts::FRAC_1_SQRT_2).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut p = 0.170_872_77f32;
    for c in [-0.822_152_23, 1.488_515_87, -1.135_203_98, 0.278_868_07, -0.186_288_06] {
        p = p * t + c;
    }
    for c in [0.096_784_18, 0.374_091_96, 1.000_023_68, -1.265_512_23] {
        p = p * t + c;
    }
    let erfc = t * super::attention::exp(p - z * z);
    let phi = if x >= 0.0 { 1.0 - 0.5 * erfc } else { 0.5 * erfc };
    x * phi
}

/// [`gelu_erf`] over a row, compiled for AVX2 where the CPU has it.
pub(super) fn gelu_row(row: &mut [f32]) {
    #[inline(always)]
    fn generic(row: &mut [f32]) {
        row.iter_mut().for_each(|x| *x = gelu_erf(*x));
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn avx2(row: &mut [f32]) {
        generic(row)
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::kernels::has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        unsafe { avx2(row) };
        return;
    }
    generic(row)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Tensor, TensorData};

    #[test]
    fn channel_norm_matches_the_transposed_layer_norm() {
        let d = crate::parse_device("flex").unwrap();
        let (b, c, t) = (2, 24, 37);
        let vals = |n: usize, s: usize| -> Vec<f32> {
            (0..n).map(|i| ((i * s) % 101) as f32 * 0.07 - 3.0).collect()
        };
        let x = Tensor::<3>::from_data(TensorData::new(vals(b * c * t, 7), [b, c, t]), &d);
        let w = Tensor::<1>::from_data(TensorData::new(vals(c, 3), [c]), &d);
        let bias = Tensor::<1>::from_data(TensorData::new(vals(c, 5), [c]), &d);
        let norm = super::LayerNorm::new(w, bias, 1e-5);
        for gelu in [false, true] {
            let want = norm.forward(x.clone().swap_dims(1, 2)).swap_dims(1, 2);
            let want = if gelu { burn::tensor::activation::gelu(want) } else { want };
            let got = norm.forward_channels(x.clone(), gelu);
            let (got, want) = (super::super::to_host(got), super::super::to_host(want));
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 2e-6 * w.abs().max(1.0), "gelu {gelu}: {g} vs {w}");
            }
        }
    }
}
