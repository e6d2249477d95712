//! The HiFi-GAN generator (Kong et al., 2020): mel frames to a waveform through transposed
//! convolutions and multi-receptive-field residual blocks. One implementation serves the
//! SpeechT5 checkpoint layout (transformers' `SpeechT5HifiGan`, `config.json` +
//! safetensors) and the decoder inside VITS / Piper voices (`dec.*`).

use std::path::Path;

use aigc_core::burn::tensor::{Device, Tensor, TensorData};
use aigc_core::layers::{ConvTranspose1d, LeakyRelu};
use aigc_core::weights::{SafetensorsFile, TensorSource, WeightLoader};
use aigc_core::{Error, Result};

use crate::vits::Conv1d;

/// A HiFi-GAN generator's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HifiGanConfig {
    /// Input channels (mel bands, or VITS's latent channels).
    pub in_channels: usize,
    /// Channels after the first convolution; halved by each upsampling.
    pub upsample_initial_channel: usize,
    /// Stride of each transposed convolution.
    pub upsample_rates: Vec<usize>,
    /// Kernel size of each transposed convolution.
    pub upsample_kernel_sizes: Vec<usize>,
    /// Kernel size of each residual block at a level.
    pub resblock_kernel_sizes: Vec<usize>,
    /// Dilations of each residual block's convolutions.
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    /// The residual blocks' and upsamplers' leaky-ReLU slope.
    pub leaky_relu_slope: f64,
    /// Output sample rate in Hz (16,000 for SpeechT5, the voice's rate for Piper).
    pub sampling_rate: u32,
    /// Whether inputs are normalised by the stored `mean` and `scale` first (SpeechT5).
    pub normalize_before: bool,
    /// Which residual block design the checkpoint uses (`resblock` "1" or "2").
    pub resblock: ResBlockKind,
}

/// HiFi-GAN's two residual block designs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResBlockKind {
    /// `convs1` (dilated) and `convs2` (undilated) in pairs, each after a leaky ReLU ("1",
    /// the V1 generator; SpeechT5).
    #[default]
    One,
    /// One dilated convolution per dilation (`convs`) ("2": lighter, Piper's medium and low
    /// voices).
    Two,
}

impl HifiGanConfig {
    /// Reads transformers' `SpeechT5HifiGanConfig` JSON.
    pub fn from_speecht5_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument("HiFi-GAN config", e.to_string()))?;
        let num = |k: &str| -> Result<usize> {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| Error::invalid_argument("HiFi-GAN config", format!("`{k}` missing")))
        };
        let list = |k: &str| -> Result<Vec<usize>> {
            v.get(k)
                .and_then(|x| x.as_array())
                .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
                .ok_or_else(|| Error::invalid_argument("HiFi-GAN config", format!("`{k}` missing")))
        };
        let dilations = v
            .get("resblock_dilation_sizes")
            .and_then(|x| x.as_array())
            .and_then(|a| {
                a.iter()
                    .map(|d| d.as_array()?.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
                    .collect::<Option<Vec<Vec<usize>>>>()
            })
            .ok_or_else(|| {
                Error::invalid_argument("HiFi-GAN config", "`resblock_dilation_sizes` missing")
            })?;
        let cfg = Self {
            in_channels: num("model_in_dim")?,
            upsample_initial_channel: num("upsample_initial_channel")?,
            upsample_rates: list("upsample_rates")?,
            upsample_kernel_sizes: list("upsample_kernel_sizes")?,
            resblock_kernel_sizes: list("resblock_kernel_sizes")?,
            resblock_dilation_sizes: dilations,
            leaky_relu_slope: v.get("leaky_relu_slope").and_then(|x| x.as_f64()).unwrap_or(0.1),
            sampling_rate: num("sampling_rate")? as u32,
            normalize_before: v.get("normalize_before").and_then(|x| x.as_bool()).unwrap_or(true),
            resblock: ResBlockKind::One,
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks that the lists agree and the sizes are usable.
    pub fn check(&self) -> Result<()> {
        let bad = |why: String| Err(Error::invalid_argument("HiFi-GAN config", why));
        if self.upsample_rates.len() != self.upsample_kernel_sizes.len() {
            return bad("upsample_rates and upsample_kernel_sizes differ in length".into());
        }
        if self.resblock_kernel_sizes.len() != self.resblock_dilation_sizes.len()
            || self.resblock_kernel_sizes.is_empty()
        {
            return bad("resblock_kernel_sizes and resblock_dilation_sizes differ".into());
        }
        if self.upsample_initial_channel >> self.upsample_rates.len() == 0 || self.in_channels == 0
        {
            return bad(format!(
                "{} channels cannot be halved {} times",
                self.upsample_initial_channel,
                self.upsample_rates.len()
            ));
        }
        let zero = |l: &[usize]| l.contains(&0);
        if zero(&self.upsample_rates)
            || zero(&self.upsample_kernel_sizes)
            || zero(&self.resblock_kernel_sizes)
            || self.resblock_dilation_sizes.iter().any(|d| zero(d) || d.is_empty())
        {
            return bad("a zero stride, kernel size or dilation".into());
        }
        if self.upsample_rates.iter().zip(&self.upsample_kernel_sizes).any(|(r, k)| k < r) {
            return bad("an upsampling kernel shorter than its stride".into());
        }
        Ok(())
    }

    /// Output samples per input frame (the product of the upsampling rates).
    pub fn hop_length(&self) -> usize {
        self.upsample_rates.iter().product()
    }
}

/// Parameter names of a HiFi-GAN generator in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HifiGanNames {
    /// Prefix of every name (`""` for SpeechT5, `"dec."` in VITS).
    pub prefix: String,
    /// The upsampling list (`upsampler` in SpeechT5, `ups` in VITS).
    pub upsamplers: String,
    /// Whether the last convolution has a bias (VITS's has none).
    pub post_bias: bool,
}

