//! Generate a terrain heightmap with the consistency model of `adaptive-terrain-diffusion`.
//!
//! ```text
//! cargo run --release -p aigc-image --example terrain -- --difficulty 70 --seed 3 --out terrain.png
//! ```
//!
//! Writes a 16-bit grayscale heightmap (`--out`, normalised to the terrain's highest point) and
//! a shaded colour rendering next to it (`-shaded.png`, or `--render`). The model is fetched
//! with `scripts/fetch-models.sh` on first use.

use std::path::PathBuf;
use std::process::ExitCode;

use aigc_core::models;
use aigc_image::terrain::{NATIVE_SIZE, TerrainModel, normal_noise};
use aigc_image::{npy, png};

const USAGE: &str = "usage: terrain [--steps N] [--difficulty D] [--seed S] [--latents NOISE.npy]
               [--out FILE.png] [--render FILE.png] [--out-npy FILE.npy] [--model PATH|ID]
               [--device NAME]

  --steps       denoising steps (default 1, as the package samples; more re-noise between steps)
  --difficulty  1..100 (default 50)
  --seed        the noise seed (default 0)
  --latents     initial noise, float32 .npy [1,1,128,128] in units of the initial sigma (80)
  --out         16-bit grayscale heightmap PNG (default terrain.png)
  --render      shaded colour rendering (default: --out with -shaded.png)
  --out-npy     the model's raw denoised output (before the height transform), float32 .npy
  --device      flex (default), ndarray, wgpu, cuda (as compiled in); or set AIGC_DEVICE";

struct Args {
    steps: usize,
    difficulty: u32,
    seed: u64,
    latents: Option<PathBuf>,
    out: PathBuf,
    render: Option<PathBuf>,
    out_npy: Option<PathBuf>,
    model: String,
    device: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        steps: 1,
        difficulty: 50,
        seed: 0,
        latents: None,
        out: PathBuf::from("terrain.png"),
        render: None,
        out_npy: None,
        model: "terrain-consistency-unet".into(),
        device: None,
    };
    let mut flags = aigc_core::cli::Flags::from_env();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--steps" => args.steps = flags.parse()?,
            "--difficulty" => args.difficulty = flags.parse()?,
            "--seed" => args.seed = flags.parse()?,
            "--latents" => args.latents = Some(flags.value()?.into()),
            "--out" => args.out = flags.value()?.into(),
            "--render" => args.render = Some(flags.value()?.into()),
            "--out-npy" => args.out_npy = Some(flags.value()?.into()),
            "--model" => args.model = flags.value()?,
            "--device" => args.device = Some(flags.value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.steps == 0 {
        return Err("--steps must be at least 1".into());
    }
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
    let n = NATIVE_SIZE * NATIVE_SIZE;
    let noise = match &args.latents {
        Some(path) => {
            let (shape, values) = npy::read_f32(path).map_err(err)?;
            if values.len() != n {
                return Err(format!("--latents: shape {shape:?}, expected [1, 1, 128, 128]"));
            }
            values
        }
        None => normal_noise(args.seed, n),
    };
    let bar = aigc_core::cli::Progress::new("denoising");
    let terrain = model
        .generate(&noise, args.difficulty, args.steps, args.seed, |d, t| bar.update(d, t))
        .map_err(err)?;
    bar.finish();
    png::write_gray16(&args.out, NATIVE_SIZE, NATIVE_SIZE, &terrain.normalized()).map_err(err)?;
    let render = args.render.clone().unwrap_or_else(|| {
        let stem = args.out.file_stem().map(|s| s.to_string_lossy().into_owned());
        args.out.with_file_name(format!("{}-shaded.png", stem.as_deref().unwrap_or("terrain")))
    });
    let (side, rgb) = terrain.render_rgb(4);
    png::write_rgb8(&render, side, side, &rgb).map_err(err)?;
    if let Some(path) = &args.out_npy {
        npy::write_f32(path, &[1, 1, NATIVE_SIZE, NATIVE_SIZE], &terrain.model_values)
            .map_err(err)?;
    }
    let max = terrain.heights.iter().copied().fold(0f32, f32::max);
    println!(
        "difficulty {}: heights 0..{max:.3}; wrote {} and {}{}",
        terrain.difficulty,
        args.out.display(),
        render.display(),
        args.out_npy.as_ref().map(|p| format!(" and {}", p.display())).unwrap_or_default()
    );
    Ok(())
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
