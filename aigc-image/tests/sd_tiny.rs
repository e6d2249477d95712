//! Stable Diffusion pieces against diffusers on the tiny random-weight pipeline of
//! `tools/sd_tiny_models.py` (`tools/fixtures/image/sd-tiny/`), within 1e-3 max abs.
//!
//! The pipelines take their prompt encoder from aigc-crossmodal (a dev-dependency: aigc-image
//! itself does not depend on it).

use std::path::PathBuf;

use aigc_core::burn::tensor::{Tensor, TensorData};
use aigc_core::npy;
use aigc_crossmodal::clip::ClipTextEncoder;
use aigc_image::pipeline::StableDiffusion;
use aigc_image::vae::AutoencoderKl;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/image/sd-tiny")
}

/// The pipeline directory `dir` with its own `text_encoder/`.
fn open_sd(dir: &std::path::Path, device: &aigc_core::burn::tensor::Device) -> StableDiffusion {
    let encoder = ClipTextEncoder::open(dir.join("text_encoder"), device).unwrap();
    StableDiffusion::open(dir, encoder, device).unwrap()
}

fn load4(name: &str, device: &aigc_core::burn::tensor::Device) -> Tensor<4> {
    let (shape, v) = npy::read_f32(fixtures().join(format!("golden/{name}.npy"))).unwrap();
    let [a, b, c, d] = shape[..] else { panic!("{name}: {shape:?}") };
    Tensor::from_data(TensorData::new(v, [a, b, c, d]), device)
}

fn check(what: &str, got: Tensor<4>, name: &str) {
    let (shape, want) = npy::read_f32(fixtures().join(format!("golden/{name}.npy"))).unwrap();
    assert_eq!(got.dims().to_vec(), shape, "{what}: shape");
    let got = got.into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("{what}: max |diff| {worst:.2e}");
    assert!(worst <= 1e-3, "{what}: max |diff| {worst}");
}

#[test]
fn vae_decode_and_encode_match_diffusers() {
    let device = aigc_core::parse_device("flex").unwrap();
    let vae = AutoencoderKl::open(fixtures().join("vae"), &device).unwrap();
    assert_eq!(vae.config().scaling_factor, 0.18215);
    check("vae decode", vae.decode(load4("vae_decode_latent", &device)).unwrap(), "vae_decode_out");
    let dist = vae.encode(load4("vae_encode_image", &device)).unwrap();
    check("vae encode mean", dist.mean.clone(), "vae_encode_mean");
    check("vae encode logvar", dist.logvar.clone(), "vae_encode_logvar");
    check("vae encode std", dist.std(), "vae_encode_std");
    // Bad shapes are errors.
    assert!(vae.decode(Tensor::zeros([1, 3, 4, 4], &device)).is_err());
    assert!(vae.encode(Tensor::zeros([1, 3, 5, 4], &device)).is_err());
}

#[test]
fn unets_match_diffusers() {
    use aigc_image::unet::UNet2DCondition;
    let device = aigc_core::parse_device("flex").unwrap();
    let sample = load4("unet_sample", &device);
    let (shape, ctx) =
        npy::read_f32(fixtures().join("golden/unet_encoder_hidden_states.npy")).unwrap();
    let ctx = Tensor::<3>::from_data(TensorData::new(ctx, [shape[0], shape[1], shape[2]]), &device);
    for (dir, tag) in [("unet", "v1"), ("unet_v2", "v2")] {
        let unet = UNet2DCondition::open(fixtures().join(dir), &device).unwrap();
        for t in [10f32, 500.0] {
            let out = unet.forward(sample.clone(), &[t, t], &ctx).unwrap();
            check(&format!("unet {tag} t={t}"), out, &format!("unet_{tag}_out_t{t}"));
        }
        assert!(unet.forward(sample.clone(), &[1.0], &ctx).is_err());
    }
}

fn read(name: &str) -> Vec<f32> {
    npy::read_f32(fixtures().join(format!("golden/{name}.npy"))).unwrap().1
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("{what}: max |diff| {worst:.2e}");
    assert!(worst <= 1e-3, "{what}: max |diff| {worst}");
}

