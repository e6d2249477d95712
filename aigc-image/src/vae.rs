//! `AutoencoderKL`, the Stable Diffusion VAE, in diffusers' layout and names: an encoder to
//! the latent distribution (mean and log-variance) and a decoder back to pixels.

use std::path::Path;

use aigc_core::burn::tensor::Tensor;
use aigc_core::layers::{Conv2d, GroupNorm, HeadLayout, QLinear, multi_head_attention};
use aigc_core::weights::{SafetensorsFile, TensorSource, WeightLoader};
use aigc_core::{Error, Result};

/// The parts of `config.json` the network's shape depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfig {
    /// Image channels in.
    pub in_channels: usize,
    /// Image channels out.
    pub out_channels: usize,
    /// Channels of each resolution level.
    pub block_out_channels: Vec<usize>,
    /// Residual blocks per encoder level (the decoder has one more).
    pub layers_per_block: usize,
    /// Channels of the latent the diffusion model works on (4 for SD 1.x/2.x).
    pub latent_channels: usize,
    /// Groups of every group norm.
    pub norm_num_groups: usize,
    /// Latents are multiplied by this before diffusion (0.18215 for SD 1.x/2.x).
    pub scaling_factor: f32,
    /// Whether the 1x1 convolutions around the latent exist.
    pub use_quant_conv: bool,
    /// Same, after the latent.
    pub use_post_quant_conv: bool,
    /// Whether the mid blocks have attention.
    pub mid_attention: bool,
}

impl VaeConfig {
    /// Parses a diffusers `config.json`.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument("config.json", e.to_string()))?;
        let num = |k: &str, d: usize| -> Result<usize> {
            match v.get(k) {
                None => Ok(d),
                Some(x) => {
                    x.as_u64().map(|x| x as usize).filter(|&x| x > 0 && x < 1 << 16).ok_or_else(
                        || {
                            Error::invalid_argument(
                                "config.json",
                                format!("`{k}` is not a positive integer"),
                            )
                        },
                    )
                }
            }
        };
        let blocks: Vec<usize> = v
            .get("block_out_channels")
            .and_then(|b| b.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_u64()).map(|x| x as usize).collect())
            .unwrap_or_else(|| vec![128, 256, 512, 512]);
        let cfg = Self {
            in_channels: num("in_channels", 3)?,
            out_channels: num("out_channels", 3)?,
            layers_per_block: num("layers_per_block", 1)?,
            latent_channels: num("latent_channels", 4)?,
            norm_num_groups: num("norm_num_groups", 32)?,
            scaling_factor: v.get("scaling_factor").and_then(|x| x.as_f64()).unwrap_or(0.18215)
                as f32,
            use_quant_conv: v.get("use_quant_conv").and_then(|x| x.as_bool()).unwrap_or(true),
            use_post_quant_conv: v
                .get("use_post_quant_conv")
                .and_then(|x| x.as_bool())
                .unwrap_or(true),
            mid_attention: v
                .get("mid_block_add_attention")
                .and_then(|x| x.as_bool())
                .unwrap_or(true),
            block_out_channels: blocks,
        };
        if cfg.block_out_channels.is_empty()
            || cfg
                .block_out_channels
                .iter()
                .any(|&c| c == 0 || !c.is_multiple_of(cfg.norm_num_groups))
        {
            return Err(Error::invalid_argument(
                "config.json",
                "block_out_channels must be non-empty multiples of norm_num_groups",
            ));
        }
        Ok(cfg)
    }
}

const EPS: f64 = 1e-6;

