//! VITS building blocks (Kim et al., 2021, as Piper trains them): so far the text encoder,
//! a post-norm transformer over phoneme embeddings with windowed relative-position
//! attention, whose output gives the prior's mean and log-deviation per phoneme.

use aigc_core::burn::tensor::{Device, Int, Tensor, TensorData};
use aigc_core::layers::{LayerNorm, LeakyRelu, softmax_last};
use aigc_core::weights::WeightLoader;
use aigc_core::{Error, Result};

/// A 1-D convolution with "same" padding (odd kernels), loaded by name.
#[derive(Debug, Clone)]
pub(crate) struct Conv1d(aigc_core::layers::Conv1d);

impl Conv1d {
    /// `{p}.weight` `[out, inp / groups, k]` and `{p}.bias` `[out]`.
    pub(crate) fn load(
        w: &WeightLoader<'_>,
        p: &str,
        shape: [usize; 3],
        dilation: usize,
        groups: usize,
    ) -> Self {
        Self::load_with(w, p, shape, dilation, groups, true)
    }

    /// [`load`](Self::load), the bias optional.
    pub(crate) fn load_with(
        w: &WeightLoader<'_>,
        p: &str,
        [out, inp, k]: [usize; 3],
        dilation: usize,
        groups: usize,
        bias: bool,
    ) -> Self {
        let weight = w.tensor(&format!("{p}.weight"), [out, inp / groups.max(1), k]);
        let bias = bias.then(|| w.tensor(&format!("{p}.bias"), [out]));
        let padding = (k - 1) * dilation / 2;
        Self(aigc_core::layers::Conv1d::new(weight, bias, padding, dilation, groups))
    }

    pub(crate) fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.0.forward(x)
    }

    /// `conv(pre(x)) + residual`, see [`aigc_core::layers::Conv1d::forward_with`].
    pub(crate) fn forward_with(
        &self,
        x: Tensor<3>,
        pre: Option<LeakyRelu>,
        residual: Option<&Tensor<3>>,
    ) -> Tensor<3> {
        self.0.forward_with(x, pre, residual)
    }
}

/// Layer norm over the channels of `[batch, channels, time]` (VITS keeps channels first).
#[derive(Debug, Clone)]
struct ChannelNorm(LayerNorm);

impl ChannelNorm {
    fn load(w: &WeightLoader<'_>, p: &str, c: usize) -> Self {
        let gamma = w.tensor(&format!("{p}.gamma"), [c]);
        let beta = w.tensor(&format!("{p}.beta"), [c]);
        Self(LayerNorm::new(gamma, beta, 1e-5))
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.0.forward_channels(x, false)
    }

    /// The norm followed by the exact GELU.
    fn forward_gelu(&self, x: Tensor<3>) -> Tensor<3> {
        self.0.forward_channels(x, true)
    }
}

/// Multi-head self-attention with relative-position embeddings for offsets within
/// `window` (shared by the heads) on keys and values.
#[derive(Debug, Clone)]
struct RelativeAttention {
    /// `conv_q`, `conv_k` and `conv_v` as one convolution (`3 c` outputs).
    qkv: Conv1d,
    o: Conv1d,
    /// `[2 window + 1][head_dim]` each, on the host.
    rel_k: Vec<f32>,
    rel_v: Vec<f32>,
    heads: usize,
    window: usize,
}

impl RelativeAttention {
    fn load(w: &WeightLoader<'_>, p: &str, c: usize, heads: usize, window: usize) -> Self {
        let d = c / heads;
        let rel = |name: &str| {
            let t = w.tensor(&format!("{p}.{name}"), [1, 2 * window + 1, d]);
            t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default()
        };
        let part = |n: &str| {
            let weight = w.tensor(&format!("{p}.conv_{n}.weight"), [c, c, 1]);
            (weight, w.tensor(&format!("{p}.conv_{n}.bias"), [c]))
        };
        let (parts, biases): (Vec<_>, Vec<_>) = ["q", "k", "v"].map(part).into_iter().unzip();
        let qkv = aigc_core::layers::Conv1d::new(
            Tensor::cat(parts, 0),
            Some(Tensor::cat(biases, 0)),
            0,
            1,
            1,
        );
        Self {
            qkv: Conv1d(qkv),
            o: Conv1d::load(w, &format!("{p}.conv_o"), [c, c, 1], 1, 1),
            rel_k: rel("emb_rel_k"),
            rel_v: rel("emb_rel_v"),
            heads,
            window,
        }
    }

