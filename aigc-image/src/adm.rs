//! The ADM UNet of guided-diffusion and OpenAI's consistency models, with the consistency
//! preconditioning (`c_skip`, `c_out`, `c_in`) around it.
//!
//! Parameters keep the reference names (`input_blocks.5.0.in_layers.2.weight`, ...), under an
//! optional prefix (`network.` in the terrain checkpoint). The layout (base channels, channel
//! multipliers, residual blocks per level, which levels attend) is read from the weights'
//! names and shapes; what weights cannot say (channels per attention head, the noise
//! conditioning's scale, the sigma constants) is in [`AdmConfig`].

use aigc_core::burn::tensor::{Device, Tensor, TensorData};

use aigc_core::layers::{Conv2d, GroupNorm, HeadLayout, QLinear, multi_head_attention};
use aigc_core::weights::{TensorSource, WeightLoader};
use aigc_core::{Error, Result};

/// What the weights do not say about an ADM consistency model.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmConfig {
    /// The parameter names' prefix (`"network."`), or empty.
    pub prefix: String,
    /// Channels per attention head (`num_head_channels`).
    pub head_channels: usize,
    /// Groups of every group norm.
    pub groups: usize,
    /// The group norms' epsilon.
    pub eps: f64,
    /// The network's noise input is `noise_scale * ln(sigma)` (consistency models: 250).
    pub noise_scale: f32,
    /// The smallest sigma (the consistency boundary condition holds there).
    pub sigma_min: f32,
    /// The data's standard deviation in the preconditioning.
    pub sigma_data: f32,
    /// Whether the denoised output is clipped to `[-1, 1]`.
    pub clip_denoised: bool,
}

impl Default for AdmConfig {
    /// The terrain consistency model's values (read from its ONNX graph): 32 channels per head,
    /// 32 groups with eps 1e-5, `c_noise = 250 ln(sigma)`, sigma_min 0.002, sigma_data 0.5,
    /// output clipped.
    fn default() -> Self {
        Self {
            prefix: "network.".into(),
            head_channels: 32,
            groups: 32,
            eps: 1e-5,
            noise_scale: 250.0,
            sigma_min: 0.002,
            sigma_data: 0.5,
            clip_denoised: true,
        }
    }
}

/// The layout read from the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmLayout {
    /// Image channels in and out.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Base channels (`model_channels`).
    pub model_channels: usize,
    /// Channels per level, as multiples of the base.
    pub channel_mult: Vec<usize>,
    /// Residual blocks per level on the way down (one more on the way up).
    pub res_blocks: usize,
    /// Whether each level has attention after its residual blocks.
    pub attention: Vec<bool>,
    /// Whether a class/label embedding of a continuous label (`label_emb`) is present.
    pub label: bool,
}

/// `emb_layers`-conditioned residual block with scale-shift norm; optionally halves
/// (average pooling) or doubles (nearest) the resolution.
#[derive(Debug, Clone)]
struct ResBlock {
    in_norm: GroupNorm,
    in_conv: Conv2d,
    emb: QLinear,
    out_norm: GroupNorm,
    out_conv: Conv2d,
    skip: Option<Conv2d>,
    resample: Resample,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resample {
    None,
    Down,
    Up,
}

fn resample(x: Tensor<4>, how: Resample) -> Tensor<4> {
    match how {
        Resample::None => x,
        Resample::Down => aigc_core::layers::avg_pool2x2(x),
        Resample::Up => aigc_core::layers::upsample_nearest2x(x),
    }
}

impl ResBlock {
    fn load(
        w: &WeightLoader<'_>,
        p: &str,
        cfg: &AdmConfig,
        (ch, out, emb): (usize, usize, usize),
        resample: Resample,
    ) -> Self {
        let skip = (ch != out)
            .then(|| Conv2d::load(w, &format!("{p}.skip_connection"), [out, ch, 1], 1, 0));
        Self {
            in_norm: GroupNorm::load(w, &format!("{p}.in_layers.0"), cfg.groups, ch, cfg.eps),
            in_conv: Conv2d::load(w, &format!("{p}.in_layers.2"), [out, ch, 3], 1, 1),
            emb: w.linear(&format!("{p}.emb_layers.1"), emb, 2 * out, true),
            out_norm: GroupNorm::load(w, &format!("{p}.out_layers.0"), cfg.groups, out, cfg.eps),
            out_conv: Conv2d::load(w, &format!("{p}.out_layers.3"), [out, out, 3], 1, 1),
            skip,
            resample,
        }
    }

