//! ONNX models: their initializers and `Constant` tensors, and the graph that ties tensors with
//! generated names back to the PyTorch modules they belong to.
//!
//! An `.onnx` file is one serialized `ModelProto` (see `onnx/onnx.proto`). This reader
//! memory-maps it and walks the protobuf wire format itself (the private `wire` module): no
//! protobuf crate, no code generation. Tensors stored as `raw_data` are handed out as borrowed slices of the map;
//! tensors stored in the typed fields (`float_data`, `int32_data`, ...) are decoded into owned
//! little-endian bytes when asked for.
//!
//! # Anonymous initializers
//!
//! PyTorch's exporters name most initializers after the parameter they hold
//! (`dec.ups.0.weight`), but not all. The TorchScript exporter names constant-folded weights
//! `onnx::Conv_8168` (weight-norm layers of a Piper voice), or reuses a graph name such as
//! `sid` for a deduplicated tensor; the `torch.export`-based exporter folds GroupNorm's weight
//! and bias into `val_45` and `val_47`. What survives is the graph: the node that reads the
//! tensor. The TorchScript exporter names nodes after their module
//! (`/flow/flows.6/enc/in_layers.0/Conv`), and the newer exporter records the module path in
//! each node's `pkg.torch.onnx.name_scopes` metadata. [`OnnxFile::resolve_anonymous`] uses both
//! to name each anonymous tensor (`flow.flows.6.enc.in_layers.0.weight`), and
//! [`OnnxFile::parameters`] offers the result as a [`TensorSource`] under PyTorch names, so a
//! model loader reads an ONNX file like a `state_dict`.
//!
//! ```no_run
//! use aigc_core::weights::{OnnxFile, TensorSource};
//! let voice = OnnxFile::open("en_US-joe-medium.onnx")?;
//! for t in voice.resolve_anonymous() {
//!     if let Ok(p) = &t.parameter {
//!         println!("{} holds {} {:?}", t.tensor, p.name, p.shape);
//!     }
//! }
//! let params = voice.parameters();
//! let embedding = params.tensor("enc_p.emb.weight")?; // stored as `sid`
//! assert_eq!(embedding.shape, [256, 192]);
//! # Ok::<(), aigc_core::Error>(())
//! ```

mod parse;
mod wire;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use self::parse::{Parsed, Parser};
use self::wire::varints;
use super::{DType, Storage, TensorInfo, TensorSource, TensorView, map_file};
use crate::error::{Error, Result};

/// The format name used in errors.
const FORMAT: &str = "ONNX";

/// How deeply subgraphs (the bodies of `If`, `Loop`, `Scan`) may nest. The parser recurses
/// once per level, so this bounds its stack on hostile input; real models nest two or three.
pub const MAX_GRAPH_DEPTH: usize = 16;

/// The metadata keys that the `torch.export`-based exporter writes on each node.
const NAME_SCOPES_KEY: &str = "pkg.torch.onnx.name_scopes";
const CLASS_HIERARCHY_KEY: &str = "pkg.torch.onnx.class_hierarchy";
const FX_NODE_KEY: &str = "pkg.torch.onnx.fx_node";
/// A node metadata key that is dropped: Python stack traces are large and no loader needs them.
const STACK_TRACE_KEY: &str = "pkg.torch.onnx.stack_trace";

/// One node of the graph or of a subgraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxNode {
    /// The node's name (may be empty: ONNX does not require names).
    pub name: String,
    /// The operator (`"Conv"`, `"Gemm"`, `"Constant"`, ...).
    pub op_type: String,
    /// The operator set domain (empty for the default `ai.onnx`).
    pub domain: String,
    /// Names of the values it reads, by input slot; an empty name is an omitted optional input.
    pub inputs: Vec<String>,
    /// Names of the values it produces.
    pub outputs: Vec<String>,
    /// Its integer attributes (`group` of `Conv`, `transB` of `Gemm`, ...), in file order.
    pub int_attributes: Vec<(String, i64)>,
    /// `NodeProto.metadata_props` (IR version 10), in file order, without
    /// `pkg.torch.onnx.stack_trace`. The `torch.export`-based exporter records module paths here.
    pub metadata: Vec<(String, String)>,
    /// 0 for the main graph, 1 for a subgraph of one of its nodes, and so on.
    pub depth: usize,
}

impl OnnxNode {
    /// A metadata value by key.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// An integer attribute by name.
    pub fn int_attribute(&self, name: &str) -> Option<i64> {
        self.int_attributes.iter().find(|(k, _)| k == name).map(|&(_, v)| v)
    }

