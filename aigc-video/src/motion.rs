//! AnimateDiff: temporal transformers ("motion modules") between the layers of a Stable
//! Diffusion UNet, so that the frames of a clip are denoised together and attend to each other
//! along time.
//!
//! The layout and names are diffusers' (`MotionAdapter`, `UNetMotionModel`,
//! `AnimateDiffTransformer3D`): `down_blocks.{i}.motion_modules.{j}`, `mid_block.motion_modules.0`
//! and `up_blocks.{i}.motion_modules.{j}`, each with `norm` (a group norm over channels, frames
//! and pixels together), `proj_in`, `transformer_blocks.{k}` (diffusers' `BasicTransformerBlock`
//! with two self-attentions over the frames and sinusoidal frame positions) and `proj_out`,
//! added to its input. A motion module runs after each resnet (and spatial transformer) of a
//! down or up level and, with a motion mid block, after the mid block's transformer: the places
//! [`UnetSite`] names. The spatial layers are `aigc-image`'s [`UNet2DCondition`], unchanged; a
//! saved `UNetMotionModel` holds both under the same names, a `MotionAdapter` only the motion
//! modules.

use std::path::Path;

use aigc_core::burn::tensor::{Device, Tensor, TensorData};
use aigc_core::layers::{GroupNorm, QLinear};
use aigc_core::weights::{SafetensorsFile, TensorSource, WeightLoader};
use aigc_core::{Error, Result};
use aigc_image::unet::{TransformerBlock, UNet2DCondition, UnetSite};

/// What `config.json` of a `MotionAdapter` or `UNetMotionModel` says that the weights do not.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionConfig {
    /// Attention heads of the motion modules of each down level (up levels use them
    /// reversed, the mid block the last), diffusers' `motion_num_attention_heads`.
    pub heads: Vec<usize>,
    /// The longest clip, in frames, that the position table covers
    /// (`motion_max_seq_length`).
    pub max_frames: usize,
}

impl MotionConfig {
    /// Parses a `MotionAdapter` or `UNetMotionModel` `config.json`.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument("config.json", e.to_string()))?;
        let levels = v
            .get("block_out_channels")
            .and_then(|b| b.as_array())
            .map(|a| a.len())
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::invalid_argument("config.json", "no block_out_channels"))?;
        let count = |x: &serde_json::Value| x.as_u64().map(|n| n as usize).filter(|&n| n > 0);
        let heads = match v.get("motion_num_attention_heads") {
            None => vec![8; levels],
            Some(serde_json::Value::Array(a)) => a.iter().map(|x| count(x).unwrap_or(0)).collect(),
            Some(x) => vec![count(x).unwrap_or(0); levels],
        };
        if heads.len() != levels || heads.contains(&0) {
            return Err(Error::invalid_argument(
                "config.json",
                format!("motion_num_attention_heads {heads:?} for {levels} levels"),
            ));
        }
        let max_frames = match v.get("motion_max_seq_length") {
            None => 32,
            Some(x) => count(x).ok_or_else(|| {
                Error::invalid_argument("config.json", format!("motion_max_seq_length {x}"))
            })?,
        };
        if v.get("conv_in_channels").is_some_and(|x| !x.is_null()) {
            return Err(Error::unsupported("motion adapter", "conv_in_channels (PIA)"));
        }
        Ok(Self { heads, max_frames })
    }
}

/// `AnimateDiffTransformer3D`: attention along the frames at every pixel.
#[derive(Debug, Clone)]
struct TemporalTransformer {
    norm: GroupNorm,
    proj_in: QLinear,
    /// Each block with its frame positions `[1, max_frames, inner]` (diffusers'
    /// `pos_embed.pe`: read from the file when it is there, computed otherwise).
    blocks: Vec<(TransformerBlock, Tensor<3>)>,
    proj_out: QLinear,
    channels: usize,
    max_frames: usize,
}

/// Sinusoidal positions `[1, len, dim]`: `sin` in even features, `cos` in odd ones, as
/// diffusers' `SinusoidalPositionalEmbedding` computes them (in f32).
fn positions(len: usize, dim: usize, device: &Device) -> Tensor<3> {
    let scale = -(10000f64.ln()) as f32 / dim as f32;
    let mut pe = vec![0f32; len * dim];
    for (pos, row) in pe.chunks_exact_mut(dim).enumerate() {
        for i in (0..dim).step_by(2) {
            let arg = pos as f32 * (i as f32 * scale).exp();
            row[i] = arg.sin();
            if i + 1 < dim {
                row[i + 1] = arg.cos();
            }
        }
    }
    Tensor::from_data(TensorData::new(pe, [1, len, dim]), device)
}