    fn forward(&self, x: Tensor<4>, emb: &Tensor<2>) -> Tensor<4> {
        let h = match self.resample {
            Resample::None => {
                self.in_conv.forward_normed(x.clone(), &self.in_norm, None, true, None)
            }
            how => self
                .in_conv
                .forward(resample(self.in_norm.forward_fused(x.clone(), None, true), how)),
        };
        let x = resample(x, self.resample);
        // emb_layers: SiLU, Linear -> (scale, shift) per channel.
        let e = self.emb.forward(aigc_core::layers::silu(emb.clone()).unsqueeze_dim::<3>(1));
        let [b, _, two_c] = e.dims();
        let c = two_c / 2;
        let scale = e.clone().narrow(2, 0, c).reshape([b, c]);
        let shift = e.narrow(2, c, c).reshape([b, c]);
        let x = match &self.skip {
            Some(conv) => conv.forward(x),
            None => x,
        };
        self.out_conv.forward_normed(h, &self.out_norm, Some((scale, shift)), true, Some(x))
    }
}

/// Self-attention over the positions, heads of `head_channels` (QKVAttention, "new order":
/// q, k, v are the three thirds of the projection).
#[derive(Debug, Clone)]
struct AttentionBlock {
    norm: GroupNorm,
    qkv: Conv2d,
    proj: Conv2d,
    heads: usize,
}

impl AttentionBlock {
    fn load(w: &WeightLoader<'_>, p: &str, cfg: &AdmConfig, ch: usize) -> Self {
        Self {
            norm: GroupNorm::load(w, &format!("{p}.norm"), cfg.groups, ch, cfg.eps),
            qkv: Conv2d::load(w, &format!("{p}.qkv"), [3 * ch, ch, 1], 1, 0),
            proj: Conv2d::load(w, &format!("{p}.proj_out"), [ch, ch, 1], 1, 0),
            heads: (ch / cfg.head_channels.max(1)).max(1),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, hh, ww] = x.dims();
        let t = hh * ww;
        let (heads, ch) = (self.heads, c / self.heads);
        let qkv = self.qkv.forward(self.norm.forward(x.clone())).reshape([b, 3 * c, t]);
        let part = |i: usize| qkv.clone().narrow(1, i * c, c);
        // The reference scales q and k by ch^-1/4 each (for f16); one 1/sqrt(ch) on the
        // product is the same in f32 up to rounding.
        let scale = 1.0 / (ch as f32).sqrt();
        let a =
            multi_head_attention(part(0), part(1), part(2), heads, scale, HeadLayout::ChannelMajor)
                .reshape([b, c, hh, ww]);
        self.proj.forward_add(a, x)
    }
}

#[derive(Debug, Clone)]
enum Layer {
    Res(Box<ResBlock>),
    Attn(Box<AttentionBlock>),
}

impl Layer {
    fn forward(&self, x: Tensor<4>, emb: &Tensor<2>) -> Tensor<4> {
        match self {
            Layer::Res(r) => r.forward(x, emb),
            Layer::Attn(a) => a.forward(x),
        }
    }
}

/// The UNet with its preconditioning: [`AdmUnet::denoise`] maps a noisy sample and its sigma
/// to the denoised sample, as the exported consistency model does.
#[derive(Debug, Clone)]
pub struct AdmUnet {
    cfg: AdmConfig,
    layout: AdmLayout,
    time_embed: (QLinear, QLinear),
    label_embed: Option<(QLinear, QLinear)>,
    input_conv: Conv2d,
    input_blocks: Vec<Vec<Layer>>,
    middle: Vec<Layer>,
    output_blocks: Vec<Vec<Layer>>,
    out_norm: GroupNorm,
    out_conv: Conv2d,
    device: Device,
}

/// Shape of tensor `name`, or a load error naming it.
fn shape_of(src: &dyn TensorSource, name: &str) -> Result<Vec<usize>> {
    src.tensor_info(name)
        .map(|i| i.shape)
        .ok_or_else(|| Error::tensor(name, "is missing (needed to read the UNet's layout)"))
}

impl AdmLayout {
    /// Reads the layout from parameter names and shapes.
    pub fn infer(src: &dyn TensorSource, prefix: &str) -> Result<Self> {
        let p = |s: &str| format!("{prefix}{s}");
        let first = shape_of(src, &p("input_blocks.0.0.weight"))?;
        let [model_channels, in_channels, _, _] = first[..] else {
            return Err(Error::tensor(p("input_blocks.0.0.weight"), "is not a 4-D convolution"));
        };
        let out = shape_of(src, &p("out.2.weight"))?;
        let out_channels = out.first().copied().unwrap_or(0);
        let has = |s: String| src.tensor_info(&s).is_some();
        // Output block i holds [res, (attn), (up-res)]; the first with a residual block after
        // index 0 ends a level: it is block `res_blocks` (0-based).
        let count = |kind: &str, from: usize| {
            (from..).take_while(|i| has(p(&format!("{kind}.{i}.0.in_layers.2.weight")))).count()
        };
        // Input block 0 is the first convolution; the others start with a residual block.
        let (n_in, n_out) = (count("input_blocks", 1) + 1, count("output_blocks", 0));
        let res_blocks = (0..n_out)
            .find(|&i| (1..3).any(|j| has(p(&format!("output_blocks.{i}.{j}.in_layers.2.weight")))))
            .ok_or_else(|| Error::unsupported("ADM layout", "no upsampling block found"))?;
        let levels = n_out / (res_blocks + 1);
        if levels == 0 || n_out != levels * (res_blocks + 1) || n_in != levels * (res_blocks + 1) {
            return Err(Error::unsupported(
                "ADM layout",
                format!("{n_in} input and {n_out} output blocks do not form whole levels"),
            ));
        }
        let mut channel_mult = Vec::new();
        let mut attention = Vec::new();
        for level in 0..levels {
            let block = 1 + level * (res_blocks + 1);
            let name = p(&format!("input_blocks.{block}.0.in_layers.2.weight"));
            let ch = shape_of(src, &name)?[0];
            if model_channels == 0 || ch % model_channels != 0 {
                return Err(Error::tensor(
                    name,
                    format!("has {ch} channels, not a multiple of {model_channels}"),
                ));
            }
            channel_mult.push(ch / model_channels);
            attention.push(has(p(&format!("input_blocks.{block}.1.qkv.weight"))));
        }
        Ok(Self {
            in_channels,
            out_channels,
            model_channels,
            channel_mult,
            res_blocks,
            attention,
            label: has(p("label_emb.0.weight")),
        })
    }

