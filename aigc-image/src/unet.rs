//! `UNet2DConditionModel`, the Stable Diffusion 1.x/2.x denoiser, in diffusers' layout and
//! names: time-conditioned residual blocks, spatial transformers with self- and
//! cross-attention (1x1-convolution or linear projections), down/up sampling.
//!
//! Channels and the number of blocks are read from the weights; what they cannot say (heads
//! per level, the norms' epsilon and groups) comes from `config.json`.

use std::path::Path;

use aigc_core::burn::tensor::{Device, Tensor, TensorData, activation};
use aigc_core::layers::{
    Conv2d, GroupNorm, HeadLayout, LayerNorm, QLinear, multi_head_attention, silu,
};
use aigc_core::weights::{SafetensorsFile, TensorSource, WeightLoader};
use aigc_core::{Error, Result};

/// The parts of `config.json` the weights do not give.
#[derive(Debug, Clone, PartialEq)]
pub struct UnetConfig {
    /// Attention heads of each down level (diffusers' `attention_head_dim` is a head count for
    /// these models); up levels use them reversed, the mid block the last.
    pub heads: Vec<usize>,
    /// Groups of every group norm.
    pub norm_num_groups: usize,
    /// Epsilon of the residual blocks' and the output's group norms.
    pub norm_eps: f64,
    /// Whether the transformers project with linear layers (SD 2.x) instead of 1x1 convs.
    pub use_linear_projection: bool,
    /// Latent channels in and out.
    pub in_channels: usize,
    /// Down levels.
    pub levels: usize,
}

impl UnetConfig {
    /// Parses a diffusers `config.json`.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument("config.json", e.to_string()))?;
        let levels = v
            .get("block_out_channels")
            .and_then(|b| b.as_array())
            .map(|a| a.len())
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::invalid_argument("config.json", "no block_out_channels"))?;
        let heads_value = match v.get("num_attention_heads") {
            Some(x) if !x.is_null() => x,
            _ => v.get("attention_head_dim").unwrap_or(&serde_json::Value::Null),
        };
        let heads: Vec<usize> = match heads_value {
            serde_json::Value::Number(n) => vec![n.as_u64().unwrap_or(8) as usize; levels],
            serde_json::Value::Array(a) => {
                a.iter().map(|x| x.as_u64().unwrap_or(0) as usize).collect()
            }
            _ => vec![8; levels],
        };
        if heads.len() != levels || heads.contains(&0) {
            return Err(Error::invalid_argument(
                "config.json",
                format!("heads {heads:?} for {levels} levels"),
            ));
        }
        for (k, want) in
            [("time_embedding_type", "positional"), ("resnet_time_scale_shift", "default")]
        {
            if let Some(s) = v.get(k).and_then(|x| x.as_str())
                && s != want
            {
                return Err(Error::unsupported("UNet option", format!("{k} = {s}")));
            }
        }
        if v.get("addition_embed_type").is_some_and(|x| !x.is_null())
            || v.get("class_embed_type").is_some_and(|x| !x.is_null())
        {
            return Err(Error::unsupported("UNet option", "class or addition embeddings (SDXL)"));
        }
        Ok(Self {
            heads,
            norm_num_groups: v.get("norm_num_groups").and_then(|x| x.as_u64()).unwrap_or(32).max(1)
                as usize,
            norm_eps: v.get("norm_eps").and_then(|x| x.as_f64()).unwrap_or(1e-5),
            use_linear_projection: v
                .get("use_linear_projection")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            in_channels: v.get("in_channels").and_then(|x| x.as_u64()).unwrap_or(4) as usize,
            levels,
        })
    }
}

fn shape(src: &dyn TensorSource, name: &str) -> Result<Vec<usize>> {
    src.tensor_info(name).map(|i| i.shape).ok_or_else(|| Error::tensor(name, "is missing"))
}

fn linear_2d(l: &QLinear, x: Tensor<2>) -> Tensor<2> {
    l.forward(x.unsqueeze_dim::<3>(1)).squeeze_dim::<2>(1)
}

