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
}

impl LayerNorm {
    /// A norm from its tensors (`[dim]` each).
    pub fn new(weight: Tensor<1>, bias: Tensor<1>, eps: f64) -> Self {
        Self { weight, bias, eps }
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
}
