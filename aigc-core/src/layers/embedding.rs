//! Token embeddings, usable as a tied output head too.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::linear::{quantized_forward, quantized_matrix};
use crate::error::{Error, Result};
use crate::quant::kernels::QMatrix;
use crate::weights::{SharedBytes, TensorView};

#[derive(Debug, Clone)]
enum Table {
    Dense(Tensor<2>),
    /// GGML rows on the CPU: looked up by dequantizing rows, multiplied by the kernels.
    Quantized(QMatrix, Device),
}

/// A `[vocab, dim]` table of token vectors.
#[derive(Debug, Clone)]
pub struct Embedding {
    table: Table,
    vocab: usize,
    dim: usize,
}

impl Embedding {
    /// Wraps a `[vocab, dim]` table.
    pub fn new(weight: Tensor<2>) -> Self {
        let [vocab, dim] = weight.dims();
        Self { table: Table::Dense(weight), vocab, dim }
    }

    /// The table of `view` (`[vocab, dim]`): kept quantized on a CPU device when the kernels
    /// support its type, else converted to f32.
    pub fn from_view(view: &TensorView<'_>, device: &Device) -> Result<Self> {
        Self::from_view_shared(view, None, device)
    }

    /// Like [`from_view`](Self::from_view), sharing the bytes of the file's map when given.
    pub fn from_view_shared(
        view: &TensorView<'_>,
        shared: Option<SharedBytes>,
        device: &Device,
    ) -> Result<Self> {
        let [vocab, dim] = view.shape[..] else {
            return Err(Error::tensor(
                view.name.as_ref(),
                format!("has shape {:?}, expected [vocab, dim]", view.shape),
            ));
        };
        Ok(match quantized_matrix(view, shared, device)? {
            Some(q) => Self { table: Table::Quantized(q, device.clone()), vocab, dim },
            None => Self::new(view.to_tensor::<2>(device)?),
        })
    }

    /// Rows in the table.
    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    /// The vectors of `ids` as `[1, ids.len(), dim]`; an id outside the table is an error.
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor<3>> {
        let vocab = self.vocab;
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::invalid_argument(
                "tokens",
                format!("token id {bad} is outside the vocabulary of {vocab}"),
            ));
        }
        match &self.table {
            Table::Dense(weight) => {
                let device = weight.device();
                let idx: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
                let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [ids.len()]), &device);
                Ok(weight.clone().select(0, idx).unsqueeze::<3>())
            }
            Table::Quantized(q, device) => {
                let mut out = vec![0f32; ids.len() * self.dim];
                for (row, &id) in out.chunks_exact_mut(self.dim).zip(ids) {
                    q.dequantize_row(id as usize, row)?;
                }
                Ok(Tensor::from_data(TensorData::new(out, [1, ids.len(), self.dim]), device))
            }
        }
    }

    /// Logits against the table, as a tied output head: `x @ table^T` (`[1, n, dim]` →
    /// `[1, n, vocab]`).
    pub fn attend(&self, x: Tensor<3>) -> Tensor<3> {
        match &self.table {
            Table::Dense(weight) => {
                let [b, s, d] = x.dims();
                // A 2-D product on the transposed view: no copy of the table.
                let y = x.reshape([b * s, d]).matmul(weight.clone().transpose());
                y.reshape([b, s, self.vocab])
            }
            Table::Quantized(q, device) => quantized_forward(q, x, device),
        }
    }
}
