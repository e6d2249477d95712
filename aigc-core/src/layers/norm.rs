//! Root-mean-square layer normalisation.

use burn::tensor::Tensor;

/// `x / sqrt(mean(x^2) + eps) * weight`, over the last dimension, in f32.
///
/// Gemma's checkpoints store `weight - 1` (the layer multiplies by `1 + weight`); such weights
/// are shifted by one when loaded, so one forward serves every family.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor<1>,
    eps: f64,
}

impl RmsNorm {
    /// A norm with the given scale (already including any `+1` offset) and epsilon.
    pub fn new(weight: Tensor<1>, eps: f64) -> Self {
        Self { weight, eps }
    }

    /// Normalises the last dimension of `x`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let variance = x.clone().square().mean_dim(D - 1);
        let x = x * (variance + self.eps).sqrt().recip();
        x * self.weight.clone().unsqueeze::<D>()
    }
}
