//! Text to video with AnimateDiff: a diffusers-format Stable Diffusion 1.x directory and a
//! motion adapter directory (`MotionAdapter.save_pretrained`, e.g. a download of
//! guoyww/animatediff-motion-adapter-v1-5-2; or a saved `UNetMotionModel`). The text encoder
//! is aigc-crossmodal's CLIP (a dev-dependency of this crate).
//!
//! ```text
//! cargo run --release -p aigc-video --example animatediff -- --model SD_DIR --adapter DIR \
//!     --prompt "a red fox running in the snow" [--negative TEXT] [--frames 16] [--steps 25]
//!     [--guidance 7.5] [--height 512] [--width 512] [--seed 0] [--fps 8] [--out clip.gif]
//!     [--device NAME]
//! ```
//!
//! Without real weights at hand, the tiny random fixture runs it end to end (its frames are
//! noise-like): `--model tools/fixtures/image/sd-tiny --adapter
//! tools/fixtures/video/animatediff-tiny/motion_adapter --height 32 --width 24 --frames 4`.

use std::process::ExitCode;

use aigc_core::schedulers::SeededNoise;
use aigc_crossmodal::clip::ClipTextEncoder;
use aigc_video::animatediff::{AnimateDiff, VideoParams};
use aigc_video::open_writer;

const USAGE: &str =
    "usage: animatediff --model SD_DIR --adapter DIR --prompt TEXT [--negative TEXT]
                   [--frames N] [--steps N] [--guidance G] [--height H] [--width W] [--seed S]
                   [--fps F] [--out FILE.gif|.png|.y4m|DIR] [--device NAME]";

struct Args {
    model: String,
    adapter: String,
    prompt: String,
    negative: String,
    frames: usize,
    steps: usize,
    guidance: f32,
    height: usize,
    width: usize,
    seed: u64,
    fps: f64,
    out: String,
    device: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let defaults = VideoParams::new("");
    let (mut model, mut adapter, mut prompt) = (None, None, None);
    let mut args = Args {
        model: String::new(),
        adapter: String::new(),
        prompt: String::new(),
        negative: String::new(),
        frames: defaults.frames,
        steps: defaults.steps,
        guidance: defaults.guidance_scale,
        height: defaults.height,
        width: defaults.width,
        seed: 0,
        fps: 8.0,
        out: "clip.gif".into(),
        device: None,
    };
    let mut flags = aigc_core::cli::Flags::from_env();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--model" => model = Some(flags.value()?),
            "--adapter" => adapter = Some(flags.value()?),
            "--prompt" => prompt = Some(flags.value()?),
            "--negative" => args.negative = flags.value()?,
            "--out" => args.out = flags.value()?,
            "--device" => args.device = Some(flags.value()?),
            "--frames" => args.frames = flags.parse()?,
            "--steps" => args.steps = flags.parse()?,
            "--guidance" => args.guidance = flags.parse()?,
            "--height" => args.height = flags.parse()?,
            "--width" => args.width = flags.parse()?,
            "--seed" => args.seed = flags.parse()?,
            "--fps" => args.fps = flags.parse()?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    args.model = model.ok_or("--model is required")?;
    args.adapter = adapter.ok_or("--adapter is required")?;
    args.prompt = prompt.ok_or("--prompt is required")?;
    Ok(args)
}

fn run(args: Args) -> Result<(), String> {
    let Args { model, adapter, device, seed, fps, out, .. } = &args;
    let params = VideoParams {
        prompt: &args.prompt,
        negative_prompt: &args.negative,
        frames: args.frames,
        height: args.height,
        width: args.width,
        steps: args.steps,
        guidance_scale: args.guidance,
        ..VideoParams::new("")
    };
    let device =
        aigc_core::device::device_from_arg_or_env(device.as_deref()).map_err(|e| e.to_string())?;
    let model = std::path::Path::new(model);
    let encoder =
        ClipTextEncoder::open(model.join("text_encoder"), &device).map_err(|e| e.to_string())?;
    let mut pipe =
        AnimateDiff::open(model, adapter, encoder, &device).map_err(|e| e.to_string())?;
    let bar = aigc_core::cli::Progress::new(format!("denoising {} frames", params.frames));
    let progress = |done: usize, total: usize| bar.update(done, total);
    let video = pipe
        .generate(&params, None, &mut SeededNoise::new(*seed), progress)
        .map_err(|e| e.to_string())?;
    bar.finish();
    let frames = video.rgb_frames();
    let (w, h) = (frames[0].width, frames[0].height);
    let mut writer = open_writer(out.as_ref(), w, h, *fps).map_err(|e| e.to_string())?;
    for frame in &frames {
        writer.write_frame(frame).map_err(|e| e.to_string())?;
    }
    let written = writer.finish().map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} frames of {w}x{h}) in {:.1}s",
        written.display(),
        frames.len(),
        bar.elapsed().as_secs_f32()
    );
    Ok(())
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