#[test]
fn txt2img_matches_diffusers() {
    use aigc_core::schedulers::SeededNoise;
    use aigc_image::pipeline::{Txt2ImgParams, scheduler_from_json};
    let device = aigc_core::parse_device("flex").unwrap();
    let mut sd = open_sd(&fixtures(), &device);
    let ids = npy::read_i64(fixtures().join("golden/txt2img_input_ids.npy")).unwrap().1;
    let negative = sd.tokenize("blurry, low quality").unwrap();
    let prompt = sd.tokenize("a photo of a red fox in the snow, highly detailed").unwrap();
    let want: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
    assert_eq!([negative, prompt].concat(), want, "tokenization");
    let p = Txt2ImgParams {
        prompt: "a photo of a red fox in the snow, highly detailed",
        negative_prompt: "blurry, low quality",
        height: 32,
        width: 24,
        steps: 4,
        guidance_scale: 7.5,
    };
    let out = sd
        .txt2img(&p, Some(read("txt2img_init_latents")), &mut SeededNoise::new(0), |_, _| {})
        .unwrap();
    close("txt2img latents", &out.latents, &read("txt2img_final_latents"));
    close("txt2img image", &out.pixels, &read("txt2img_image"));
    // SD 2.x style: v-prediction with Euler, the other UNet and text encoder (a pipeline
    // directory assembled from the fixtures' v2 components).
    let v2 = std::env::temp_dir().join(format!("aigc-sd-v2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&v2);
    std::fs::create_dir_all(&v2).unwrap();
    for (from, to) in [
        ("tokenizer", "tokenizer"),
        ("text_encoder_v2", "text_encoder"),
        ("unet_v2", "unet"),
        ("vae", "vae"),
        ("scheduler_v2", "scheduler"),
    ] {
        std::os::unix::fs::symlink(fixtures().join(from), v2.join(to)).unwrap();
    }
    let mut sd2 = open_sd(&v2, &device);
    let p2 = Txt2ImgParams {
        prompt: "an oil painting of a small boat on a quiet lake at sunset",
        negative_prompt: "blurry, low quality",
        height: 32,
        width: 24,
        steps: 4,
        guidance_scale: 7.5,
    };
    let init = read("txt2img_v2_init_latents");
    let out = sd2.txt2img(&p2, Some(init), &mut SeededNoise::new(0), |_, _| {}).unwrap();
    std::fs::remove_dir_all(&v2).unwrap();
    close("txt2img v2 latents", &out.latents, &read("txt2img_v2_final_latents"));
    close("txt2img v2 image", &out.pixels, &read("txt2img_v2_image"));
    assert!(scheduler_from_json(r#"{"_class_name": "PNDMScheduler"}"#).is_err());
}

#[test]
fn img2img_matches_diffusers() {
    use aigc_core::schedulers::ReplayNoise;
    let device = aigc_core::parse_device("flex").unwrap();
    let mut sd = open_sd(&fixtures(), &device);
    let (shape, image) = npy::read_f32(fixtures().join("golden/img2img_image_in.npy")).unwrap();
    let (h, w) = (shape[shape.len() - 3], shape[shape.len() - 2]);
    let mut noise = ReplayNoise::new([read("img2img_noise_sample"), read("img2img_noise_add")]);
    let out = sd
        .img2img(
            &image,
            (h, w),
            "a watercolor of a mountain village",
            "blurry, low quality",
            0.5,
            4,
            7.5,
            &mut noise,
            |_, _| {},
        )
        .unwrap();
    close("img2img latents", &out.latents, &read("img2img_final_latents"));
    close("img2img image", &out.pixels, &read("img2img_image"));
    assert!(sd.img2img(&image, (h, w), "x", "", 1.5, 4, 7.5, &mut noise, |_, _| {}).is_err());
}

/// A prompt encoder that hands back diffusers' own `prompt_embeds` for the ids it recorded them
/// for: the pipeline with the text encoder taken out of the comparison.
struct ReplayedEmbeddings {
    ids: Vec<Vec<u32>>,
    embeds: Vec<Tensor<3>>,
    width: usize,
}

impl aigc_image::pipeline::PromptEncoder for ReplayedEmbeddings {
    fn hidden_size(&self) -> usize {
        self.width
    }

    fn max_tokens(&self) -> usize {
        77
    }

    fn encode(&self, ids: &[Vec<u32>]) -> aigc_image::Result<Tensor<3>> {
        let [one] = ids else { panic!("one prompt at a time") };
        let i = self.ids.iter().position(|r| r == one).expect("recorded ids");
        Ok(self.embeds[i].clone())
    }
}

#[test]
fn txt2img_with_replayed_embeddings_matches_diffusers() {
    use aigc_core::schedulers::SeededNoise;
    use aigc_image::pipeline::Txt2ImgParams;
    let device = aigc_core::parse_device("flex").unwrap();
    let ids = npy::read_i64(fixtures().join("golden/txt2img_input_ids.npy")).unwrap().1;
    let ids: Vec<Vec<u32>> =
        ids.chunks(77).map(|r| r.iter().map(|&i| i as u32).collect()).collect();
    let (shape, embeds) =
        npy::read_f32(fixtures().join("golden/txt2img_prompt_embeds.npy")).unwrap();
    assert_eq!(shape, [2, 77, 32]);
    let embeds = embeds
        .chunks(77 * 32)
        .map(|e| Tensor::from_data(TensorData::new(e.to_vec(), [1, 77, 32]), &device))
        .collect();
    let encoder = ReplayedEmbeddings { ids, embeds, width: 32 };
    let mut sd = StableDiffusion::open(fixtures(), encoder, &device).unwrap();
    let p = Txt2ImgParams {
        negative_prompt: "blurry, low quality",
        height: 32,
        width: 24,
        steps: 4,
        ..Txt2ImgParams::new("a photo of a red fox in the snow, highly detailed")
    };
    let out = sd
        .txt2img(&p, Some(read("txt2img_init_latents")), &mut SeededNoise::new(0), |_, _| {})
        .unwrap();
    close("txt2img (replayed embeddings) latents", &out.latents, &read("txt2img_final_latents"));
    close("txt2img (replayed embeddings) image", &out.pixels, &read("txt2img_image"));

    // An encoder of another width than the UNet's cross_attention_dim is refused at load.
    let narrow = ReplayedEmbeddings { ids: vec![], embeds: vec![], width: 16 };
    let err = StableDiffusion::open(fixtures(), narrow, &device).err().expect("width mismatch");
    assert!(err.to_string().contains("cross_attention_dim 32"), "{err}");
}