    /// `x + attention(x)` for `x` `[1, channels, t]`.
    fn forward_residual(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, c, t] = x.dims();
        let (h, d, win) = (self.heads, c / self.heads, self.window);
        let device = x.device();
        let qkv = self.qkv.forward(x.clone());
        // [bh, t, d] each
        let split =
            |i: usize| qkv.clone().narrow(1, i * c, c).reshape([b * h, d, t]).swap_dims(1, 2);
        let q = split(0) / (d as f64).sqrt();
        let (k, v) = (split(1), split(2));
        let span = 2 * win + 1;
        let rel_k = Tensor::<2>::from_data(TensorData::new(self.rel_k.clone(), [span, d]), &device);
        let rel_v = Tensor::<2>::from_data(TensorData::new(self.rel_v.clone(), [span, d]), &device);
        // q·(relative key of offset j - i), for the offsets inside the window.
        let qe = host(q.clone().matmul(rel_k.transpose().unsqueeze_dim::<3>(0)));
        let mut bias = vec![0f32; b * h * t * t];
        for bh in 0..b * h {
            for i in 0..t {
                for j in i.saturating_sub(win)..(i + win + 1).min(t) {
                    bias[(bh * t + i) * t + j] = qe[(bh * t + i) * span + j + win - i];
                }
            }
        }
        let bias = Tensor::<3>::from_data(TensorData::new(bias, [b * h, t, t]), &device);
        let p = softmax_last(q.matmul(k.swap_dims(1, 2)) + bias);
        // Each query's weights regrouped by offset, times the relative values.
        let ph = host(p.clone());
        let mut by_offset = vec![0f32; b * h * t * span];
        for bh in 0..b * h {
            for i in 0..t {
                for j in i.saturating_sub(win)..(i + win + 1).min(t) {
                    by_offset[(bh * t + i) * span + j + win - i] = ph[(bh * t + i) * t + j];
                }
            }
        }
        let by_offset =
            Tensor::<3>::from_data(TensorData::new(by_offset, [b * h, t, span]), &device);
        let out = p.matmul(v) + by_offset.matmul(rel_v.unsqueeze_dim::<3>(0));
        self.o.forward_with(out.swap_dims(1, 2).reshape([b, c, t]), None, Some(&x))
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default()
}

/// The text encoder's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextEncoderConfig {
    /// Embedding rows.
    pub n_vocab: usize,
    /// Hidden channels (192 in Piper's medium voices).
    pub hidden: usize,
    /// Feed-forward channels.
    pub filter: usize,
    /// Attention heads.
    pub heads: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Feed-forward kernel size.
    pub kernel: usize,
    /// Relative-position window (offsets -window..=window).
    pub window: usize,
    /// Channels of the prior (`m_p`, `logs_p`).
    pub out_channels: usize,
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    attn: RelativeAttention,
    norm1: ChannelNorm,
    ffn1: Conv1d,
    ffn2: Conv1d,
    norm2: ChannelNorm,
}

/// The VITS text encoder (`enc_p`).
#[derive(Debug, Clone)]
pub struct TextEncoder {
    cfg: TextEncoderConfig,
    embedding: Tensor<2>,
    layers: Vec<EncoderLayer>,
    proj: Conv1d,
    device: Device,
}

/// What the text encoder gives per phoneme: hidden states, and the prior's mean and log
/// standard deviation, each `[1, channels, phonemes]`.
#[derive(Debug, Clone)]
pub struct TextEncoding {
    /// Hidden states (the duration predictor's input).
    pub x: Tensor<3>,
    /// Mean of the prior over the flow's latent, per phoneme (expanded to frames by the
    /// durations before sampling).
    pub m_p: Tensor<3>,
    /// Natural log of the prior's standard deviation, per phoneme; the sampled noise is
    /// scaled by `exp(logs_p) * noise_scale`.
    pub logs_p: Tensor<3>,
}

