//! The CLIP vision tower, the two-tower model and the image processor against transformers on
//! the tiny random-weight CLIP of `tools/clip_tiny.py` (`tools/fixtures/crossmodal/clip-tiny/`):
//! Pillow-resized pixels and pixel values bit for bit, vision outputs, embeddings and logits
//! within 1e-4.

use std::path::PathBuf;

use aigc_core::burn::tensor::{Tensor, TensorData};
use aigc_core::npy;
use aigc_core::weights::{SafetensorsFile, TensorInfo, TensorSource, TensorView};
use aigc_crossmodal::clip_image::{ClipImageProcessor, Resample, RgbBytes, resize_rgb8};
use aigc_crossmodal::clip_vision::{ClipConfig, ClipModel, ClipVisionEncoder};
use aigc_crossmodal::{Error, Result};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/crossmodal/clip-tiny")
}

fn golden(name: &str) -> (Vec<usize>, Vec<f32>) {
    npy::read_f32(fixtures().join(format!("golden/{name}.npy"))).unwrap()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

fn images() -> Vec<image::RgbImage> {
    ["image_a.png", "image_b.png"]
        .iter()
        .map(|n| image::open(fixtures().join(n)).unwrap().to_rgb8())
        .collect()
}

/// Max |got - want|, after checking the lengths.
fn max_diff(what: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max)
}

fn check(what: &str, got: Vec<f32>, name: &str, tol: f32) {
    let (_, want) = golden(name);
    let worst = max_diff(what, &got, &want);
    eprintln!("{what}: max |diff| {worst:.2e}");
    assert!(worst <= tol, "{what}: {worst} > {tol}");
}

fn pixel_values() -> Tensor<4> {
    let device = aigc_core::parse_device("flex").unwrap();
    let (shape, v) = golden("pixel_values");
    Tensor::from_data(TensorData::new(v, [shape[0], shape[1], shape[2], shape[3]]), &device)
}

/// A uint8 `.npy` file (Pillow's resized images): shape and values.
fn golden_u8(name: &str) -> (Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(fixtures().join(format!("golden/{name}.npy"))).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "{name}");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '|u1'") && header.contains("'fortran_order': False"));
    let dims = &header[header.find("'shape': (").unwrap() + 10..];
    let shape = dims[..dims.find(')').unwrap()]
        .split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| d.trim().parse().unwrap())
        .collect();
    (shape, bytes[10 + len..].to_vec())
}

#[test]
fn pillow_resize_matches() {
    let imgs = images();
    // Bicubic as the processor uses it: image_a 100 x 70 down to 45 x 32, image_b 24 x 45 up
    // to 32 x 60; the other filters down to 37 x 23 and up to 30 x 50.
    let mut cases = vec![
        ("resized_a".to_string(), 0, Resample::Bicubic),
        ("resized_b".to_string(), 1, Resample::Bicubic),
    ];
    for (filter, id) in [
        (Resample::Lanczos, "lanczos"),
        (Resample::Bilinear, "bilinear"),
        (Resample::Box, "box"),
        (Resample::Hamming, "hamming"),
    ] {
        cases.push((format!("resize_{id}_a"), 0, filter));
        cases.push((format!("resize_{id}_b"), 1, filter));
    }
    for (name, i, filter) in cases {
        let (shape, want) = golden_u8(&name);
        let img = &imgs[i];
        let (w, h) = img.dimensions();
        let got = resize_rgb8(img.as_raw(), [w as usize, h as usize], [shape[1], shape[0]], filter)
            .unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        let worst = got.iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
        let differing = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        eprintln!("{name}: max |diff| {worst} (8-bit steps), {differing} of {} differ", got.len());
        assert_eq!(worst, 0, "{name}");
    }
}

#[test]
fn processor_matches_transformers() {
    let device = aigc_core::parse_device("flex").unwrap();
    let processor = ClipImageProcessor::open(fixtures()).unwrap();
    assert_eq!(processor.output_size(100, 70), [32, 32]);
    assert_eq!(processor.resized_size(100, 70), [32, 45]);
    assert_eq!(processor.resized_size(24, 45), [60, 32]);
    let got = values(processor.preprocess(&images(), &device).unwrap());
    check("pixel_values (shortest edge 32)", got, "pixel_values", 0.0);

    // The defaults (224) on the same images, compared every 7th row and column.
    let default = ClipImageProcessor::default();
    let got = values(default.preprocess(&images(), &device).unwrap());
    let sub: Vec<f32> = got
        .chunks_exact(224 * 224)
        .flat_map(|plane| {
            plane.chunks_exact(224).step_by(7).flat_map(|row| row.iter().step_by(7).copied())
        })
        .collect();
    check("pixel_values (default 224, every 7th)", sub, "pixel_values_224_every7", 0.0);
    // And all of it through per-channel sums (one 8-bit step moves a sum by about 0.015).
    let sums: Vec<f32> = got
        .chunks_exact(224 * 224)
        .map(|plane| plane.iter().map(|&v| v as f64).sum::<f64>() as f32)
        .collect();
    check("pixel_values (default 224) channel sums", sums, "pixel_values_224_sums", 5e-3);

    // Raw bytes give the same as RgbImage.
    let imgs = images();
    let raw: Vec<RgbBytes<'_>> = imgs
        .iter()
        .map(|i| RgbBytes {
            data: i.as_raw(),
            width: i.width() as usize,
            height: i.height() as usize,
        })
        .collect();
    let a = values(processor.preprocess_rgb8(&raw, &device).unwrap());
    let b = values(processor.preprocess(&imgs, &device).unwrap());
    assert_eq!(a, b);
}

