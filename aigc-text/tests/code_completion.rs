//! Code completion with the real SmolLM2-135M-Instruct (skipped with a loud message when the
//! model is not installed; `AIGC_REQUIRE_MODELS=1` makes that a failure, as in CI).

use std::sync::{Mutex, MutexGuard, OnceLock};

use aigc_text::Generator;
use aigc_text::code::{
    CodeFinishReason, CodeParams, FimTokens, Language, PromptMode, complete_code, end_token_stops,
};

/// One generator for the test binary (loading takes seconds).
fn smollm2() -> Option<MutexGuard<'static, Generator>> {
    static SMOL: OnceLock<Option<Mutex<Generator>>> = OnceLock::new();
    let slot = SMOL.get_or_init(|| {
        let path = aigc_core::models::installed_or_skip("smollm2-135m-instruct")?;
        let device = aigc_core::parse_device("flex").unwrap();
        Some(Mutex::new(Generator::open_with_context(&path, &device, 512).unwrap()))
    });
    slot.as_ref().map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Greedy, with the instruct prompt (what `Auto` picks: SmolLM2 has a chat template and no
/// FIM tokens) and the plain prefix: the body of a Python function with a docstring, cut
/// where the indentation returns to the `def`'s level.
#[test]
fn smollm2_completes_a_python_function() {
    let Some(mut g) = smollm2() else { return };
    assert_eq!(FimTokens::find(g.tokenizer()), None);
    assert!(end_token_stops(g.tokenizer()).contains(&"<file_sep>".to_string()));

    let prefix = "def is_prime(n):\n    \"\"\"Return True if n is a prime number.\"\"\"\n";
    for (mode, want) in
        [(PromptMode::Auto, PromptMode::Instruct), (PromptMode::Prefix, PromptMode::Prefix)]
    {
        let params = CodeParams { mode, ..CodeParams::greedy(Language::Python, 96) };
        let out = complete_code(&mut g, prefix, None, &params).unwrap();
        eprintln!("{prefix}{}[{} {}]", out.text, out.mode.as_str(), out.finish_reason.as_str());
        assert_eq!(out.mode, want);
        assert_eq!(out.finish_reason, CodeFinishReason::BlockEnd, "{:?}", out.raw);
        assert!(out.ids.len() < 96);
        // A body: every line indented under the `def`, ending with a newline, with returns.
        assert!(out.text.ends_with('\n'), "{:?}", out.text);
        assert!(
            out.text.lines().all(|l| l.trim().is_empty() || l.starts_with("    ")),
            "{:?}",
            out.text
        );
        assert!(
            out.text.contains("return False") && out.text.contains("return True"),
            "{}",
            out.text
        );
        // The model went on past the block; none of that is returned.
        assert!(out.raw.len() > out.text.len());
    }
}

/// The Rust rule on the same model: the completion ends at the `}` closing the function.
#[test]
fn smollm2_rust_completion_ends_at_the_closing_brace() {
    let Some(mut g) = smollm2() else { return };
    let prefix = "/// Returns true when `n` is a prime number.\nfn is_prime(n: u64) -> bool {\n";
    let out = complete_code(&mut g, prefix, None, &CodeParams::greedy(Language::Rust, 96)).unwrap();
    eprintln!("{prefix}{}[{}]", out.text, out.finish_reason.as_str());
    assert_eq!(out.finish_reason, CodeFinishReason::BlockEnd, "{:?}", out.raw);
    assert!(out.text.trim_end().ends_with('}'), "{:?}", out.text);
    let opens = out.text.matches('{').count();
    assert_eq!(out.text.matches('}').count(), opens + 1, "{}", out.text);
}

/// Gemma 3's vocabulary has no FIM tokens either (CodeGemma's `<|fim_prefix|>` is not in it).
#[test]
fn gemma3_has_no_fim_tokens() {
    let Some(path) = aigc_core::models::installed_or_skip("gemma-3-270m") else { return };
    let gguf = aigc_core::weights::GgufFile::open(&path).unwrap();
    let tok = aigc_text::Tokenizer::from_gguf(&gguf).unwrap();
    assert_eq!(FimTokens::find(&tok), None);
    assert!(tok.token_to_id("<start_of_turn>").is_some());
}
