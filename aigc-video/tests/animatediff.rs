//! AnimateDiff against diffusers on a tiny random-weight motion adapter over the tiny Stable
//! Diffusion pipeline (`tools/animatediff_tiny.py` → `tools/fixtures/video/animatediff-tiny/`,
//! base model `tools/fixtures/image/sd-tiny/`), within 1e-3 max abs: one motion module, the
//! whole `UNetMotionModel`, and a 4-frame, 2-step `AnimateDiffPipeline`.

use std::path::{Path, PathBuf};

use aigc_core::burn::tensor::{Device, Tensor, TensorData};
use aigc_core::npy;
use aigc_core::schedulers::SeededNoise;
use aigc_crossmodal::clip::ClipTextEncoder;
use aigc_image::unet::{UNet2DCondition, UnetSite};
use aigc_video::animatediff::{AnimateDiff, VideoParams};
use aigc_video::motion::{MotionAdapter, MotionConfig};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures")
}

fn sd_dir() -> PathBuf {
    root().join("image/sd-tiny")
}

fn adapter_dir() -> PathBuf {
    root().join("video/animatediff-tiny/motion_adapter")
}

fn golden(name: &str) -> (Vec<usize>, Vec<f32>) {
    npy::read_f32(root().join(format!("video/animatediff-tiny/golden/{name}.npy"))).unwrap()
}

fn max_diff(what: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("{what}: max |diff| {worst:.2e}");
    worst
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

/// `[b, c, f, h, w]` values to `[b * f, c, h, w]` (or back, with `c` and `f` swapped).
fn swap_cf(v: &[f32], [b, c, f, hw]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for bi in 0..b {
        for ci in 0..c {
            for fi in 0..f {
                let src = ((bi * c + ci) * f + fi) * hw;
                let dst = ((bi * f + fi) * c + ci) * hw;
                out[dst..dst + hw].copy_from_slice(&v[src..src + hw]);
            }
        }
    }
    out
}

fn open(device: &Device) -> (UNet2DCondition, MotionAdapter) {
    let unet = UNet2DCondition::open(sd_dir().join("unet"), device).unwrap();
    let adapter = MotionAdapter::open(adapter_dir(), &unet, device).unwrap();
    (unet, adapter)
}

#[test]
fn motion_module_matches_diffusers() {
    let device = Device::default();
    let (_, adapter) = open(&device);
    let (shape, x) = golden("motion_module_in");
    let [n, c, h, w] = shape[..] else { panic!("{shape:?}") };
    let x = Tensor::<4>::from_data(TensorData::new(x, [n, c, h, w]), &device);
    let site = UnetSite::Down { level: 0, layer: 0 };
    let y = adapter.forward_module(site, x.clone(), 4).unwrap();
    let (_, want) = golden("motion_module_out");
    assert!(max_diff("motion module", &values(y), &want) <= 1e-3);
    // Clips of the wrong length, or too long for the position table, are errors.
    assert!(adapter.forward_module(site, x.clone(), 3).is_err());
    assert!(adapter.forward_module(site, x, 0).is_err());
    let long = Tensor::<4>::zeros([33, c, h, w], &device);
    assert!(adapter.forward_module(site, long, 33).is_err());
}

#[test]
fn unet_motion_model_matches_diffusers() {
    let device = Device::default();
    let (unet, adapter) = open(&device);
    let (shape, sample) = golden("unet_sample");
    let [b, c, f, h, w] = shape[..] else { panic!("{shape:?}") };
    let frames = swap_cf(&sample, [b, c, f, h * w]);
    let x = Tensor::<4>::from_data(TensorData::new(frames, [b * f, c, h, w]), &device);
    let (cshape, ctx) = golden("unet_encoder_hidden_states");
    let ctx =
        Tensor::<3>::from_data(TensorData::new(ctx, [cshape[0], cshape[1], cshape[2]]), &device);
    let out = adapter.forward(&unet, x.clone(), f, &[10.0, 500.0], &ctx).unwrap();
    let got = swap_cf(&values(out), [b, f, c, h * w]);
    let (_, want) = golden("unet_out");
    assert!(max_diff("UNetMotionModel", &got, &want) <= 1e-3);

    // The motion modules matter: the plain UNet frame by frame is far off.
    let per_frame_ctx =
        Tensor::cat((0..b).map(|i| ctx.clone().narrow(0, i, 1).repeat_dim(0, f)).collect(), 0);
    let t: Vec<f32> = [10.0f32, 500.0].iter().flat_map(|&t| [t; 4]).collect();
    let plain =
        swap_cf(&values(unet.forward(x.clone(), &t, &per_frame_ctx).unwrap()), [b, f, c, h * w]);
    assert!(max_diff("plain UNet", &plain, &want) > 0.1);

    // Inputs that do not fit are errors.
    assert!(adapter.forward(&unet, x.clone(), 3, &[10.0, 500.0], &ctx).is_err());
    assert!(adapter.forward(&unet, x.clone(), f, &[10.0], &ctx).is_err());

    // A saved UNetMotionModel holds both under the same names: the UNet ignores the motion
    // modules, the adapter the spatial layers.
    let whole = root().join("video/animatediff-tiny/unet_motion");
    let unet2 = UNet2DCondition::open(&whole, &device).unwrap();
    let adapter2 = MotionAdapter::open(&whole, &unet2, &device).unwrap();
    let out = adapter2.forward(&unet2, x, f, &[10.0, 500.0], &ctx).unwrap();
    let got = swap_cf(&values(out), [b, f, c, h * w]);
    assert!(max_diff("UNetMotionModel directory", &got, &want) <= 1e-3);
}

#[test]
fn animatediff_pipeline_matches_diffusers() {
    let device = Device::default();
    let encoder = ClipTextEncoder::open(sd_dir().join("text_encoder"), &device).unwrap();
    let mut pipe = AnimateDiff::open(sd_dir(), adapter_dir(), encoder, &device).unwrap();
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("video/animatediff-tiny/golden.json")).unwrap(),
    )
    .unwrap();
    let v = &doc["video"];
    let params = VideoParams {
        prompt: v["prompt"].as_str().unwrap(),
        negative_prompt: v["negative_prompt"].as_str().unwrap(),
        frames: v["num_frames"].as_u64().unwrap() as usize,
        height: v["height"].as_u64().unwrap() as usize,
        width: v["width"].as_u64().unwrap() as usize,
        steps: v["num_inference_steps"].as_u64().unwrap() as usize,
        guidance_scale: v["guidance_scale"].as_f64().unwrap() as f32,
        decode_chunk: 3,
    };
    let (_, init) = golden("video_init_latents");
    let mut noise = SeededNoise::new(0);
    let mut seen = Vec::new();
    let video =
        pipe.generate(&params, Some(init.clone()), &mut noise, |i, n| seen.push((i, n))).unwrap();
    assert_eq!(seen, vec![(1, 2), (2, 2)]);
    let (shape, steps) = golden("video_step_latents");
    let last = &steps[steps.len() / shape[0]..];
    assert!(max_diff("final latents", &video.latents, last) <= 1e-3);
    let (fshape, want) = golden("video_frames");
    assert_eq!(fshape, vec![1, 4, params.height, params.width, 3]);
    let got: Vec<f32> = video.frames.iter().flat_map(|f| f.pixels.iter().copied()).collect();
    assert!(max_diff("frames", &got, &want) <= 1e-3);
    let rgb = video.rgb_frames();
    assert_eq!(rgb.len(), 4);
    assert_eq!(rgb[0].data.len(), params.height * params.width * 3);

    // Bad requests are typed errors.
    let mut bad = params.clone();
    bad.frames = 33;
    assert!(pipe.generate(&bad, None, &mut noise, |_, _| {}).is_err());
    let mut bad = params.clone();
    bad.height = 31;
    assert!(pipe.generate(&bad, None, &mut noise, |_, _| {}).is_err());
    assert!(pipe.generate(&params, Some(init[..10].to_vec()), &mut noise, |_, _| {}).is_err());
}

