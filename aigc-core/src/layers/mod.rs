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
