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

type Report = (HashSet<String>, LoadReport);

/// Builds a model's layers tensor by tensor from a [`TensorSource`], by reference names, and
/// checks the whole file at the end.
///
/// Each request states the shape it needs. A missing or misshaped tensor is recorded (and a
/// one-element stand-in is returned, so that construction can go on and find every other
/// problem); [`finish`](Self::finish) then fails with one [`LoadReport`] listing them
/// all, together with every file tensor that nothing asked for.
///
/// ```no_run
/// use aigc_core::weights::{GgufFile, WeightLoader};
///
/// let device = aigc_core::parse_device("flex")?;
/// let file = GgufFile::open("model.gguf")?;
/// let loader = WeightLoader::new(&file, &device);
/// let norm = loader.tensor::<1>("output_norm.weight", [576]);
/// let head = loader.linear("output", 576, 49152, false);
/// loader.finish()?;
/// # Ok::<(), aigc_core::Error>(())
/// ```
pub struct WeightLoader<'a> {
    source: &'a dyn TensorSource,
    device: burn::tensor::Device,
    rename: Option<Rename<'a>>,
    ignore: Option<Predicate<'a>>,
    state: std::cell::RefCell<Report>,
}

impl<'a> WeightLoader<'a> {
    /// A loader that places tensors on `device`.
    pub fn new(source: &'a dyn TensorSource, device: &burn::tensor::Device) -> Self {
        let report = LoadReport { source: source.source_name(), ..LoadReport::default() };
        Self {
            source,
            device: device.clone(),
            rename: None,
            ignore: None,
            state: (HashSet::new(), report).into(),
        }
    }

    /// Maps the names the model asks for to the file's names (for instance Hugging Face names
    /// to GGUF names).
    pub fn rename(mut self, f: impl Fn(&str) -> String + 'a) -> Self {
        self.rename = Some(Box::new(f));
        self
    }

    /// File tensors the model is known not to use (not reported as unexpected).
    pub fn ignore(mut self, f: impl Fn(&str) -> bool + 'a) -> Self {
        self.ignore = Some(Box::new(f));
        self
    }

    /// The device tensors are placed on.
    pub fn device(&self) -> &burn::tensor::Device {
        &self.device
    }

    fn file_name(&self, name: &str) -> String {
        match &self.rename {
            Some(f) => f(name),
            None => name.to_string(),
        }
    }

    /// Whether the file holds the tensor `name` (after renaming).
    pub fn contains(&self, name: &str) -> bool {
        self.source.contains(&self.file_name(name))
    }

    /// The view of tensor `name`, which must have `shape`; `None` (and the problem recorded)
    /// when it is missing or misshaped.
    pub fn view(&self, name: &str, shape: &[usize]) -> Option<super::TensorView<'a>> {
        let file_name = self.file_name(name);
        let mut state = self.state.borrow_mut();
        let (used, report) = &mut *state;
        let Some(info) = self.source.tensor_info(&file_name) else {
            report.missing.push(file_name);
            return None;
        };
        used.insert(file_name.clone());
        if info.shape != shape {
            report.misshaped.push((file_name, shape.to_vec(), info.shape));
            return None;
        }
        match self.source.tensor(&file_name) {
            Ok(v) => Some(v),
            Err(e) => {
                report.unreadable.push((file_name, e.to_string()));
                None
            }
        }
    }

    /// Tensor `name` of `shape` as f32 on the device (GGML blocks dequantized); when it is
    /// missing or misshaped the problem is recorded and a one-element stand-in is returned
    /// (never an allocation sized by a shape the file did not back), so that building a model
    /// can go on to report every problem at [`finish`](Self::finish).
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Tensor<D> {
        self.view(name, &shape)
            .and_then(|v| self.record(v.to_tensor::<D>(&self.device), &v.name))
            .unwrap_or_else(|| Tensor::zeros([1; D], &self.device))
    }

    /// Like [`tensor`](Self::tensor), but a missing tensor is not an error: `None`.
    pub fn optional_tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Option<Tensor<D>> {
        self.contains(name).then(|| self.tensor(name, shape))
    }

    /// A linear layer from `{prefix}.weight` (`[out, in]`) and, when `bias`, `{prefix}.bias`.
    /// On a CPU device a quantized weight stays quantized (see [`crate::layers::QLinear`]).
    pub fn linear(
        &self,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> crate::layers::QLinear {
        let name = format!("{prefix}.weight");
        let bias = bias.then(|| self.tensor::<1>(&format!("{prefix}.bias"), [out_features]));
        let layer = self.view(&name, &[out_features, in_features]).and_then(|v| {
            let shared = self.source.shared_bytes(&v.name);
            self.record(
                crate::layers::QLinear::from_view_shared(&v, shared, None, &self.device),
                &v.name,
            )
        });
        let layer = layer.unwrap_or_else(|| {
            crate::layers::QLinear::from_tensors(Tensor::zeros([1, 1], &self.device), None)
        });
        match bias {
            Some(b) => layer.with_bias(b),
            None => layer,
        }
    }

    /// An embedding table `[vocab, dim]`, kept quantized on a CPU device.
    pub fn embedding(&self, name: &str, vocab: usize, dim: usize) -> crate::layers::Embedding {
        self.view(name, &[vocab, dim])
            .and_then(|v| {
                let shared = self.source.shared_bytes(&v.name);
                self.record(
                    crate::layers::Embedding::from_view_shared(&v, shared, &self.device),
                    &v.name,
                )
            })
            .unwrap_or_else(|| crate::layers::Embedding::new(Tensor::zeros([1, 1], &self.device)))
    }

    fn record<T>(&self, r: Result<T>, name: &str) -> Option<T> {
        r.map_err(|e| self.state.borrow_mut().1.unreadable.push((name.to_string(), e.to_string())))
            .ok()
    }

    /// Fails with every problem found, including file tensors that nothing asked for.
    pub fn finish(self) -> Result<()> {
        let (used, mut report) = self.state.into_inner();
        report.unexpected = self
            .source
            .tensor_names()
            .into_iter()
            .filter(|n| !used.contains(n) && !self.ignore.as_ref().is_some_and(|f| f(n)))
            .collect();
        if report.is_clean() { Ok(()) } else { Err(Error::Load(report)) }
    }
}