    /// The dotted path of the PyTorch module this node was exported from
    /// (`"enc_p.encoder.attn_layers.0.conv_q"`), or `None` for nodes of the root module or
    /// of exporters that keep no scope. Taken from the `pkg.torch.onnx.name_scopes` metadata
    /// when present (whose last entry is the operation, the one before it the innermost
    /// module; scopes of Sequential slices such as `slice(None, -1, None)` are dropped), else
    /// from a TorchScript-style node name (see [`module_path_from_node_name`]).
    pub fn module_path(&self) -> Option<String> {
        if let Some(scopes) = self.metadata_value(NAME_SCOPES_KEY) {
            let scopes = parse_python_str_list(scopes)?;
            let module = scopes.len().checked_sub(2).map(|i| &scopes[i])?;
            // A module reached through a slice of a Sequential (`in_layers[:-1]`) gets a scope
            // `in_layers.slice(None, -1, None).0`; the slice keeps the original keys, so the
            // parameter path is `in_layers.0`.
            let parts: Vec<&str> = module
                .split('.')
                .filter(|p| {
                    !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .collect();
            return (!parts.is_empty()).then(|| parts.join("."));
        }
        module_path_from_node_name(&self.name)
    }

    /// The ATen operator the node was lowered from (`"aten.group_norm.default"`), from the
    /// last entry of the `pkg.torch.onnx.class_hierarchy` metadata.
    pub fn aten_op(&self) -> Option<String> {
        parse_python_str_list(self.metadata_value(CLASS_HIERARCHY_KEY)?)?.pop()
    }
}

/// The module path encoded in a node name of PyTorch's TorchScript exporter: the name is
/// `/` + the module path with `/` for `.` + `/` + the operator, so
/// `/enc_p/encoder/attn_layers.0/conv_q/Conv` gives `enc_p.encoder.attn_layers.0.conv_q`.
/// `None` when the name does not have that form or names a root-level operation (`/Gather`).
pub fn module_path_from_node_name(name: &str) -> Option<String> {
    let rest = name.strip_prefix('/')?;
    let (module, op) = rest.rsplit_once('/')?;
    if op.is_empty() || module.is_empty() || module.split('/').any(str::is_empty) {
        return None;
    }
    Some(module.replace('/', "."))
}

/// Whether `name` reads as a PyTorch parameter path: two or more dot-separated identifiers
/// (`dec.ups.0.weight`). Generated names (`onnx::Conv_12`, `val_45`, `/enc/Constant_output_0`,
/// a bare `sid`) do not.
pub fn is_parameter_name(name: &str) -> bool {
    let mut parts = 0;
    for part in name.split('.') {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return false;
        }
        parts += 1;
    }
    parts >= 2
}

/// A node that reads a value, and the input slot it reads it in.
#[derive(Debug, Clone, Copy)]
pub struct NodeRef<'a> {
    /// The consuming node.
    pub node: &'a OnnxNode,
    /// The index of the input that reads the value (`node.inputs[slot]`).
    pub slot: usize,
}

/// The PyTorch parameter an anonymous tensor holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleParameter {
    /// Its PyTorch name (`"flow.flows.6.enc.in_layers.0.weight"`).
    pub name: String,
    /// Its PyTorch shape. It differs from the stored one when the exporter reshaped the
    /// parameter (a GroupNorm weight stored `[32, 1, 1]` is `[32]`) or transposed it.
    pub shape: Vec<usize>,
    /// Whether the stored tensor is the transpose of the parameter (a `Linear` weight read by
    /// `MatMul`, or by `Gemm` without `transB`). [`OnnxFile::parameters`] transposes it back.
    pub transposed: bool,
}

/// One use of a tensor by a node, owned, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorUse {
    /// The consuming node's name.
    pub node: String,
    /// Its operator.
    pub op_type: String,
    /// The input slot that reads the tensor.
    pub slot: usize,
    /// The module the node belongs to, when known ([`OnnxNode::module_path`]).
    pub module: Option<String>,
}

/// A stored tensor whose name is not a parameter path, with what the graph says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousTensor {
    /// Its name in the file (`"onnx::Conv_8168"`, `"val_45"`, `"sid"`).
    pub tensor: String,
    /// Its stored type.
    pub dtype: DType,
    /// Its stored shape.
    pub shape: Vec<usize>,
    /// Every node input that reads it.
    pub uses: Vec<TensorUse>,
    /// The parameter it holds, or why none could be named: graph constants (shapes, scalars,
    /// index lists) read by several modules or by operators without parameters stay unresolved.
    pub parameter: std::result::Result<ModuleParameter, String>,
}

/// Where a tensor's bytes are in the map.
#[derive(Debug, Clone)]
enum Stored {
    /// `raw_data`: little-endian bytes, borrowed as they are.
    Raw(Range<usize>),
    /// One of the typed fields: ranges of the map, each holding one or more encoded values
    /// (a packed array, or the single value of an unpacked field).
    Typed { field: TypedField, segments: Vec<Range<usize>> },
    /// No data field: only valid for tensors with zero elements.
    Empty,
}

/// The typed data fields of `TensorProto` (and the list attributes of `Constant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypedField {
    /// `float_data` (and `Constant`'s `value_float(s)`): fixed32 floats.
    Float,
    /// `int32_data`: varints holding int32 values or 16-bit float bit patterns.
    Int32,
    /// `int64_data` (and `Constant`'s `value_int(s)`): varint int64 values.
    Int64,
    /// `double_data`: fixed64 doubles.
    Double,
    /// `uint64_data`: varint uint32 and uint64 values.
    Uint64,
}

