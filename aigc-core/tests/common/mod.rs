//! Helpers shared by aigc-core's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository's `tools/fixtures` folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures")
}

/// The installed main file of a real model, or `None` after a loud skip message
/// (`AIGC_REQUIRE_MODELS=1` turns a missing model into a failure).
pub fn real_model(id: &str) -> Option<PathBuf> {
    aigc_core::models::installed_or_skip(id)
}

/// Runs `parse` on `bytes`, turning a panic into a test failure that names the input.
pub fn must_not_panic<T>(what: &str, bytes: &[u8], parse: impl Fn(Vec<u8>) -> T) -> T {
    let owned = bytes.to_vec();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(owned))) {
        Ok(v) => v,
        Err(_) => panic!("reader panicked on {what} ({} bytes)", bytes.len()),
    }
}

/// A small deterministic generator (SplitMix64) for corrupting inputs reproducibly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Every truncation of `bytes` (all prefixes when short, else a spread of them), every
/// single-bit flip in the first `header_len` bytes, and `random` multi-byte corruptions.
pub fn corruptions(bytes: &[u8], header_len: usize, random: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let step = (bytes.len() / 2000).max(1);
    for len in (0..bytes.len()).step_by(step) {
        out.push((format!("truncated to {len}"), bytes[..len].to_vec()));
    }
    for i in 0..header_len.min(bytes.len()) {
        for bit in 0..8 {
            let mut b = bytes.to_vec();
            b[i] ^= 1 << bit;
            out.push((format!("bit {bit} of byte {i} flipped"), b));
        }
    }
    let mut rng = Rng(0x5eed);
    for k in 0..random {
        let mut b = bytes.to_vec();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(header_len.min(b.len()).max(1));
            b[i] = match rng.below(4) {
                0 => 0xFF,
                1 => 0x00,
                2 => 0x7F,
                _ => rng.next_u64() as u8,
            };
        }
        out.push((format!("random corruption {k}"), b));
    }
    out
}
