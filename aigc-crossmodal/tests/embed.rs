//! Sentence embeddings of the real all-MiniLM-L6-v2 against sentence-transformers
//! (`tools/embed_golden.py`, `tools/fixtures/crossmodal/minilm.json`): the same token ids
//! (truncation to 256 tokens included), every vector within cosine 0.9999 of the reference,
//! and the same vectors batched (padded) and one by one.

use std::path::{Path, PathBuf};

use aigc_crossmodal::embed::{BertConfig, Pooling, SentenceEmbedder, cosine_similarity};

struct Fixture {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
    max_seq_length: usize,
}

fn fixture() -> Fixture {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/crossmodal/minilm.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let sentences = v["sentences"].as_array().unwrap();
    let nums = |x: &serde_json::Value| -> Vec<f64> {
        x.as_array().unwrap().iter().map(|n| n.as_f64().unwrap()).collect()
    };
    Fixture {
        texts: sentences.iter().map(|s| s["text"].as_str().unwrap().to_string()).collect(),
        ids: sentences
            .iter()
            .map(|s| nums(&s["ids"]).iter().map(|&i| i as u32).collect())
            .collect(),
        embeddings: sentences
            .iter()
            .map(|s| nums(&s["embedding"]).iter().map(|&x| x as f32).collect())
            .collect(),
        max_seq_length: v["max_seq_length"].as_u64().unwrap() as usize,
    }
}

fn open() -> Option<SentenceEmbedder> {
    let path = aigc_core::models::installed_or_skip("all-minilm-l6-v2")?;
    let device = aigc_core::parse_device("flex").unwrap();
    Some(SentenceEmbedder::open(&path, &device).unwrap())
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(embedder) = open() else { return };
    let fx = fixture();
    assert_eq!(embedder.dim(), 384);
    assert_eq!(embedder.max_seq_length(), fx.max_seq_length);
    assert_eq!(embedder.pooling(), Pooling::Mean);
    assert!(embedder.normalizes());
    for (text, want) in fx.texts.iter().zip(&fx.ids) {
        assert_eq!(&embedder.tokenize(text).unwrap(), want, "token ids of {text:?}");
    }
    assert_eq!(fx.ids.last().unwrap().len(), 256, "the long sentence is truncated");
    let texts: Vec<&str> = fx.texts.iter().map(String::as_str).collect();
    let got = embedder.embed(&texts).unwrap();
    assert_eq!(got.len(), texts.len());
    let (mut worst_cos, mut worst_diff) = (1f32, 0f32);
    for ((text, g), w) in texts.iter().zip(&got).zip(&fx.embeddings) {
        assert_eq!(g.len(), 384);
        let (cos, diff) = (cosine_similarity(g, w), max_abs_diff(g, w));
        let norm = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{text:?}: norm {norm}");
        assert!(cos >= 0.9999, "{text:?}: cosine {cos}, max |diff| {diff:.2e}");
        worst_cos = worst_cos.min(cos);
        worst_diff = worst_diff.max(diff);
    }
    eprintln!(
        "worst cosine {worst_cos:.9} (1 - cos {:.1e}), max |diff| {worst_diff:.2e}",
        1.0 - worst_cos
    );
}

#[test]
fn batched_and_one_by_one_agree() {
    let Some(embedder) = open() else { return };
    let fx = fixture();
    let texts: Vec<&str> = fx.texts.iter().map(String::as_str).collect();
    let batched = embedder.embed(&texts).unwrap();
    let mut worst = 0f32;
    for (text, b) in texts.iter().zip(&batched) {
        let single = embedder.embed(&[text]).unwrap().remove(0);
        worst = worst.max(max_abs_diff(&single, b));
    }
    eprintln!("batched vs one by one: max |diff| {worst:.2e}");
    assert!(worst < 1e-5, "{worst}");
    // embed_ids with explicit, unsorted padding gives the same as well.
    let padded = embedder.embed_ids(&fx.ids[..4]).unwrap();
    for (p, b) in padded.iter().zip(&batched) {
        assert!(max_abs_diff(p, b) < 1e-5);
    }
}

#[test]
fn similar_sentences_are_closer() {
    let Some(embedder) = open() else { return };
    let v = embedder
        .embed(&["A man is eating food.", "A man is eating a piece of bread.", "The sky is blue."])
        .unwrap();
    assert!(cosine_similarity(&v[0], &v[1]) > cosine_similarity(&v[0], &v[2]) + 0.3);
}

#[test]
fn bad_inputs_are_errors() {
    let device = aigc_core::parse_device("flex").unwrap();
    // A directory without model files.
    let empty = std::env::temp_dir().join(format!("aigc-embed-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    assert!(SentenceEmbedder::open(&empty, &device).is_err());
    std::fs::remove_dir_all(&empty).unwrap();
    assert!(SentenceEmbedder::open(Path::new("/nonexistent/minilm"), &device).is_err());
    // Configurations.
    assert!(BertConfig::from_json("not json").is_err());
    assert!(BertConfig::from_json(r#"{"hidden_size": 384}"#).is_err());
    let good = serde_json::json!({"vocab_size": 100, "hidden_size": 8, "intermediate_size": 16,
        "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 16});
    assert!(BertConfig::from_json(&good.to_string()).is_ok());
    for (key, value) in [
        ("num_attention_heads", serde_json::json!(3)),
        ("hidden_act", serde_json::json!("relu")),
        ("model_type", serde_json::json!("roberta")),
        ("position_embedding_type", serde_json::json!("relative_key")),
        ("vocab_size", serde_json::json!(-1)),
        ("pad_token_id", serde_json::json!(100)),
    ] {
        let mut bad = good.clone();
        bad[key] = value;
        assert!(BertConfig::from_json(&bad.to_string()).is_err(), "{bad}");
    }
    assert!(Pooling::from_json(r#"{"pooling_mode_mean_tokens": true}"#).is_ok());
    assert!(Pooling::from_json(r#"{"pooling_mode_weightedmean_tokens": true}"#).is_err());
    assert!(Pooling::from_json(r#"{"pooling_mode_mean_tokens": false}"#).is_err());
    // Empty input, and ids the encoder cannot take.
    let Some(embedder) = open() else { return };
    assert!(embedder.embed(&[]).is_err());
    assert!(embedder.embed_ids(&[]).is_err());
    assert!(embedder.embed_ids(&[vec![]]).is_err());
    assert!(embedder.embed_ids(&[vec![101; 513]]).is_err());
    assert!(embedder.embed_ids(&[vec![101, 40_000, 102]]).is_err());
    // An empty string is still a sentence: [CLS] [SEP].
    assert_eq!(embedder.embed(&[""]).unwrap()[0].len(), 384);
}