    /// Channels of the time embedding (`4 * model_channels`).
    pub fn emb_channels(&self) -> usize {
        4 * self.model_channels
    }
}

impl AdmUnet {
    /// Loads the UNet from `src` (for instance [`OnnxFile::parameters`]) onto `device`.
    ///
    /// [`OnnxFile::parameters`]: aigc_core::weights::OnnxFile::parameters
    pub fn load(src: &dyn TensorSource, cfg: AdmConfig, device: &Device) -> Result<Self> {
        let layout = AdmLayout::infer(src, &cfg.prefix)?;
        if cfg.head_channels == 0 || cfg.groups == 0 {
            return Err(Error::invalid_argument(
                "AdmConfig",
                "head_channels and groups must be positive",
            ));
        }
        let prefix = cfg.prefix.clone();
        let w = WeightLoader::new(src, device).rename(move |n| format!("{prefix}{n}"));
        let mc = layout.model_channels;
        let emb = layout.emb_channels();
        let time_embed =
            (w.linear("time_embed.0", mc, emb, true), w.linear("time_embed.2", emb, emb, true));
        let label_embed = layout.label.then(|| {
            (w.linear("label_emb.0", 1, emb, true), w.linear("label_emb.2", emb, emb, true))
        });
        let input_conv = Conv2d::load(&w, "input_blocks.0.0", [mc, layout.in_channels, 3], 1, 1);

        let levels = layout.channel_mult.len();
        let mut input_blocks = Vec::new();
        let mut chans = vec![mc];
        let mut ch = mc;
        let mut k = 1;
        for level in 0..levels {
            let out = mc * layout.channel_mult[level];
            for _ in 0..layout.res_blocks {
                let p = format!("input_blocks.{k}");
                let mut layers = vec![Layer::Res(Box::new(ResBlock::load(
                    &w,
                    &format!("{p}.0"),
                    &cfg,
                    (ch, out, emb),
                    Resample::None,
                )))];
                ch = out;
                if layout.attention[level] {
                    layers.push(Layer::Attn(Box::new(AttentionBlock::load(
                        &w,
                        &format!("{p}.1"),
                        &cfg,
                        ch,
                    ))));
                }
                input_blocks.push(layers);
                chans.push(ch);
                k += 1;
            }
            if level + 1 < levels {
                let p = format!("input_blocks.{k}.0");
                input_blocks.push(vec![Layer::Res(Box::new(ResBlock::load(
                    &w,
                    &p,
                    &cfg,
                    (ch, ch, emb),
                    Resample::Down,
                )))]);
                chans.push(ch);
                k += 1;
            }
        }
        let middle = vec![
            Layer::Res(Box::new(ResBlock::load(
                &w,
                "middle_block.0",
                &cfg,
                (ch, ch, emb),
                Resample::None,
            ))),
            Layer::Attn(Box::new(AttentionBlock::load(&w, "middle_block.1", &cfg, ch))),
            Layer::Res(Box::new(ResBlock::load(
                &w,
                "middle_block.2",
                &cfg,
                (ch, ch, emb),
                Resample::None,
            ))),
        ];
        let mut output_blocks = Vec::new();
        let mut k = 0;
        for level in (0..levels).rev() {
            let out = mc * layout.channel_mult[level];
            for i in 0..=layout.res_blocks {
                let skip_ch = chans.pop().expect("one skip per input block");
                let p = format!("output_blocks.{k}");
                let mut layers = vec![Layer::Res(Box::new(ResBlock::load(
                    &w,
                    &format!("{p}.0"),
                    &cfg,
                    (ch + skip_ch, out, emb),
                    Resample::None,
                )))];
                ch = out;
                if layout.attention[level] {
                    layers.push(Layer::Attn(Box::new(AttentionBlock::load(
                        &w,
                        &format!("{p}.1"),
                        &cfg,
                        ch,
                    ))));
                }
                if level > 0 && i == layout.res_blocks {
                    let j = layers.len();
                    layers.push(Layer::Res(Box::new(ResBlock::load(
                        &w,
                        &format!("{p}.{j}"),
                        &cfg,
                        (ch, ch, emb),
                        Resample::Up,
                    ))));
                }
                output_blocks.push(layers);
                k += 1;
            }
        }
        let out_norm = GroupNorm::load(&w, "out.0", cfg.groups, ch, cfg.eps);
        let out_conv = Conv2d::load(&w, "out.2", [layout.out_channels, ch, 3], 1, 1);
        w.finish()?;
        Ok(Self {
            cfg,
            layout,
            time_embed,
            label_embed,
            input_conv,
            input_blocks,
            middle,
            output_blocks,
            out_norm,
            out_conv,
            device: device.clone(),
        })
    }