impl TypedField {
    fn from_number(n: u32) -> Option<Self> {
        Some(match n {
            4 => TypedField::Float,
            5 => TypedField::Int32,
            7 => TypedField::Int64,
            10 => TypedField::Double,
            11 => TypedField::Uint64,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            TypedField::Float => "float_data",
            TypedField::Int32 => "int32_data",
            TypedField::Int64 => "int64_data",
            TypedField::Double => "double_data",
            TypedField::Uint64 => "uint64_data",
        }
    }

    /// The size of one fixed-width value, or `None` for varints.
    fn fixed_size(self) -> Option<usize> {
        match self {
            TypedField::Float => Some(4),
            TypedField::Double => Some(8),
            _ => None,
        }
    }

    /// Whether the ONNX spec stores `dtype` in this field.
    fn holds(self, dtype: DType) -> bool {
        use DType::*;
        match self {
            TypedField::Float => dtype == F32,
            TypedField::Double => dtype == F64,
            TypedField::Int64 => dtype == I64,
            TypedField::Uint64 => matches!(dtype, U32 | U64),
            TypedField::Int32 => matches!(dtype, I32 | I16 | I8 | U16 | U8 | Bool | F16 | BF16),
        }
    }
}

/// Where a tensor comes from in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// `GraphProto.initializer`.
    Initializer,
    /// The `value` of a `Constant` node (the index in `nodes`), named by its output.
    Constant(usize),
}

/// A supported tensor, indexed at open.
#[derive(Debug, Clone)]
struct TensorEntry {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    stored: Stored,
    origin: Origin,
    /// The offset of its `TensorProto` (or `Constant` attribute), for messages.
    offset: usize,
}

/// What `open` learns about the model as a whole.
#[derive(Debug, Default, Clone)]
struct Header {
    ir_version: Option<i64>,
    producer_name: String,
    producer_version: String,
    domain: String,
    model_version: Option<i64>,
    opset_imports: Vec<(String, i64)>,
    metadata: Vec<(String, String)>,
    graph_name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    initializers: usize,
    sparse_initializers: usize,
    subgraphs: usize,
}

/// A memory-mapped ONNX model: its stored tensors (initializers of the main graph and of
/// subgraphs, and the tensors of `Constant` nodes, named by the node's output), its nodes,
/// and which node reads which tensor.
///
/// Tensors of types this reader cannot represent (strings, complex, 8-bit and 4-bit floats)
/// and tensors kept in external files do not stop `open`; they are listed by
/// [`OnnxFile::unsupported_tensors`], and asking for one gives [`Error::Unsupported`].
pub struct OnnxFile {
    path: PathBuf,
    map: Storage,
    header: Header,
    tensors: Vec<TensorEntry>,
    by_name: HashMap<String, usize>,
    unsupported: Vec<(String, String)>,
    nodes: Vec<OnnxNode>,
    node_by_name: HashMap<String, usize>,
    /// Value name to every `(node index, input slot)` that reads it.
    uses: HashMap<String, Vec<(usize, usize)>>,
}

