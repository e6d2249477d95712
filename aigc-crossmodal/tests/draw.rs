//! Describe and draw on the tiny random-weight fixtures: the pipeline through the crossmodal
//! path (`DescribeAndDraw`, noise replayed) gives exactly what aigc-image's own path gives
//! (`StableDiffusion::txt2img` with the initial latents) and diffusers' latents and image
//! within 1e-3 (`tools/fixtures/image/sd-tiny`); the CLIP similarity of the tiny CLIP model of
//! `tools/fixtures/crossmodal/clip-tiny` matches transformers' within 1e-4
//! (`tools/draw_golden.py`, `tools/fixtures/crossmodal/draw`).

use std::path::{Path, PathBuf};

use aigc_core::npy;
use aigc_core::schedulers::{ReplayNoise, SeededNoise};
use aigc_crossmodal::clip::ClipTextEncoder;
use aigc_crossmodal::draw::{ClipScorer, DescribeAndDraw};
use aigc_image::pipeline::{Image, StableDiffusion, Txt2ImgParams};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures")
}

fn sd_tiny() -> PathBuf {
    fixtures().join("image/sd-tiny")
}

fn read(name: &str) -> Vec<f32> {
    npy::read_f32(sd_tiny().join(format!("golden/{name}.npy"))).unwrap().1
}

fn max_diff(what: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max)
}

fn golden() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("crossmodal/draw/golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A `CLIPModel` directory: the tiny CLIP with the word-level tokenizer of `draw_golden.py`.
struct ScorerDir(PathBuf);

impl ScorerDir {
    /// A directory of its own for each test (`tag`), as tests run in parallel.
    fn new(tag: &str) -> Self {
        let name = format!("aigc-draw-clip-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let clip = fixtures().join("crossmodal/clip-tiny");
        for name in ["config.json", "model.safetensors", "preprocessor_config.json"] {
            std::os::unix::fs::symlink(clip.join(name), dir.join(name)).unwrap();
        }
        let tokenizer = fixtures().join("crossmodal/draw/tokenizer.json");
        std::os::unix::fs::symlink(tokenizer, dir.join("tokenizer.json")).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScorerDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const PROMPT: &str = "a photo of a red fox in the snow, highly detailed";

fn params() -> Txt2ImgParams<'static> {
    Txt2ImgParams {
        negative_prompt: "blurry, low quality",
        height: 32,
        width: 24,
        steps: 4,
        ..Txt2ImgParams::new(PROMPT)
    }
}

#[test]
fn describe_and_draw_matches_the_image_pipeline_and_diffusers() {
    let device = aigc_core::parse_device("flex").unwrap();
    let scorer_dir = ScorerDir::new("draw");
    let scorer = ClipScorer::open(scorer_dir.path(), &device).unwrap();
    let mut pipe = DescribeAndDraw::open(sd_tiny(), &device).unwrap().with_scorer(scorer);
    // DDIM draws nothing but the initial latents, which are diffusers' own.
    let mut noise = ReplayNoise::new([read("txt2img_init_latents")]);
    let mut steps = vec![];
    let drawing =
        pipe.draw(&params(), &mut noise, |done, total| steps.push((done, total))).unwrap();
    assert_eq!(noise.remaining(), 0);
    assert_eq!(steps, [(1, 4), (2, 4), (3, 4), (4, 4)]);

    // aigc-image's own test path: the pipeline opened with the encoder by hand, the initial
    // latents given directly. The same computation, so the same values.
    let encoder = ClipTextEncoder::open(sd_tiny().join("text_encoder"), &device).unwrap();
    let mut sd = StableDiffusion::open(sd_tiny(), encoder, &device).unwrap();
    let init = Some(read("txt2img_init_latents"));
    let direct = sd.txt2img(&params(), init, &mut SeededNoise::new(0), |_, _| {}).unwrap();
    let image = &drawing.image;
    let d = max_diff("latents", &image.latents, &direct.latents);
    eprintln!("draw vs aigc-image txt2img: latents max |diff| {d:.2e}");
    assert_eq!(d, 0.0);
    let d = max_diff("image", &image.pixels, &direct.pixels);
    eprintln!("draw vs aigc-image txt2img: image max |diff| {d:.2e}");
    assert_eq!(d, 0.0);

    // And diffusers.
    for (what, got, name, tol) in [
        ("latents", &image.latents, "txt2img_final_latents", 1e-3),
        ("image", &image.pixels, "txt2img_image", 1e-3),
    ] {
        let d = max_diff(what, got, &read(name));
        eprintln!("draw vs diffusers: {what} max |diff| {d:.2e}");
        assert!(d <= tol, "{what}: {d}");
    }

    // The score: transformers' similarity of diffusers' image and the prompt.
    let want = golden()["similarity"][0][0].as_f64().unwrap() as f32;
    let got = drawing.clip_similarity.expect("a scorer was given");
    eprintln!(
        "draw: CLIP similarity {got:.6}, transformers {want:.6}, |diff| {:.2e}",
        (got - want).abs()
    );
    assert!((got - want).abs() <= 1e-4, "{got} vs {want}");
    let again = pipe.scorer().unwrap().similarity(image, PROMPT).unwrap();
    assert_eq!(again, got);
}

#[test]
fn clip_scorer_matches_transformers() {
    let device = aigc_core::parse_device("flex").unwrap();
    let scorer_dir = ScorerDir::new("scorer");
    let scorer = ClipScorer::open(scorer_dir.path(), &device).unwrap();
    let gold = golden();
    let prompts = gold["prompts"].as_array().unwrap();
    for p in prompts {
        let want: Vec<u32> =
            p["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
        let text = p["text"].as_str().unwrap();
        assert_eq!(scorer.tokenize(text).unwrap(), want, "{text}");
    }
    // The long prompt is cut to the 77 positions, end-of-text kept.
    assert_eq!(scorer.tokenize(prompts[3]["text"].as_str().unwrap()).unwrap().len(), 77);

    let mut worst = 0f32;
    for (row, name) in ["txt2img_image", "txt2img_v2_image"].iter().enumerate() {
        let (shape, pixels) = npy::read_f32(sd_tiny().join(format!("golden/{name}.npy"))).unwrap();
        assert_eq!(shape, [1, 32, 24, 3]);
        let image = Image { pixels, height: 32, width: 24, latents: vec![] };
        let sums = gold["images"][name]["rgb8_channel_sums"].as_array().unwrap();
        let rgb = image.to_rgb8();
        for (c, want) in sums.iter().enumerate() {
            let sum: u64 = rgb.iter().skip(c).step_by(3).map(|&v| v as u64).sum();
            assert_eq!(sum, want.as_u64().unwrap(), "{name}: channel {c} of the 8-bit image");
        }
        for (col, p) in prompts.iter().enumerate() {
            let want = gold["similarity"][row][col].as_f64().unwrap() as f32;
            let got = scorer.similarity(&image, p["text"].as_str().unwrap()).unwrap();
            worst = worst.max((got - want).abs());
        }
    }
    eprintln!("CLIP similarity vs transformers: max |diff| {worst:.2e}");
    assert!(worst <= 1e-4, "{worst}");

    // Token ids outside the tiny vocabulary are an error, not a panic.
    let image = Image { pixels: vec![0.5; 32 * 24 * 3], height: 32, width: 24, latents: vec![] };
    assert!(scorer.similarity_ids(&image, &[98, 500, 99]).is_err());
    // A CLIP directory without a tokenizer says which file is missing.
    let err = ClipScorer::open(fixtures().join("crossmodal/clip-tiny"), &device).err().unwrap();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}