impl TextEncoder {
    /// Loads `{p}emb.weight` (or `embedding`, when given: Piper's export calls it `sid`) and
    /// `{p}encoder.*`, `{p}proj.*`.
    pub fn load(
        w: &WeightLoader<'_>,
        p: &str,
        embedding: Option<&str>,
        cfg: TextEncoderConfig,
    ) -> Self {
        let c = cfg.hidden;
        let emb_name = embedding.map_or_else(|| format!("{p}emb.weight"), str::to_string);
        let layers = (0..cfg.layers)
            .map(|l| {
                let e = format!("{p}encoder");
                EncoderLayer {
                    attn: RelativeAttention::load(
                        w,
                        &format!("{e}.attn_layers.{l}"),
                        c,
                        cfg.heads,
                        cfg.window,
                    ),
                    norm1: ChannelNorm::load(w, &format!("{e}.norm_layers_1.{l}"), c),
                    ffn1: Conv1d::load(
                        w,
                        &format!("{e}.ffn_layers.{l}.conv_1"),
                        [cfg.filter, c, cfg.kernel],
                        1,
                        1,
                    ),
                    ffn2: Conv1d::load(
                        w,
                        &format!("{e}.ffn_layers.{l}.conv_2"),
                        [c, cfg.filter, cfg.kernel],
                        1,
                        1,
                    ),
                    norm2: ChannelNorm::load(w, &format!("{e}.norm_layers_2.{l}"), c),
                }
            })
            .collect();
        Self {
            embedding: w.tensor(&emb_name, [cfg.n_vocab, c]),
            layers,
            proj: Conv1d::load(w, &format!("{p}proj"), [2 * cfg.out_channels, c, 1], 1, 1),
            device: w.device().clone(),
            cfg,
        }
    }

    /// Encodes phoneme ids (one sentence).
    pub fn forward(&self, ids: &[i64]) -> Result<TextEncoding> {
        let n = self.cfg.n_vocab as i64;
        if ids.is_empty() || ids.iter().any(|&i| !(0..n).contains(&i)) {
            return Err(Error::invalid_argument(
                "phoneme ids",
                format!("{} ids, each must be in 0..{n}", ids.len()),
            ));
        }
        let (t, c) = (ids.len(), self.cfg.hidden);
        let index = Tensor::<1, Int>::from_data(TensorData::new(ids.to_vec(), [t]), &self.device);
        let x = self.embedding.clone().select(0, index) * (c as f64).sqrt();
        let mut x = x.transpose().reshape([1, c, t]);
        // ReLU is a leaky ReLU of slope 0, applied as the second convolution reads.
        let relu = Some(LeakyRelu::new(0.0));
        for layer in &self.layers {
            x = layer.norm1.forward(layer.attn.forward_residual(x));
            let y = layer.ffn2.forward_with(layer.ffn1.forward(x.clone()), relu, Some(&x));
            x = layer.norm2.forward(y);
        }
        let stats = self.proj.forward(x.clone());
        let o = self.cfg.out_channels;
        Ok(TextEncoding { x, m_p: stats.clone().narrow(1, 0, o), logs_p: stats.narrow(1, o, o) })
    }
}

/// WaveNet-style stack of gated dilated convolutions (`WN`), without conditioning.
#[derive(Debug, Clone)]
struct WaveNet {
    in_layers: Vec<Conv1d>,
    /// Per layer `(residual, skip)`: `res_skip_layers` split by output rows (the last layer
    /// has no residual part).
    res_skip: Vec<(Option<Conv1d>, Conv1d)>,
}

impl WaveNet {
    fn load(
        w: &WeightLoader<'_>,
        p: &str,
        hidden: usize,
        kernel: usize,
        layers: usize,
        dilation_rate: usize,
    ) -> Self {
        let mut in_layers = Vec::new();
        let mut res_skip = Vec::new();
        for i in 0..layers {
            let d = dilation_rate.pow(i as u32);
            in_layers.push(Conv1d::load(
                w,
                &format!("{p}.in_layers.{i}"),
                [2 * hidden, hidden, kernel],
                d,
                1,
            ));
            let last = i + 1 == layers;
            let out = if last { hidden } else { 2 * hidden };
            let name = format!("{p}.res_skip_layers.{i}");
            let weight = w.tensor(&format!("{name}.weight"), [out, hidden, 1]);
            let bias = w.tensor(&format!("{name}.bias"), [out]);
            let rows = |from: usize| {
                let conv = aigc_core::layers::Conv1d::new(
                    weight.clone().narrow(0, from, hidden),
                    Some(bias.clone().narrow(0, from, hidden)),
                    0,
                    1,
                    1,
                );
                Conv1d(conv)
            };
            res_skip.push(if last { (None, rows(0)) } else { (Some(rows(0)), rows(hidden)) });
        }
        Self { in_layers, res_skip }
    }

