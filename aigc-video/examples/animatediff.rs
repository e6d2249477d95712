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

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use aigc_core::schedulers::SeededNoise;
use aigc_crossmodal::clip::ClipTextEncoder;
use aigc_video::animatediff::{AnimateDiff, VideoParams};
use aigc_video::open_writer;

const USAGE: &str =
    "usage: animatediff --model SD_DIR --adapter DIR --prompt TEXT [--negative TEXT]
                   [--frames N] [--steps N] [--guidance G] [--height H] [--width W] [--seed S]
                   [--fps F] [--out FILE.gif|.png|.y4m|DIR] [--device NAME]";

fn run() -> Result<(), String> {
    let (mut model, mut adapter, mut prompt, mut negative) = (None, None, None, String::new());
    let mut params = VideoParams::new("");
    let (mut seed, mut fps, mut out, mut device) = (0u64, 8.0f64, "clip.gif".to_string(), None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let bad = |v: &str| format!("{flag}: `{v}` is not a valid number");
        macro_rules! num {
            () => {{
                let v = value()?;
                v.parse().map_err(|_| bad(&v))?
            }};
        }
        match flag.as_str() {
            "--model" => model = Some(value()?),
            "--adapter" => adapter = Some(value()?),
            "--prompt" => prompt = Some(value()?),
            "--negative" => negative = value()?,
            "--out" => out = value()?,
            "--device" => device = Some(value()?),
            "--frames" => params.frames = num!(),
            "--steps" => params.steps = num!(),
            "--guidance" => params.guidance_scale = num!(),
            "--height" => params.height = num!(),
            "--width" => params.width = num!(),
            "--seed" => seed = num!(),
            "--fps" => fps = num!(),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let model = model.ok_or("--model is required")?;
    let adapter = adapter.ok_or("--adapter is required")?;
    let prompt = prompt.ok_or("--prompt is required")?;
    params.prompt = &prompt;
    params.negative_prompt = &negative;
    let device =
        aigc_core::device::device_from_arg_or_env(device.as_deref()).map_err(|e| e.to_string())?;
    let model = std::path::Path::new(&model);
    let encoder =
        ClipTextEncoder::open(model.join("text_encoder"), &device).map_err(|e| e.to_string())?;
    let mut pipe =
        AnimateDiff::open(model, &adapter, encoder, &device).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let progress = |done: usize, total: usize| {
        let filled = 30 * done / total.max(1);
        eprint!(
            "\rdenoising {} frames [{}{}] {done}/{total} {:.1}s",
            params.frames,
            "#".repeat(filled),
            " ".repeat(30 - filled),
            start.elapsed().as_secs_f32()
        );
        let _ = std::io::stderr().flush();
    };
    let video = pipe
        .generate(&params, None, &mut SeededNoise::new(seed), progress)
        .map_err(|e| e.to_string())?;
    eprintln!();
    let frames = video.rgb_frames();
    let (w, h) = (frames[0].width, frames[0].height);
    let mut writer = open_writer(out.as_ref(), w, h, fps).map_err(|e| e.to_string())?;
    for frame in &frames {
        writer.write_frame(frame).map_err(|e| e.to_string())?;
    }
    let written = writer.finish().map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} frames of {w}x{h}) in {:.1}s",
        written.display(),
        frames.len(),
        start.elapsed().as_secs_f32()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            ExitCode::FAILURE
        }
    }
}
