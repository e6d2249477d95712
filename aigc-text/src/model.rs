//! Loading a decoder from a GGUF file or a Hugging Face directory.

use std::path::Path;

use aigc_core::burn::tensor::Device;
use aigc_core::traits::CausalLm;
use aigc_core::weights::{GgufFile, SafetensorsFile, TensorSource, WeightLoader};

use crate::config::{Architecture, ModelConfig};
use crate::decoder::gguf_name;
use crate::error::{Error, Result};
use crate::gemma3::Gemma3;
use crate::llama::Llama;

/// A loaded decoder and its configuration.
pub struct LoadedModel {
    /// The model, ready to run on the device it was loaded to.
    pub model: Box<dyn CausalLm>,
    /// Its configuration.
    pub config: ModelConfig,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel").field("config", &self.config).finish_non_exhaustive()
    }
}

fn build(
    w: &WeightLoader<'_>,
    config: &ModelConfig,
    max_context: usize,
) -> Result<Box<dyn CausalLm>> {
    Ok(match config.architecture {
        Architecture::Gemma3 => Box::new(Gemma3::load(w, config, max_context)?),
        _ => Box::new(Llama::load(w, config, max_context)?),
    })
}

/// Positions to prepare for: what was asked, at most what the model was trained for.
fn positions(config: &ModelConfig, max_context: usize) -> Result<usize> {
    if max_context == 0 {
        return Err(Error::InvalidArgument {
            name: "context",
            reason: "a context of 0 tokens".into(),
        });
    }
    Ok(max_context.min(config.max_position_embeddings))
}

/// Loads the decoder of a GGUF file (weights dequantized to f32) for up to `max_context`
/// positions (capped at the model's trained context).
pub fn load_gguf(g: &GgufFile, device: &Device, max_context: usize) -> Result<LoadedModel> {
    let config = ModelConfig::from_gguf(g)?;
    let max_context = positions(&config, max_context)?;
    let gemma = config.architecture == Architecture::Gemma3;
    let w = WeightLoader::new(g, device).rename(move |n| gguf_name(n, gemma));
    let model = build(&w, &config, max_context)?;
    w.finish()?;
    Ok(LoadedModel { model, config })
}

/// Loads the decoder of a Hugging Face directory (`config.json` and `model.safetensors` or a
/// sharded `model.safetensors.index.json`), for up to `max_context` positions.
pub fn load_hf_dir(dir: &Path, device: &Device, max_context: usize) -> Result<LoadedModel> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| Error::Core(aigc_core::Error::io(&config_path, e)))?;
    let config = ModelConfig::from_hf_json(&text, &config_path.display().to_string())?;
    let max_context = positions(&config, max_context)?;
    let index = dir.join("model.safetensors.index.json");
    let weights = if index.exists() {
        SafetensorsFile::open(index)?
    } else {
        SafetensorsFile::open(dir.join("model.safetensors"))?
    };
    let tied = config.tie_word_embeddings;
    let w = WeightLoader::new(&weights as &dyn TensorSource, device)
        .ignore(move |n| (tied && n == "lm_head.weight") || n.ends_with("rotary_emb.inv_freq"));
    let model = build(&w, &config, max_context)?;
    w.finish()?;
    Ok(LoadedModel { model, config })
}