impl TemporalTransformer {
    fn load(
        w: &WeightLoader<'_>,
        src: &dyn TensorSource,
        p: &str,
        (groups, heads, max_frames): (usize, usize, usize),
        device: &Device,
    ) -> Result<Self> {
        let in_shape = src
            .tensor_info(&format!("{p}.proj_in.weight"))
            .map(|i| i.shape)
            .ok_or_else(|| Error::tensor(format!("{p}.proj_in.weight"), "is missing"))?;
        let [inner, channels] = in_shape[..] else {
            return Err(Error::tensor(format!("{p}.proj_in.weight"), "is not 2-D"));
        };
        if channels % groups != 0 {
            return Err(Error::invalid_argument(
                "norm groups",
                format!("{p}: {channels} channels in {groups} groups"),
            ));
        }
        let mut blocks = Vec::new();
        while src
            .tensor_info(&format!("{p}.transformer_blocks.{}.norm1.weight", blocks.len()))
            .is_some()
        {
            let b = format!("{p}.transformer_blocks.{}", blocks.len());
            let pe = format!("{b}.pos_embed.pe");
            let table = if src.tensor_info(&pe).is_some() {
                w.tensor(&pe, [1, max_frames, inner])
            } else {
                positions(max_frames, inner, device)
            };
            blocks.push((TransformerBlock::load(w, src, &b, inner, heads)?, table));
        }
        Ok(Self {
            norm: GroupNorm::load(w, &format!("{p}.norm"), groups, channels, 1e-6),
            proj_in: w.linear(&format!("{p}.proj_in"), channels, inner, true),
            blocks,
            proj_out: w.linear(&format!("{p}.proj_out"), inner, channels, true),
            channels,
            max_frames,
        })
    }

    /// `x` `[batch * frames, c, h, w]` (frames of one clip consecutive) through the module.
    fn forward(&self, x: Tensor<4>, frames: usize) -> Result<Tensor<4>> {
        let [bf, c, h, w] = x.dims();
        let max = self.max_frames;
        if c != self.channels || frames == 0 || bf % frames != 0 || frames > max {
            return Err(Error::invalid_argument(
                "motion module input",
                format!(
                    "[{bf}, {c}, {h}, {w}] as clips of {frames} frames, for a module of {} \
                     channels and at most {max} frames",
                    self.channels
                ),
            ));
        }
        let b = bf / frames;
        // [b, f, c, hw] -> [b, c, f, hw]: the group norm pools frames and pixels.
        let t = x.clone().reshape([b, frames, c, h * w]).swap_dims(1, 2);
        let normed = self.norm.forward(t);
        // [b, c, f, hw] -> [b * hw, f, c]: one sequence of frames per pixel.
        let s = normed.permute([0, 3, 2, 1]).reshape([b * h * w, frames, c]);
        let mut s = self.proj_in.forward(s);
        for (blk, table) in &self.blocks {
            s = blk.forward(s, None, Some(&table.clone().narrow(1, 0, frames)));
        }
        let s = self.proj_out.forward(s);
        // [b * hw, f, c] -> [b, hw, f, c] -> [b, f, c, hw].
        let y = s.reshape([b, h * w, frames, c]).permute([0, 2, 3, 1]).reshape([bf, c, h, w]);
        Ok(y + x)
    }
}

/// The motion modules of an AnimateDiff motion adapter, run on a [`UNet2DCondition`].
#[derive(Debug, Clone)]
pub struct MotionAdapter {
    cfg: MotionConfig,
    down: Vec<Vec<TemporalTransformer>>,
    mid: Vec<TemporalTransformer>,
    up: Vec<Vec<TemporalTransformer>>,
}

impl MotionAdapter {
    /// Loads `config.json` and `diffusion_pytorch_model.safetensors` from a directory
    /// (a saved `MotionAdapter` or `UNetMotionModel`) for use with `unet`.
    pub fn open(dir: impl AsRef<Path>, unet: &UNet2DCondition, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config = dir.join("config.json");
        let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
        let cfg = MotionConfig::from_json(&text)?;
        let file = SafetensorsFile::open(dir.join("diffusion_pytorch_model.safetensors"))?;
        Self::load(&file, cfg, unet, device)
    }

    /// Loads the motion modules from `src` (diffusers names; any other tensors, such as a
    /// `UNetMotionModel`'s spatial layers, are left alone). Their norms take `unet`'s group
    /// count, as in diffusers' `UNetMotionModel`.
    pub fn load(
        src: &dyn TensorSource,
        cfg: MotionConfig,
        unet: &UNet2DCondition,
        device: &Device,
    ) -> Result<Self> {
        let levels = unet.config().levels;
        if cfg.heads.len() != levels {
            return Err(Error::invalid_argument(
                "motion adapter",
                format!("{} levels for a UNet of {levels}", cfg.heads.len()),
            ));
        }
        let w = WeightLoader::new(src, device).ignore(|n| !n.contains("motion_modules."));
        let groups = unet.config().norm_num_groups;
        let list = |prefix: &str, heads: usize| -> Result<Vec<TemporalTransformer>> {
            let mut out = Vec::new();
            while src.tensor_info(&format!("{prefix}.{}.proj_in.weight", out.len())).is_some() {
                let p = format!("{prefix}.{}", out.len());
                out.push(TemporalTransformer::load(
                    &w,
                    src,
                    &p,
                    (groups, heads, cfg.max_frames),
                    device,
                )?);
            }
            Ok(out)
        };
        let down = (0..levels)
            .map(|i| list(&format!("down_blocks.{i}.motion_modules"), cfg.heads[i]))
            .collect::<Result<Vec<_>>>()?;
        let mid = list("mid_block.motion_modules", cfg.heads[levels - 1])?;
        let up = (0..levels)
            .map(|i| list(&format!("up_blocks.{i}.motion_modules"), cfg.heads[levels - 1 - i]))
            .collect::<Result<Vec<_>>>()?;
        if down.iter().chain(&up).any(Vec::is_empty) {
            return Err(Error::tensor(
                "motion_modules",
                "a down or up level has no motion modules: not a motion adapter",
            ));
        }
        w.finish()?;
        Ok(Self { cfg, down, mid, up })
    }

