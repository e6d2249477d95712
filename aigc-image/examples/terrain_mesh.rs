//! A generated terrain as a 3D mesh: binary glTF (`.glb`) or Wavefront OBJ.
//!
//! ```text
//! cargo run --release -p aigc-image --example terrain_mesh -- --seed 3 --difficulty 70 --out terrain.glb
//! ```
//!
//! `--size 128` (the default) samples the model once, as the package's `generate` does; a
//! smaller size resizes that sample (bilinear, the package's `resize` mode); a larger one is
//! generated seamlessly from overlapping windows ([`aigc_image::world::World`], the package's
//! `tile` mode). The model is fetched with `scripts/fetch-models.sh` on first use.

use std::path::PathBuf;
use std::process::ExitCode;

use aigc_core::models;
use aigc_image::mesh::{MeshOptions, heightmap_mesh, write_mesh};
use aigc_image::terrain::{NATIVE_SIZE, TerrainModel, normal_noise};
use aigc_image::world::World;

const USAGE: &str = "usage: terrain_mesh [--seed S] [--difficulty D] [--size N] [--cell C]
                    [--exaggeration E] [--stride K] [--max-error X] --out FILE.glb|FILE.obj
                    [--model PATH|ID] [--device NAME]

  --seed          the noise seed (default 0)
  --difficulty    1..100 (default 50)
  --size          samples on a side (default 128, the model's window; larger sizes are tiled)
  --cell          horizontal distance between samples, in height units (default 1)
  --exaggeration  vertical scale (default: the highest point at a sixth of the side)
  --stride        keep every K-th row and column (default: 1 up to 256 samples, then enough
                  to keep about 256)
  --max-error     simplify: the fewest right triangles within X (vertical, after the
                  exaggeration) of every sample (default 0: the regular grid)
  --out           the mesh, .glb or .obj by extension
  --device        flex (default), ndarray, wgpu, cuda (as compiled in); or set AIGC_DEVICE";

struct Args {
    seed: u64,
    difficulty: u32,
    size: usize,
    cell: f32,
    exaggeration: Option<f32>,
    stride: Option<usize>,
    max_error: f32,
    out: Option<PathBuf>,
    model: String,
    device: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seed: 0,
        difficulty: 50,
        size: NATIVE_SIZE,
        cell: 1.0,
        exaggeration: None,
        stride: None,
        max_error: 0.0,
        out: None,
        model: "terrain-consistency-unet".into(),
        device: None,
    };
    let mut flags = aigc_core::cli::Flags::from_env();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--seed" => args.seed = flags.parse()?,
            "--difficulty" => args.difficulty = flags.parse()?,
            "--size" => args.size = flags.parse()?,
            "--cell" => args.cell = flags.parse()?,
            "--exaggeration" => args.exaggeration = Some(flags.parse()?),
            "--stride" => args.stride = Some(flags.parse()?),
            "--max-error" => args.max_error = flags.parse()?,
            "--out" => args.out = Some(flags.value()?.into()),
            "--model" => args.model = flags.value()?,
            "--device" => args.device = Some(flags.value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if !(2..=16384).contains(&args.size) {
        return Err("--size must be between 2 and 16384".into());
    }
    if args.out.is_none() {
        return Err("--out FILE.glb|FILE.obj is required".into());
    }
    Ok(args)
}

/// Bilinear resize of a square map with half-pixel centres (the package's `_resize`).
fn resize(h: &[f32], from: usize, to: usize) -> Vec<f32> {
    let coord = |i: usize| {
        let x = ((i as f32 + 0.5) * from as f32 / to as f32 - 0.5).clamp(0.0, (from - 1) as f32);
        let x0 = x.floor() as usize;
        (x0, (x0 + 1).min(from - 1), x - x0 as f32)
    };
    let mut out = Vec::with_capacity(to * to);
    for r in 0..to {
        let (y0, y1, wy) = coord(r);
        for c in 0..to {
            let (x0, x1, wx) = coord(c);
            let top = h[y0 * from + x0] * (1.0 - wx) + h[y0 * from + x1] * wx;
            let bottom = h[y1 * from + x0] * (1.0 - wx) + h[y1 * from + x1] * wx;
            out.push(top * (1.0 - wy) + bottom * wy);
        }
    }
    out
}

fn run(args: Args) -> Result<(), String> {
    let err = |e: aigc_core::Error| e.to_string();
    let device = aigc_core::device::device_from_arg_or_env(args.device.as_deref()).map_err(err)?;
    let model = TerrainModel::open(
        models::resolve_or_fetch(&args.model).map_err(|e| e.to_string())?,
        &device,
    )
    .map_err(err)?;
    let n = args.size;
    let label = if n > NATIVE_SIZE { "denoising windows" } else { "denoising" };
    let bar = aigc_core::cli::Progress::new(label);
    let heights = if n > NATIVE_SIZE {
        let difficulty = args.difficulty;
        let mut world = World::new(model, args.seed, move |_, _| difficulty);
        let field = world.heights(0, 0, n, n, |d, t| bar.update(d, t)).map_err(err)?;
        // The lowest point at 0, as the package's zero floor.
        let lo = field.heights.iter().copied().fold(f32::INFINITY, f32::min);
        field.heights.iter().map(|h| h - lo).collect()
    } else {
        let noise = normal_noise(args.seed, NATIVE_SIZE * NATIVE_SIZE);
        let terrain = model
            .generate(&noise, args.difficulty, 1, args.seed, |d, t| bar.update(d, t))
            .map_err(err)?;
        if n == NATIVE_SIZE {
            terrain.heights
        } else {
            let small = resize(&terrain.heights, NATIVE_SIZE, n);
            let lo = small.iter().copied().fold(f32::INFINITY, f32::min);
            small.iter().map(|h| h - lo).collect()
        }
    };
    bar.finish();
    let generated = bar.elapsed().as_secs_f32();
    let stride = args.stride.unwrap_or(n.div_ceil(256).max(1));
    // By default, relief a sixth of the side: the model's heights (0..22 units on a grid of
    // 128) are flat seen at true scale.
    let top = heights.iter().copied().fold(0f32, f32::max);
    let side = (n - 1) as f32 * args.cell;
    let exaggeration =
        args.exaggeration.unwrap_or(if top > 0.0 { (side / 6.0 / top).max(1.0) } else { 1.0 });
    let options = MeshOptions {
        cell_size: args.cell,
        vertical_scale: exaggeration,
        stride,
        max_error: args.max_error,
    };
    let mesh = heightmap_mesh(&heights, n, n, &options).map_err(err)?;
    let out = args.out.as_ref().ok_or("--out is required")?;
    write_mesh(out, &mesh).map_err(err)?;
    let (lo, hi) = mesh.bounds();
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "{n}x{n} heights, difficulty {}, seed {} ({generated:.1}s); stride {stride}, exaggeration {exaggeration:.2}: {} vertices, \
         {} triangles, bounds [{:.2}, {:.2}, {:.2}]..[{:.2}, {:.2}, {:.2}]; wrote {} ({bytes} bytes)",
        args.difficulty,
        args.seed,
        mesh.positions.len(),
        mesh.triangles(),
        lo[0],
        lo[1],
        lo[2],
        hi[0],
        hi[1],
        hi[2],
        out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