#[test]
fn motion_config_and_bad_adapters() {
    let cfg = MotionConfig::from_json(
        &std::fs::read_to_string(adapter_dir().join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg, MotionConfig { heads: vec![2, 4], max_frames: 32 });
    let one = MotionConfig::from_json(
        r#"{"block_out_channels": [8, 16, 32], "motion_num_attention_heads": 8}"#,
    )
    .unwrap();
    assert_eq!(one, MotionConfig { heads: vec![8; 3], max_frames: 32 });
    for bad in [
        "{}",
        r#"{"block_out_channels": [8, 16], "motion_num_attention_heads": [2]}"#,
        r#"{"block_out_channels": [8, 16], "motion_num_attention_heads": 0}"#,
        r#"{"block_out_channels": [8, 16], "motion_max_seq_length": 0}"#,
        r#"{"block_out_channels": [8, 16], "conv_in_channels": 9}"#,
    ] {
        assert!(MotionConfig::from_json(bad).is_err(), "{bad}");
    }

    let device = Device::default();
    let unet = UNet2DCondition::open(sd_dir().join("unet"), &device).unwrap();
    let file = aigc_core::weights::SafetensorsFile::open(
        adapter_dir().join("diffusion_pytorch_model.safetensors"),
    )
    .unwrap();
    // An adapter for another number of levels.
    let three = MotionConfig { heads: vec![2, 4, 4], max_frames: 32 };
    assert!(MotionAdapter::load(&file, three, &unet, &device).is_err());
    // Not an adapter at all: the UNet's own file has no motion modules.
    let plain = aigc_core::weights::SafetensorsFile::open(
        sd_dir().join("unet/diffusion_pytorch_model.safetensors"),
    )
    .unwrap();
    assert!(MotionAdapter::load(&plain, cfg.clone(), &unet, &device).is_err());
    // Heads that do not divide the channels.
    let odd = MotionConfig { heads: vec![3, 4], max_frames: 32 };
    assert!(MotionAdapter::load(&file, odd, &unet, &device).is_err());
    assert!(MotionAdapter::open(Path::new("/nonexistent"), &unet, &device).is_err());
}