    /// The configuration.
    pub fn config(&self) -> &MotionConfig {
        &self.cfg
    }

    /// The longest clip, in frames.
    pub fn max_frames(&self) -> usize {
        self.cfg.max_frames
    }

    fn module(&self, site: UnetSite) -> Option<&TemporalTransformer> {
        match site {
            UnetSite::Down { level, layer } => self.down.get(level)?.get(layer),
            UnetSite::Mid { layer } => self.mid.get(layer),
            UnetSite::Up { level, layer } => self.up.get(level)?.get(layer),
        }
    }

    /// The motion module at `site` alone on `x` (`[clips * frames, c, h, w]`).
    pub fn forward_module(&self, site: UnetSite, x: Tensor<4>, frames: usize) -> Result<Tensor<4>> {
        let m = self.module(site).ok_or_else(|| {
            Error::invalid_argument("motion adapter", format!("no motion module at {site:?}"))
        })?;
        m.forward(x, frames)
    }

    fn count(&self) -> usize {
        self.down.iter().chain(&self.up).map(Vec::len).sum::<usize>() + self.mid.len()
    }

    /// `UNetMotionModel`'s output for `sample` `[clips * frames, c, h, w]` (each clip's
    /// frames consecutive), one timestep per clip and `context` `[clips, tokens, width]`
    /// (both repeated for the clip's frames here). A mid block without motion modules is
    /// diffusers' `use_motion_mid_block = false`.
    pub fn forward(
        &self,
        unet: &UNet2DCondition,
        sample: Tensor<4>,
        frames: usize,
        timesteps: &[f32],
        context: &Tensor<3>,
    ) -> Result<Tensor<4>> {
        let clips = timesteps.len();
        let [n, ..] = sample.dims();
        if frames == 0 || n != clips * frames || context.dims()[0] != clips {
            return Err(Error::invalid_argument(
                "video sample",
                format!(
                    "{n} frames for {clips} timesteps of clips of {frames} and a context for {}",
                    context.dims()[0]
                ),
            ));
        }
        let per_frame_t: Vec<f32> =
            timesteps.iter().flat_map(|&t| std::iter::repeat_n(t, frames)).collect();
        let per_frame_ctx = Tensor::cat(
            (0..clips).map(|i| context.clone().narrow(0, i, 1).repeat_dim(0, frames)).collect(),
            0,
        );
        let mut used = 0;
        let out =
            unet.forward_with(sample, &per_frame_t, &per_frame_ctx, &mut |site, x| match (
                self.module(site),
                site,
            ) {
                (Some(m), _) => {
                    used += 1;
                    m.forward(x, frames)
                }
                (None, UnetSite::Mid { .. }) => Ok(x),
                (None, _) => Err(Error::invalid_argument(
                    "motion adapter",
                    format!("no motion module for the UNet's layer at {site:?}"),
                )),
            })?;
        if used != self.count() {
            return Err(Error::invalid_argument(
                "motion adapter",
                format!("{} motion modules for the UNet's {used} layers", self.count()),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The computed table equals the one diffusers saved (so adapters without `pos_embed.pe`
    /// load the same model).
    #[test]
    fn positions_match_the_saved_table() {
        let device = Device::default();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tools/fixtures/video/animatediff-tiny/motion_adapter/",
            "diffusion_pytorch_model.safetensors"
        );
        let file = SafetensorsFile::open(path).unwrap();
        for (name, dim) in [
            ("down_blocks.0.motion_modules.0.transformer_blocks.0.pos_embed.pe", 8),
            ("mid_block.motion_modules.0.transformer_blocks.0.pos_embed.pe", 16),
        ] {
            let w = WeightLoader::new(&file, &device);
            let saved = w.tensor::<3>(name, [1, 32, dim]);
            let ours = positions(32, dim, &device);
            let diff = (saved - ours).abs().max().into_scalar::<f32>();
            assert!(diff < 1e-6, "{name}: {diff}");
        }
    }
}