    fn forward(&self, mut x: Tensor<3>) -> Tensor<3> {
        let mut out: Option<Tensor<3>> = None;
        for (inl, (res, skip)) in self.in_layers.iter().zip(&self.res_skip) {
            let acts = aigc_core::layers::gated_tanh(inl.forward(x.clone()));
            // The residual and the running sum of skips are added as the convolutions write.
            out = Some(skip.forward_with(acts.clone(), None, out.as_ref()));
            if let Some(res) = res {
                x = res.forward_with(acts, None, Some(&x));
            }
        }
        out.expect("at least one layer")
    }
}

/// A mean-only affine coupling layer: the second half of the channels shifted by a function
/// of the first.
#[derive(Debug, Clone)]
struct Coupling {
    pre: Conv1d,
    enc: WaveNet,
    post: Conv1d,
    half: usize,
}

impl Coupling {
    fn reverse(&self, z: Tensor<3>) -> Tensor<3> {
        let h = self.half;
        let (x0, x1) = (z.clone().narrow(1, 0, h), z.narrow(1, h, h));
        let m = self.post.forward(self.enc.forward(self.pre.forward(x0.clone())));
        Tensor::cat(vec![x0, x1 - m], 1)
    }
}

/// The flow's sizes (`ResidualCouplingBlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// Channels (split in halves).
    pub channels: usize,
    /// WaveNet hidden channels.
    pub hidden: usize,
    /// WaveNet kernel size.
    pub kernel: usize,
    /// WaveNet dilation rate (dilation of layer i is rate^i).
    pub dilation_rate: usize,
    /// WaveNet layers.
    pub layers: usize,
    /// Coupling layers (each followed by a channel flip).
    pub flows: usize,
}

/// The normalising flow between the prior and the decoder's latents, run in reverse.
#[derive(Debug, Clone)]
pub struct Flow {
    couplings: Vec<Coupling>,
}

impl Flow {
    /// Loads `{p}flows.{0,2,4,...}` (the odd entries are parameterless flips).
    pub fn load(w: &WeightLoader<'_>, p: &str, cfg: FlowConfig) -> Self {
        let half = cfg.channels / 2;
        let couplings = (0..cfg.flows)
            .map(|i| {
                let f = format!("{p}flows.{}", 2 * i);
                Coupling {
                    pre: Conv1d::load(w, &format!("{f}.pre"), [cfg.hidden, half, 1], 1, 1),
                    enc: WaveNet::load(
                        w,
                        &format!("{f}.enc"),
                        cfg.hidden,
                        cfg.kernel,
                        cfg.layers,
                        cfg.dilation_rate,
                    ),
                    post: Conv1d::load(w, &format!("{f}.post"), [half, cfg.hidden, 1], 1, 1),
                    half,
                }
            })
            .collect();
        Self { couplings }
    }

    /// The decoder's latents for prior samples `z_p` (`[1, channels, frames]`).
    pub fn reverse(&self, mut z: Tensor<3>) -> Tensor<3> {
        for c in self.couplings.iter().rev() {
            z = c.reverse(z.flip([1]));
        }
        z
    }
}

/// Dilated depthwise-separable convolutions (`DDSConv`): per layer a depthwise convolution
/// of dilation `kernel^i`, layer norm, GELU, a 1x1 convolution, layer norm, GELU, residual.
#[derive(Debug, Clone)]
struct DdsConv {
    layers: Vec<(Conv1d, ChannelNorm, Conv1d, ChannelNorm)>,
}

