//! 1-D convolutions (stride 1, any dilation, grouped or depthwise) and transposed 1-D
//! convolutions, the layers of vocoders and VITS. On a CPU device they run on the host across
//! the kernel threads: a convolution as one GEMM per tap over a zero-padded copy of the input
//! (no column matrix), a depthwise one as a direct loop, a transposed one as a GEMM and an
//! overlap-add.

use burn::tensor::Tensor;
use burn::tensor::module::{conv_transpose1d, conv1d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

use super::direct1d::{Geometry, Packed1d, Prologue};
use crate::quant::kernels::{SharedMut, for_each_unit};

/// A leaky ReLU applied to a convolution's input as it is read: `leaky_relu(scale * x,
/// slope)` (HiFi-GAN activates every convolution's input, and averages its residual blocks
/// into the next one's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyRelu {
    /// Factor applied first (positive).
    pub scale: f32,
    /// Slope for negative values.
    pub slope: f32,
}

impl LeakyRelu {
    /// `leaky_relu(x, slope)`.
    pub fn new(slope: f32) -> Self {
        Self { scale: 1.0, slope }
    }

    fn prologue(pre: Option<Self>) -> Prologue {
        pre.map_or(Prologue::IDENTITY, |p| Prologue { scale: p.scale, leaky_relu: Some(p.slope) })
    }

    /// The activation with burn's operations (devices without a host path).
    fn apply(pre: Option<Self>, x: Tensor<3>) -> Tensor<3> {
        match pre {
            Some(p) => {
                let x = if p.scale == 1.0 { x } else { x * p.scale as f64 };
                burn::tensor::activation::leaky_relu(x, p.slope as f64)
            }
            None => x,
        }
    }
}

/// Host copies of a convolution's parameters (CPU devices).
#[derive(Debug, Clone)]
struct Host {
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    /// Dense convolutions where the direct kernel runs.
    packed: Option<Packed1d>,
}

/// A 1-D convolution with stride 1: weight `[out, in / groups, k]`, symmetric zero padding.
#[derive(Debug, Clone)]
pub struct Conv1d {
    weight: Tensor<3>,
    bias: Option<Tensor<1>>,
    padding: usize,
    dilation: usize,
    groups: usize,
    host: Option<Host>,
}

impl Conv1d {
    /// A convolution from its tensors.
    pub fn new(
        weight: Tensor<3>,
        bias: Option<Tensor<1>>,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Self {
        let groups = groups.max(1);
        let host = super::is_cpu(&weight.device()).then(|| {
            let w = super::to_host(weight.clone());
            let [out, inp, k] = weight.dims();
            let packed =
                (groups == 1 && Packed1d::usable()).then(|| Packed1d::new(&w, out, inp, k));
            Host { weight: w, bias: bias.as_ref().and_then(super::host_copy), packed }
        });
        Self { weight, bias, padding, dilation: dilation.max(1), groups, host }
    }

    /// Convolves `x` (`[batch, in, time]`).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_with(x, None, None)
    }

