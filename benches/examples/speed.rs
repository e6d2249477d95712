//! Times aigc on a GGUF model the way `benches/llama-cpp/harness.cpp` times llama.cpp: one
//! prompt pass of N fixed token ids, then M greedy single-token steps; a warm-up run first.
//!
//! `cargo run --release -p aigc-benches --example speed -- MODEL.gguf PROMPT_TOKENS DECODE_TOKENS`
//! prints one JSON line. Threads: `RAYON_NUM_THREADS` (burn's CPU backend and the quantized
//! kernels share rayon's pool). Used by `benches/compare.sh`.

use std::time::Instant;

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, np, nd] = &args[..] else {
        return Err("usage: speed MODEL.gguf PROMPT_TOKENS DECODE_TOKENS".into());
    };
    let (np, nd): (usize, usize) = (np.parse()?, nd.parse()?);
    let device = aigc_core::device_from_env()?;
    let gguf = aigc_core::weights::GgufFile::open(path)?;
    let model = aigc_text::load_gguf(&gguf, &device, np + nd + 8)?.model;
    drop(gguf);
    let mut cache = model.new_cache(np + nd + 8)?;
    let prompt: Vec<u32> = (0..np as u32).map(|i| 1000 + (i * 37) % 5000).collect();
    let logits = |t: aigc_core::burn::tensor::Tensor<2>| {
        t.into_data().convert::<f32>().try_into_vec::<f32>()
    };
    let (mut prefill_s, mut decode_s) = (0.0, 0.0);
    for _run in 0..2 {
        // The first run warms up.
        cache.reset();
        let t0 = Instant::now();
        let mut tok = argmax(
            &logits(model.forward(&prompt, &mut cache, false)?).map_err(|e| format!("{e:?}"))?,
        );
        let t1 = Instant::now();
        for _ in 0..nd {
            tok = argmax(
                &logits(model.forward(&[tok], &mut cache, false)?).map_err(|e| format!("{e:?}"))?,
            );
        }
        prefill_s = (t1 - t0).as_secs_f64();
        decode_s = t1.elapsed().as_secs_f64();
    }
    println!(
        "{{\"prefill_tokens_per_s\": {:.2}, \"decode_tokens_per_s\": {:.2}}}",
        np as f64 / prefill_s,
        nd as f64 / decode_s
    );
    Ok(())
}
