//! Bad GGUF metadata gives typed errors that name the key, never a panic.

use aigc_core::weights::GgufFile;
use aigc_text::{ModelConfig, Tokenizer};

enum V {
    Str(&'static str),
    U32(u32),
    F32(f32),
    Strs(Vec<String>),
    I32s(Vec<i32>),
}

/// A GGUF v3 file with metadata only (no tensors).
fn gguf(kvs: &[(&str, V)]) -> GgufFile {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    let s = |b: &mut Vec<u8>, x: &str| {
        b.extend_from_slice(&(x.len() as u64).to_le_bytes());
        b.extend_from_slice(x.as_bytes());
    };
    for (k, v) in kvs {
        s(&mut b, k);
        match v {
            V::Str(x) => {
                b.extend_from_slice(&8u32.to_le_bytes());
                s(&mut b, x);
            }
            V::U32(x) => {
                b.extend_from_slice(&4u32.to_le_bytes());
                b.extend_from_slice(&x.to_le_bytes());
            }
            V::F32(x) => {
                b.extend_from_slice(&6u32.to_le_bytes());
                b.extend_from_slice(&x.to_le_bytes());
            }
            V::Strs(xs) => {
                b.extend_from_slice(&9u32.to_le_bytes());
                b.extend_from_slice(&8u32.to_le_bytes());
                b.extend_from_slice(&(xs.len() as u64).to_le_bytes());
                for x in xs {
                    s(&mut b, x);
                }
            }
            V::I32s(xs) => {
                b.extend_from_slice(&9u32.to_le_bytes());
                b.extend_from_slice(&5u32.to_le_bytes());
                b.extend_from_slice(&(xs.len() as u64).to_le_bytes());
                for x in xs {
                    b.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
    // The (empty) data section starts at the next 32-byte boundary.
    b.resize(b.len().div_ceil(32) * 32, 0);
    GgufFile::from_bytes("test.gguf", b).unwrap()
}

fn llama(overrides: Vec<(&'static str, Option<V>)>) -> GgufFile {
    let mut kvs: Vec<(&str, V)> = vec![
        ("general.architecture", V::Str("llama")),
        ("llama.embedding_length", V::U32(64)),
        ("llama.block_count", V::U32(2)),
        ("llama.feed_forward_length", V::U32(128)),
        ("llama.attention.head_count", V::U32(4)),
        ("llama.attention.head_count_kv", V::U32(2)),
        ("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
        ("llama.context_length", V::U32(256)),
        ("llama.vocab_size", V::U32(300)),
    ];
    for (key, value) in overrides {
        kvs.retain(|(k, _)| *k != key);
        if let Some(v) = value {
            kvs.push((key, v));
        }
    }
    gguf(&kvs)
}

fn config_err(g: &GgufFile) -> String {
    ModelConfig::from_gguf(g).unwrap_err().to_string()
}

#[test]
fn a_valid_header_reads() {
    let cfg = ModelConfig::from_gguf(&llama(vec![])).unwrap();
    assert_eq!((cfg.hidden_size, cfg.num_layers, cfg.head_dim, cfg.vocab_size), (64, 2, 16, 300));
    assert_eq!(cfg.rope_mode, aigc_core::layers::RopeMode::Interleaved);
}

#[test]
fn config_errors_name_the_problem() {
    let e = config_err(&llama(vec![("general.architecture", Some(V::Str("mamba")))]));
    assert!(e.contains("mamba"), "{e}");
    let e = config_err(&llama(vec![("llama.embedding_length", None)]));
    assert!(e.contains("llama.embedding_length") && e.contains("missing"), "{e}");
    let e = config_err(&llama(vec![("llama.attention.head_count", Some(V::Str("four")))]));
    assert!(e.contains("llama.attention.head_count"), "{e}");
    let e = config_err(&llama(vec![("llama.attention.head_count", Some(V::U32(0)))]));
    assert!(e.contains("head"), "{e}");
    let e = config_err(&llama(vec![("llama.attention.head_count_kv", Some(V::U32(3)))]));
    assert!(e.contains("multiple"), "{e}");
    let e = config_err(&llama(vec![("llama.vocab_size", Some(V::U32(u32::MAX)))]));
    assert!(e.contains("vocab_size"), "{e}");
    let e = config_err(&llama(vec![("llama.block_count", Some(V::U32(1 << 30)))]));
    assert!(e.contains("num_layers"), "{e}");
    let e = config_err(&llama(vec![("llama.rope.scaling.type", Some(V::Str("yarn")))]));
    assert!(e.contains("yarn"), "{e}");
}

fn with_tokenizer(model: &'static str, pre: Option<&'static str>) -> GgufFile {
    let tokens: Vec<String> =
        ["<s>", "</s>", "a", "b", "ab"].iter().map(|s| s.to_string()).collect();
    let mut kvs = vec![
        ("general.architecture", V::Str("llama")),
        ("tokenizer.ggml.model", V::Str(model)),
        ("tokenizer.ggml.tokens", V::Strs(tokens)),
        ("tokenizer.ggml.token_type", V::I32s(vec![3, 3, 1, 1, 1])),
        ("tokenizer.ggml.merges", V::Strs(vec!["a b".into()])),
        ("tokenizer.ggml.bos_token_id", V::U32(0)),
    ];
    if let Some(p) = pre {
        kvs.push(("tokenizer.ggml.pre", V::Str(p)));
    }
    gguf(&kvs)
}

#[test]
fn tokenizer_errors_name_the_problem() {
    let tok = Tokenizer::from_gguf(&with_tokenizer("gpt2", Some("default"))).unwrap();
    assert_eq!(tok.encode("ab", false).unwrap(), vec![4]);
    assert_eq!(tok.encode("<s>ab", false).unwrap(), vec![0, 4], "control tokens are matched whole");

    let e = Tokenizer::from_gguf(&with_tokenizer("bert", None)).unwrap_err().to_string();
    assert!(e.contains("bert"), "{e}");
    let e =
        Tokenizer::from_gguf(&with_tokenizer("gpt2", Some("mystery-pre"))).unwrap_err().to_string();
    assert!(e.contains("mystery-pre"), "{e}");
    // A SentencePiece vocabulary without scores.
    let e = Tokenizer::from_gguf(&with_tokenizer("llama", None)).unwrap_err().to_string();
    assert!(e.contains("scores"), "{e}");
    // A BOS id outside the vocabulary.
    let mut kvs = vec![
        ("general.architecture", V::Str("llama")),
        ("tokenizer.ggml.model", V::Str("gpt2")),
        ("tokenizer.ggml.tokens", V::Strs(vec!["a".into(), "b".into()])),
        ("tokenizer.ggml.merges", V::Strs(vec![])),
    ];
    kvs.push(("tokenizer.ggml.bos_token_id", V::U32(7)));
    let e = Tokenizer::from_gguf(&gguf(&kvs)).unwrap_err().to_string();
    assert!(e.contains("bos_token_id") && e.contains('7'), "{e}");
    // token_type of the wrong length.
    let kvs = vec![
        ("general.architecture", V::Str("llama")),
        ("tokenizer.ggml.model", V::Str("gpt2")),
        ("tokenizer.ggml.tokens", V::Strs(vec!["a".into(), "b".into()])),
        ("tokenizer.ggml.token_type", V::I32s(vec![1])),
        ("tokenizer.ggml.merges", V::Strs(vec![])),
    ];
    let e = Tokenizer::from_gguf(&gguf(&kvs)).unwrap_err().to_string();
    assert!(e.contains("token_type"), "{e}");
}