#[derive(Debug, Clone)]
struct Resnet {
    norm1: GroupNorm,
    conv1: Conv2d,
    temb: QLinear,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl Resnet {
    fn load(
        w: &WeightLoader<'_>,
        src: &dyn TensorSource,
        p: &str,
        cfg: &UnetConfig,
        emb: usize,
    ) -> Result<Self> {
        let s = shape(src, &format!("{p}.conv1.weight"))?;
        let [cout, cin, ..] = s[..] else {
            return Err(Error::tensor(format!("{p}.conv1.weight"), "is not 4-D"));
        };
        let (g, eps) = (cfg.norm_num_groups, cfg.norm_eps);
        Ok(Self {
            norm1: GroupNorm::load(w, &format!("{p}.norm1"), g, cin, eps),
            conv1: Conv2d::load(w, &format!("{p}.conv1"), [cout, cin, 3], 1, 1),
            temb: w.linear(&format!("{p}.time_emb_proj"), emb, cout, true),
            norm2: GroupNorm::load(w, &format!("{p}.norm2"), g, cout, eps),
            conv2: Conv2d::load(w, &format!("{p}.conv2"), [cout, cout, 3], 1, 1),
            shortcut: (cin != cout)
                .then(|| Conv2d::load(w, &format!("{p}.conv_shortcut"), [cout, cin, 1], 1, 0)),
        })
    }

    fn forward(&self, x: Tensor<4>, temb: &Tensor<2>) -> Tensor<4> {
        let h = self.conv1.forward_normed(x.clone(), &self.norm1, None, true, None);
        let t = linear_2d(&self.temb, silu(temb.clone()));
        let [b, c] = t.dims();
        let h = h + t.reshape([b, c, 1, 1]);
        let x = match &self.shortcut {
            Some(s) => s.forward(x),
            None => x,
        };
        self.conv2.forward_normed(h, &self.norm2, None, true, Some(x))
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q: QLinear,
    k: QLinear,
    v: QLinear,
    out: QLinear,
    heads: usize,
}

impl Attention {
    fn load(w: &WeightLoader<'_>, p: &str, d: usize, ctx: usize, heads: usize) -> Self {
        Self {
            q: w.linear(&format!("{p}.to_q"), d, d, false),
            k: w.linear(&format!("{p}.to_k"), ctx, d, false),
            v: w.linear(&format!("{p}.to_v"), ctx, d, false),
            out: w.linear(&format!("{p}.to_out.0"), d, d, true),
            heads,
        }
    }

    fn forward(&self, x: Tensor<3>, ctx: Tensor<3>) -> Tensor<3> {
        let hd = x.dims()[2] / self.heads;
        let (q, k, v) = (self.q.forward(x), self.k.forward(ctx.clone()), self.v.forward(ctx));
        let scale = 1.0 / (hd as f32).sqrt();
        let a = multi_head_attention(q, k, v, self.heads, scale, HeadLayout::TokenMajor);
        self.out.forward(a)
    }
}

/// diffusers' `BasicTransformerBlock` with layer norms: self-attention, a second attention
/// (cross-attention on a context, or self-attention again), and a GEGLU feed-forward, each
/// pre-normed and residual. The spatial transformers use it with text as the context;
/// AnimateDiff's temporal transformers (`aigc-video`) with none and sinusoidal positions.
#[derive(Debug, Clone)]
pub struct TransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff_in: QLinear,
    ff_out: QLinear,
}

impl TransformerBlock {
    /// Loads `{prefix}.norm1/attn1/norm2/attn2/norm3/ff` of width `d` with `heads` heads; the
    /// second attention's context width and the feed-forward's inner width come from the
    /// weights' shapes.
    pub fn load(
        w: &WeightLoader<'_>,
        src: &dyn TensorSource,
        prefix: &str,
        d: usize,
        heads: usize,
    ) -> Result<Self> {
        if heads == 0 || !d.is_multiple_of(heads) {
            return Err(Error::invalid_argument(
                "heads",
                format!("{prefix}: {d} channels in {heads} heads"),
            ));
        }
        let b = prefix;
        let ctx = shape(src, &format!("{b}.attn2.to_k.weight"))?[1];
        let inner = shape(src, &format!("{b}.ff.net.2.weight"))?[1];
        Ok(Self {
            norm1: LayerNorm::load(w, &format!("{b}.norm1"), d, 1e-5),
            attn1: Attention::load(w, &format!("{b}.attn1"), d, d, heads),
            norm2: LayerNorm::load(w, &format!("{b}.norm2"), d, 1e-5),
            attn2: Attention::load(w, &format!("{b}.attn2"), d, ctx, heads),
            norm3: LayerNorm::load(w, &format!("{b}.norm3"), d, 1e-5),
            ff_in: w.linear(&format!("{b}.ff.net.0.proj"), d, 2 * inner, true),
            ff_out: w.linear(&format!("{b}.ff.net.2"), inner, d, true),
        })
    }

