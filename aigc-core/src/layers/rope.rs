//! Rotary position embeddings (RoPE).
//!
//! Two conventions exist for which dimensions rotate together. Hugging Face checkpoints (and
//! GGUF files of every architecture but `llama`) rotate dimension `i` with `i + d/2`
//! ("rotate half", GPT-NeoX); llama.cpp's converter permutes the q/k rows of `llama` models so
//! that adjacent pairs `(2i, 2i+1)` rotate together (GPT-J). Both give the same attention
//! scores when matched to their weights. The angles are computed in f32 exactly as
//! transformers computes them, so that logits agree with it closely.

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};

/// Which dimensions of a head rotate together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeMode {
    /// Dimension `i` with `i + d/2` (GPT-NeoX, Hugging Face).
    Half,
    /// Dimensions `2i` and `2i + 1` (GPT-J, llama.cpp's `llama` GGUF files).
    Interleaved,
}

/// Frequency scaling for long-context models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Frequencies divided by `factor` (`rope_type = "linear"`).
    Linear {
        /// The divisor.
        factor: f32,
    },
    /// Llama 3.1's wavelength-dependent scaling (`rope_type = "llama3"`).
    Llama3 {
        /// The scale applied to low frequencies.
        factor: f32,
        /// Wavelengths shorter than `original / high_freq_factor` are kept.
        high_freq_factor: f32,
        /// Wavelengths longer than `original / low_freq_factor` are scaled by `factor`.
        low_freq_factor: f32,
        /// The context length the model was pre-trained with.
        original_max_position_embeddings: usize,
    },
}

/// Precomputed cosines and sines for positions `0..max_positions`.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    /// `[max_positions, head_dim / 2]`.
    cos: Tensor<2>,
    sin: Tensor<2>,
    mode: RopeMode,
    head_dim: usize,
    /// CPU devices: the same tables on the host.
    host: Option<(Vec<f32>, Vec<f32>)>,
}

/// The inverse frequencies `1 / base^(2i/d)`, in f32 as transformers computes them.
pub fn inverse_frequencies(head_dim: usize, base: f32, scaling: Option<RopeScaling>) -> Vec<f32> {
    let mut inv: Vec<f32> =
        (0..head_dim / 2).map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32)).collect();
    match scaling {
        None => {}
        Some(RopeScaling::Linear { factor }) => inv.iter_mut().for_each(|f| *f /= factor),
        Some(RopeScaling::Llama3 {
            factor,
            high_freq_factor,
            low_freq_factor,
            original_max_position_embeddings,
        }) => {
            let old = original_max_position_embeddings as f32;
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            for f in &mut inv {
                let wavelen = 2.0 * std::f32::consts::PI / *f;
                if wavelen > low_wavelen {
                    *f /= factor;
                } else if wavelen >= high_wavelen {
                    let smooth =
                        (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                    *f = (1.0 - smooth) * *f / factor + smooth * *f;
                }
            }
        }
    }
    inv
}

impl RotaryEmbedding {
    /// Tables for `max_positions` positions of heads of `head_dim` dimensions.
    pub fn new(
        head_dim: usize,
        max_positions: usize,
        base: f32,
        scaling: Option<RopeScaling>,
        mode: RopeMode,
        device: &Device,
    ) -> Result<Self> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(Error::invalid_argument(
                "head_dim",
                format!("{head_dim} is not a positive even number"),
            ));
        }
        Self::from_inverse_frequencies(
            &inverse_frequencies(head_dim, base, scaling),
            max_positions,
            mode,
            device,
        )
    }

    /// Tables from explicit inverse frequencies (`head_dim / 2` of them), for checkpoints that
    /// ship their own (GGUF `rope_freqs.weight` divides them per dimension).
    pub fn from_inverse_frequencies(
        inv: &[f32],
        max_positions: usize,
        mode: RopeMode,
        device: &Device,
    ) -> Result<Self> {
        if inv.is_empty() {
            return Err(Error::invalid_argument("inverse frequencies", "none given"));
        }
        let half = inv.len();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for pos in 0..max_positions {
            for &f in inv {
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let table = |v: &[f32]| {
            Tensor::<2>::from_data(TensorData::new(v.to_vec(), [max_positions, half]), device)
        };
        let (cos_t, sin_t) = (table(&cos), table(&sin));
        let host = super::is_cpu(device).then_some((cos, sin));
        Ok(Self { cos: cos_t, sin: sin_t, mode, head_dim: 2 * half, host })
    }

    /// Positions covered by the tables.
    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// Rotates `x` (`[batch, heads, seq, head_dim]`) whose tokens sit at positions
    /// `start..start + seq`.
    pub fn apply(&self, x: Tensor<4>, start: usize) -> Tensor<4> {
        let [b, h, n, d] = x.dims();
        debug_assert_eq!(d, self.head_dim);
        let half = d / 2;
        if let Some((cos, sin)) = &self.host
            && d == self.head_dim
            && start + n <= self.max_positions()
        {
            let device = x.device();
            let mut v = super::to_host(x);
            for (r, row) in v.chunks_exact_mut(d).enumerate() {
                let t = (start + r % n) * half;
                let (c, s) = (&cos[t..t + half], &sin[t..t + half]);
                match self.mode {
                    RopeMode::Half => {
                        let (x1, x2) = row.split_at_mut(half);
                        for i in 0..half {
                            let (a, b) = (x1[i], x2[i]);
                            x1[i] = a * c[i] - b * s[i];
                            x2[i] = b * c[i] + a * s[i];
                        }
                    }
                    RopeMode::Interleaved => {
                        for (i, p) in row.chunks_exact_mut(2).enumerate() {
                            let (a, b) = (p[0], p[1]);
                            p[0] = a * c[i] - b * s[i];
                            p[1] = a * s[i] + b * c[i];
                        }
                    }
                }
            }
            return super::from_host(v, [b, h, n, d], &device);
        }
        // [1, 1, n, half]
        let cos = self.cos.clone().narrow(0, start, n).unsqueeze::<4>();
        let sin = self.sin.clone().narrow(0, start, n).unsqueeze::<4>();
        match self.mode {
            RopeMode::Half => {
                let x1 = x.clone().narrow(3, 0, half);
                let x2 = x.narrow(3, half, half);
                let r1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
                let r2 = x2 * cos + x1 * sin;
                Tensor::cat(vec![r1, r2], 3)
            }
            RopeMode::Interleaved => {
                let pairs = x.reshape([b, h, n, half, 2]);
                let even = pairs.clone().narrow(4, 0, 1).reshape([b, h, n, half]);
                let odd = pairs.narrow(4, 1, 1).reshape([b, h, n, half]);
                let r_even = even.clone() * cos.clone() - odd.clone() * sin.clone();
                let r_odd = even * sin + odd * cos;
                Tensor::stack::<5>(vec![r_even, r_odd], 4).reshape([b, h, n, d])
            }
        }
    }
}