impl OnnxFile {
    /// Memory-maps and indexes an ONNX model, checking every length and count against the
    /// file size. Raw tensor bytes are not read until asked for.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_storage(path.to_path_buf(), map_file(path)?)
    }

    /// Reads a model held in memory; `name` stands for the path in messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::from_storage(name.into(), Storage::Owned(bytes))
    }

    fn from_storage(path: PathBuf, map: Storage) -> Result<Self> {
        let parsed = Parser::parse(&map)
            .map_err(|e| Error::format(&path, FORMAT, e.offset as u64, e.reason))?;
        let Parsed { header, tensors, sub_tensors, unsupported, nodes } = parsed;

        // Index the tensors: a name defined twice in the main graph is corrupt; a subgraph
        // may reuse a name (ONNX scopes names per graph), and then the outer one wins.
        let mut by_name = HashMap::with_capacity(tensors.len());
        let mut kept = Vec::with_capacity(tensors.len() + sub_tensors.len());
        let unsupported_names: HashSet<&str> = unsupported
            .iter()
            .filter(|(_, _, depth)| *depth == 0)
            .map(|(name, _, _)| name.as_str())
            .collect();
        for t in tensors {
            if by_name.contains_key(&t.name) || unsupported_names.contains(t.name.as_str()) {
                return Err(Error::format(
                    &path,
                    FORMAT,
                    t.offset as u64,
                    format!("tensor `{}` is defined twice", t.name),
                ));
            }
            by_name.insert(t.name.clone(), kept.len());
            kept.push(t);
        }
        for t in sub_tensors {
            if !by_name.contains_key(&t.name) && !unsupported_names.contains(t.name.as_str()) {
                by_name.insert(t.name.clone(), kept.len());
                kept.push(t);
            } else {
                tracing::debug!(tensor = %t.name, "subgraph tensor shadowed by an outer one");
            }
        }
        let mut seen_unsupported = HashSet::new();
        let unsupported = unsupported
            .into_iter()
            .filter(|(name, _, _)| {
                !by_name.contains_key(name) && seen_unsupported.insert(name.clone())
            })
            .map(|(name, reason, _)| (name, reason))
            .collect();

        let mut node_by_name = HashMap::with_capacity(nodes.len());
        let mut uses: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            if !node.name.is_empty() {
                node_by_name.entry(node.name.clone()).or_insert(i);
            }
            for (slot, input) in node.inputs.iter().enumerate() {
                if !input.is_empty() {
                    uses.entry(input.clone()).or_default().push((i, slot));
                }
            }
        }
        Ok(Self {
            path,
            map,
            header,
            tensors: kept,
            by_name,
            unsupported,
            nodes,
            node_by_name,
            uses,
        })
    }

    /// The file's path (or the name given to [`OnnxFile::from_bytes`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Facts about the model for an `inspect` tool: IR version, producer, opset imports, graph
    /// name, inputs and outputs with their types and shapes, node and tensor counts, and the
    /// model's own `metadata_props` (as `meta.<key>`).
    pub fn metadata(&self) -> Vec<(String, String)> {
        let h = &self.header;
        let mut out: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, v: String| out.push((k.to_string(), v));
        push("format", FORMAT.to_string());
        if let Some(v) = h.ir_version {
            push("ir_version", v.to_string());
        }
        push("producer", format!("{} {}", h.producer_name, h.producer_version).trim().to_string());
        if !h.domain.is_empty() {
            push("domain", h.domain.clone());
        }
        if let Some(v) = h.model_version {
            push("model_version", v.to_string());
        }
        let opsets: Vec<String> = h
            .opset_imports
            .iter()
            .map(|(d, v)| format!("{} {v}", if d.is_empty() { "ai.onnx" } else { d }))
            .collect();
        push("opset_import", opsets.join(", "));
        push("graph", h.graph_name.clone());
        for i in &h.inputs {
            push("input", i.clone());
        }
        for o in &h.outputs {
            push("output", o.clone());
        }
        push("nodes", self.nodes.iter().filter(|n| n.depth == 0).count().to_string());
        if h.subgraphs > 0 {
            push("subgraphs", h.subgraphs.to_string());
            push("subgraph_nodes", self.nodes.iter().filter(|n| n.depth > 0).count().to_string());
        }
        push("initializers", h.initializers.to_string());
        let constants = self.tensors.iter().filter(|t| matches!(t.origin, Origin::Constant(_)));
        push("constant_tensors", constants.count().to_string());
        push("tensors", self.tensors.len().to_string());
        if !self.unsupported.is_empty() {
            push("unsupported_tensors", self.unsupported.len().to_string());
        }
        if h.sparse_initializers > 0 {
            push("sparse_initializers (not read)", h.sparse_initializers.to_string());
        }
        for (k, v) in &h.metadata {
            push(&format!("meta.{k}"), v.clone());
        }
        out
    }

    /// The model's IR version.
    pub fn ir_version(&self) -> Option<i64> {
        self.header.ir_version
    }

    /// The operator sets the model imports, as `(domain, version)`; the default domain is
    /// the empty string.
    pub fn opset_imports(&self) -> &[(String, i64)] {
        &self.header.opset_imports
    }

    /// The model's `metadata_props`, as `(key, value)` in file order.
    pub fn model_metadata(&self) -> &[(String, String)] {
        &self.header.metadata
    }

    /// Tensors present in the file that this reader cannot hand out, as `(name, reason)`:
    /// unsupported element types, external data, segmented tensors.
    pub fn unsupported_tensors(&self) -> &[(String, String)] {
        &self.unsupported
    }

    /// Every node, main graph first in file order, each subgraph's nodes right after the node
    /// that owns it.
    pub fn nodes(&self) -> &[OnnxNode] {
        &self.nodes
    }

    /// The first node with this name.
    pub fn node(&self, name: &str) -> Option<&OnnxNode> {
        self.node_by_name.get(name).map(|&i| &self.nodes[i])
    }

    /// Every node input that reads the value `name` (a tensor or a computed value), in node
    /// order.
    pub fn consumers(&self, name: &str) -> Vec<NodeRef<'_>> {
        self.uses
            .get(name)
            .map(|u| u.iter().map(|&(n, slot)| NodeRef { node: &self.nodes[n], slot }).collect())
            .unwrap_or_default()
    }

    /// The `Constant` node that defines tensor `name`, if it is a constant rather than an
    /// initializer.
    pub fn constant_node(&self, name: &str) -> Option<&OnnxNode> {
        match self.tensors.get(*self.by_name.get(name)?)?.origin {
            Origin::Constant(n) => self.nodes.get(n),
            Origin::Initializer => None,
        }
    }

    /// The stored tensor that input `slot` of node `node_name` reads: the way to fetch, say,
    /// the weight of `/dec/ups.0/ConvTranspose` (slot 1) whatever the exporter named it.
    /// An error when the node or slot does not exist, or when that input is computed by the
    /// graph rather than stored.
    pub fn tensor_for_node_input(&self, node_name: &str, slot: usize) -> Result<TensorView<'_>> {
        let node = self.node(node_name).ok_or_else(|| {
            Error::invalid_argument("node_name", format!("no node `{node_name}`"))
        })?;
        let input = node.inputs.get(slot).filter(|i| !i.is_empty()).ok_or_else(|| {
            Error::invalid_argument(
                "slot",
                format!("node `{node_name}` ({}) has no input {slot}", node.op_type),
            )
        })?;
        if !self.by_name.contains_key(input) && !self.unsupported.iter().any(|(n, _)| n == input) {
            return Err(Error::tensor(
                input.as_str(),
                format!("input {slot} of node `{node_name}` is computed by the graph, not stored"),
            ));
        }
        self.tensor(input)
    }

    /// Every stored tensor whose name is not a parameter path ([`is_parameter_name`]), with
    /// the nodes that read it and, where the graph says so unambiguously, the PyTorch
    /// parameter it holds.
    ///
    /// A tensor is named `<module>.<role>` when every node that reads it lies in the same
    /// module ([`OnnxNode::module_path`]) and reads it in a slot that holds a parameter:
    /// `Conv`/`ConvTranspose` 1 `weight`, 2 `bias`; `Gemm` 1 `weight` (transposed unless
    /// `transB`), 2 `bias`; `MatMul` 1 `weight` (transposed); `Gather` 0 `weight` (an
    /// embedding); `BatchNormalization` 1..4 `weight`, `bias`, `running_mean`, `running_var`;
    /// `InstanceNormalization`, `LayerNormalization`, `GroupNormalization` 1 `weight`, 2 `bias`;
    /// and, for nodes lowered from an ATen norm (`aten.group_norm`, ...), `Mul` `weight` and
    /// `Add` `bias`. When the node carries the exporter's `fx_node` metadata, the guess must
    /// appear among its arguments. A guess that collides with a stored name, or that two
    /// tensors share, is rejected.
    pub fn resolve_anonymous(&self) -> Vec<AnonymousTensor> {
        let mut out: Vec<AnonymousTensor> = self
            .tensors
            .iter()
            .filter(|t| !is_parameter_name(&t.name))
            .map(|t| {
                let refs = self.consumers(&t.name);
                let uses = refs
                    .iter()
                    .map(|r| TensorUse {
                        node: r.node.name.clone(),
                        op_type: r.node.op_type.clone(),
                        slot: r.slot,
                        module: r.node.module_path(),
                    })
                    .collect();
                let parameter = self.guess_parameter(t, &refs);
                AnonymousTensor {
                    tensor: t.name.clone(),
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    uses,
                    parameter,
                }
            })
            .collect();
        // Two tensors claiming one parameter means the guess is wrong for at least one.
        let mut claims: HashMap<String, Vec<String>> = HashMap::new();
        for a in &out {
            if let Ok(p) = &a.parameter {
                claims.entry(p.name.clone()).or_default().push(a.tensor.clone());
            }
        }
        for a in &mut out {
            if let Ok(p) = &a.parameter {
                let claimants = &claims[&p.name];
                if claimants.len() > 1 {
                    a.parameter = Err(format!(
                        "`{}` is claimed by several tensors: {}",
                        p.name,
                        claimants.join(", ")
                    ));
                }
            }
        }
        out
    }

    /// The model's parameters under their PyTorch names: every stored tensor whose name is a
    /// parameter path, plus every anonymous tensor that [`OnnxFile::resolve_anonymous`] names,
    /// in PyTorch shape (reshaped or transposed back as needed). Graph constants are left out.
    /// This is the [`TensorSource`] to hand a model loader.
    pub fn parameters(&self) -> OnnxParameters<'_> {
        let mut names = Vec::new();
        let mut entries = HashMap::new();
        for (i, t) in self.tensors.iter().enumerate() {
            if is_parameter_name(&t.name) {
                names.push(t.name.clone());
                entries.insert(
                    t.name.clone(),
                    ParamEntry { tensor: i, shape: None, transposed: false },
                );
            }
        }
        for a in self.resolve_anonymous() {
            if let (Ok(p), Some(&i)) = (a.parameter, self.by_name.get(&a.tensor)) {
                names.push(p.name.clone());
                let entry =
                    ParamEntry { tensor: i, shape: Some(p.shape), transposed: p.transposed };
                entries.insert(p.name, entry);
            }
        }
        OnnxParameters { file: self, names, entries }
    }

    /// The parameter that tensor `t`, read by `refs`, holds; or why it cannot be named.
    fn guess_parameter(
        &self,
        t: &TensorEntry,
        refs: &[NodeRef<'_>],
    ) -> std::result::Result<ModuleParameter, String> {
        if refs.is_empty() {
            return Err("no node reads it".into());
        }
        let mut guess: Option<(String, Layout)> = None;
        for r in refs {
            let node = r.node;
            let module = node.module_path().ok_or_else(|| {
                format!("node `{}` ({}) names no module", node.name, node.op_type)
            })?;
            let (role, layout) = parameter_role(node, r.slot).ok_or_else(|| {
                format!("input {} of {} (`{}`) holds no parameter", r.slot, node.op_type, node.name)
            })?;
            let name = format!("{module}.{role}");
            if let Some(fx) = node.metadata_value(FX_NODE_KEY)
                && !fx_mentions(fx, &name)
            {
                return Err(format!(
                    "node `{}` was lowered from an operation that does not take `{name}`",
                    node.name
                ));
            }
            match &guess {
                None => guess = Some((name, layout)),
                Some((g, _)) if *g == name => {}
                Some((g, _)) => {
                    return Err(format!("read as several parameters (`{g}`, `{name}`)"));
                }
            }
        }
        let (name, layout) = guess.expect("refs is not empty");
        if self.by_name.contains_key(&name) {
            return Err(format!("`{name}` is stored under its own name too"));
        }
        let (shape, transposed) = match layout {
            Layout::AsStored => (t.shape.clone(), false),
            Layout::Transposed => match t.shape[..] {
                [rows, cols] => (vec![cols, rows], true),
                _ => {
                    return Err(format!(
                        "a {}-d matrix weight cannot be transposed",
                        t.shape.len()
                    ));
                }
            },
            Layout::Vector => (vec![t.shape.iter().product()], false),
            Layout::StripLeadingOnes => {
                let skip = t
                    .shape
                    .iter()
                    .take_while(|&&d| d == 1)
                    .count()
                    .min(t.shape.len().saturating_sub(1));
                (t.shape[skip..].to_vec(), false)
            }
        };
        Ok(ModuleParameter { name, shape, transposed })
    }

    fn entry_view<'s>(&'s self, t: &'s TensorEntry) -> Result<TensorView<'s>> {
        let data = self.decode(t)?;
        TensorView::new(t.name.as_str(), t.dtype, t.shape.clone(), data)
    }

    /// The tensor's bytes: borrowed when the file holds them as they are, decoded otherwise.
    fn decode(&self, t: &TensorEntry) -> Result<Cow<'_, [u8]>> {
        let err = |reason: String| Error::tensor(t.name.as_str(), reason);
        // Ranges were checked against the map at open; `get` keeps this panic-free anyway.
        let slice = |r: &Range<usize>| {
            self.map.get(r.clone()).ok_or_else(|| err("data range lies outside the file".into()))
        };
        let (field, segments) = match &t.stored {
            Stored::Raw(r) => return slice(r).map(Cow::Borrowed),
            Stored::Empty => return Ok(Cow::Borrowed(&[])),
            Stored::Typed { field, segments } => (*field, segments),
        };
        // A single packed float or double array is already little-endian IEEE: lend it.
        if field.fixed_size().is_some() && segments.len() == 1 {
            return slice(&segments[0]).map(Cow::Borrowed);
        }
        let len = t.dtype.byte_len(&t.shape).map_err(|e| err(e.to_string()))?;
        let mut out = Vec::with_capacity(len);
        for seg in segments {
            let bytes = slice(seg)?;
            if field.fixed_size().is_some() {
                out.extend_from_slice(bytes);
                continue;
            }
            for v in varints(bytes) {
                push_varint_value(&mut out, field, t.dtype, v).map_err(err)?;
            }
        }
        if out.len() != len {
            return Err(err(format!("decoded {} bytes, expected {len}", out.len())));
        }
        Ok(Cow::Owned(out))
    }
}

