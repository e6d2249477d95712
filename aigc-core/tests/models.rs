//! Model ids: the Rust table agrees with the fetch script's, and missing models say how to
//! fetch them.

use aigc_core::Error;
use aigc_core::models::{KNOWN_MODELS, fetch_command, known_model, model_file};

#[test]
fn rust_table_matches_fetch_script_table() {
    let tsv = include_str!("../../scripts/models.tsv");
    let mut first_file = Vec::<(String, String)>::new();
    for line in tsv.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        if !first_file.iter().any(|(id, _)| id == cols[0]) {
            first_file.push((cols[0].to_string(), cols[1].to_string()));
        }
    }
    let rust: Vec<(String, String)> =
        KNOWN_MODELS.iter().map(|m| (m.id.to_string(), m.main_file.to_string())).collect();
    assert_eq!(rust, first_file, "aigc_core::models::KNOWN_MODELS and scripts/models.tsv differ");
}

#[test]
fn missing_model_names_path_and_command() {
    // A model directory that holds nothing.
    let empty = std::env::temp_dir().join(format!("aigc-empty-models-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    // SAFETY: this test binary's other test does not read the environment.
    unsafe { std::env::set_var("AIGC_MODELS", &empty) };
    let err = model_file("gemma-3-270m").unwrap_err();
    let Error::ModelMissing { ref id, ref path, ref command } = err else { panic!("{err:?}") };
    assert_eq!(id, "gemma-3-270m");
    assert!(path.starts_with(&empty) && path.ends_with("gemma-3-270m/gemma-3-270m-q4_k_m.gguf"));
    assert!(command.ends_with("scripts/fetch-models.sh gemma-3-270m"), "{command}");
    assert!(std::path::Path::new(command.split(' ').next().unwrap()).exists(), "{command}");
    assert_eq!(command, &fetch_command("gemma-3-270m"));
    let text = err.to_string();
    assert!(
        text.contains("fetch-models.sh gemma-3-270m") && text.contains(&*empty.to_string_lossy()),
        "{text}"
    );
    let e = known_model("gpt-5").unwrap_err().to_string();
    assert!(e.contains("gpt-5") && e.contains("smollm2-135m-instruct"), "{e}");
}