impl HifiGanNames {
    /// transformers' `SpeechT5HifiGan`.
    pub fn speecht5() -> Self {
        Self { prefix: String::new(), upsamplers: "upsampler".into(), post_bias: true }
    }

    /// The decoder of a VITS model (`dec.*`, as in Piper voices).
    pub fn vits() -> Self {
        Self { prefix: "dec.".into(), upsamplers: "ups".into(), post_bias: false }
    }
}

#[derive(Debug, Clone)]
struct Upsample(ConvTranspose1d);

/// A residual block: pairs `(dilated, second)`; `second` is absent in type-2 blocks.
#[derive(Debug, Clone)]
struct ResBlock {
    convs: Vec<(Conv1d, Option<Conv1d>)>,
}

/// A HiFi-GAN generator: `in_channels` features per frame (mel bands, or VITS latents) to
/// [`hop_length`](HifiGanConfig::hop_length) waveform samples per frame, through
/// [`forward`](Self::forward) (channels first, tensors) or [`vocode`](Self::vocode) (frames
/// first, host values).
#[derive(Debug, Clone)]
pub struct HifiGan {
    cfg: HifiGanConfig,
    conv_pre: Conv1d,
    ups: Vec<Upsample>,
    resblocks: Vec<ResBlock>,
    conv_post: Conv1d,
    /// `(mean, scale)` per input channel, applied first when configured.
    norm: Option<(Tensor<1>, Tensor<1>)>,
    device: Device,
}

impl HifiGan {
    /// Loads a SpeechT5 HiFi-GAN directory (`config.json` and `model.safetensors`).
    pub fn open(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config = dir.join("config.json");
        let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
        let cfg = HifiGanConfig::from_speecht5_json(&text)?;
        let file = SafetensorsFile::open(dir.join("model.safetensors"))?;
        Self::load(&file, cfg, &HifiGanNames::speecht5(), device)
    }