/// Appends one value from a varint field in the element type's little-endian form, checking
/// its range: ONNX stores int8, uint8, int16, uint16 and bool values widened to int32, and
/// float16 and bfloat16 as their 16-bit patterns.
fn push_varint_value(
    out: &mut Vec<u8>,
    field: TypedField,
    dtype: DType,
    v: u64,
) -> std::result::Result<(), String> {
    let signed = v as i64;
    let range =
        |what: &str| format!("value {signed} in {} is out of range for {what}", field.name());
    match (field, dtype) {
        (TypedField::Int64, DType::I64) => out.extend_from_slice(&signed.to_le_bytes()),
        (TypedField::Uint64, DType::U64) => out.extend_from_slice(&v.to_le_bytes()),
        (TypedField::Uint64, DType::U32) => {
            let x = u32::try_from(v).map_err(|_| format!("value {v} is out of range for U32"))?;
            out.extend_from_slice(&x.to_le_bytes());
        }
        (TypedField::Int32, DType::I32) => {
            out.extend_from_slice(&i32::try_from(signed).map_err(|_| range("I32"))?.to_le_bytes())
        }
        (TypedField::Int32, DType::I16) => {
            out.extend_from_slice(&i16::try_from(signed).map_err(|_| range("I16"))?.to_le_bytes())
        }
        (TypedField::Int32, DType::U16) => {
            out.extend_from_slice(&u16::try_from(signed).map_err(|_| range("U16"))?.to_le_bytes())
        }
        (TypedField::Int32, DType::I8) => {
            out.extend_from_slice(&i8::try_from(signed).map_err(|_| range("I8"))?.to_le_bytes())
        }
        (TypedField::Int32, DType::U8) => out.push(u8::try_from(signed).map_err(|_| range("U8"))?),
        (TypedField::Int32, DType::Bool) => match signed {
            0 | 1 => out.push(signed as u8),
            _ => return Err(range("BOOL")),
        },
        (TypedField::Int32, DType::F16 | DType::BF16) => {
            // The bit pattern as uint16; a writer that sign-extended it is accepted too.
            if !(-32768..=65535).contains(&signed) {
                return Err(range("a 16-bit float pattern"));
            }
            out.extend_from_slice(&(signed as u16).to_le_bytes());
        }
        _ => return Err(format!("{} cannot hold {dtype}", field.name())),
    }
    Ok(())
}

