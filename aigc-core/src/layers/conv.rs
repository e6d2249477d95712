//! 2-D convolutions and group normalisation, the pieces of convolutional UNets and VAEs.

use burn::tensor::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use super::conv3x3::{Packed3x3, RowFn, conv3x3};
use crate::quant::kernels::SharedMut;
use crate::weights::WeightLoader;

/// A 2-D convolution with PyTorch's weight layout `[out, in, kh, kw]`, a stride and
/// symmetric zero padding.
///
/// On a CPU device it runs on the host across the kernel threads (burn's CPU convolution runs
/// on one thread): 3x3 stride-1 padding-1 convolutions through a direct AVX2 kernel where the
/// CPU has it, the rest as im2col and a GEMM.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
    /// CPU devices: the weight `[out, in * kh * kw]` and bias on the host.
    host: Option<(Vec<f32>, Option<Vec<f32>>)>,
    /// CPU devices, 3x3 stride 1 padding 1: the weight packed for the direct kernel.
    packed: Option<Packed3x3>,
}

impl Conv2d {
    /// A convolution from its tensors.
    pub fn new(weight: Tensor<4>, bias: Option<Tensor<1>>, stride: usize, padding: usize) -> Self {
        let host = super::is_cpu(&weight.device())
            .then(|| (super::to_host(weight.clone()), bias.as_ref().and_then(super::host_copy)));
        let [out, inp, kh, kw] = weight.dims();
        let packed = match &host {
            Some((w, _)) if [kh, kw, stride, padding] == [3, 3, 1, 1] && Packed3x3::usable(8) => {
                Some(Packed3x3::new(w, out, inp))
            }
            _ => None,
        };
        Self { weight, bias, stride: stride.max(1), padding, host, packed }
    }

    /// `{prefix}.weight` (`[out, in, k, k]`) and `{prefix}.bias` (`[out]`) from `w`.
    pub fn load(
        w: &WeightLoader<'_>,
        prefix: &str,
        [out, inp, k]: [usize; 3],
        stride: usize,
        padding: usize,
    ) -> Self {
        let weight = w.tensor(&format!("{prefix}.weight"), [out, inp, k, k]);
        let bias = w.tensor(&format!("{prefix}.bias"), [out]);
        Self::new(weight, Some(bias), stride, padding)
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Convolves `x` (`[batch, in, h, w]`).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_onto(x, None)
    }

    /// `forward(x) + residual` (`residual` shaped like the output), on a CPU device
    /// accumulated straight onto the residual's values.
    pub fn forward_add(&self, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
        self.forward_onto(x, Some(residual))
    }

    /// `forward(norm(x))`, plus `residual` if given, where `norm` is `norm.forward_fused(x,
    /// modulation, silu)`. On a CPU device with the direct 3x3 kernel the normalisation is
    /// applied as the convolution reads its input: no normalised copy of `x` is made.
    pub fn forward_normed(
        &self,
        x: Tensor<4>,
        norm: &GroupNorm,
        modulation: Option<(Tensor<2>, Tensor<2>)>,
        silu: bool,
        residual: Option<Tensor<4>>,
    ) -> Tensor<4> {
        if self.direct_fits(&x, residual.as_ref()) && norm.host_fits(&x, modulation.as_ref()) {
            let [b, c, h, w] = x.dims();
            return super::with_host(&x, |xs| {
                let params = norm.host_params(xs, [b, c, h, w], modulation);
                let prologue = |row: usize, values: &mut [f32]| params[row].apply(values, silu);
                self.direct(xs, [b, h, w], residual, Some(&prologue))
            });
        }
        self.forward_onto(norm.forward_fused(x, modulation, silu), residual)
    }