    /// `conv(pre(x)) + residual`: the input activated as it is read and a residual (shaped
    /// like the output) added as the output is written, where given.
    pub fn forward_with(
        &self,
        x: Tensor<3>,
        pre: Option<LeakyRelu>,
        residual: Option<&Tensor<3>>,
    ) -> Tensor<3> {
        let [out, per_group, k] = self.weight.dims();
        let [b, c, t] = x.dims();
        let g = self.groups;
        let span = self.dilation * (k - 1);
        let fits = c == per_group * g && out % g == 0 && t + 2 * self.padding > span;
        let t_out = (t + 2 * self.padding).saturating_sub(span);
        let res_fits = residual.is_none_or(|r| r.dims() == [b, out, t_out]);
        if let (Some(host), true) = (&self.host, fits && res_fits) {
            let device = x.device();
            if let (Some(packed), true) = (&host.packed, g == 1) {
                let geometry =
                    Geometry { batch: b, t, t_out, pad: self.padding, dilation: self.dilation };
                let mut y: Vec<f32> = Vec::with_capacity(b * out * t_out);
                let dst = SharedMut::from_raw(y.as_mut_ptr());
                let run = |xs: &[f32], res: Option<&[f32]>| {
                    // SAFETY: y has room for b * out * t_out values; the geometry was
                    // checked above.
                    unsafe {
                        super::direct1d::conv1d(
                            xs,
                            &geometry,
                            packed,
                            host.bias.as_deref(),
                            res,
                            LeakyRelu::prologue(pre),
                            dst,
                        )
                    }
                };
                super::with_host(&x, |xs| match residual {
                    Some(r) => super::with_host(r, |rs| run(xs, Some(rs))),
                    None => run(xs, None),
                });
                // SAFETY: the call wrote every value.
                unsafe { y.set_len(b * out * t_out) };
                return super::from_host(y, [b, out, t_out], &device);
            }
            if pre.is_none() && residual.is_none() && (g == 1 || (per_group == 1 && out == c)) {
                let mut y = vec![0f32; b * out * t_out];
                super::with_host(&x, |xs| {
                    let shape =
                        Shape { b, c, t, out, k, t_out, pad: self.padding, dil: self.dilation };
                    if g == 1 {
                        dense(xs, &host.weight, host.bias.as_deref(), &shape, &mut y)
                    } else {
                        depthwise(xs, &host.weight, host.bias.as_deref(), &shape, &mut y)
                    }
                });
                return super::from_host(y, [b, out, t_out], &device);
            }
        }
        let options = ConvOptions::new([1], [self.padding], [self.dilation], self.groups);
        let y = conv1d(LeakyRelu::apply(pre, x), self.weight.clone(), self.bias.clone(), options);
        match residual {
            Some(r) => y + r.clone(),
            None => y,
        }
    }
}

struct Shape {
    b: usize,
    c: usize,
    t: usize,
    out: usize,
    k: usize,
    t_out: usize,
    pad: usize,
    dil: usize,
}

/// Positions per unit of work.
const TILE: usize = 256;
/// Output rows per unit of work (short sequences still split across threads).
const ROWS: usize = 64;