/// How a stored tensor relates to the PyTorch parameter it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// The same shape.
    AsStored,
    /// The transpose of a 2-d weight.
    Transposed,
    /// A 1-d parameter the exporter reshaped for broadcasting (`[C, 1, 1]`).
    Vector,
    /// A parameter with broadcast dimensions of size 1 added in front.
    StripLeadingOnes,
}

/// The parameter role that input `slot` of `node` plays, for [`OnnxFile::resolve_anonymous`].
fn parameter_role(node: &OnnxNode, slot: usize) -> Option<(&'static str, Layout)> {
    use Layout::*;
    let aten = node.aten_op();
    let aten_norm = aten.as_deref().filter(|a| a.contains("_norm") || a.contains("norm."));
    Some(match (node.op_type.as_str(), slot) {
        ("Conv" | "ConvTranspose", 1) => ("weight", AsStored),
        ("Conv" | "ConvTranspose", 2) => ("bias", AsStored),
        ("Gemm", 1) if node.int_attribute("transB") == Some(1) => ("weight", AsStored),
        ("Gemm", 1) => ("weight", Transposed),
        ("Gemm", 2) => ("bias", AsStored),
        ("MatMul", 1) => ("weight", Transposed),
        ("Gather", 0) => ("weight", AsStored),
        ("BatchNormalization", 1) => ("weight", AsStored),
        ("BatchNormalization", 2) => ("bias", AsStored),
        ("BatchNormalization", 3) => ("running_mean", AsStored),
        ("BatchNormalization", 4) => ("running_var", AsStored),
        // GroupNorm lowered to InstanceNormalization uses unit scale and zero bias of one
        // value per group; the module's own weight and bias come in the Mul and Add after it.
        ("InstanceNormalization", _)
            if aten.as_deref().is_some_and(|a| a.contains("group_norm")) =>
        {
            return None;
        }
        ("InstanceNormalization" | "LayerNormalization" | "GroupNormalization", 1) => {
            ("weight", AsStored)
        }
        ("InstanceNormalization" | "LayerNormalization" | "GroupNormalization", 2) => {
            ("bias", AsStored)
        }
        ("Mul", 0 | 1) if aten_norm.is_some() => ("weight", norm_layout(aten_norm)),
        ("Add", 0 | 1) if aten_norm.is_some() => ("bias", norm_layout(aten_norm)),
        _ => return None,
    })
}