    /// The layout read from the weights.
    pub fn layout(&self) -> &AdmLayout {
        &self.layout
    }

    /// The configuration.
    pub fn config(&self) -> &AdmConfig {
        &self.cfg
    }

    /// The device the weights are on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Sinusoidal embedding of `t` (`[batch]`), `[cos | sin]` with periods up to 10000.
    fn timestep_embedding(&self, t: &[f32]) -> Tensor<2> {
        let dim = self.layout.model_channels;
        let half = dim / 2;
        let mut v = vec![0f32; t.len() * dim];
        for (row, &t) in v.chunks_exact_mut(dim).zip(t) {
            for i in 0..half {
                // As torch computes it in f32: exp(-ln(10000) * i / half), then t * freq.
                let freq = (-(10000f32.ln()) * i as f32 / half as f32).exp();
                let arg = t * freq;
                row[i] = arg.cos();
                row[half + i] = arg.sin();
            }
        }
        Tensor::from_data(TensorData::new(v, [t.len(), dim]), &self.device)
    }

    /// The network's raw output for its (already scaled) input `x` (`[batch, in, h, w]`), noise
    /// input `t` (`[batch]`) and labels (`[batch]`, required when the model has `label_emb`).
    pub fn forward(&self, x: Tensor<4>, t: &[f32], labels: Option<&[f32]>) -> Result<Tensor<4>> {
        let [b, c, h, w] = x.dims();
        let levels = self.layout.channel_mult.len();
        let factor = 1 << (levels - 1);
        if c != self.layout.in_channels || t.len() != b || h % factor != 0 || w % factor != 0 {
            return Err(Error::invalid_argument(
                "sample",
                format!(
                    "[{b}, {c}, {h}, {w}] with {} noise levels; expected {} channels, one level per \
                     sample, and sides divisible by {factor}",
                    t.len(),
                    self.layout.in_channels
                ),
            ));
        }
        let lin =
            |l: &QLinear, x: Tensor<2>| l.forward(x.unsqueeze_dim::<3>(1)).squeeze_dim::<2>(1);
        let temb = self.timestep_embedding(t);
        let mut emb =
            lin(&self.time_embed.1, aigc_core::layers::silu(lin(&self.time_embed.0, temb)));
        match (&self.label_embed, labels) {
            (Some((l0, l2)), Some(y)) if y.len() == b => {
                let y = Tensor::<2>::from_data(TensorData::new(y.to_vec(), [b, 1]), &self.device);
                emb = emb + lin(l2, aigc_core::layers::silu(lin(l0, y)));
            }
            (Some(_), _) => {
                return Err(Error::invalid_argument(
                    "labels",
                    format!("the model needs {b} labels"),
                ));
            }
            (None, Some(_)) => {
                return Err(Error::invalid_argument("labels", "the model takes no labels"));
            }
            (None, None) => {}
        }
        let mut h = self.input_conv.forward(x);
        let mut skips = vec![h.clone()];
        for block in &self.input_blocks {
            for layer in block {
                h = layer.forward(h, &emb);
            }
            skips.push(h.clone());
        }
        for layer in &self.middle {
            h = layer.forward(h, &emb);
        }
        for block in &self.output_blocks {
            let skip = skips.pop().expect("one skip per output block");
            h = aigc_core::layers::cat_channels(h, skip);
            for layer in block {
                h = layer.forward(h, &emb);
            }
        }
        Ok(self.out_conv.forward_normed(h, &self.out_norm, None, true, None))
    }