    /// Whether the direct 3x3 kernel takes `x` (and `residual`).
    fn direct_fits(&self, x: &Tensor<4>, residual: Option<&Tensor<4>>) -> bool {
        let [b, c, h, w] = x.dims();
        let out = self.weight.dims()[0];
        self.packed.is_some()
            && c == self.weight.dims()[1]
            && Packed3x3::usable(w)
            && residual.is_none_or(|r| r.dims() == [b, out, h, w])
    }

    /// The direct 3x3 kernel on host values `x` (`[b, in, h, w]`).
    fn direct(
        &self,
        x: &[f32],
        [b, h, w]: [usize; 3],
        residual: Option<Tensor<4>>,
        prologue: Option<RowFn<'_>>,
    ) -> Tensor<4> {
        let (packed, (_, bias)) = (self.packed.as_ref(), self.host.as_ref().expect("host"));
        let packed = packed.expect("direct_fits checked");
        let out = self.weight.dims()[0];
        let device = self.weight.device();
        let len = b * out * h * w;
        let (mut y, accumulate) = match residual {
            Some(r) => (super::to_host(r), true),
            None => (Vec::with_capacity(len), false),
        };
        // SAFETY: y has room for len values, all of which conv3x3 writes (or adds onto, with
        // `accumulate`, when y holds the residual).
        unsafe {
            let ptr = SharedMut::from_raw(y.as_mut_ptr());
            conv3x3(x, [b, h, w], packed, bias.as_deref(), ptr, accumulate, prologue);
            y.set_len(len);
        }
        super::from_host(y, [b, out, h, w], &device)
    }

