//! A game world from the terrain consistency model: `WxH` tiles fetched from a world seed,
//! blended seamlessly across tiles (overlapping windows as the package's tiled sampler
//! blends them), difficulty per tile, rendered as one shaded PNG.
//!
//! ```text
//! cargo run --release -p aigc-image --example game_world -- --seed 7 --tiles 4x4 --out world.png
//! ```
//!
//! Prints the seam figure: the mean absolute height step between neighbouring samples across
//! tile edges and inside tiles. The model is fetched with `scripts/fetch-models.sh` on first
//! use.

use std::path::PathBuf;
use std::process::ExitCode;

use aigc_core::models;
use aigc_image::terrain::NATIVE_SIZE;
use aigc_image::terrain::{TerrainModel, render_heights_rgb};
use aigc_image::world::{DEFAULT_OVERLAP, World, seam_stats};
use aigc_image::{npy, png};

const USAGE: &str = "usage: game_world [--seed S] [--tiles WxH] [--at X,Y] [--difficulty D|A-B]
                  [--overlap N] [--tile N] [--scale K] [--out FILE.png] [--out-npy FILE.npy]
                  [--model PATH|ID] [--device NAME]

  --seed        the world seed (default 0)
  --tiles       how many tiles across and down (default 4x4)
  --at          the first tile (default 0,0; negative tiles exist too)
  --difficulty  1..100 on every tile, or A-B rising from the west edge to the east
                (default 20-80)
  --overlap     samples shared by neighbouring model windows, 0..127 (default 64; the
                package's tiled sampler uses 32)
  --tile        tile side, a multiple of 128 - overlap (default 128, or 128 - overlap when
                that does not divide 128)
  --scale       the PNG's pixels per sample (default 2)
  --out         shaded colour rendering (default world.png)
  --out-npy     the heights, float32 .npy [rows, columns]
  --device      flex (default), ndarray, wgpu, cuda (as compiled in); or set AIGC_DEVICE";

struct Args {
    seed: u64,
    tiles: (usize, usize),
    at: (i32, i32),
    difficulty: (u32, u32),
    overlap: usize,
    tile: Option<usize>,
    scale: usize,
    out: PathBuf,
    out_npy: Option<PathBuf>,
    model: String,
    device: Option<String>,
}

fn pair<T: std::str::FromStr>(name: &str, v: &str, sep: char) -> Result<(T, T), String> {
    let bad = || format!("{name}: `{v}` is not two numbers separated by `{sep}`");
    let (a, b) = v.split_once(sep).ok_or_else(bad)?;
    Ok((a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seed: 0,
        tiles: (4, 4),
        at: (0, 0),
        difficulty: (20, 80),
        overlap: DEFAULT_OVERLAP,
        tile: None,
        scale: 2,
        out: PathBuf::from("world.png"),
        out_npy: None,
        model: "terrain-consistency-unet".into(),
        device: None,
    };
    let mut flags = aigc_core::cli::Flags::from_env();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--seed" => args.seed = flags.parse()?,
            "--tiles" => args.tiles = pair("--tiles", &flags.value()?.to_lowercase(), 'x')?,
            "--at" => args.at = pair("--at", &flags.value()?, ',')?,
            "--difficulty" => {
                let v = flags.value()?;
                args.difficulty = match v.contains('-') {
                    true => pair("--difficulty", &v, '-')?,
                    false => {
                        let d =
                            v.parse().map_err(|_| format!("--difficulty: `{v}` is not valid"))?;
                        (d, d)
                    }
                };
            }
            "--overlap" => args.overlap = flags.parse()?,
            "--tile" => args.tile = Some(flags.parse()?),
            "--scale" => args.scale = flags.parse()?,
            "--out" => args.out = flags.value()?.into(),
            "--out-npy" => args.out_npy = Some(flags.value()?.into()),
            "--model" => args.model = flags.value()?,
            "--device" => args.device = Some(flags.value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let (a, b) = args.difficulty;
    if !(1..=100).contains(&a) || !(1..=100).contains(&b) {
        return Err("--difficulty must be between 1 and 100".into());
    }
    if args.tiles.0 == 0 || args.tiles.1 == 0 || args.scale == 0 {
        return Err("--tiles and --scale must be at least 1".into());
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
    let ((w, h), (x0, y0), (d0, d1)) = (args.tiles, args.at, args.difficulty);
    // Difficulty rises from the west edge of the requested tiles to the east edge.
    let difficulty = move |x: i32, _y: i32| {
        let t = if w > 1 { (x - x0).clamp(0, w as i32 - 1) as f32 / (w - 1) as f32 } else { 0.0 };
        (d0 as f32 + (d1 as f32 - d0 as f32) * t).round() as u32
    };
    let stride = NATIVE_SIZE.saturating_sub(args.overlap).max(1);
    let tile =
        args.tile.unwrap_or(if NATIVE_SIZE.is_multiple_of(stride) { NATIVE_SIZE } else { stride });
    let mut world =
        World::new(model, args.seed, difficulty).with_layout(args.overlap, tile).map_err(err)?;
    let bar = aigc_core::cli::Progress::new("denoising windows");
    let field = world.region(x0, y0, w, h, |d, t| bar.update(d, t)).map_err(err)?;
    bar.finish();
    let seconds = bar.elapsed().as_secs_f32();
    let rgb =
        render_heights_rgb(&field.heights, field.width, field.height, args.scale).map_err(err)?;
    png::write_rgb8(&args.out, field.width * args.scale, field.height * args.scale, &rgb)
        .map_err(err)?;
    if let Some(path) = &args.out_npy {
        npy::write_f32(path, &[field.height, field.width], &field.heights).map_err(err)?;
    }
    let tile = world.tile_size();
    let seams = seam_stats(&field, tile).map_err(err)?;
    let (lo, hi) =
        field.heights.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    println!(
        "{w}x{h} tiles of {tile} ({}x{} samples), seed {}, difficulty {d0}..{d1}: {seconds:.1}s; \
         heights {lo:.3}..{hi:.3}",
        field.width, field.height, args.seed
    );
    println!(
        "mean |step| between neighbours: across tile edges {:.5} ({} pairs), inside tiles {:.5} \
         ({} pairs), ratio {:.3}",
        seams.boundary,
        seams.boundary_pairs,
        seams.inside,
        seams.inside_pairs,
        seams.boundary / seams.inside
    );
    // Whether the window lattice shows: steps by position between window starts (horizontal
    // and vertical pairs together). A cross-fade that ramps between windows that disagree
    // raises the steps at some offsets; a flat profile means the lattice does not show.
    let stride = world.stride();
    let mut by_offset = vec![(0f64, 0usize); stride];
    let at = |r: usize, c: usize| field.heights[r * field.width + c];
    for r in 0..field.height {
        for c in 0..field.width {
            if c + 1 < field.width {
                let e = &mut by_offset[c % stride];
                *e = (e.0 + (at(r, c + 1) - at(r, c)).abs() as f64, e.1 + 1);
            }
            if r + 1 < field.height {
                let e = &mut by_offset[r % stride];
                *e = (e.0 + (at(r + 1, c) - at(r, c)).abs() as f64, e.1 + 1);
            }
        }
    }
    let mean: Vec<f64> = by_offset.iter().map(|(s, n)| s / (*n).max(1) as f64).collect();
    let (lo, hi) = mean.iter().fold((f64::MAX, 0f64), |(a, b), &m| (a.min(m), b.max(m)));
    let peak = (0..stride).max_by(|&a, &b| mean[a].total_cmp(&mean[b])).unwrap_or(0);
    println!(
        "steps by offset from the window lattice (stride {stride}): {lo:.5}..{hi:.5}, \
         largest at offset {peak} ({:.2}x the mean step)",
        hi / ((seams.boundary * seams.boundary_pairs as f64
            + seams.inside * seams.inside_pairs as f64)
            / (seams.boundary_pairs + seams.inside_pairs).max(1) as f64)
    );
    println!("wrote {}", args.out.display());
    Ok(())
}

fn main() -> ExitCode {
    aigc_core::cli::main(parse_args, run, USAGE)
}