#[derive(Debug, Clone)]
struct Resnet {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl Resnet {
    fn load(w: &WeightLoader<'_>, p: &str, groups: usize, cin: usize, cout: usize) -> Self {
        Self {
            norm1: GroupNorm::load(w, &format!("{p}.norm1"), groups, cin, EPS),
            conv1: Conv2d::load(w, &format!("{p}.conv1"), [cout, cin, 3], 1, 1),
            norm2: GroupNorm::load(w, &format!("{p}.norm2"), groups, cout, EPS),
            conv2: Conv2d::load(w, &format!("{p}.conv2"), [cout, cout, 3], 1, 1),
            shortcut: (cin != cout)
                .then(|| Conv2d::load(w, &format!("{p}.conv_shortcut"), [cout, cin, 1], 1, 0)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.conv1.forward_normed(x.clone(), &self.norm1, None, true, None);
        let x = match &self.shortcut {
            Some(c) => c.forward(x),
            None => x,
        };
        self.conv2.forward_normed(h, &self.norm2, None, true, Some(x))
    }
}

/// Single-head self-attention over the positions with a residual (the mid blocks').
#[derive(Debug, Clone)]
struct Attention {
    norm: GroupNorm,
    q: QLinear,
    k: QLinear,
    v: QLinear,
    out: QLinear,
}

impl Attention {
    fn load(w: &WeightLoader<'_>, p: &str, groups: usize, c: usize) -> Self {
        Self {
            norm: GroupNorm::load(w, &format!("{p}.group_norm"), groups, c, EPS),
            q: w.linear(&format!("{p}.to_q"), c, c, true),
            k: w.linear(&format!("{p}.to_k"), c, c, true),
            v: w.linear(&format!("{p}.to_v"), c, c, true),
            out: w.linear(&format!("{p}.to_out.0"), c, c, true),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let seq = self.norm.forward(x.clone()).reshape([b, c, h * w]).swap_dims(1, 2);
        let (q, k, v) =
            (self.q.forward(seq.clone()), self.k.forward(seq.clone()), self.v.forward(seq));
        let scale = 1.0 / (c as f32).sqrt();
        let a = multi_head_attention(q, k, v, 1, scale, HeadLayout::TokenMajor);
        let o = self.out.forward(a).swap_dims(1, 2).reshape([b, c, h, w]);
        x + o
    }
}

#[derive(Debug, Clone)]
struct Mid {
    first: Resnet,
    attention: Option<Attention>,
    second: Resnet,
}

impl Mid {
    fn load(w: &WeightLoader<'_>, p: &str, cfg: &VaeConfig, c: usize) -> Self {
        let g = cfg.norm_num_groups;
        Self {
            first: Resnet::load(w, &format!("{p}.resnets.0"), g, c, c),
            attention: cfg
                .mid_attention
                .then(|| Attention::load(w, &format!("{p}.attentions.0"), g, c)),
            second: Resnet::load(w, &format!("{p}.resnets.1"), g, c, c),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.first.forward(x);
        let x = match &self.attention {
            Some(a) => a.forward(x),
            None => x,
        };
        self.second.forward(x)
    }
}

/// The latent distribution of an image: a diagonal Gaussian.
#[derive(Debug, Clone)]
pub struct LatentDistribution {
    /// The mean, `[batch, latent, h/f, w/f]` with `f` the VAE's downscale (unscaled:
    /// multiply by [`VaeConfig::scaling_factor`] for diffusion).
    pub mean: Tensor<4>,
    /// Log-variance, clamped to `[-30, 20]` as diffusers does.
    pub logvar: Tensor<4>,
}

impl LatentDistribution {
    /// The standard deviation `exp(logvar / 2)`.
    pub fn std(&self) -> Tensor<4> {
        (self.logvar.clone() * 0.5).exp()
    }

    /// `mean + std * noise` (noise: unit normal of the same shape).
    pub fn sample(&self, noise: Tensor<4>) -> Tensor<4> {
        self.mean.clone() + self.std() * noise
    }
}

/// The Stable Diffusion VAE (`AutoencoderKL`): [`encode`](Self::encode) takes images in
/// `[-1, 1]` to a latent distribution [`downscale`](Self::downscale) times smaller on each
/// side; [`decode`](Self::decode) takes latents back to images.
#[derive(Debug, Clone)]
pub struct AutoencoderKl {
    cfg: VaeConfig,
    enc_in: Conv2d,
    enc_blocks: Vec<(Vec<Resnet>, Option<Conv2d>)>,
    enc_mid: Mid,
    enc_norm: GroupNorm,
    enc_out: Conv2d,
    quant: Option<Conv2d>,
    post_quant: Option<Conv2d>,
    dec_in: Conv2d,
    dec_mid: Mid,
    dec_blocks: Vec<(Vec<Resnet>, Option<Conv2d>)>,
    dec_norm: GroupNorm,
    dec_out: Conv2d,
}

impl AutoencoderKl {
    /// Loads `config.json` and `diffusion_pytorch_model.safetensors` from a directory.
    pub fn open(dir: impl AsRef<Path>, device: &aigc_core::burn::tensor::Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config = dir.join("config.json");
        let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
        let cfg = VaeConfig::from_json(&text)?;
        let file = SafetensorsFile::open(dir.join("diffusion_pytorch_model.safetensors"))?;
        Self::load(&file, cfg, device)
    }

    /// Loads the weights from `src` (diffusers names).
    pub fn load(
        src: &dyn TensorSource,
        cfg: VaeConfig,
        device: &aigc_core::burn::tensor::Device,
    ) -> Result<Self> {
        let w = WeightLoader::new(src, device);
        let g = cfg.norm_num_groups;
        let ch = &cfg.block_out_channels;
        let levels = ch.len();
        let lat = cfg.latent_channels;
        let enc_in = Conv2d::load(&w, "encoder.conv_in", [ch[0], cfg.in_channels, 3], 1, 1);
        let mut enc_blocks = Vec::new();
        let mut cin = ch[0];
        for (i, &cout) in ch.iter().enumerate() {
            let resnets = (0..cfg.layers_per_block)
                .map(|j| {
                    let r = Resnet::load(
                        &w,
                        &format!("encoder.down_blocks.{i}.resnets.{j}"),
                        g,
                        cin,
                        cout,
                    );
                    cin = cout;
                    r
                })
                .collect();
            // The downsampler pads right and bottom by one, then a stride-2 convolution.
            let down = (i + 1 < levels).then(|| {
                Conv2d::load(
                    &w,
                    &format!("encoder.down_blocks.{i}.downsamplers.0.conv"),
                    [cout, cout, 3],
                    2,
                    0,
                )
            });
            enc_blocks.push((resnets, down));
        }
        let top = ch[levels - 1];
        let enc_mid = Mid::load(&w, "encoder.mid_block", &cfg, top);
        let enc_norm = GroupNorm::load(&w, "encoder.conv_norm_out", g, top, EPS);
        let enc_out = Conv2d::load(&w, "encoder.conv_out", [2 * lat, top, 3], 1, 1);
        let quant =
            cfg.use_quant_conv.then(|| Conv2d::load(&w, "quant_conv", [2 * lat, 2 * lat, 1], 1, 0));
        let post_quant = cfg
            .use_post_quant_conv
            .then(|| Conv2d::load(&w, "post_quant_conv", [lat, lat, 1], 1, 0));
        let dec_in = Conv2d::load(&w, "decoder.conv_in", [top, lat, 3], 1, 1);
        let dec_mid = Mid::load(&w, "decoder.mid_block", &cfg, top);
        let mut dec_blocks = Vec::new();
        let mut cin = top;
        for (i, &cout) in ch.iter().rev().enumerate() {
            let resnets = (0..=cfg.layers_per_block)
                .map(|j| {
                    let r = Resnet::load(
                        &w,
                        &format!("decoder.up_blocks.{i}.resnets.{j}"),
                        g,
                        cin,
                        cout,
                    );
                    cin = cout;
                    r
                })
                .collect();
            let up = (i + 1 < levels).then(|| {
                Conv2d::load(
                    &w,
                    &format!("decoder.up_blocks.{i}.upsamplers.0.conv"),
                    [cout, cout, 3],
                    1,
                    1,
                )
            });
            dec_blocks.push((resnets, up));
        }
        let dec_norm = GroupNorm::load(&w, "decoder.conv_norm_out", g, ch[0], EPS);
        let dec_out = Conv2d::load(&w, "decoder.conv_out", [cfg.out_channels, ch[0], 3], 1, 1);
        w.finish()?;
        Ok(Self {
            cfg,
            enc_in,
            enc_blocks,
            enc_mid,
            enc_norm,
            enc_out,
            quant,
            post_quant,
            dec_in,
            dec_mid,
            dec_blocks,
            dec_norm,
            dec_out,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    /// How much smaller the latent is than the image on each side.
    pub fn downscale(&self) -> usize {
        1 << (self.cfg.block_out_channels.len() - 1)
    }

    /// The latent distribution of `image` (`[batch, in, h, w]`, values in `[-1, 1]`).
    pub fn encode(&self, image: Tensor<4>) -> Result<LatentDistribution> {
        let [_, c, h, w] = image.dims();
        let f = self.downscale();
        if c != self.cfg.in_channels
            || h == 0
            || w == 0
            || !h.is_multiple_of(f)
            || !w.is_multiple_of(f)
        {
            return Err(Error::invalid_argument(
                "image",
                format!(
                    "{c} channels {h}x{w}; expected {} channels and sides divisible by {f}",
                    self.cfg.in_channels
                ),
            ));
        }
        let mut x = self.enc_in.forward(image);
        for (resnets, down) in &self.enc_blocks {
            for r in resnets {
                x = r.forward(x);
            }
            if let Some(conv) = down {
                let [b, c, h, w] = x.dims();
                // Zero row below and column to the right.
                let padded = Tensor::zeros([b, c, h + 1, w + 1], &x.device());
                x = conv.forward(padded.slice_assign([0..b, 0..c, 0..h, 0..w], x));
            }
        }
        let x = self.enc_mid.forward(x);
        let x = self.enc_out.forward_normed(x, &self.enc_norm, None, true, None);
        let x = match &self.quant {
            Some(q) => q.forward(x),
            None => x,
        };
        let lat = self.cfg.latent_channels;
        let mean = x.clone().narrow(1, 0, lat);
        let logvar = x.narrow(1, lat, lat).clamp(-30.0, 20.0);
        Ok(LatentDistribution { mean, logvar })
    }

    /// Decodes `latent` (`[batch, latent, h, w]`, unscaled: divide diffusion latents by
    /// [`VaeConfig::scaling_factor`] first) to an image in about `[-1, 1]`.
    pub fn decode(&self, latent: Tensor<4>) -> Result<Tensor<4>> {
        let [_, c, h, w] = latent.dims();
        if c != self.cfg.latent_channels || h == 0 || w == 0 {
            return Err(Error::invalid_argument(
                "latent",
                format!("{c} channels {h}x{w}; expected {} channels", self.cfg.latent_channels),
            ));
        }
        let z = match &self.post_quant {
            Some(q) => q.forward(latent),
            None => latent,
        };
        let mut x = self.dec_mid.forward(self.dec_in.forward(z));
        for (resnets, up) in &self.dec_blocks {
            for r in resnets {
                x = r.forward(x);
            }
            if let Some(conv) = up {
                x = conv.forward(aigc_core::layers::upsample_nearest2x(x));
            }
        }
        Ok(self.dec_out.forward_normed(x, &self.dec_norm, None, true, None))
    }
}
