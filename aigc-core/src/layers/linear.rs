//! A linear projection `y = x W^T + b` whose weight comes from a checkpoint.

use std::cell::RefCell;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::quant::kernels::QMatrix;
use crate::weights::{DType, SharedBytes, TensorView};

/// Whether `device` runs on the CPU (flex, ndarray): there quantized weights stay quantized
/// and run through [`crate::quant::kernels`].
pub fn is_cpu(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    if *device == Device::flex() {
        return true;
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    if *device == Device::ndarray() {
        return true;
    }
    let _ = device;
    false
}

/// The weight of `view` as a [`QMatrix`] when `device` is a CPU and the kernels multiply its
/// type directly (GGML Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K, and F16). With `shared` (the same
/// bytes, kept alive by their file's map) nothing is copied.
pub fn quantized_matrix(
    view: &TensorView<'_>,
    shared: Option<SharedBytes>,
    device: &Device,
) -> Result<Option<QMatrix>> {
    let ty = match view.dtype {
        DType::Quant(t) => t,
        DType::F16 => crate::quant::GgmlType::F16,
        _ => return Ok(None),
    };
    let [rows, cols] = view.shape[..] else { return Ok(None) };
    if !is_cpu(device) || !crate::quant::kernels::supports(ty) || !cols.is_multiple_of(32) {
        return Ok(None);
    }
    match shared {
        Some(bytes) if bytes.len() == view.data.len() => {
            QMatrix::new(ty, rows, cols, bytes).map(Some)
        }
        _ => QMatrix::new(ty, rows, cols, view.data.as_ref()).map(Some),
    }
}

thread_local! {
    /// A per-thread buffer for quantized products, so decoding allocates only its outputs.
    static SCRATCH: RefCell<Vec<f32>> = RefCell::default();
}

/// The activations as f32 values on the host, for the CPU kernels.
fn host_f32(x: Tensor<3>) -> Vec<f32> {
    x.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 activations")
}

/// `out = x @ W^T` on the host for the `n` rows of `x`.
pub(crate) fn host_matmul(w: &QMatrix, x: &[f32], n: usize, out: &mut [f32]) {
    SCRATCH.with_borrow_mut(|scratch| w.matmul_with(x, n, out, scratch));
}

/// `x @ W^T` for `x` `[b, s, cols]` with a quantized `W`, as a tensor on `device`.
pub(crate) fn quantized_forward(w: &QMatrix, x: Tensor<3>, device: &Device) -> Tensor<3> {
    let [b, s, d] = x.dims();
    debug_assert_eq!(d, w.cols());
    let xs = host_f32(x);
    let mut out = vec![0f32; b * s * w.rows()];
    SCRATCH.with_borrow_mut(|scratch| w.matmul_with(&xs, b * s, &mut out, scratch));
    Tensor::from_data(TensorData::new(out, [b, s, w.rows()]), device)
}

/// `x @ W^T + b` for several layers that read the same input (a layer's q/k/v, or gate and up):
/// on the CPU, one decoding step's quantized products run in one parallel region.
pub fn forward_group(layers: &[&QLinear], x: Tensor<3>) -> Vec<Tensor<3>> {
    use crate::quant::kernels::MAX_GROUP;
    let [b, s, d] = x.dims();
    let mut mats: [Option<&QMatrix>; MAX_GROUP] = [None; MAX_GROUP];
    let grouped = b * s == 1
        && !layers.is_empty()
        && layers.len() <= MAX_GROUP
        && layers.iter().zip(mats.iter_mut()).all(|(l, m)| match &l.weight {
            Weight::Quantized(q, _) => {
                *m = Some(q);
                true
            }
            Weight::Dense(_) => false,
        });
    if !grouped {
        return layers.iter().map(|l| l.forward(x.clone())).collect();
    }
    let mats: [&QMatrix; MAX_GROUP] =
        std::array::from_fn(|i| mats[i].unwrap_or(mats[0].expect("a layer")));
    let mats = &mats[..layers.len()];
    debug_assert!(mats.iter().all(|q| q.cols() == d));
    let device = x.device();
    let xs = host_f32(x);
    let mut outs: Vec<Vec<f32>> = mats.iter().map(|q| vec![0f32; q.rows()]).collect();
    {
        let mut slices: [&mut [f32]; MAX_GROUP] = Default::default();
        for (s, o) in slices.iter_mut().zip(outs.iter_mut()) {
            *s = o.as_mut_slice();
        }
        crate::quant::kernels::matvec_many(mats, &xs, &mut slices[..layers.len()]);
    }
    outs.into_iter()
        .zip(layers)
        .map(|(o, layer)| {
            let n = o.len();
            layer.add_bias(Tensor::from_data(TensorData::new(o, [1, 1, n]), &device))
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Weight {
    /// `[in, out]`, contiguous, ready for `x @ W`.
    Dense(Tensor<2>),
    /// `[out, in]` GGML blocks on the CPU.
    Quantized(QMatrix, Device),
}

/// A linear layer loaded from a checkpoint weight of shape `[out, in]` (PyTorch and GGUF
/// layout).
///
/// On a CPU device a quantized GGML weight (and an f16 one) stays as stored and runs through
/// the quantized kernels (f32 activations); elsewhere weights are
/// dequantized to f32 and held as `[in, out]`.
#[derive(Debug, Clone)]
pub struct QLinear {
    weight: Weight,
    bias: Option<Tensor<1>>,
    in_features: usize,
    out_features: usize,
}

impl QLinear {
    /// Builds the layer from a weight view `[out, in]` and an optional bias view `[out]`.
    pub fn from_views(
        weight: &TensorView<'_>,
        bias: Option<&TensorView<'_>>,
        device: &Device,
    ) -> Result<Self> {
        Self::from_view_shared(weight, None, bias, device)
    }

    /// Like [`from_views`](Self::from_views), with the weight's bytes shared from its file's
    /// map when the source lends them ([`TensorSource::shared_bytes`](crate::weights::TensorSource::shared_bytes)).
    pub fn from_view_shared(
        weight: &TensorView<'_>,
        shared: Option<SharedBytes>,
        bias: Option<&TensorView<'_>>,
        device: &Device,
    ) -> Result<Self> {
        let [out_features, in_features] = weight.shape[..] else {
            return Err(Error::tensor(
                weight.name.as_ref(),
                format!("has shape {:?}, expected [out, in]", weight.shape),
            ));
        };
        let bias = bias.map(|b| b.to_tensor::<1>(device)).transpose()?;
        if let Some(q) = quantized_matrix(weight, shared, device)? {
            return Ok(Self {
                weight: Weight::Quantized(q, device.clone()),
                bias,
                in_features,
                out_features,
            });
        }
        // Transposed on the host so that the device holds a contiguous `[in, out]`: a
        // transposed view makes every product repack the whole weight.
        let w = weight.to_f32()?;
        let mut t = vec![0f32; w.len()];
        for o in 0..out_features {
            for i in 0..in_features {
                t[i * out_features + o] = w[o * in_features + i];
            }
        }
        let weight = Tensor::from_data(TensorData::new(t, [in_features, out_features]), device);
        Ok(Self { weight: Weight::Dense(weight), bias, in_features, out_features })
    }

    /// Builds the layer from tensors: `weight` is `[out, in]`.
    pub fn from_tensors(weight: Tensor<2>, bias: Option<Tensor<1>>) -> Self {
        let [out_features, in_features] = weight.dims();
        // A contiguous `[in, out]`, as from_views makes it: a transposed view would be copied
        // (or repacked) by every product.
        let device = weight.device();
        let weight = Tensor::from_data(weight.transpose().into_data(), &device);
        Self { weight: Weight::Dense(weight), bias, in_features, out_features }
    }

    /// The layer with `bias` (`[out]`) added to its output.
    pub fn with_bias(mut self, bias: Tensor<1>) -> Self {
        self.bias = Some(bias);
        self
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The quantized weight of a layer without bias (CPU kernels), for host fast paths.
    pub(crate) fn host_matrix(&self) -> Option<&QMatrix> {
        match (&self.weight, &self.bias) {
            (Weight::Quantized(q, _), None) => Some(q),
            _ => None,
        }
    }

    /// Whether the weight stays quantized (CPU kernels).
    pub fn is_quantized(&self) -> bool {
        matches!(self.weight, Weight::Quantized(..))
    }

    /// `x @ W^T + b` over the last dimension of `x` (`[batch, seq, in]` → `[batch, seq, out]`).
    ///
    /// The dense product runs as one 2-D matmul: broadcasting a 2-D weight to 3-D would make
    /// burn copy it on every call.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, d] = x.dims();
        let y = match &self.weight {
            Weight::Quantized(q, device) => quantized_forward(q, x, device),
            Weight::Dense(w) if super::is_cpu(&x.device()) && d == self.in_features => {
                return self.dense_host(w, x);
            }
            Weight::Dense(w) => {
                x.reshape([b * s, d]).matmul(w.clone()).reshape([b, s, self.out_features])
            }
        };
        self.add_bias(y)
    }

    /// `x @ W + b` on the host: tiles of rows and output columns through the gemm crate
    /// across the kernel threads, the bias written first (burn's matmul runs on one thread).
    fn dense_host(&self, w: &Tensor<2>, x: Tensor<3>) -> Tensor<3> {
        const ROWS: usize = 128;
        const COLS: usize = 512;
        let [b, s, d] = x.dims();
        let (rows, out) = (b * s, self.out_features);
        let device = x.device();
        let bias = self.bias.as_ref().and_then(super::host_copy);
        let mut y: Vec<f32> = Vec::with_capacity(rows * out);
        let dst = crate::quant::kernels::SharedMut::from_raw(y.as_mut_ptr());
        super::with_host(&x, |xs| {
            super::with_host(w, |ws| {
                let (rt, ct) = (rows.div_ceil(ROWS), out.div_ceil(COLS));
                let work = |unit: usize| {
                    let (r0, c0) = (unit / ct * ROWS, unit % ct * COLS);
                    let (r1, c1) = ((r0 + ROWS).min(rows), (c0 + COLS).min(out));
                    if r1 - r0 <= 4 {
                        // A few rows (a decoding step): rows of W scaled and summed, without
                        // the GEMM's packing of W.
                        for r in r0..r1 {
                            // SAFETY: row r, columns c0..c1 of y belong to this unit.
                            let yr = unsafe { dst.slice(r * out + c0, c1 - c0) };
                            let xr = &xs[r * d..(r + 1) * d];
                            axpy_rows(xr, ws, out, c0, bias.as_deref(), yr);
                        }
                        return;
                    }
                    if let Some(bias) = &bias {
                        for r in r0..r1 {
                            // SAFETY: rows r0..r1, columns c0..c1 of y belong to this unit.
                            unsafe { dst.slice(r * out + c0, c1 - c0) }
                                .copy_from_slice(&bias[c0..c1]);
                        }
                    }
                    // SAFETY: x is [rows, d] and W [d, out] row-major; the output tile is
                    // this unit's (written whole: read only when the bias filled it).
                    unsafe {
                        gemm::gemm(
                            r1 - r0,
                            c1 - c0,
                            d,
                            dst.at(r0 * out + c0),
                            1,
                            out as isize,
                            bias.is_some(),
                            xs.as_ptr().add(r0 * d),
                            1,
                            d as isize,
                            ws.as_ptr().add(c0),
                            1,
                            out as isize,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                };
                crate::quant::kernels::for_each_unit(rows * d * out >= 1 << 16, rt * ct, &work);
            })
        });
        // SAFETY: the tiles cover every value of y.
        unsafe { y.set_len(rows * out) };
        super::from_host(y, [b, s, out], &device)
    }

    fn add_bias(&self, y: Tensor<3>) -> Tensor<3> {
        match &self.bias {
            Some(bias) => y + bias.clone().unsqueeze::<3>(),
            None => y,
        }
    }
}

/// `y = bias[c0..] + Σ_i x[i] W[i, c0..c0 + y.len()]` for `W` `[x.len(), out]` row-major.
fn axpy_rows(x: &[f32], w: &[f32], out: usize, c0: usize, bias: Option<&[f32]>, y: &mut [f32]) {
    #[inline(always)]
    fn generic(x: &[f32], w: &[f32], out: usize, c0: usize, bias: Option<&[f32]>, y: &mut [f32]) {
        match bias {
            Some(b) => y.copy_from_slice(&b[c0..c0 + y.len()]),
            None => y.fill(0.0),
        }
        for (i, &xi) in x.iter().enumerate() {
            let row = &w[i * out + c0..i * out + c0 + y.len()];
            for (o, &wv) in y.iter_mut().zip(row) {
                *o += xi * wv;
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn avx2(x: &[f32], w: &[f32], out: usize, c0: usize, bias: Option<&[f32]>, y: &mut [f32]) {
        generic(x, w, out, c0, bias, y)
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::kernels::has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        unsafe { avx2(x, w, out, c0, bias, y) };
        return;
    }
    generic(x, w, out, c0, bias, y)
}
