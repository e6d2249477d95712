//! A linear projection `y = x W^T + b` whose weight comes from a checkpoint.

use burn::tensor::{Device, Tensor};

use crate::error::Result;
use crate::weights::TensorView;

/// A linear layer loaded from a checkpoint weight of shape `[out, in]` (PyTorch and GGUF
/// layout). The weight is held on the device as `[in, out]`, ready for `x @ W`.
///
/// Quantized GGML weights are dequantized to f32 when loaded.
#[derive(Debug, Clone)]
pub struct QLinear {
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
}

impl QLinear {
    /// Builds the layer from a weight view `[out, in]` and an optional bias view `[out]`.
    pub fn from_views(
        weight: &TensorView<'_>,
        bias: Option<&TensorView<'_>>,
        device: &Device,
    ) -> Result<Self> {
        let weight = weight.to_tensor::<2>(device)?.transpose();
        let bias = bias.map(|b| b.to_tensor::<1>(device)).transpose()?;
        Ok(Self { weight, bias })
    }

    /// Builds the layer from tensors: `weight` is `[out, in]`.
    pub fn from_tensors(weight: Tensor<2>, bias: Option<Tensor<1>>) -> Self {
        Self { weight: weight.transpose(), bias }
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.dims()[1]
    }

    /// `x @ W^T + b` over the last dimension of `x` (`[batch, seq, in]` → `[batch, seq, out]`).
    ///
    /// The product runs as one 2-D matmul on the weight as stored, whatever its strides:
    /// broadcasting a 2-D weight to 3-D would make burn copy it on every call.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, d] = x.dims();
        let y = x.reshape([b * s, d]).matmul(self.weight.clone());
        let y = match &self.bias {
            Some(bias) => y + bias.clone().unsqueeze::<2>(),
            None => y,
        };
        y.reshape([b, s, self.out_features()])
    }
}