    /// `s` (`[batch, tokens, d]`) through the block. The second attention reads `context`
    /// (`[batch, keys, width]`), or with `None` the normed states again (diffusers'
    /// `double_self_attention`). `positions` (`[1, tokens, d]`), when given, is added to the
    /// normed states before each attention (`positional_embeddings="sinusoidal"`).
    pub fn forward(
        &self,
        mut s: Tensor<3>,
        context: Option<&Tensor<3>>,
        positions: Option<&Tensor<3>>,
    ) -> Tensor<3> {
        let place = |n: Tensor<3>| match positions {
            Some(p) => n + p.clone(),
            None => n,
        };
        let n1 = place(self.norm1.forward(s.clone()));
        s = s + self.attn1.forward(n1.clone(), n1);
        let n2 = place(self.norm2.forward(s.clone()));
        let ctx = context.cloned().unwrap_or_else(|| n2.clone());
        s = s + self.attn2.forward(n2, ctx);
        let f = self.ff_in.forward(self.norm3.forward(s.clone()));
        let inner = f.dims()[2] / 2;
        let (hidden, gate) = (f.clone().narrow(2, 0, inner), f.narrow(2, inner, inner));
        s + self.ff_out.forward(hidden * activation::gelu(gate))
    }
}

#[derive(Debug, Clone)]
enum Proj {
    Conv(Conv2d),
    Linear(QLinear),
}

/// `Transformer2DModel` over continuous inputs.
#[derive(Debug, Clone)]
struct SpatialTransformer {
    norm: GroupNorm,
    proj_in: Proj,
    blocks: Vec<TransformerBlock>,
    proj_out: Proj,
}

impl SpatialTransformer {
    fn load(
        w: &WeightLoader<'_>,
        src: &dyn TensorSource,
        p: &str,
        cfg: &UnetConfig,
        heads: usize,
    ) -> Result<Self> {
        let d = shape(src, &format!("{p}.norm.weight"))?[0];
        let proj = |name: &str| {
            if cfg.use_linear_projection {
                Proj::Linear(w.linear(&format!("{p}.{name}"), d, d, true))
            } else {
                Proj::Conv(Conv2d::load(w, &format!("{p}.{name}"), [d, d, 1], 1, 0))
            }
        };
        let mut blocks = Vec::new();
        while src
            .tensor_info(&format!("{p}.transformer_blocks.{}.norm1.weight", blocks.len()))
            .is_some()
        {
            let b = format!("{p}.transformer_blocks.{}", blocks.len());
            blocks.push(TransformerBlock::load(w, src, &b, d, heads)?);
        }
        Ok(Self {
            norm: GroupNorm::load(w, &format!("{p}.norm"), cfg.norm_num_groups, d, 1e-6),
            proj_in: proj("proj_in"),
            blocks,
            proj_out: proj("proj_out"),
        })
    }