    /// Loads the generator's weights from `src` under `names`.
    pub fn load(
        src: &dyn TensorSource,
        cfg: HifiGanConfig,
        names: &HifiGanNames,
        device: &Device,
    ) -> Result<Self> {
        cfg.check()?;
        let p = &names.prefix;
        // Inside a larger model's file (a VITS voice), the rest of the file is not ours.
        let own = p.clone();
        let w = WeightLoader::new(src, device).ignore(move |n| !n.starts_with(own.as_str()));
        let c0 = cfg.upsample_initial_channel;
        let conv_pre = Conv1d::load(&w, &format!("{p}conv_pre"), [c0, cfg.in_channels, 7], 1, 1);
        let mut ups = Vec::new();
        let mut resblocks = Vec::new();
        let mut ch = c0;
        for (i, (&rate, &k)) in
            cfg.upsample_rates.iter().zip(&cfg.upsample_kernel_sizes).enumerate()
        {
            let name = format!("{p}{}.{i}", names.upsamplers);
            ups.push(Upsample(ConvTranspose1d::new(
                w.tensor(&format!("{name}.weight"), [ch, ch / 2, k]),
                Some(w.tensor(&format!("{name}.bias"), [ch / 2])),
                rate,
                (k - rate) / 2,
            )));
            ch /= 2;
            for (j, (&k, dil)) in
                cfg.resblock_kernel_sizes.iter().zip(&cfg.resblock_dilation_sizes).enumerate()
            {
                let r = format!("{p}resblocks.{}", i * cfg.resblock_kernel_sizes.len() + j);
                let conv = |name: &str, n: usize, d: usize| {
                    Conv1d::load(&w, &format!("{r}.{name}.{n}"), [ch, ch, k], d, 1)
                };
                let convs = dil
                    .iter()
                    .enumerate()
                    .map(|(n, &d)| match cfg.resblock {
                        ResBlockKind::One => (conv("convs1", n, d), Some(conv("convs2", n, 1))),
                        ResBlockKind::Two => (conv("convs", n, d), None),
                    })
                    .collect();
                resblocks.push(ResBlock { convs });
            }
        }
        let conv_post =
            Conv1d::load_with(&w, &format!("{p}conv_post"), [1, ch, 7], 1, 1, names.post_bias);
        let norm = cfg.normalize_before.then(|| {
            (
                w.tensor(&format!("{p}mean"), [cfg.in_channels]),
                w.tensor(&format!("{p}scale"), [cfg.in_channels]),
            )
        });
        w.finish()?;
        Ok(Self { cfg, conv_pre, ups, resblocks, conv_post, norm, device: device.clone() })
    }

    /// The configuration.
    pub fn config(&self) -> &HifiGanConfig {
        &self.cfg
    }

    /// The waveform `[batch, frames * hop]` for `x` `[batch, in_channels, frames]` (channels
    /// first, as VITS feeds its decoder).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let x = match &self.norm {
            Some((mean, scale)) => {
                let c = self.cfg.in_channels;
                (x - mean.clone().reshape([1, c, 1])) / scale.clone().reshape([1, c, 1])
            }
            None => x,
        };
        let slope = self.cfg.leaky_relu_slope as f32;
        let act = LeakyRelu::new(slope);
        let kernels = self.cfg.resblock_kernel_sizes.len();
        let mut h = self.conv_pre.forward(x);
        // The residual blocks' mean, folded into the next activation (positive scale).
        let mut scale = 1.0;
        for (i, up) in self.ups.iter().enumerate() {
            h = up.0.forward_with(h, Some(LeakyRelu { scale, slope }));
            let mut sum: Option<Tensor<3>> = None;
            for block in &self.resblocks[i * kernels..(i + 1) * kernels] {
                let mut r = h.clone();
                for (c1, c2) in &block.convs {
                    r = match c2 {
                        Some(c2) => {
                            let t = c1.forward_with(r.clone(), Some(act), None);
                            c2.forward_with(t, Some(act), Some(&r))
                        }
                        None => c1.forward_with(r.clone(), Some(act), Some(&r)),
                    };
                }
                sum = Some(match sum {
                    Some(s) => s + r,
                    None => r,
                });
            }
            h = sum.expect("at least one residual block");
            scale = 1.0 / kernels as f32;
        }
        // The last activation uses PyTorch's default slope.
        let h = self.conv_post.forward_with(h, Some(LeakyRelu { scale, slope: 0.01 }), None).tanh();
        let [b, _, n] = h.dims();
        h.reshape([b, n])
    }

    /// The waveform for mel frames `mel` (`[frames][in_channels]`, row-major, as SpeechT5
    /// produces them), on the model's device.
    pub fn vocode(&self, mel: &[f32], frames: usize) -> Result<Vec<f32>> {
        let c = self.cfg.in_channels;
        if mel.len() != frames * c || frames == 0 {
            return Err(Error::invalid_argument(
                "mel",
                format!("{} values for {frames} frames of {c} channels", mel.len()),
            ));
        }
        let x = Tensor::<2>::from_data(TensorData::new(mel.to_vec(), [frames, c]), &self.device)
            .transpose()
            .reshape([1, c, frames]);
        let y = self.forward(x);
        y.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| Error::invalid_argument("waveform", format!("{e:?}")))
    }
}
