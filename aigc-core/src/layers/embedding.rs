//! Token embeddings, usable as a tied output head too.

use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{Error, Result};

/// A `[vocab, dim]` table of token vectors.
#[derive(Debug, Clone)]
pub struct Embedding {
    weight: Tensor<2>,
}

impl Embedding {
    /// Wraps a `[vocab, dim]` table.
    pub fn new(weight: Tensor<2>) -> Self {
        Self { weight }
    }

    /// Rows in the table.
    pub fn vocab_size(&self) -> usize {
        self.weight.dims()[0]
    }

    /// The vectors of `ids` as `[1, ids.len(), dim]`; an id outside the table is an error.
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor<3>> {
        let vocab = self.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::invalid_argument(
                "tokens",
                format!("token id {bad} is outside the vocabulary of {vocab}"),
            ));
        }
        let device = self.weight.device();
        let idx: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [ids.len()]), &device);
        Ok(self.weight.clone().select(0, idx).unsqueeze::<3>())
    }

    /// Logits against the table, as a tied output head: `x @ table^T` (`[1, n, dim]` →
    /// `[1, n, vocab]`).
    pub fn attend(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, d] = x.dims();
        // A 2-D product on the transposed view: no copy of the table.
        let y = x.reshape([b * s, d]).matmul(self.weight.clone().transpose());
        y.reshape([b, s, self.vocab_size()])
    }
}