    fn forward(&self, x: Tensor<4>, ctx: &Tensor<3>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let normed = self.norm.forward(x.clone());
        let to_seq = |t: Tensor<4>| t.reshape([b, c, h * w]).swap_dims(1, 2);
        let mut s = match &self.proj_in {
            Proj::Conv(conv) => to_seq(conv.forward(normed)),
            Proj::Linear(l) => l.forward(to_seq(normed)),
        };
        for blk in &self.blocks {
            s = blk.forward(s, Some(ctx), None);
        }
        let out = match &self.proj_out {
            Proj::Conv(conv) => conv.forward(s.swap_dims(1, 2).reshape([b, c, h, w])),
            Proj::Linear(l) => l.forward(s).swap_dims(1, 2).reshape([b, c, h, w]),
        };
        out + x
    }
}

#[derive(Debug, Clone)]
struct Block {
    resnets: Vec<Resnet>,
    attentions: Vec<SpatialTransformer>,
    /// Down: stride-2 3x3 conv; up: nearest x2 then a 3x3 conv.
    resample: Option<Conv2d>,
}

impl Block {
    fn load(
        w: &WeightLoader<'_>,
        src: &dyn TensorSource,
        p: &str,
        cfg: &UnetConfig,
        emb: usize,
        heads: usize,
        up: bool,
    ) -> Result<Self> {
        let mut resnets = Vec::new();
        let mut attentions = Vec::new();
        let mut j = 0;
        while src.tensor_info(&format!("{p}.resnets.{j}.conv1.weight")).is_some() {
            resnets.push(Resnet::load(w, src, &format!("{p}.resnets.{j}"), cfg, emb)?);
            if src.tensor_info(&format!("{p}.attentions.{j}.norm.weight")).is_some() {
                attentions.push(SpatialTransformer::load(
                    w,
                    src,
                    &format!("{p}.attentions.{j}"),
                    cfg,
                    heads,
                )?);
            }
            j += 1;
        }
        if !attentions.is_empty() && attentions.len() != resnets.len() {
            return Err(Error::unsupported(
                "UNet block",
                format!("{p}: attentions do not follow every resnet"),
            ));
        }
        let name = if up { "upsamplers" } else { "downsamplers" };
        let resample = match src.tensor_info(&format!("{p}.{name}.0.conv.weight")) {
            Some(info) => {
                let c = info.shape[0];
                Some(Conv2d::load(
                    w,
                    &format!("{p}.{name}.0.conv"),
                    [c, c, 3],
                    if up { 1 } else { 2 },
                    1,
                ))
            }
            None => None,
        };
        Ok(Self { resnets, attentions, resample })
    }
}

/// The Stable Diffusion UNet (`UNet2DConditionModel`): a noisy latent, its timestep and the
/// text encoder's hidden states in, the model's prediction (noise, or v) out, the same shape
/// as the latent.
#[derive(Debug, Clone)]
pub struct UNet2DCondition {
    cfg: UnetConfig,
    time: (QLinear, QLinear),
    time_channels: usize,
    conv_in: Conv2d,
    down: Vec<Block>,
    mid: (Resnet, SpatialTransformer, Resnet),
    up: Vec<Block>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    device: Device,
}

impl UNet2DCondition {
    /// Loads `config.json` and `diffusion_pytorch_model.safetensors` from a directory.
    pub fn open(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config = dir.join("config.json");
        let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
        let cfg = UnetConfig::from_json(&text)?;
        let file = SafetensorsFile::open(dir.join("diffusion_pytorch_model.safetensors"))?;
        Self::load(&file, cfg, device)
    }

