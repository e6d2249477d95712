//! Gated feed-forward blocks (SwiGLU, GeGLU).

use burn::tensor::{Tensor, activation};

use super::QLinear;

/// The activation applied to the gate projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(x)` (Llama, Mistral, Qwen).
    Silu,
    /// GELU with the tanh approximation, `gelu_pytorch_tanh` (Gemma).
    GeluTanh,
}

impl Activation {
    /// Applies the activation.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Silu => activation::silu(x),
            Activation::GeluTanh => {
                // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch computes it.
                const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
                let inner = (x.clone() + x.clone().powi_scalar(3) * 0.044715) * SQRT_2_OVER_PI;
                x * (inner.tanh() + 1.0) * 0.5
            }
        }
    }
}

/// `down(act(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
pub struct GatedMlp {
    /// The gate projection.
    pub gate: QLinear,
    /// The up projection.
    pub up: QLinear,
    /// The down projection.
    pub down: QLinear,
    /// The gate's activation.
    pub activation: Activation,
}

impl GatedMlp {
    /// Runs the block on `[batch, seq, dim]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [gate, up]: [Tensor<3>; 2] =
            super::forward_group(&[&self.gate, &self.up], x).try_into().expect("two outputs");
        self.down.forward(self.activation.apply(gate) * up)
    }
}