#[test]
fn vision_tower_and_clip_model_match_transformers() {
    let device = aigc_core::parse_device("flex").unwrap();
    let model = ClipModel::open(fixtures(), &device).unwrap();
    assert_eq!(model.config().projection_dim, 16);

    let vision = model.vision_encoder().forward(pixel_values()).unwrap();
    check(
        "vision last_hidden_state",
        values(vision.last_hidden_state),
        "vision_last_hidden_state",
        1e-4,
    );
    check("vision pooled", values(vision.pooled), "vision_pooled", 1e-4);

    let (_, ids) = npy::read_i64(fixtures().join("golden/input_ids.npy")).unwrap();
    let (_, mask) = npy::read_i64(fixtures().join("golden/attention_mask.npy")).unwrap();
    let t = ids.len() / 3;
    // The unpadded sequences: text_embeds pads them itself.
    let seqs: Vec<Vec<u32>> = ids
        .chunks(t)
        .zip(mask.chunks(t))
        .map(|(r, m)| r.iter().zip(m).filter(|(_, m)| **m == 1).map(|(&i, _)| i as u32).collect())
        .collect();
    assert_eq!(seqs.iter().map(Vec::len).collect::<Vec<_>>(), [5, 9, 3]);
    let padded: Vec<Vec<u32>> =
        ids.chunks(t).map(|r| r.iter().map(|&i| i as u32).collect()).collect();
    let text = model.text_encoder().forward(&padded).unwrap();
    check("text pooled", values(text.pooled), "text_pooled", 1e-4);

    let out = model.forward(&seqs, pixel_values()).unwrap();
    check("image_embeds", values(out.image_embeds), "image_embeds", 1e-4);
    check("text_embeds", values(out.text_embeds), "text_embeds", 1e-4);
    check("logits_per_image", values(out.logits_per_image), "logits_per_image", 1e-4);
    check("logits_per_text", values(out.logits_per_text), "logits_per_text", 1e-4);

    // From the images themselves, through the processor.
    let processor = ClipImageProcessor::open(fixtures()).unwrap();
    let pixels = processor.preprocess(&images(), &device).unwrap();
    check(
        "image_embeds (from the PNGs)",
        values(model.image_embeds(pixels).unwrap()),
        "image_embeds",
        1e-4,
    );
}

#[test]
fn standalone_gelu_vision_model_matches_transformers() {
    let device = aigc_core::parse_device("flex").unwrap();
    let enc = ClipVisionEncoder::open(fixtures().join("vision_gelu"), &device).unwrap();
    let out = enc.forward(pixel_values()).unwrap();
    check(
        "gelu vision last_hidden_state",
        values(out.last_hidden_state),
        "vision_gelu_last_hidden_state",
        1e-4,
    );
    check("gelu vision pooled", values(out.pooled), "vision_gelu_pooled", 1e-4);
    // The vision tower of the whole CLIPModel file loads on its own too.
    let tower = ClipVisionEncoder::open(fixtures(), &device).unwrap();
    check(
        "CLIPModel's vision tower alone",
        values(tower.forward(pixel_values()).unwrap().pooled),
        "vision_pooled",
        1e-4,
    );
}

/// A safetensors file with one tensor hidden.
struct Without {
    file: SafetensorsFile,
    hidden: &'static str,
}