    /// The denoised sample for `noisy` (`[batch, in, h, w]`) at noise levels `sigma`
    /// (`[batch]`, each at least `sigma_min`): `c_skip x + c_out F(c_in x, 250 ln sigma)`,
    /// clipped to `[-1, 1]` when configured, as the consistency models' denoiser computes it.
    pub fn denoise(
        &self,
        noisy: Tensor<4>,
        sigma: &[f32],
        labels: Option<&[f32]>,
    ) -> Result<Tensor<4>> {
        let [b, ..] = noisy.dims();
        if sigma.len() != b || sigma.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
            return Err(Error::invalid_argument(
                "sigma",
                format!("need {b} positive noise levels, got {sigma:?}"),
            ));
        }
        let (sd, smin) = (self.cfg.sigma_data, self.cfg.sigma_min);
        let per = |f: &dyn Fn(f32) -> f32| {
            let v: Vec<f32> = sigma.iter().map(|&s| f(s)).collect();
            Tensor::<4>::from_data(TensorData::new(v, [b, 1, 1, 1]), &self.device)
        };
        let c_skip = per(&|s| sd * sd / ((s - smin) * (s - smin) + sd * sd));
        let c_out = per(&|s| (s - smin) * sd / (s * s + sd * sd).sqrt());
        let c_in = per(&|s| 1.0 / (s * s + sd * sd).sqrt());
        let t: Vec<f32> = sigma.iter().map(|&s| self.cfg.noise_scale * s.ln()).collect();
        let f = self.forward(noisy.clone() * c_in, &t, labels)?;
        let denoised = noisy * c_skip + f * c_out;
        Ok(if self.cfg.clip_denoised { denoised.clamp(-1.0, 1.0) } else { denoised })
    }
}