    fn forward_onto(&self, x: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<4> {
        let [out, inp, kh, kw] = self.weight.dims();
        if let Some((w, bias)) = &self.host
            && x.dims()[1] == inp
            && kh == kw
        {
            let ([b, _, h, wd], device) = (x.dims(), x.device());
            let ho = (h + 2 * self.padding).saturating_sub(kh) / self.stride + 1;
            let wo = (wd + 2 * self.padding).saturating_sub(kh) / self.stride + 1;
            let dims = [b, out, ho, wo];
            if self.direct_fits(&x, residual.as_ref()) {
                return super::with_host(&x, |xs| self.direct(xs, [b, h, wd], residual, None));
            }
            let (y, accumulate) = match residual {
                Some(r) if r.dims() == dims => (super::to_host(r), true),
                Some(r) => return self.forward_onto(x, None) + r,
                None => (vec![0f32; b * out * ho * wo], false),
            };
            let mut y = y;
            let geometry = ConvGeometry {
                b,
                c: inp,
                h,
                w: wd,
                out,
                k: kh,
                stride: self.stride,
                pad: self.padding,
                ho,
                wo,
            };
            super::with_host(&x, |xs| {
                host_conv(xs, &geometry, w, bias.as_deref(), &mut y, accumulate)
            });
            return super::from_host(y, dims, &device);
        }
        let options =
            ConvOptions::new([self.stride, self.stride], [self.padding, self.padding], [1, 1], 1);
        let y = conv2d(x, self.weight.clone(), self.bias.clone(), options);
        match residual {
            Some(r) => y + r,
            None => y,
        }
    }
}

/// The sizes of one host convolution.
struct ConvGeometry {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    ho: usize,
    wo: usize,
}

thread_local! {
    /// Per thread: one tile's column matrix.
    static COLUMNS: std::cell::RefCell<Vec<f32>> = Default::default();
}

/// `y (+)= W * im2col(x) + b` on the host, in tiles of output positions whose column matrix
/// stays in L2; the kernel threads take tiles (of any batch item) as they finish one. With
/// `accumulate`, `y` holds values (a residual) that the convolution adds onto.
fn host_conv(
    x: &[f32],
    g: &ConvGeometry,
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    accumulate: bool,
) {
    let &ConvGeometry { c, h, w, out, k, stride, pad, wo, .. } = g;
    let n = g.ho * wo;
    let kk = c * k * k;
    let direct = k == 1 && stride == 1 && pad == 0;
    // Tiles whose columns fit in L2, and at least four per thread where the positions allow.
    let threads = crate::quant::kernels::num_threads();
    let per = (CONV_TILE_FLOATS / kk.max(1)).min(n.div_ceil(4 * threads)).max(16) / 16 * 16;
    let tiles = n.div_ceil(per);
    let dst = SharedMut::new(y);
    // Tile `unit`: positions p0..p1 of batch item bi: their columns, then one GEMM.
    let tile = |unit: usize| {
        let (bi, p0) = (unit / tiles, (unit % tiles) * per);
        let p1 = (p0 + per).min(n);
        let np = p1 - p0;
        let xb = &x[bi * c * h * w..(bi + 1) * c * h * w];
        COLUMNS.with_borrow_mut(|cols| {
            let rhs: &[f32] = if direct {
                xb
            } else {
                cols.resize(kk * np, 0f32);
                im2col_tile(xb, g, p0, p1, cols);
                &cols[..]
            };
            let yb = bi * out * n + p0;
            if let Some(bias) = bias {
                for (o, &bv) in bias.iter().enumerate() {
                    // SAFETY: row o's columns p0..p1 of item bi belong to this tile alone.
                    let row = unsafe { dst.slice(yb + o * n, np) };
                    if accumulate {
                        row.iter_mut().for_each(|v| *v += bv);
                    } else {
                        row.fill(bv);
                    }
                }
            }
            let read_dst = accumulate || bias.is_some();
            // Direct 1x1: the columns are x's rows, at offset p0 with row stride n.
            let (rhs_ptr, rhs_rs) =
                if direct { (rhs[p0..].as_ptr(), n as isize) } else { (rhs.as_ptr(), np as isize) };
            // SAFETY: every pointer and stride stays inside `weight`, the columns and this
            // tile's columns p0..p1 of batch item bi's output (no other thread writes them).
            unsafe {
                gemm::gemm(
                    out,
                    np,
                    kk,
                    dst.at(yb),
                    1,
                    n as isize,
                    read_dst,
                    weight.as_ptr(),
                    1,
                    kk as isize,
                    rhs_ptr,
                    1,
                    rhs_rs,
                    if read_dst { 1.0 } else { 0.0 },
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
    };
    crate::quant::kernels::for_each_unit(g.b * out * n * kk >= 1 << 18, g.b * tiles, &tile);
}

/// The column matrix (`[c * k * k, p1 - p0]`) of output positions `p0..p1` of one item.
fn im2col_tile(xb: &[f32], g: &ConvGeometry, p0: usize, p1: usize, cols: &mut [f32]) {
    let &ConvGeometry { c, h, w, k, stride, pad, wo, .. } = g;
    let np = p1 - p0;
    let (oy0, oy1) = (p0 / wo, (p1 - 1) / wo);
    for ci in 0..c {
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((ci * k + ky) * k + kx) * np..][..np];
                let mut j = 0;
                for oy in oy0..=oy1 {
                    let xa = if oy == oy0 { p0 % wo } else { 0 };
                    let xe = if oy == oy1 { (p1 - 1) % wo + 1 } else { wo };
                    let seg = &mut row[j..j + (xe - xa)];
                    j += xe - xa;
                    let iy = (oy * stride + ky) as isize - pad as isize;
                    if iy < 0 || iy as usize >= h {
                        seg.fill(0.0);
                        continue;
                    }
                    let src = &xb[(ci * h + iy as usize) * w..][..w];
                    if stride == 1 {
                        // ix = ox + kx - pad: a shifted copy with zeros at the edges.
                        let lo = pad.saturating_sub(kx).clamp(xa, xe);
                        let hi = (w + pad).saturating_sub(kx).clamp(lo, xe);
                        let (head, rest) = seg.split_at_mut(lo - xa);
                        let (mid, tail) = rest.split_at_mut(hi - lo);
                        head.fill(0.0);
                        tail.fill(0.0);
                        let s0 = lo + kx - pad;
                        mid.copy_from_slice(&src[s0..s0 + (hi - lo)]);
                        continue;
                    }
                    for (v, ox) in seg.iter_mut().zip(xa..xe) {
                        let ix = (ox * stride + kx) as isize - pad as isize;
                        *v = if ix >= 0 && (ix as usize) < w { src[ix as usize] } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// One (item, channel)'s share of a group norm: `((x - mean) * scale + bias) * m1 + m0`.
#[derive(Debug, Clone, Copy)]
struct ChannelNorm {
    mean: f32,
    scale: f32,
    bias: f32,
    m1: f32,
    m0: f32,
}

impl ChannelNorm {
    /// Normalises `values` of this channel in place, then SiLU if asked.
    fn apply(&self, values: &mut [f32], silu: bool) {
        normalize_chunk(values, self, silu)
    }
}

/// `((x - mean) * scale + bias) * m1 + m0` over `chunk`, then SiLU if asked; with AVX2
/// intrinsics (and the FMA exponential) where the CPU has them.
fn normalize_chunk(chunk: &mut [f32], n: &ChannelNorm, silu: bool) {
    #[inline(always)]
    fn generic(chunk: &mut [f32], n: &ChannelNorm, silu: bool) {
        let affine = |x: f32| ((x - n.mean) * n.scale + n.bias) * n.m1 + n.m0;
        if silu {
            chunk.iter_mut().for_each(|x| {
                let y = affine(*x);
                *x = y / (1.0 + super::attention::exp(-y));
            });
        } else {
            chunk.iter_mut().for_each(|x| *x = affine(*x));
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn avx2(chunk: &mut [f32], n: &ChannelNorm, silu: bool) {
        use std::arch::x86_64::*;
        let (mean, scale) = (_mm256_set1_ps(n.mean), _mm256_set1_ps(n.scale));
        let (bias, m1, m0) = (_mm256_set1_ps(n.bias), _mm256_set1_ps(n.m1), _mm256_set1_ps(n.m0));
        let one = _mm256_set1_ps(1.0);
        let mut chunks = chunk.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: c holds eight values.
            unsafe {
                let x = _mm256_loadu_ps(c.as_ptr());
                let t = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(x, mean), scale), bias);
                let mut y = _mm256_add_ps(_mm256_mul_ps(t, m1), m0);
                if silu {
                    let e = super::attention::exp8(_mm256_sub_ps(_mm256_setzero_ps(), y));
                    y = _mm256_div_ps(y, _mm256_add_ps(one, e));
                }
                _mm256_storeu_ps(c.as_mut_ptr(), y);
            }
        }
        generic(chunks.into_remainder(), n, silu)
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::kernels::has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        unsafe { avx2(chunk, n, silu) };
        return;
    }
    generic(chunk, n, silu)
}

/// The sum and the sum of squares of `v`, accumulated in f64 on eight lanes (vectorised
/// with AVX2 where the CPU has it).
fn sums_f64(v: &[f32]) -> (f64, f64) {
    #[inline(always)]
    fn generic(v: &[f32]) -> (f64, f64) {
        let (mut s1, mut s2) = ([0f64; 8], [0f64; 8]);
        let chunks = v.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            for l in 0..8 {
                let x = c[l] as f64;
                s1[l] += x;
                s2[l] += x * x;
            }
        }
        let (mut t1, mut t2) = (s1.iter().sum::<f64>(), s2.iter().sum::<f64>());
        for &x in tail {
            t1 += x as f64;
            t2 += (x as f64) * (x as f64);
        }
        (t1, t2)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn avx2(v: &[f32]) -> (f64, f64) {
        generic(v)
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::kernels::has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { avx2(v) };
    }
    generic(v)
}

/// The column matrix of one tile holds about this many values (256 KiB, inside L2 with the
/// GEMM's packed copies).
const CONV_TILE_FLOATS: usize = 64 * 1024;

/// Group normalisation over `[batch, channels, ...]`: channels split into `groups`, each
/// normalised by its mean and (biased) variance over its channels and positions, then scaled
/// and shifted per channel, as `torch.nn.GroupNorm` computes it in f32.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    groups: usize,
    weight: Tensor<1>,
    bias: Tensor<1>,
    eps: f64,
    /// CPU devices: weight and bias on the host.
    host: Option<(Vec<f32>, Vec<f32>)>,
}

impl GroupNorm {
    /// A norm from its tensors (`weight` and `bias` `[channels]`).
    pub fn new(groups: usize, weight: Tensor<1>, bias: Tensor<1>, eps: f64) -> Self {
        let host = super::host_copy(&weight).zip(super::host_copy(&bias));
        Self { groups: groups.max(1), weight, bias, eps, host }
    }

    /// `{prefix}.weight` and `{prefix}.bias` (`[channels]`) from `w`.
    pub fn load(
        w: &WeightLoader<'_>,
        prefix: &str,
        groups: usize,
        channels: usize,
        eps: f64,
    ) -> Self {
        let weight = w.tensor(&format!("{prefix}.weight"), [channels]);
        let bias = w.tensor(&format!("{prefix}.bias"), [channels]);
        Self::new(groups, weight, bias, eps)
    }

    /// Normalises `x` (`[batch, channels, h, w]`; channels a multiple of the groups).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_fused(x, None, false)
    }

    /// [`forward`](Self::forward), then optionally `y * (1 + scale) + shift` with `scale` and
    /// `shift` `[batch, channels]` (a UNet's scale-shift norm), then optionally SiLU: on a
    /// CPU device in the same pass over the values.
    pub fn forward_fused(
        &self,
        x: Tensor<4>,
        modulation: Option<(Tensor<2>, Tensor<2>)>,
        silu: bool,
    ) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        if self.host_fits(&x, modulation.as_ref()) {
            // Read in place (x is often shared with a residual path), written to a new
            // buffer row by row.
            let device = x.device();
            let mut v = vec![0f32; b * c * h * w];
            super::with_host(&x, |xs| {
                let params = self.host_params(xs, [b, c, h, w], modulation);
                let hw = h * w;
                crate::quant::kernels::par_rows(&mut v, hw, 1 << 15, &|row, vals| {
                    vals.copy_from_slice(&xs[row * hw..(row + 1) * hw]);
                    params[row].apply(vals, silu)
                });
            });
            return super::from_host(v, [b, c, h, w], &device);
        }
        let y = self.forward_tensors(x);
        let y = match modulation {
            Some((s, t)) => y * (s.reshape([b, c, 1, 1]) + 1.0) + t.reshape([b, c, 1, 1]),
            None => y,
        };
        if silu { burn::tensor::activation::silu(y) } else { y }
    }

    /// Whether the host path takes `x` and `modulation`.
    fn host_fits(&self, x: &Tensor<4>, modulation: Option<&(Tensor<2>, Tensor<2>)>) -> bool {
        let [b, c, ..] = x.dims();
        self.host.as_ref().is_some_and(|(gamma, _)| gamma.len() == c)
            && c.is_multiple_of(self.groups)
            && modulation.is_none_or(|(s, t)| s.dims() == [b, c] && t.dims() == [b, c])
    }

    /// What normalising `v` (`[b, c, h, w]`, host values) does to each (item, channel): the
    /// group's mean and inverse deviation from sums in f64 (groups split across the kernel
    /// threads), the channel's weight and bias, and the modulation's `(1 + scale, shift)`.
    fn host_params(
        &self,
        v: &[f32],
        [b, c, h, w]: [usize; 4],
        modulation: Option<(Tensor<2>, Tensor<2>)>,
    ) -> Vec<ChannelNorm> {
        let (gamma, beta) = self.host.as_ref().expect("host_fits checked");
        let g = self.groups;
        let modulation = modulation.map(|(s, t)| (super::to_host(s), super::to_host(t)));
        let per = (c / g) * h * w;
        let mut stats = vec![0f32; 2 * b * g];
        let dst = SharedMut::new(&mut stats);
        crate::quant::kernels::for_each_unit(v.len() >= 1 << 15, b * g, &|grp| {
            let (s1, s2) = sums_f64(&v[grp * per..(grp + 1) * per]);
            let mean = s1 / per as f64;
            let var = (s2 / per as f64 - mean * mean).max(0.0);
            // SAFETY: group grp's two statistics belong to this unit alone.
            let out = unsafe { dst.slice(2 * grp, 2) };
            out[0] = mean as f32;
            out[1] = (1.0 / (var + self.eps).sqrt()) as f32;
        });
        (0..b * c)
            .map(|row| {
                let (bi, ch) = (row / c, row % c);
                let grp = bi * g + ch / (c / g);
                let (m1, m0) = match &modulation {
                    Some((s, t)) => (1.0 + s[row], t[row]),
                    None => (1.0, 0.0),
                };
                ChannelNorm {
                    mean: stats[2 * grp],
                    scale: gamma[ch] * stats[2 * grp + 1],
                    bias: beta[ch],
                    m1,
                    m0,
                }
            })
            .collect()
    }

    fn forward_tensors(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let g = self.groups;
        let grouped = x.reshape([b, g, (c / g) * h * w]);
        let mean = grouped.clone().mean_dim(2);
        let centered = grouped - mean;
        let var = centered.clone().square().mean_dim(2);
        let normed = centered * (var + self.eps).sqrt().recip();
        let normed = normed.reshape([b, c, h, w]);
        let scale = self.weight.clone().reshape([1, c, 1, 1]);
        let shift = self.bias.clone().reshape([1, c, 1, 1]);
        normed * scale + shift
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    fn device() -> burn::tensor::Device {
        crate::parse_device("flex").unwrap()
    }

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn group_norm_matches_a_hand_computation() {
        let d = device();
        // One batch, 4 channels in 2 groups, 1x2 positions.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 14.0], [1, 4, 1, 2]),
            &d,
        );
        let w = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0, 1.0, 1.0], [4]), &d);
        let b = Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 0.0, 0.5, 0.0], [4]), &d);
        let y = values(GroupNorm::new(2, w, b, 0.0).forward(x));
        // Group 0: 1..4, mean 2.5, var 1.25; group 1: 10,10,10,14, mean 11, var 3.
        let s0 = 1.25f32.sqrt();
        let s1 = 3f32.sqrt();
        let want = [
            -1.5 / s0,
            -0.5 / s0,
            2.0 * 0.5 / s0,
            2.0 * 1.5 / s0,
            -1.0 / s1 + 0.5,
            -1.0 / s1 + 0.5,
            -1.0 / s1,
            3.0 / s1,
        ];
        for (g, e) in y.iter().zip(want) {
            assert!((g - e).abs() < 1e-5, "{g} vs {e}");
        }
    }

    #[test]
    fn host_tiles_match_burns_convolution() {
        // 70 input channels (several position tiles at 3x3), two items, odd sizes.
        let d = device();
        let val = |n: usize, s: usize| -> Vec<f32> {
            (0..n).map(|i| ((i * s) % 101) as f32 / 101.0 - 0.5).collect()
        };
        // Width 24 with 37 rows: the direct 3x3 kernel, an odd number of runs of eight.
        let cases = [(29, 3, 1, 1), (29, 3, 2, 1), (29, 1, 1, 0), (29, 4, 2, 1), (24, 3, 1, 1)];
        let (b, c, h, out) = (2, 70, 37, 9);
        for (w, k, stride, pad) in cases {
            let x =
                Tensor::<4>::from_data(TensorData::new(val(b * c * h * w, 13), [b, c, h, w]), &d);
            let wt = Tensor::<4>::from_data(
                TensorData::new(val(out * c * k * k, 7), [out, c, k, k]),
                &d,
            );
            let bias = Tensor::<1>::from_data(TensorData::new(val(out, 3), [out]), &d);
            let conv = Conv2d::new(wt.clone(), Some(bias.clone()), stride, pad);
            let options = ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1);
            let want = conv2d(x.clone(), wt, Some(bias), options);
            let residual = Tensor::<4>::from_data(
                TensorData::new(val(want.shape().num_elements(), 5), want.dims()),
                &d,
            );
            let got = values(conv.forward(x.clone()));
            let got_add = values(conv.forward_add(x.clone(), residual.clone()));
            let (want, want_add) = (values(want.clone()), values(want + residual));
            for (g, e) in got.iter().zip(&want).chain(got_add.iter().zip(&want_add)) {
                assert!((g - e).abs() < 1e-4, "w{w} k{k} s{stride} p{pad}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn normed_convolution_matches_norm_then_convolution() {
        let d = device();
        let val = |n: usize, s: usize| -> Vec<f32> {
            (0..n).map(|i| ((i * s) % 101) as f32 / 101.0 - 0.3).collect()
        };
        let (b, c, h, out) = (2, 12, 9, 7);
        let t =
            |v: Vec<f32>, dims: [usize; 2]| Tensor::<2>::from_data(TensorData::new(v, dims), &d);
        let norm = GroupNorm::new(
            4,
            Tensor::from_data(TensorData::new(val(c, 3), [c]), &d),
            Tensor::from_data(TensorData::new(val(c, 5), [c]), &d),
            1e-5,
        );
        // Width 16 takes the fused path, width 13 the plain one.
        for w in [16, 13] {
            let x =
                Tensor::<4>::from_data(TensorData::new(val(b * c * h * w, 13), [b, c, h, w]), &d);
            let conv = Conv2d::new(
                Tensor::from_data(TensorData::new(val(out * c * 9, 7), [out, c, 3, 3]), &d),
                Some(Tensor::from_data(TensorData::new(val(out, 11), [out]), &d)),
                1,
                1,
            );
            let residual = Tensor::<4>::from_data(
                TensorData::new(val(b * out * h * w, 17), [b, out, h, w]),
                &d,
            );
            let modulation = || Some((t(val(b * c, 19), [b, c]), t(val(b * c, 23), [b, c])));
            let want = conv
                .forward_add(norm.forward_fused(x.clone(), modulation(), true), residual.clone());
            let got = conv.forward_normed(x.clone(), &norm, modulation(), true, Some(residual));
            let (got, want) = (values(got), values(want));
            for (g, e) in got.iter().zip(&want) {
                assert!((g - e).abs() < 1e-4, "w{w}: {g} vs {e}");
            }
            let want = values(conv.forward(norm.forward(x.clone())));
            let got = values(conv.forward_normed(x, &norm, None, false, None));
            for (g, e) in got.iter().zip(&want) {
                assert!((g - e).abs() < 1e-4, "w{w}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn conv_with_padding_sums_the_neighbourhood() {
        let d = device();
        let x = Tensor::<4>::ones([1, 1, 3, 3], &d);
        let conv = Conv2d::new(Tensor::ones([1, 1, 3, 3], &d), None, 1, 1);
        let y = values(conv.forward(x));
        assert_eq!(y, vec![4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0]);
        let strided = Conv2d::new(Tensor::ones([1, 1, 3, 3], &d), None, 2, 1);
        assert_eq!(
            values(strided.forward(Tensor::ones([1, 1, 3, 3], &d))),
            vec![4.0, 4.0, 4.0, 4.0]
        );
    }
}