/// `y[o, t] = bias[o] + Σ_j W[:, :, j] · xp[:, t + j d]` over the zero-padded input, one GEMM
/// per tap per tile of positions.
fn dense(x: &[f32], w: &[f32], bias: Option<&[f32]>, s: &Shape, y: &mut [f32]) {
    let &Shape { b, c, t, out, k, t_out, pad, dil } = s;
    let tp = t + 2 * pad;
    let mut xp = vec![0f32; b * c * tp];
    for (row, src) in xp.chunks_exact_mut(tp).zip(x.chunks_exact(t)) {
        row[pad..pad + t].copy_from_slice(src);
    }
    let tiles = t_out.div_ceil(TILE);
    let chunks = out.div_ceil(ROWS);
    let dst = SharedMut::new(y);
    for_each_unit(b * out * c * k * t_out >= 1 << 16, b * tiles * chunks, &|unit| {
        let (bi, rest) = (unit / (tiles * chunks), unit % (tiles * chunks));
        let (tile, chunk) = (rest / chunks, rest % chunks);
        let (t0, t1) = (tile * TILE, ((tile + 1) * TILE).min(t_out));
        let (o0, o1) = (chunk * ROWS, ((chunk + 1) * ROWS).min(out));
        let yb = bi * out * t_out + o0 * t_out + t0;
        if let Some(bias) = bias {
            for (o, &bv) in bias[o0..o1].iter().enumerate() {
                // SAFETY: rows o0..o1, positions t0..t1 of item bi belong to this unit.
                unsafe { dst.slice(yb + o * t_out, t1 - t0) }.fill(bv);
            }
        }
        for j in 0..k {
            let read = bias.is_some() || j > 0;
            // SAFETY: W[:, :, j] is `out x c` with strides (c k, k) inside w; the padded
            // input's rows from column t0 + j d hold t1 - t0 values; the output tile is this
            // unit's.
            unsafe {
                gemm::gemm(
                    o1 - o0,
                    t1 - t0,
                    c,
                    dst.at(yb),
                    1,
                    t_out as isize,
                    read,
                    w.as_ptr().add(o0 * c * k + j),
                    k as isize,
                    (c * k) as isize,
                    xp.as_ptr().add(bi * c * tp + t0 + j * dil),
                    1,
                    tp as isize,
                    if read { 1.0 } else { 0.0 },
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
    });
}

/// One filter per channel: `y[c, t] = bias[c] + Σ_j w[c, j] x[c, t + j d - pad]`.
fn depthwise(x: &[f32], w: &[f32], bias: Option<&[f32]>, s: &Shape, y: &mut [f32]) {
    let &Shape { b, c, t, k, t_out, pad, dil, .. } = s;
    let dst = SharedMut::new(y);
    for_each_unit(b * c * t_out * k >= 1 << 15, b * c, &|row| {
        let ch = row % c;
        let src = &x[row * t..(row + 1) * t];
        // SAFETY: output row `row` belongs to this unit.
        let out = unsafe { dst.slice(row * t_out, t_out) };
        out.fill(bias.map_or(0.0, |b| b[ch]));
        for j in 0..k {
            let wv = w[ch * k + j];
            // Output p reads input p + j d - pad when that is inside 0..t.
            let shift = (j * dil) as isize - pad as isize;
            let lo = (-shift).max(0) as usize;
            let hi = ((t as isize - shift).max(0) as usize).min(t_out);
            if lo >= hi {
                continue;
            }
            let src = &src[(lo as isize + shift) as usize..];
            for (o, &v) in out[lo..hi].iter_mut().zip(src) {
                *o += wv * v;
            }
        }
    });
}

/// A transposed 1-D convolution: weight `[in, out, k]`, `stride`, `padding` (output
/// `(t - 1) stride + k - 2 padding`).
#[derive(Debug, Clone)]
pub struct ConvTranspose1d {
    weight: Tensor<3>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
    /// CPU devices: the weight as `[out * k, in]` and the bias, on the host.
    host: Option<(Vec<f32>, Option<Vec<f32>>)>,
}

impl ConvTranspose1d {
    /// A transposed convolution from its tensors.
    pub fn new(weight: Tensor<3>, bias: Option<Tensor<1>>, stride: usize, padding: usize) -> Self {
        let [inp, out, k] = weight.dims();
        let host = super::is_cpu(&weight.device()).then(|| {
            let w = super::to_host(weight.clone());
            // [in][out][k] -> [out * k][in]
            let mut wt = vec![0f32; inp * out * k];
            for i in 0..inp {
                for ok in 0..out * k {
                    wt[ok * inp + i] = w[i * out * k + ok];
                }
            }
            (wt, bias.as_ref().and_then(super::host_copy))
        });
        Self { weight, bias, stride: stride.max(1), padding, host }
    }

    /// Upsamples `x` (`[batch, in, time]`).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_with(x, None)
    }

    /// Upsamples `pre(x)`: the input activated as it is read, where given.
    pub fn forward_with(&self, x: Tensor<3>, pre: Option<LeakyRelu>) -> Tensor<3> {
        let [inp, out, k] = self.weight.dims();
        let [b, c, t] = x.dims();
        let (stride, pad) = (self.stride, self.padding);
        let full = (t.max(1) - 1) * stride + k;
        if let (Some((wt, bias)), true) = (&self.host, c == inp && t > 0 && full > 2 * pad) {
            let t_out = full - 2 * pad;
            let device = x.device();
            // Every value of y (overlap-add from the bias) and of cols (the GEMM's output,
            // not read) is written before it is read.
            let mut y: Vec<f32> = Vec::with_capacity(b * out * t_out);
            let ydst = SharedMut::from_raw(y.as_mut_ptr());
            let activated = |xs: &[f32]| {
                let mut v = xs.to_vec();
                let prologue = LeakyRelu::prologue(pre);
                crate::quant::kernels::par_parts(&mut v, 1 << 15, &|_, part| prologue.apply(part));
                v
            };
            super::with_host(&x, |xs| {
                let owned = pre.map(|_| activated(xs));
                let xs = owned.as_deref().unwrap_or(xs);
                // cols[(o, j), s] = Σ_i w[i, o, j] x[i, s], then y[o, s stride + j - pad] += it.
                let mut cols: Vec<f32> = Vec::with_capacity(out * k * t);
                let dst = SharedMut::from_raw(cols.as_mut_ptr());
                for bi in 0..b {
                    let xb = &xs[bi * c * t..(bi + 1) * c * t];
                    let tiles = t.div_ceil(TILE);
                    let rows = out * k;
                    let chunks = rows.div_ceil(4 * ROWS);
                    for_each_unit(rows * c * t >= 1 << 16, tiles * chunks, &|unit| {
                        let (tile, chunk) = (unit / chunks, unit % chunks);
                        let (t0, t1) = (tile * TILE, ((tile + 1) * TILE).min(t));
                        let (r0, r1) = (chunk * 4 * ROWS, ((chunk + 1) * 4 * ROWS).min(rows));
                        // SAFETY: rows r0..r1, columns t0..t1 of `cols` belong to this unit;
                        // the operands are wt ([out k, in]) and x's columns t0..t1.
                        unsafe {
                            gemm::gemm(
                                r1 - r0,
                                t1 - t0,
                                c,
                                dst.at(r0 * t + t0),
                                1,
                                t as isize,
                                false,
                                wt.as_ptr().add(r0 * c),
                                1,
                                c as isize,
                                xb.as_ptr().add(t0),
                                1,
                                t as isize,
                                0.0,
                                1.0,
                                false,
                                false,
                                false,
                                gemm::Parallelism::None,
                            );
                        }
                    });
                    // SAFETY: the GEMMs above wrote all out * k * t values.
                    let cols = unsafe { std::slice::from_raw_parts(dst.at(0), out * k * t) };
                    for_each_unit(out * t_out >= 1 << 15, out, &|o| {
                        // SAFETY: output channel o of item bi belongs to this unit.
                        let row = unsafe { ydst.slice((bi * out + o) * t_out, t_out) };
                        row.fill(bias.as_ref().map_or(0.0, |b| b[o]));
                        for j in 0..k {
                            let src = &cols[(o * k + j) * t..(o * k + j + 1) * t];
                            for (s, &v) in src.iter().enumerate() {
                                let p = s * stride + j;
                                if p >= pad && p - pad < t_out {
                                    row[p - pad] += v;
                                }
                            }
                        }
                    });
                }
            });
            // SAFETY: each item's rows were filled from the bias and accumulated above.
            unsafe { y.set_len(b * out * t_out) };
            return super::from_host(y, [b, out, t_out], &device);
        }
        let options = ConvTransposeOptions::new([stride], [pad], [0], [1], 1);
        conv_transpose1d(LeakyRelu::apply(pre, x), self.weight.clone(), self.bias.clone(), options)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    fn t3(v: Vec<f32>, dims: [usize; 3]) -> Tensor<3> {
        Tensor::from_data(TensorData::new(v, dims), &crate::parse_device("flex").unwrap())
    }

    fn vals(n: usize, s: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * s) % 97) as f32 / 97.0 - 0.4).collect()
    }

    fn close(a: Tensor<3>, b: Tensor<3>, what: &str) {
        assert_eq!(a.dims(), b.dims(), "{what}");
        let (a, b) = (super::super::to_host(a), super::super::to_host(b));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4, "{what}: {x} vs {y}");
        }
    }

    #[test]
    fn host_paths_match_burn() {
        let (b, c, t) = (2, 6, 300);
        let x = t3(vals(b * c * t, 7), [b, c, t]);
        for (k, dil, groups, out) in
            [(7, 1, 1, 5), (3, 12, 1, 6), (5, 2, 6, 6), (1, 1, 1, 4), (3, 1, 1, 70)]
        {
            let pad = dil * (k - 1) / 2;
            let w = t3(vals(out * (c / groups) * k, 11), [out, c / groups, k]);
            let bias = Tensor::<1>::from_data(
                TensorData::new(vals(out, 3), [out]),
                &crate::parse_device("flex").unwrap(),
            );
            let want = conv1d(
                x.clone(),
                w.clone(),
                Some(bias.clone()),
                ConvOptions::new([1], [pad], [dil], groups),
            );
            let got = Conv1d::new(w, Some(bias), pad, dil, groups).forward(x.clone());
            close(got, want, &format!("conv k{k} d{dil} g{groups}"));
        }
        // The direct kernel with an activated input and a residual (both blockings, tails
        // of every length, sequences shorter than a block), and the GEMM path it replaces.
        let device = crate::parse_device("flex").unwrap();
        for (t, k, dil, out) in [(300, 7, 3, 32), (37, 5, 1, 12), (5, 3, 2, 6), (130, 1, 1, 10)] {
            let x = t3(vals(b * c * t, 7), [b, c, t]);
            let pad = dil * (k - 1) / 2;
            let w = t3(vals(out * c * k, 11), [out, c, k]);
            let bias = Tensor::<1>::from_data(TensorData::new(vals(out, 3), [out]), &device);
            let res = t3(vals(b * out * t, 5), [b, out, t]);
            let options = ConvOptions::new([1], [pad], [dil], 1);
            let pre = LeakyRelu { scale: 0.5, slope: 0.1 };
            let act = burn::tensor::activation::leaky_relu(x.clone() * 0.5, 0.1);
            let want = conv1d(act, w.clone(), Some(bias.clone()), options.clone()) + res.clone();
            let conv = Conv1d::new(w.clone(), Some(bias.clone()), pad, dil, 1);
            let got = conv.forward_with(x.clone(), Some(pre), Some(&res));
            close(got, want, &format!("direct t{t} k{k} d{dil} out{out}"));
            let want = conv1d(x.clone(), w.clone(), Some(bias.clone()), options);
            let shape = Shape { b, c, t, out, k, t_out: t, pad, dil };
            let mut y = vec![0f32; b * out * t];
            let (xs, ws) = (super::super::to_host(x), super::super::to_host(w));
            dense(&xs, &ws, Some(&super::super::to_host(bias)), &shape, &mut y);
            close(t3(y, [b, out, t]), want, &format!("gemm t{t} k{k} d{dil} out{out}"));
        }
        // 20 x 16 rows of the transposed product: two row chunks.
        for (k, stride, out) in [(16, 8, 3), (8, 4, 3), (4, 2, 3), (16, 8, 20)] {
            let pad = (k - stride) / 2;
            let w = t3(vals(c * out * k, 13), [c, out, k]);
            let bias = Tensor::<1>::from_data(
                TensorData::new(vals(out, 5), [out]),
                &crate::parse_device("flex").unwrap(),
            );
            let options = ConvTransposeOptions::new([stride], [pad], [0], [1], 1);
            let want = conv_transpose1d(x.clone(), w.clone(), Some(bias.clone()), options);
            let got = ConvTranspose1d::new(w, Some(bias), stride, pad).forward(x.clone());
            close(got, want, &format!("transposed k{k} s{stride}"));
        }
    }
}
