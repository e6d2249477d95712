//! The CLIP text encoder against transformers on the tiny random-weight Stable Diffusion
//! encoders of `tools/sd_tiny_models.py` (quick_gelu and gelu variants): last hidden state and
//! pooled output within 1e-4.

use std::path::PathBuf;

use aigc_core::npy;
use aigc_crossmodal::clip::ClipTextEncoder;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/image/sd-tiny")
}

fn values<const D: usize>(t: aigc_core::burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

#[test]
fn tiny_clip_text_encoders_match_transformers() {
    let device = aigc_core::parse_device("flex").unwrap();
    for (dir, golden) in [("text_encoder", "clip"), ("text_encoder_v2", "clip_v2")] {
        let enc = ClipTextEncoder::open(fixtures().join(dir), &device).unwrap();
        let (shape, ids) =
            npy::read_i64(fixtures().join(format!("golden/{golden}_input_ids.npy"))).unwrap();
        let ids: Vec<Vec<u32>> =
            ids.chunks(shape[1]).map(|r| r.iter().map(|&i| i as u32).collect()).collect();
        let out = enc.forward(&ids).unwrap();
        for (name, got) in [
            ("last_hidden_state", values(out.last_hidden_state)),
            ("pooler_output", values(out.pooled)),
        ] {
            let (_, want) =
                npy::read_f32(fixtures().join(format!("golden/{golden}_{name}.npy"))).unwrap();
            assert_eq!(got.len(), want.len(), "{dir} {name}");
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            eprintln!("{dir} {name}: max |diff| {worst:.2e}");
            assert!(worst < 1e-4, "{dir} {name}: {worst}");
        }
    }
}

#[test]
fn bad_ids_are_errors() {
    let device = aigc_core::parse_device("flex").unwrap();
    let enc = ClipTextEncoder::open(fixtures().join("text_encoder"), &device).unwrap();
    assert!(enc.forward(&[]).is_err());
    assert!(enc.forward(&[vec![1; 78]]).is_err());
    assert!(enc.forward(&[vec![1, 2], vec![3]]).is_err());
    assert!(enc.forward(&[vec![5000]]).is_err());
    assert!(ClipTextEncoder::open(fixtures().join("vae"), &device).is_err());
}
