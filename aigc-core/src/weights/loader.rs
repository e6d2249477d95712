//! Filling a burn module from a [`TensorSource`], strictly.
//!
//! [`load_module`] walks every parameter of a module, names it by its path (`layers.0.attn.q.weight`),
//! maps that name to the file's name, checks the shape and loads the values. Every missing,
//! unexpected, misshaped or unreadable tensor is collected and reported in one
//! [`LoadReport`]: a model never runs with a tensor it did not find.
//!
//! ```no_run
//! use aigc_core::burn::nn::LinearConfig;
//! use aigc_core::weights::{LoadOptions, SafetensorsFile, load_module};
//!
//! let device = aigc_core::parse_device("flex")?;
//! let file = SafetensorsFile::open("model.safetensors")?;
//! let head = LinearConfig::new(576, 49152).with_bias(false).init(&device);
//! // The module's own path is `weight`; the checkpoint calls it `lm_head.weight`.
//! let options = LoadOptions::pytorch().rename(|path| format!("lm_head.{path}"));
//! let head = load_module(head, &file, &options)?;
//! # Ok::<(), aigc_core::Error>(())
//! ```

use std::collections::HashSet;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;

use super::TensorSource;
use crate::error::{Error, LoadReport, Result};

type Rename<'a> = Box<dyn Fn(&str) -> String + 'a>;
type Predicate<'a> = Box<dyn Fn(&str) -> bool + 'a>;

/// How module parameter paths relate to the names and layout in a file.
#[derive(Default)]
pub struct LoadOptions<'a> {
    rename: Option<Rename<'a>>,
    pytorch_layout: bool,
    optional: Option<Predicate<'a>>,
    ignore: Option<Predicate<'a>>,
}

impl<'a> LoadOptions<'a> {
    /// Names and layouts as burn stores them.
    pub fn burn() -> Self {
        Self::default()
    }

    /// Names and layouts as PyTorch stores them (safetensors, ONNX initializers): a `Linear`
    /// weight is `[out, in]` (burn's is `[in, out]`, so it is transposed on load), and norm
    /// layers call burn's `gamma`/`beta` `weight`/`bias`.
    pub fn pytorch() -> Self {
        Self { pytorch_layout: true, ..Self::default() }
    }

    /// Maps a module parameter path (after the PyTorch renaming, if any) to the file's name.
    pub fn rename(mut self, f: impl Fn(&str) -> String + 'a) -> Self {
        self.rename = Some(Box::new(f));
        self
    }

    /// Module parameters (by file name) that may be absent; they keep their initial value.
    pub fn optional(mut self, f: impl Fn(&str) -> bool + 'a) -> Self {
        self.optional = Some(Box::new(f));
        self
    }

    /// File tensors that the module is known not to use (not reported as unexpected).
    pub fn ignore(mut self, f: impl Fn(&str) -> bool + 'a) -> Self {
        self.ignore = Some(Box::new(f));
        self
    }
}

/// Fills every float parameter of `module` from `source`; see the [module docs](self).
///
/// Values are converted to f32 (GGML blocks are dequantized) on each parameter's device.
pub fn load_module<M: Module>(
    module: M,
    source: &dyn TensorSource,
    options: &LoadOptions<'_>,
) -> Result<M> {
    let mut loader = Loader {
        source,
        options,
        path: Vec::new(),
        used: HashSet::new(),
        report: LoadReport { source: source.source_name(), ..LoadReport::default() },
    };
    let module = module.map(&mut loader);
    let Loader { used, mut report, .. } = loader;
    report.unexpected = source
        .tensor_names()
        .into_iter()
        .filter(|n| !used.contains(n) && !options.ignore.as_ref().is_some_and(|f| f(n)))
        .collect();
    if report.is_clean() { Ok(module) } else { Err(Error::Load(report)) }
}

struct Loader<'s, 'o> {
    source: &'s dyn TensorSource,
    options: &'s LoadOptions<'o>,
    /// (field name, container type) of each module entered.
    path: Vec<(String, String)>,
    used: HashSet<String>,
    report: LoadReport,
}

impl Loader<'_, '_> {
    /// The parameter's path in the module, and whether it is a PyTorch-transposed Linear weight.
    fn file_name(&self) -> (String, bool) {
        let mut parts: Vec<&str> = self
            .path
            .iter()
            // Enum variant names are burn's, not the checkpoint's.
            .filter(|(_, ty)| !ty.starts_with("Enum:"))
            .map(|(name, _)| name.as_str())
            .collect();
        let mut transpose = false;
        if self.options.pytorch_layout {
            // The container type recorded with a field is the struct that holds it.
            let parent = self.path.last().map(|(_, ty)| ty.as_str()).unwrap_or("");
            let is_norm = parent.ends_with("Norm");
            let Some(leaf) = parts.last_mut() else { return (String::new(), false) };
            match (*leaf, parent) {
                ("weight", "Struct:Linear") => transpose = true,
                ("gamma", _) if is_norm => *leaf = "weight",
                ("beta", _) if is_norm => *leaf = "bias",
                _ => {}
            }
        }
        let path = parts.join(".");
        let name = match &self.options.rename {
            Some(f) => f(&path),
            None => path,
        };
        (name, transpose)
    }

    fn load<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (name, transpose) = self.file_name();
        let Some(info) = self.source.tensor_info(&name) else {
            if !self.options.optional.as_ref().is_some_and(|f| f(&name)) {
                self.report.missing.push(name);
            }
            return param;
        };
        self.used.insert(name.clone());
        // The shape the file must hold, in the file's own layout.
        let mut want: Vec<usize> = param.lazy_shape().dims::<D>().to_vec();
        if transpose && D == 2 {
            want.reverse();
        }
        if info.shape != want {
            self.report.misshaped.push((name, want, info.shape));
            return param;
        }
        let device = param.lazy_device();
        let tensor = self.source.tensor(&name).and_then(|view| {
            if transpose && D == 2 {
                view.to_tensor::<D>(&device).map(|t| t.transpose())
            } else {
                view.to_tensor::<D>(&device)
            }
        });
        match tensor {
            Ok(t) => {
                let id = param.id;
                param.transform_for_load(t, id)
            }
            Err(e) => {
                self.report.unreadable.push((name, e.to_string()));
                param
            }
        }
    }
}

impl ModuleMapper for Loader<'_, '_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        self.load(param)
    }
}