/// Group, batch and instance norms have 1-d parameters; layer norm's have the normalized shape.
fn norm_layout(aten: Option<&str>) -> Layout {
    if aten.is_some_and(|a| a.contains("layer_norm")) {
        Layout::StripLeadingOnes
    } else {
        Layout::Vector
    }
}

/// Whether the exporter's `fx_node` text names parameter `name` as an argument: `torch.export`
/// lifts parameters to placeholders `p_<path with _ for .>` (buffers `b_...`).
fn fx_mentions(fx: &str, name: &str) -> bool {
    let mangled = name.replace('.', "_");
    ["%p_", "%b_"].iter().any(|prefix| {
        let needle = format!("{prefix}{mangled}");
        fx.match_indices(&needle).any(|(i, _)| {
            let after = fx.as_bytes().get(i + needle.len());
            !after.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        })
    })
}

/// Parses a Python list of string literals as `repr` writes it (`['', 'network', 'mul_1']`).
/// `None` when the text is not such a list: exporter metadata is advisory, not required.
fn parse_python_str_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(quote) = chars.next() else { break };
        if quote != '\'' && quote != '"' {
            return None;
        }
        let mut s = String::new();
        loop {
            match chars.next()? {
                '\\' => s.push(chars.next()?),
                c if c == quote => break,
                c => s.push(c),
            }
        }
        out.push(s);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            Some(',') => {}
            None => break,
            Some(_) => return None,
        }
    }
    Some(out)
}

impl TensorSource for OnnxFile {
    fn source_name(&self) -> String {
        self.path.display().to_string()
    }

    fn tensor_names(&self) -> Vec<String> {
        self.tensors.iter().map(|t| t.name.clone()).collect()
    }

    fn tensor_info(&self, name: &str) -> Option<TensorInfo> {
        let t = &self.tensors[*self.by_name.get(name)?];
        Some(TensorInfo { name: t.name.clone(), dtype: t.dtype, shape: t.shape.clone() })
    }

    fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        if let Some(&i) = self.by_name.get(name) {
            return self.entry_view(&self.tensors[i]);
        }
        if let Some((_, reason)) = self.unsupported.iter().find(|(n, _)| n == name) {
            return Err(Error::unsupported("ONNX tensor", format!("`{name}`: {reason}")));
        }
        Err(Error::tensor(name, format!("absent from {}", self.path.display())))
    }
}

/// How a parameter of [`OnnxParameters`] is read from its stored tensor.
#[derive(Debug, Clone)]
struct ParamEntry {
    tensor: usize,
    /// The PyTorch shape when it differs from the stored one.
    shape: Option<Vec<usize>>,
    transposed: bool,
}

/// An ONNX model's parameters under their PyTorch names; see [`OnnxFile::parameters`].
pub struct OnnxParameters<'a> {
    file: &'a OnnxFile,
    names: Vec<String>,
    entries: HashMap<String, ParamEntry>,
}

impl OnnxParameters<'_> {
    fn entry(&self, name: &str) -> Option<(&String, &ParamEntry, &TensorEntry)> {
        let (key, e) = self.entries.get_key_value(name)?;
        Some((key, e, self.file.tensors.get(e.tensor)?))
    }
}

impl TensorSource for OnnxParameters<'_> {
    fn source_name(&self) -> String {
        format!("{} (parameters)", self.file.source_name())
    }

    fn tensor_names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn tensor_info(&self, name: &str) -> Option<TensorInfo> {
        let (key, e, t) = self.entry(name)?;
        let shape = e.shape.clone().unwrap_or_else(|| t.shape.clone());
        Some(TensorInfo { name: key.clone(), dtype: t.dtype, shape })
    }

    fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let (key, e, t) = self.entry(name).ok_or_else(|| {
            Error::tensor(name, format!("no such parameter in {}", self.file.path.display()))
        })?;
        let data = self.file.decode(t)?;
        let shape = e.shape.clone().unwrap_or_else(|| t.shape.clone());
        let data = if e.transposed {
            let (&[rows, cols], Some(size)) = (&t.shape[..], t.dtype.element_size()) else {
                return Err(Error::tensor(key.as_str(), "only 2-d tensors can be transposed"));
            };
            Cow::Owned(transpose(&data, rows, cols, size))
        } else {
            data
        };
        TensorView::new(key.as_str(), t.dtype, shape, data)
    }
}

/// The transpose of a row-major `rows x cols` matrix of `size`-byte elements.
fn transpose(data: &[u8], rows: usize, cols: usize, size: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            let (src, dst) = ((r * cols + c) * size, (c * rows + r) * size);
            out[dst..dst + size].copy_from_slice(&data[src..src + size]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths_from_node_names() {
        let p = module_path_from_node_name;
        assert_eq!(
            p("/enc_p/encoder/attn_layers.0/conv_q/Conv").as_deref(),
            Some("enc_p.encoder.attn_layers.0.conv_q")
        );
        assert_eq!(p("/dec/ups.0/ConvTranspose").as_deref(), Some("dec.ups.0"));
        assert_eq!(p("/Gather"), None);
        assert_eq!(p("node_Mul_46"), None);
        assert_eq!(p("//Conv"), None);
        assert_eq!(p("/a//b/Conv"), None);
    }

    #[test]
    fn parameter_names() {
        assert!(is_parameter_name("dec.ups.0.weight"));
        assert!(is_parameter_name("network.input_blocks.1.0.in_layers.2.weight"));
        for n in ["sid", "onnx::Conv_12", "val_45", "/enc/Constant_output_0", "a..b", ".a", "a."] {
            assert!(!is_parameter_name(n), "{n}");
        }
    }

    #[test]
    fn python_lists() {
        let l = parse_python_str_list("['', 'network', 'network.out.0', 'conv2d']").unwrap();
        assert_eq!(l, ["", "network", "network.out.0", "conv2d"]);
        assert_eq!(parse_python_str_list("[]").unwrap(), Vec::<String>::new());
        assert_eq!(parse_python_str_list(r#"["it's", 'a\'b']"#).unwrap(), ["it's", "a'b"]);
        assert!(parse_python_str_list("['a' 'b']").is_none());
        assert!(parse_python_str_list("['a").is_none());
        assert!(parse_python_str_list("x").is_none());
    }

    #[test]
    fn fx_node_mentions() {
        let fx = "%group_norm = call_function[target=aten.group_norm.default](args = (%conv2d, 32, \
                  %p_net_in_0_weight, %p_net_in_0_bias, 1e-05), kwargs = {})";
        assert!(fx_mentions(fx, "net.in.0.weight"));
        assert!(fx_mentions(fx, "net.in.0.bias"));
        assert!(!fx_mentions(fx, "net.in.0.wei"));
        assert!(!fx_mentions(fx, "net.in.1.weight"));
    }

    #[test]
    fn transposes() {
        // 2 x 3 of u8 -> 3 x 2.
        assert_eq!(transpose(&[1, 2, 3, 4, 5, 6], 2, 3, 1), vec![1, 4, 2, 5, 3, 6]);
    }
}