    /// Loads the weights from `src` (diffusers names). AnimateDiff's motion modules
    /// (`*.motion_modules.*`, present when `src` is a saved `UNetMotionModel`) are left for
    /// `aigc-video` to load from the same source; every other tensor must be used.
    pub fn load(src: &dyn TensorSource, cfg: UnetConfig, device: &Device) -> Result<Self> {
        let w = WeightLoader::new(src, device).ignore(|n| n.contains(".motion_modules."));
        let cin = shape(src, "conv_in.weight")?;
        let [c0, in_ch, ..] = cin[..] else {
            return Err(Error::tensor("conv_in.weight", "is not 4-D"));
        };
        let emb = shape(src, "time_embedding.linear_1.weight")?[0];
        let time = (
            w.linear("time_embedding.linear_1", c0, emb, true),
            w.linear("time_embedding.linear_2", emb, emb, true),
        );
        let conv_in = Conv2d::load(&w, "conv_in", [c0, in_ch, 3], 1, 1);
        let levels = cfg.levels;
        let down = (0..levels)
            .map(|i| {
                Block::load(&w, src, &format!("down_blocks.{i}"), &cfg, emb, cfg.heads[i], false)
            })
            .collect::<Result<Vec<_>>>()?;
        let heads_last = cfg.heads[levels - 1];
        let mid = (
            Resnet::load(&w, src, "mid_block.resnets.0", &cfg, emb)?,
            SpatialTransformer::load(&w, src, "mid_block.attentions.0", &cfg, heads_last)?,
            Resnet::load(&w, src, "mid_block.resnets.1", &cfg, emb)?,
        );
        let up = (0..levels)
            .map(|i| {
                Block::load(
                    &w,
                    src,
                    &format!("up_blocks.{i}"),
                    &cfg,
                    emb,
                    cfg.heads[levels - 1 - i],
                    true,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let norm_out = GroupNorm::load(&w, "conv_norm_out", cfg.norm_num_groups, c0, cfg.norm_eps);
        let out_ch = shape(src, "conv_out.weight")?[0];
        let conv_out = Conv2d::load(&w, "conv_out", [out_ch, c0, 3], 1, 1);
        w.finish()?;
        Ok(Self {
            cfg,
            time,
            time_channels: c0,
            conv_in,
            down,
            mid,
            up,
            norm_out,
            conv_out,
            device: device.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UnetConfig {
        &self.cfg
    }

    /// `[cos | sin]` embedding of the timesteps (`flip_sin_to_cos`, no frequency shift).
    fn timestep_embedding(&self, t: &[f32]) -> Tensor<2> {
        let dim = self.time_channels;
        let half = dim / 2;
        let mut v = vec![0f32; t.len() * dim];
        for (row, &t) in v.chunks_exact_mut(dim).zip(t) {
            for i in 0..half {
                let exponent = -(10000f64.ln() as f32) * i as f32 / half as f32;
                let arg = t * exponent.exp();
                row[i] = arg.cos();
                row[half + i] = arg.sin();
            }
        }
        Tensor::from_data(TensorData::new(v, [t.len(), dim]), &self.device)
    }

    /// The model output for `sample` (`[batch, c, h, w]`), one timestep per batch item, and
    /// `context` (`[batch, tokens, cross_attention_dim]`: the text encoder's hidden states).
    pub fn forward(
        &self,
        sample: Tensor<4>,
        timesteps: &[f32],
        context: &Tensor<3>,
    ) -> Result<Tensor<4>> {
        self.forward_with(sample, timesteps, context, &mut |_, x| Ok(x))
    }

    /// [`forward`](Self::forward) with `hook` applied to the activations at every
    /// [`UnetSite`], in order (down levels, mid block, up levels): what it returns goes on
    /// through the UNet. Models that extend the UNet with layers of their own between its
    /// blocks (AnimateDiff's motion modules in `aigc-video`) run them here.
    pub fn forward_with(
        &self,
        sample: Tensor<4>,
        timesteps: &[f32],
        context: &Tensor<3>,
        hook: &mut dyn FnMut(UnetSite, Tensor<4>) -> Result<Tensor<4>>,
    ) -> Result<Tensor<4>> {
        let [b, c, h, wd] = sample.dims();
        let f = 1 << (self.cfg.levels - 1);
        if c != self.cfg.in_channels
            || timesteps.len() != b
            || context.dims()[0] != b
            || h % f != 0
            || wd % f != 0
        {
            return Err(Error::invalid_argument(
                "sample",
                format!(
                    "[{b}, {c}, {h}, {wd}] with {} timesteps and a context for {}",
                    timesteps.len(),
                    context.dims()[0]
                ),
            ));
        }
        let t = self.timestep_embedding(timesteps);
        let temb = linear_2d(&self.time.1, silu(linear_2d(&self.time.0, t)));
        let mut x = self.conv_in.forward(sample);
        let mut skips = vec![x.clone()];
        for (level, blk) in self.down.iter().enumerate() {
            for (layer, r) in blk.resnets.iter().enumerate() {
                x = r.forward(x, &temb);
                if let Some(a) = blk.attentions.get(layer) {
                    x = a.forward(x, context);
                }
                x = hook(UnetSite::Down { level, layer }, x)?;
                skips.push(x.clone());
            }
            if let Some(conv) = &blk.resample {
                x = conv.forward(x);
                skips.push(x.clone());
            }
        }
        x = self.mid.0.forward(x, &temb);
        x = self.mid.1.forward(x, context);
        x = hook(UnetSite::Mid { layer: 0 }, x)?;
        x = self.mid.2.forward(x, &temb);
        for (level, blk) in self.up.iter().enumerate() {
            for (layer, r) in blk.resnets.iter().enumerate() {
                let skip = skips.pop().ok_or_else(|| {
                    Error::unsupported("UNet layout", "fewer skips than up resnets")
                })?;
                x = r.forward(aigc_core::layers::cat_channels(x, skip), &temb);
                if let Some(a) = blk.attentions.get(layer) {
                    x = a.forward(x, context);
                }
                x = hook(UnetSite::Up { level, layer }, x)?;
            }
            if let Some(conv) = &blk.resample {
                x = conv.forward(aigc_core::layers::upsample_nearest2x(x));
            }
        }
        Ok(self.conv_out.forward_normed(x, &self.norm_out, None, true, None))
    }
}

/// A place between the UNet's layers where [`UNet2DCondition::forward_with`] calls its hook
/// (where AnimateDiff inserts a motion module): after each resnet of a down or up level,
/// and after its spatial transformer when the level has them; in the mid block after the
/// transformer, before the second resnet. Levels count from the top (`Down { level: 0 }` is
/// the full resolution, `Up { level: 0 }` the lowest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnetSite {
    /// In down level `level`, after its resnet `layer`.
    Down {
        /// The down level.
        level: usize,
        /// The resnet within it.
        layer: usize,
    },
    /// In the mid block, after its transformer `layer`.
    Mid {
        /// The transformer within it.
        layer: usize,
    },
    /// In up level `level`, after its resnet `layer`.
    Up {
        /// The up level.
        level: usize,
        /// The resnet within it.
        layer: usize,
    },
}