impl DdsConv {
    fn load(w: &WeightLoader<'_>, p: &str, channels: usize, kernel: usize, layers: usize) -> Self {
        let layers = (0..layers)
            .map(|i| {
                let d = kernel.pow(i as u32);
                (
                    Conv1d::load(
                        w,
                        &format!("{p}.convs_sep.{i}"),
                        [channels, channels, kernel],
                        d,
                        channels,
                    ),
                    ChannelNorm::load(w, &format!("{p}.norms_1.{i}"), channels),
                    Conv1d::load(w, &format!("{p}.convs_1x1.{i}"), [channels, channels, 1], 1, 1),
                    ChannelNorm::load(w, &format!("{p}.norms_2.{i}"), channels),
                )
            })
            .collect();
        Self { layers }
    }

    fn forward(&self, mut x: Tensor<3>) -> Tensor<3> {
        for (sep, n1, pointwise, n2) in &self.layers {
            let y = n1.forward_gelu(sep.forward(x.clone()));
            x = n2.forward_gelu(pointwise.forward(y)) + x;
        }
        x
    }
}

/// A coupling layer whose second channel goes through a monotonic rational-quadratic spline
/// conditioned on the first and on the text (`ConvFlow`).
#[derive(Debug, Clone)]
struct ConvFlow {
    pre: Conv1d,
    convs: DdsConv,
    proj: Conv1d,
    filter: usize,
}

/// Spline bins of the duration predictor's flows.
const SPLINE_BINS: usize = 10;
/// Beyond ±this the splines are the identity.
const SPLINE_TAIL: f64 = 5.0;
/// Smallest bin width, height and derivative.
const SPLINE_MIN: f64 = 1e-3;

impl ConvFlow {
    /// `z` `[1, 2, t]`; `g` the predictor's hidden states `[1, filter, t]`.
    fn reverse(&self, z: Tensor<3>, g: &Tensor<3>) -> Tensor<3> {
        let [_, _, t] = z.dims();
        let (x0, x1) = (z.clone().narrow(1, 0, 1), z.narrow(1, 1, 1));
        let h = self.proj.forward(self.convs.forward(self.pre.forward(x0.clone()) + g.clone()));
        let params = host(h); // [3 bins - 1][t]
        let x1v = host(x1);
        let scale = 1.0 / (self.filter as f64).sqrt();
        let out: Vec<f32> = (0..t)
            .map(|i| {
                let col = |k: usize| params[k * t + i] as f64;
                let uw: Vec<f64> = (0..SPLINE_BINS).map(|k| col(k) * scale).collect();
                let uh: Vec<f64> = (0..SPLINE_BINS).map(|k| col(SPLINE_BINS + k) * scale).collect();
                let ud: Vec<f64> = (0..SPLINE_BINS - 1).map(|k| col(2 * SPLINE_BINS + k)).collect();
                inverse_spline(x1v[i] as f64, &uw, &uh, &ud) as f32
            })
            .collect();
        let x1 = Tensor::<3>::from_data(TensorData::new(out, [1, 1, t]), &x0.device());
        Tensor::cat(vec![x0, x1], 1)
    }
}