impl TensorSource for Without {
    fn source_name(&self) -> String {
        self.file.source_name()
    }
    fn tensor_names(&self) -> Vec<String> {
        self.file.tensor_names().into_iter().filter(|n| n != self.hidden).collect()
    }
    fn tensor_info(&self, name: &str) -> Option<TensorInfo> {
        (name != self.hidden).then(|| self.file.tensor_info(name)).flatten()
    }
    fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        if name == self.hidden {
            return Err(Error::tensor(name, "hidden"));
        }
        self.file.tensor(name)
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let device = aigc_core::parse_device("flex").unwrap();
    let model = ClipModel::open(fixtures(), &device).unwrap();
    // A 224 x 224 image for a 32 x 32 model, and a 4-channel input.
    let big = ClipImageProcessor::default().preprocess(&images(), &device).unwrap();
    let err = model.image_embeds(big).unwrap_err();
    assert!(matches!(&err, Error::Shape { found, .. } if found == &[2, 3, 224, 224]), "{err}");
    let four = Tensor::<4>::zeros([1, 4, 32, 32], &device);
    assert!(matches!(model.vision_encoder().forward(four), Err(Error::Shape { .. })));
    // Text: no sequences, an empty one, an id outside the vocabulary.
    assert!(matches!(model.text_embeds(&[]), Err(Error::InvalidArgument { .. })));
    assert!(matches!(
        model.text_embeds(&[vec![98, 99], vec![]]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(model.text_embeds(&[vec![98, 500, 99]]), Err(Error::InvalidArgument { .. })));

    // Missing tensors, each reported by name.
    let cfg =
        ClipConfig::from_json(&std::fs::read_to_string(fixtures().join("config.json")).unwrap())
            .unwrap();
    for hidden in [
        "vision_model.embeddings.class_embedding",
        "vision_model.encoder.layers.1.mlp.fc2.weight",
        "visual_projection.weight",
        "text_model.final_layer_norm.bias",
        "logit_scale",
    ] {
        let file = SafetensorsFile::open(fixtures().join("model.safetensors")).unwrap();
        let src = Without { file, hidden };
        match ClipModel::load(&src, cfg.clone(), &device) {
            Err(Error::Load(report)) => {
                assert_eq!(report.missing, [hidden.to_string()], "{hidden}");
            }
            other => panic!("{hidden}: {:?}", other.err()),
        }
    }
    // A configuration that does not fit the file: every misshaped tensor is listed.
    let mut wrong = cfg.clone();
    wrong.vision.patch_size = 16;
    let file = SafetensorsFile::open(fixtures().join("model.safetensors")).unwrap();
    match ClipModel::load(&file, wrong, &device) {
        Err(Error::Load(report)) => assert!(report.misshaped.len() >= 2, "{report}"),
        other => panic!("{:?}", other.err()),
    }
    // A text-only directory is not a CLIP model; the vision tower is not in it either.
    let sd = fixtures().join("../../image/sd-tiny/text_encoder");
    assert!(matches!(ClipModel::open(&sd, &device), Err(Error::InvalidArgument { .. })));
    assert!(ClipVisionEncoder::open(&sd, &device).is_err());

    // Processor: wrong byte counts, empty images, an unsupported filter, a bad config.
    let p = ClipImageProcessor::default();
    assert!(matches!(p.pixel_values_rgb8(&[0; 11], 2, 2), Err(Error::InvalidArgument { .. })));
    assert!(matches!(p.pixel_values_rgb8(&[], 0, 0), Err(Error::InvalidArgument { .. })));
    assert!(matches!(p.preprocess_rgb8(&[], &device), Err(Error::InvalidArgument { .. })));
    assert!(matches!(
        ClipImageProcessor::from_json(r#"{"resample": 0}"#),
        Err(Error::Unsupported { .. })
    ));
    assert!(ClipImageProcessor::from_json(r#"{"image_std": [0, 1, 1]}"#).is_err());
    assert!(ClipImageProcessor::from_json(r#"{"size": {"shortest_edge": 0}}"#).is_err());
    // Without a crop, images of different shapes do not batch.
    let no_crop = ClipImageProcessor { crop: None, ..ClipImageProcessor::default() };
    assert!(matches!(no_crop.preprocess(&images(), &device), Err(Error::InvalidArgument { .. })));
}

#[test]
fn processor_config_forms() {
    // Older files: plain integers for size and crop_size.
    let p =
        ClipImageProcessor::from_json(r#"{"size": 224, "crop_size": 224, "resample": 3}"#).unwrap();
    assert_eq!(p, ClipImageProcessor::default());
    // A crop larger than the resized image pads with zeros (black), as transformers does.
    let p = ClipImageProcessor::from_json(
        r#"{"size": {"height": 2, "width": 2}, "crop_size": {"height": 4, "width": 3}, "do_normalize": false}"#,
    )
    .unwrap();
    let v = p.pixel_values_rgb8(&[255; 12], 2, 2).unwrap();
    // Rows 1-2 and columns 1-2 hold the image (top and left offsets ceil(2 / 2) = ceil(1 / 2) = 1).
    let plane: Vec<f32> = v[..12].to_vec();
    let ones = plane.iter().filter(|&&x| x == 1.0).count();
    assert_eq!(ones, 4, "{plane:?}");
    assert_eq!(plane[0], 0.0);
}
