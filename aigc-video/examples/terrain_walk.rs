//! Animate a latent walk through the terrain consistency model: the noise slerped between
//! seeds, the difficulty swept between two values, each frame a shaded colour rendering.
//!
//! ```text
//! cargo run --release -p aigc-video --example terrain_walk -- --frames 24 --seed 1 --seed 2 \
//!     --difficulty-from 30 --difficulty-to 70 --fps 12 --out walk.gif
//! ```
//!
//! `--out` picks the writer by its name (`.gif`, `.png` for APNG, `.y4m`, or a PNG sequence:
//! a folder or a `%04d` / `{}` pattern). Prints the smoothness figure at the end: the mean
//! absolute frame-to-frame difference of the walk against independent samples.

use std::path::PathBuf;
use std::process::ExitCode;

use aigc_core::models;
use aigc_image::terrain::TerrainModel;
use aigc_video::open_writer;
use aigc_video::walk::{TerrainWalk, smoothness, walk};

const USAGE: &str = "usage: terrain_walk [--frames N] [--seed A --seed B ...]
                    [--difficulty-from X --difficulty-to Y] [--fps F] [--scale S] [--batch B]
                    [--out FILE.gif] [--no-smoothness] [--model PATH|ID] [--device NAME]

  --frames           frames (default 24)
  --seed             noise seeds, repeated (default 0 and 1); two walk from A to B, more loop
  --difficulty-from  the first frame's difficulty, 1..100 (default 30)
  --difficulty-to    the last frame's difficulty (default 70)
  --fps              frames per second (default 12)
  --scale            rendering scale over 128x128 (default 2)
  --batch            frames per model call (default 4)
  --out              .gif, .png (APNG), .y4m, or a PNG sequence folder (default terrain-walk.gif)
  --no-smoothness    skip the independent samples the smoothness figure needs
  --device           flex (default), ndarray, wgpu, cuda (as compiled in); or set AIGC_DEVICE";

struct Args {
    walk: TerrainWalk,
    fps: f64,
    out: PathBuf,
    smoothness: bool,
    model: String,
    device: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut walk = TerrainWalk::default();
    let mut seeds = Vec::new();
    let mut args = Args {
        walk: TerrainWalk::default(),
        fps: 12.0,
        out: PathBuf::from("terrain-walk.gif"),
        smoothness: true,
        model: "terrain-consistency-unet".into(),
        device: None,
    };
    let mut flags = aigc_core::cli::Flags::from_env();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--frames" => walk.frames = flags.parse()?,
            "--seed" => seeds.push(flags.parse()?),
            "--difficulty-from" => walk.difficulty_from = flags.parse()?,
            "--difficulty-to" => walk.difficulty_to = flags.parse()?,
            "--fps" => args.fps = flags.parse()?,
            "--scale" => walk.scale = flags.parse()?,
            "--batch" => walk.batch = flags.parse()?,
            "--out" => args.out = flags.value()?.into(),
            "--no-smoothness" => args.smoothness = false,
            "--model" => args.model = flags.value()?,
            "--device" => args.device = Some(flags.value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if !seeds.is_empty() {
        walk.seeds = seeds;
    }
    if walk.frames < 2 {
        return Err("--frames must be at least 2".into());
    }
    args.walk = walk;
    Ok(args)
}

fn run(args: Args) -> Result<(), String> {
    let err = |e: aigc_core::Error| e.to_string();
    let device = aigc_core::device::device_from_arg_or_env(args.device.as_deref()).map_err(err)?;
    let model = TerrainModel::open(
        models::resolve_or_fetch(&args.model).map_err(|e| e.to_string())?,
        &device,
    )
    .map_err(err)?;
    let total = args.walk.frames;
    let mut writer = None;
    let mut frames = Vec::with_capacity(total);
    let bar = aigc_core::cli::Progress::new("frames");
    walk(&model, &args.walk, |i, frame| {
        let w = match &mut writer {
            Some(w) => w,
            None => {
                writer.insert(open_writer(&args.out, frame.rgb.width, frame.rgb.height, args.fps)?)
            }
        };
        w.write_frame(&frame.rgb)?;
        frames.push(frame);
        bar.update(i + 1, total);
        Ok(())
    })
    .map_err(err)?;
    bar.finish();
    let written = writer.expect("at least one frame").finish().map_err(err)?;
    let secs = bar.elapsed().as_secs_f32();
    println!(
        "{total} frames ({:.2} s per frame), difficulty {} to {}, seeds {:?}; wrote {}",
        secs / total as f32,
        args.walk.difficulty_from,
        args.walk.difficulty_to,
        args.walk.seeds,
        written.display()
    );
    if args.smoothness {
        let s = smoothness(&model, &args.walk, &frames, total.min(8), 1_000_000).map_err(err)?;
        println!(
            "smoothness (mean |frame - previous frame|): heights {:.4} walk vs {:.4} independent \
             (ratio {:.3}); RGB {:.2} vs {:.2} (ratio {:.3})",
            s.walk_heights,
            s.independent_heights,
            s.heights_ratio(),
            s.walk_rgb,
            s.independent_rgb,
            s.rgb_ratio()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