/// The inverse of a rational-quadratic spline on `[-tail, tail]` with linear tails
/// (Durkan et al., 2019, as VITS's `transforms.py` computes it): unnormalised widths,
/// heights (`bins` each) and inner derivatives (`bins - 1`).
fn inverse_spline(y: f64, uw: &[f64], uh: &[f64], ud: &[f64]) -> f64 {
    if !(-SPLINE_TAIL..=SPLINE_TAIL).contains(&y) {
        return y;
    }
    let bins = uw.len();
    let knots = |u: &[f64]| -> Vec<f64> {
        let max = u.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = u.iter().map(|v| (v - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        let mut acc = 0.0;
        let mut k = vec![-SPLINE_TAIL];
        for v in &e {
            acc += SPLINE_MIN + (1.0 - SPLINE_MIN * bins as f64) * v / sum;
            k.push(2.0 * SPLINE_TAIL * acc - SPLINE_TAIL);
        }
        k[bins] = SPLINE_TAIL;
        k
    };
    let (cw, ch) = (knots(uw), knots(uh));
    // Boundary derivatives are 1: the softplus inverse of 1 - min, then softplus + min.
    let edge = ((1.0 - SPLINE_MIN).exp() - 1.0).ln();
    let der: Vec<f64> = std::iter::once(edge)
        .chain(ud.iter().copied())
        .chain(std::iter::once(edge))
        .map(|v| SPLINE_MIN + v.exp().ln_1p())
        .collect();
    let mut k = 0;
    for (j, &c) in ch.iter().enumerate().take(bins) {
        if y >= c {
            k = j;
        }
    }
    let (w, h) = (cw[k + 1] - cw[k], ch[k + 1] - ch[k]);
    let delta = h / w;
    let (d0, d1) = (der[k], der[k + 1]);
    let dy = y - ch[k];
    let a = dy * (d0 + d1 - 2.0 * delta) + h * (delta - d0);
    let b = h * d0 - dy * (d0 + d1 - 2.0 * delta);
    let c = -delta * dy;
    let disc = (b * b - 4.0 * a * c).max(0.0);
    let theta = 2.0 * c / (-b - disc.sqrt());
    theta * w + cw[k]
}

/// The stochastic duration predictor (`dp`), run in reverse from noise to log-durations.
#[derive(Debug, Clone)]
pub struct DurationPredictor {
    pre: Conv1d,
    convs: DdsConv,
    proj: Conv1d,
    /// The reversed flows after the first (ConvFlows, each preceded by a channel flip).
    flows: Vec<ConvFlow>,
    /// The element-wise affine flow: mean and exp(-log scale), two values each.
    affine_m: Vec<f32>,
    affine_inv_scale: Vec<f32>,
}

impl DurationPredictor {
    /// Loads `{p}pre`, `{p}convs`, `{p}proj` and the flows `{p}flows.{3,5,7}` (the
    /// parameters of flow 1 are unused at inference and absent from Piper's exports);
    /// `inv_scale` is `exp(-{p}flows.0.logs)` when the file stores that instead of the logs.
    pub fn load(
        w: &WeightLoader<'_>,
        p: &str,
        channels: usize,
        inv_scale: Option<Vec<f32>>,
    ) -> Self {
        let (k, layers) = (3, 3);
        let flows = [7, 5, 3]
            .iter()
            .map(|f| {
                let q = format!("{p}flows.{f}");
                ConvFlow {
                    pre: Conv1d::load(w, &format!("{q}.pre"), [channels, 1, 1], 1, 1),
                    convs: DdsConv::load(w, &format!("{q}.convs"), channels, k, layers),
                    proj: Conv1d::load(
                        w,
                        &format!("{q}.proj"),
                        [3 * SPLINE_BINS - 1, channels, 1],
                        1,
                        1,
                    ),
                    filter: channels,
                }
            })
            .collect();
        let affine_m = host(w.tensor(&format!("{p}flows.0.m"), [2, 1]));
        let affine_inv_scale = inv_scale.unwrap_or_else(|| {
            host(w.tensor(&format!("{p}flows.0.logs"), [2, 1])).iter().map(|l| (-l).exp()).collect()
        });
        Self {
            pre: Conv1d::load(w, &format!("{p}pre"), [channels, channels, 1], 1, 1),
            convs: DdsConv::load(w, &format!("{p}convs"), channels, k, layers),
            proj: Conv1d::load(w, &format!("{p}proj"), [channels, channels, 1], 1, 1),
            flows,
            affine_m,
            affine_inv_scale,
        }
    }

    /// Log-durations per phoneme for the text encoder's hidden states `x` (`[1, c, t]`),
    /// starting from `noise` (`[2][t]`, standard normal, scaled by `noise_w` here).
    pub fn reverse(&self, x: &Tensor<3>, noise: &[f32], noise_w: f32) -> Vec<f32> {
        let t = x.dims()[2];
        let device = x.device();
        let g = self.proj.forward(self.convs.forward(self.pre.forward(x.clone())));
        let z: Vec<f32> = noise.iter().map(|v| v * noise_w).collect();
        let mut z = Tensor::<3>::from_data(TensorData::new(z, [1, 2, t]), &device);
        for flow in &self.flows {
            z = flow.reverse(z.flip([1]), &g);
        }
        let z = host(z.flip([1]));
        (0..t).map(|i| (z[i] - self.affine_m[0]) * self.affine_inv_scale[0]).collect()
    }
}
