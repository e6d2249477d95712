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

    /// The activation of one value, with the same operations as [`apply`](Self::apply).
    #[inline]
    pub fn apply_scalar(self, x: f32) -> f32 {
        match self {
            Activation::Silu => x * (1.0 / (1.0 + (-x).exp())),
            Activation::GeluTanh => {
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                let inner = (x + x * x * x * 0.044715) * SQRT_2_OVER_PI;
                x * (inner.tanh() + 1.0) * 0.5
            }
        }
    }
}

thread_local! {
    /// The gate and up projections of the CPU path (reused: no allocation per token).
    static MLP_SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = Default::default();
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
        if let (Some(g), Some(u), Some(down)) =
            (self.gate.host_matrix(), self.up.host_matrix(), self.down.host_matrix())
        {
            // CPU: the whole block on the host, one tensor in and one out.
            let ([b, s, _], device) = (x.dims(), x.device());
            let n = b * s;
            let xs = super::to_host(x);
            let mut out = vec![0f32; n * down.rows()];
            MLP_SCRATCH.with_borrow_mut(|(gate, up)| {
                gate.resize(n * g.rows(), 0.0);
                up.resize(n * u.rows(), 0.0);
                if n == 1 {
                    crate::quant::kernels::matvec_many(
                        &[g, u],
                        &xs,
                        &mut [&mut gate[..], &mut up[..]],
                    );
                } else {
                    super::linear::host_matmul(g, &xs, n, gate);
                    super::linear::host_matmul(u, &xs, n, up);
                }
                let act = self.activation;
                let up = &up[..];
                crate::quant::kernels::par_parts(gate, 1 << 16, &|at, part| {
                    let up = &up[at..at + part.len()];
                    part.iter_mut().zip(up).for_each(|(g, &u)| *g = act.apply_scalar(*g) * u);
                });
                super::linear::host_matmul(down, gate, n, &mut out);
            });
            return super::from_host(out, [b, s, down.rows()], &device);
        }
        let [gate, up]: [Tensor<3>; 2] =
            super::forward_group(&[&self.gate, &self.up], x).try_into().expect("two outputs");
        self.down.forward(self.activation.apply(gate) * up)
    }
}
