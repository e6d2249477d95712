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
