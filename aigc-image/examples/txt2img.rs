//! Text to image (or image to image) with any diffusers-format Stable Diffusion 1.x/2.x
//! directory (`model_index.json`, `tokenizer/`, `text_encoder/`, `unet/`, `vae/`,
//! `scheduler/`, safetensors weights). The text encoder is aigc-crossmodal's CLIP (a
//! dev-dependency of this crate); with `--clip DIR` (a transformers `CLIPModel` directory with
//! its `tokenizer.json`) the image is also scored against the prompt.
//!
//! ```text
//! cargo run --release -p aigc-image --example txt2img -- --model DIR --prompt "a red fox" \
//!     [--negative TEXT] [--steps 25] [--guidance 7.5] [--height 512] [--width 512] [--seed 0]
//!     [--init IMAGE.png --strength 0.6] [--out out.png] [--clip DIR] [--device NAME]
//! ```

use std::process::ExitCode;

use aigc_core::schedulers::SeededNoise;
use aigc_crossmodal::draw::{ClipScorer, open_stable_diffusion};
use aigc_image::pipeline::Txt2ImgParams;

const USAGE: &str =
    "usage: txt2img --model DIR --prompt TEXT [--negative TEXT] [--steps N] [--guidance G]
               [--height H] [--width W] [--seed S] [--init IMAGE.png --strength S] [--out FILE.png]
               [--clip DIR] [--device NAME]";

fn read_png_rgb(path: &str) -> Result<(Vec<f32>, usize, usize), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| format!("{path}: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("image too large")?];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("{path}: {e}"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let mut rgb = Vec::with_capacity(w * h * 3);
    for px in buf[..w * h * channels].chunks_exact(channels) {
        for c in 0..3 {
            rgb.push(px[if channels >= 3 { c } else { 0 }] as f32 / 255.0);
        }
    }
    Ok((rgb, h, w))
}

struct Args {
    model: String,
    prompt: String,
    negative: String,
    out: String,
    steps: usize,
    guidance: f32,
    height: usize,
    width: usize,
    seed: u64,
    init: Option<String>,
    strength: f32,
    device: Option<String>,
    clip: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let (mut model, mut prompt) = (None, None);
    let mut args = Args {
        model: String::new(),
        prompt: String::new(),
        negative: String::new(),
        out: "out.png".into(),
        steps: 25,
        guidance: 7.5,
        height: 512,
        width: 512,
        seed: 0,
        init: None,
        strength: 0.6,
        device: None,
        clip: None,
    };
    let mut flags = aigc_core::cli::Flags::from_env();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--model" => model = Some(flags.value()?),
            "--prompt" => prompt = Some(flags.value()?),
            "--negative" => args.negative = flags.value()?,
            "--out" => args.out = flags.value()?,
            "--init" => args.init = Some(flags.value()?),
            "--device" => args.device = Some(flags.value()?),
            "--clip" => args.clip = Some(flags.value()?),
            "--steps" => args.steps = flags.parse()?,
            "--guidance" => args.guidance = flags.parse()?,
            "--height" => args.height = flags.parse()?,
            "--width" => args.width = flags.parse()?,
            "--seed" => args.seed = flags.parse()?,
            "--strength" => args.strength = flags.parse()?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    args.model = model.ok_or("--model is required")?;
    args.prompt = prompt.ok_or("--prompt is required")?;
    Ok(args)
}

fn run(args: Args) -> Result<(), String> {
    let Args { model, prompt, negative, out, init, device, clip, .. } = &args;
    let (steps, guidance, strength) = (args.steps, args.guidance, args.strength);
    let device =
        aigc_core::device::device_from_arg_or_env(device.as_deref()).map_err(|e| e.to_string())?;
    let mut sd = open_stable_diffusion(model, &device).map_err(|e| e.to_string())?;
    let scorer = match &clip {
        Some(dir) => Some(ClipScorer::open(dir, &device).map_err(|e| e.to_string())?),
        None => None,
    };
    let bar = aigc_core::cli::Progress::new("denoising");
    let progress = |done: usize, total: usize| bar.update(done, total);
    let mut noise = SeededNoise::new(args.seed);
    let image = match &init {
        Some(path) => {
            let (rgb, h, w) = read_png_rgb(path)?;
            sd.img2img(
                &rgb,
                (h, w),
                prompt,
                negative,
                strength,
                steps,
                guidance,
                &mut noise,
                progress,
            )
        }
        None => {
            let p = Txt2ImgParams {
                prompt,
                negative_prompt: negative,
                height: args.height,
                width: args.width,
                steps,
                guidance_scale: guidance,
            };
            sd.txt2img(&p, None, &mut noise, progress)
        }
    }
    .map_err(|e| e.to_string())?;
    bar.finish();
    aigc_image::png::write_rgb8(out, image.width, image.height, &image.to_rgb8())
        .map_err(|e| e.to_string())?;
    println!("wrote {out} ({}x{})", image.width, image.height);
    if let Some(scorer) = &scorer {
        let similarity = scorer.similarity(&image, prompt).map_err(|e| e.to_string())?;
        println!("CLIP similarity to the prompt: {similarity:.4}");
    }
    Ok(())
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
