//! Reading a `ModelProto` into the reader's index: tensors (initializers and `Constant`
//! values), nodes, and the model's header. Field numbers are those of `onnx/onnx.proto`;
//! fields this reader does not use are skipped by wire type.

use std::ops::Range;

use super::wire::{self, Field, Span, Value, WireResult, count_varints, varints, wire_error};
use super::{
    Header, MAX_GRAPH_DEPTH, OnnxNode, Origin, STACK_TRACE_KEY, Stored, TensorEntry, TypedField,
};
use crate::weights::DType;

/// What the parser collects; `OnnxFile::open` indexes it.
pub(super) struct Parsed {
    pub(super) header: Header,
    /// Tensors of the main graph.
    pub(super) tensors: Vec<TensorEntry>,
    /// Tensors of subgraphs.
    pub(super) sub_tensors: Vec<TensorEntry>,
    /// `(name, reason, depth)` of tensors that cannot be handed out.
    pub(super) unsupported: Vec<(String, String, usize)>,
    pub(super) nodes: Vec<OnnxNode>,
}

/// The parts of a `TensorProto` that matter, before they are checked.
#[derive(Default)]
struct RawTensor<'a> {
    name: Option<&'a str>,
    dims: Vec<i64>,
    data_type: Option<i32>,
    raw: Option<Range<usize>>,
    typed: Option<(TypedField, Vec<Range<usize>>, usize)>,
    external: bool,
    segmented: bool,
    strings: bool,
}

pub(super) struct Parser {
    header: Header,
    tensors: Vec<TensorEntry>,
    sub_tensors: Vec<TensorEntry>,
    unsupported: Vec<(String, String, usize)>,
    nodes: Vec<OnnxNode>,
}

impl Parser {
    pub(super) fn parse(buf: &[u8]) -> WireResult<Parsed> {
        let mut p = Parser {
            header: Header::default(),
            tensors: Vec::new(),
            sub_tensors: Vec::new(),
            unsupported: Vec::new(),
            nodes: Vec::new(),
        };
        let mut graphs = 0;
        let mut m = wire::Message::new(buf, 0);
        while let Some(f) = m.next_field()? {
            match f.number {
                1 => p.header.ir_version = Some(f.int64("ir_version")?),
                2 => p.header.producer_name = f.str("producer_name")?.to_string(),
                3 => p.header.producer_version = f.str("producer_version")?.to_string(),
                4 => p.header.domain = f.str("domain")?.to_string(),
                5 => p.header.model_version = Some(f.int64("model_version")?),
                // A repeated message field merges in protobuf: parsing each occurrence into
                // the same collections does just that.
                7 => {
                    graphs += 1;
                    p.graph(f.span("graph")?, 0)?;
                }
                8 => {
                    let mut domain = "";
                    let mut version = None;
                    let mut o = f.span("opset_import")?.message();
                    while let Some(f) = o.next_field()? {
                        match f.number {
                            1 => domain = f.str("opset domain")?,
                            2 => version = Some(f.int64("opset version")?),
                            _ => {}
                        }
                    }
                    let version = version.ok_or_else(|| f.error("opset_import has no version"))?;
                    p.header.opset_imports.push((domain.to_string(), version));
                }
                14 => {
                    let kv = string_pair(&f, "metadata_props")?;
                    p.header.metadata.push((kv.0.to_string(), kv.1.to_string()));
                }
                _ => {}
            }
        }
        let ir_version = p.header.ir_version.ok_or_else(|| wire_error(0, "no ir_version"))?;
        if ir_version < 1 {
            return Err(wire_error(0, format!("ir_version {ir_version} is not valid")));
        }
        if graphs == 0 {
            return Err(wire_error(buf.len(), "the model has no graph"));
        }
        // IR version 3 introduced operator sets; from then on a model must import one.
        if ir_version >= 3 && p.header.opset_imports.is_empty() {
            return Err(wire_error(buf.len(), "the model imports no operator set"));
        }
        Ok(Parsed {
            header: p.header,
            tensors: p.tensors,
            sub_tensors: p.sub_tensors,
            unsupported: p.unsupported,
            nodes: p.nodes,
        })
    }

    /// Reads a `GraphProto` at subgraph depth `depth` (0 for the main graph).
    fn graph(&mut self, span: Span<'_>, depth: usize) -> WireResult<()> {
        if depth > MAX_GRAPH_DEPTH {
            return Err(wire_error(
                span.start,
                format!("subgraphs nest more than {MAX_GRAPH_DEPTH} deep"),
            ));
        }
        if depth > 0 {
            self.header.subgraphs += 1;
        }
        let mut m = span.message();
        while let Some(f) = m.next_field()? {
            match f.number {
                1 => self.node(f.span("node")?, depth)?,
                2 => {
                    let name = f.str("graph name")?;
                    if depth == 0 {
                        self.header.graph_name = name.to_string();
                    }
                }
                5 => {
                    let s = f.span("initializer")?;
                    let raw = tensor_proto(s)?;
                    let name = raw.name.unwrap_or_default().to_string();
                    if name.is_empty() {
                        return Err(f.error("an initializer has no name"));
                    }
                    if depth == 0 {
                        self.header.initializers += 1;
                    }
                    self.add_tensor(raw, name, Origin::Initializer, s.start, depth)?;
                }
                11 | 12 => {
                    let info = value_info(f.span("graph input/output")?)?;
                    if depth == 0 {
                        let list = if f.number == 11 {
                            &mut self.header.inputs
                        } else {
                            &mut self.header.outputs
                        };
                        list.push(info);
                    }
                }
                15 => {
                    f.span("sparse_initializer")?;
                    if depth == 0 {
                        self.header.sparse_initializers += 1;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads a `NodeProto`, the tensor of a `Constant` node, and the node's subgraphs.
    fn node(&mut self, span: Span<'_>, depth: usize) -> WireResult<()> {
        let mut node = OnnxNode {
            name: String::new(),
            op_type: String::new(),
            domain: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            int_attributes: Vec::new(),
            metadata: Vec::new(),
            depth,
        };
        let mut attributes = Vec::new();
        let mut m = span.message();
        while let Some(f) = m.next_field()? {
            match f.number {
                1 => node.inputs.push(f.str("node input")?.to_string()),
                2 => node.outputs.push(f.str("node output")?.to_string()),
                3 => node.name = f.str("node name")?.to_string(),
                4 => node.op_type = f.str("op_type")?.to_string(),
                7 => node.domain = f.str("node domain")?.to_string(),
                5 => attributes.push(attribute(f.span("attribute")?)?),
                9 => {
                    let (k, v) = string_pair(&f, "node metadata_props")?;
                    if k != STACK_TRACE_KEY {
                        node.metadata.push((k.to_string(), v.to_string()));
                    }
                }
                _ => {}
            }
        }
        for a in &attributes {
            if let Some(i) = a.int {
                node.int_attributes.push((a.name.to_string(), i));
            }
        }
        let index = self.nodes.len();
        let is_constant =
            node.op_type == "Constant" && (node.domain.is_empty() || node.domain == "ai.onnx");
        let output = node.outputs.first().cloned();
        self.nodes.push(node);
        if is_constant {
            self.constant(index, output, &attributes, span.start, depth)?;
        }
        for a in &attributes {
            for g in &a.graphs {
                self.graph(*g, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Registers the tensor that `Constant` node `index` produces, named by its output.
    fn constant(
        &mut self,
        index: usize,
        output: Option<String>,
        attributes: &[Attribute<'_>],
        offset: usize,
        depth: usize,
    ) -> WireResult<()> {
        let name = output
            .filter(|o| !o.is_empty())
            .ok_or_else(|| wire_error(offset, "a Constant node has no output"))?;
        let origin = Origin::Constant(index);
        let Some(a) =
            attributes.iter().find(|a| a.name.starts_with("value") || a.name == "sparse_value")
        else {
            return Err(wire_error(offset, format!("Constant `{name}` has no value attribute")));
        };
        let (dtype_code, field, shape_of_list) = match a.name {
            "value" => {
                let t = a.tensor.ok_or_else(|| {
                    wire_error(a.offset, format!("Constant `{name}`: `value` holds no tensor"))
                })?;
                let raw = tensor_proto(t)?;
                return self.add_tensor(raw, name, origin, t.start, depth);
            }
            "value_float" => (1, &a.float, false),
            "value_floats" => (1, &a.floats, true),
            "value_int" => (7, &a.int_values, false),
            "value_ints" => (7, &a.ints, true),
            other => {
                let reason = format!("Constant attribute `{other}` is not supported");
                self.unsupported.push((name, reason, depth));
                return Ok(());
            }
        };
        let Some((typed_field, segments, count)) = field.clone() else {
            return Err(wire_error(
                a.offset,
                format!("Constant `{name}`: `{}` holds no value", a.name),
            ));
        };
        if !shape_of_list && count != 1 {
            return Err(wire_error(
                a.offset,
                format!("Constant `{name}`: `{}` holds {count} values", a.name),
            ));
        }
        let raw = RawTensor {
            dims: if shape_of_list { vec![count as i64] } else { Vec::new() },
            data_type: Some(dtype_code),
            typed: Some((typed_field, segments, count)),
            ..RawTensor::default()
        };
        self.add_tensor(raw, name, origin, a.offset, depth)
    }

    /// Checks a tensor and files it as supported or unsupported.
    fn add_tensor(
        &mut self,
        raw: RawTensor<'_>,
        name: String,
        origin: Origin,
        offset: usize,
        depth: usize,
    ) -> WireResult<()> {
        let fail = |reason: String| wire_error(offset, format!("tensor `{name}`: {reason}"));
        let code = raw.data_type.ok_or_else(|| fail("has no data_type".into()))?;
        if code == 0 {
            return Err(fail("has data_type UNDEFINED".into()));
        }
        let mut shape = Vec::with_capacity(raw.dims.len());
        for &d in &raw.dims {
            shape.push(
                usize::try_from(d)
                    .map_err(|_| fail(format!("has negative dimension {d} in {:?}", raw.dims)))?,
            );
        }
        let numel = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| fail(format!("shape {shape:?} overflows")))?;

        let unsupported = if raw.external {
            Some(
                "its data is stored in an external file, which this reader does not open"
                    .to_string(),
            )
        } else if raw.segmented {
            Some("it is a segment of a larger tensor (TensorProto.segment)".to_string())
        } else {
            None
        };
        let dtype = match onnx_dtype(code) {
            Some(d) => d,
            None => {
                let reason = format!("element type {} is not supported", onnx_type_name(code));
                self.unsupported.push((name, unsupported.unwrap_or(reason), depth));
                return Ok(());
            }
        };
        if let Some(reason) = unsupported {
            self.unsupported.push((name, reason, depth));
            return Ok(());
        }
        if raw.strings {
            return Err(fail(format!("{dtype} tensor holds string_data")));
        }
        let byte_len = numel
            .checked_mul(dtype.element_size().unwrap_or(1))
            .ok_or_else(|| fail(format!("shape {shape:?} overflows")))?;
        let stored = match (raw.raw, raw.typed) {
            (Some(_), Some((field, _, _))) => {
                return Err(fail(format!("holds data in both raw_data and {}", field.name())));
            }
            (Some(r), None) => {
                if r.len() != byte_len {
                    return Err(fail(format!(
                        "{dtype} {shape:?} needs {byte_len} bytes, raw_data has {}",
                        r.len()
                    )));
                }
                Stored::Raw(r)
            }
            (None, Some((field, segments, count))) => {
                if !field.holds(dtype) {
                    return Err(fail(format!("{} cannot hold {dtype} values", field.name())));
                }
                if count != numel {
                    return Err(fail(format!(
                        "{} holds {count} values, shape {shape:?} needs {numel}",
                        field.name()
                    )));
                }
                Stored::Typed { field, segments }
            }
            (None, None) if numel == 0 => Stored::Empty,
            (None, None) => return Err(fail(format!("{dtype} {shape:?} has no data"))),
        };
        let entry = TensorEntry { name, dtype, shape, stored, origin, offset };
        if depth == 0 {
            self.tensors.push(entry)
        } else {
            self.sub_tensors.push(entry)
        }
        Ok(())
    }
}

/// The parts of an `AttributeProto` that the reader uses.
struct Attribute<'a> {
    name: &'a str,
    offset: usize,
    /// `t`: a tensor.
    tensor: Option<Span<'a>>,
    /// `i`: an integer.
    int: Option<i64>,
    /// `i` again, as typed data for `Constant`'s `value_int`.
    int_values: Option<(TypedField, Vec<Range<usize>>, usize)>,
    /// `f`, as typed data for `value_float`.
    float: Option<(TypedField, Vec<Range<usize>>, usize)>,
    /// `floats` and `ints`, as typed data for `value_floats` and `value_ints`.
    floats: Option<(TypedField, Vec<Range<usize>>, usize)>,
    ints: Option<(TypedField, Vec<Range<usize>>, usize)>,
    /// `g` and `graphs`: subgraphs.
    graphs: Vec<Span<'a>>,
}

fn attribute(span: Span<'_>) -> WireResult<Attribute<'_>> {
    let mut a = Attribute {
        name: "",
        offset: span.start,
        tensor: None,
        int: None,
        int_values: None,
        float: None,
        floats: None,
        ints: None,
        graphs: Vec::new(),
    };
    let mut m = span.message();
    while let Some(f) = m.next_field()? {
        match f.number {
            1 => a.name = f.str("attribute name")?,
            2 => {
                a.float = None;
                add_typed(&mut a.float, TypedField::Float, &f)?;
            }
            3 => {
                a.int = Some(f.int64("attribute i")?);
                a.int_values = None;
                add_typed(&mut a.int_values, TypedField::Int64, &f)?;
            }
            5 => a.tensor = Some(f.span("attribute t")?),
            6 | 11 => a.graphs.push(f.span("attribute graph")?),
            7 => add_typed(&mut a.floats, TypedField::Float, &f)?,
            8 => add_typed(&mut a.ints, TypedField::Int64, &f)?,
            _ => {}
        }
    }
    Ok(a)
}

/// Reads the fields of a `TensorProto` that matter.
fn tensor_proto(span: Span<'_>) -> WireResult<RawTensor<'_>> {
    let mut t = RawTensor::default();
    let mut m = span.message();
    while let Some(f) = m.next_field()? {
        match f.number {
            1 => match f.value {
                Value::Len(s) => {
                    // Each packed dim takes at least one byte, which bounds the vector.
                    count_varints(s)?;
                    t.dims.extend(varints(s.bytes).map(|v| v as i64));
                }
                _ => t.dims.push(f.int64("dims")?),
            },
            2 => t.data_type = Some(f.int32("data_type")?),
            3 => t.segmented = true,
            6 => t.strings = true,
            8 => t.name = Some(f.str("tensor name")?),
            9 => t.raw = Some(f.span("raw_data")?.range()),
            13 => {
                f.span("external_data")?;
                t.external = true;
            }
            14 => t.external |= f.int32("data_location")? == 1,
            n => {
                if let Some(field) = TypedField::from_number(n) {
                    add_typed(&mut t.typed, field, &f)?;
                }
            }
        }
    }
    Ok(t)
}

/// Adds one occurrence of a typed field (a packed array or a single unpacked value) to `acc`,
/// counting its values and checking that the wire type fits and the tensor uses one field.
fn add_typed(
    acc: &mut Option<(TypedField, Vec<Range<usize>>, usize)>,
    field: TypedField,
    f: &Field<'_>,
) -> WireResult<()> {
    let count = match (f.value, field.fixed_size()) {
        (Value::Len(s), Some(size)) => {
            if s.bytes.len() % size != 0 {
                return Err(f.error(format!(
                    "packed {} of {} bytes is not a whole number of {size}-byte values",
                    field.name(),
                    s.bytes.len()
                )));
            }
            s.bytes.len() / size
        }
        (Value::Len(s), None) => count_varints(s)?,
        (Value::Fixed32, Some(4)) | (Value::Fixed64, Some(8)) | (Value::Varint(_), None) => 1,
        (v, _) => {
            return Err(f.error(format!(
                "{} cannot be encoded as {}",
                field.name(),
                v.wire_name()
            )));
        }
    };
    match acc {
        None => *acc = Some((field, vec![f.value_range.clone()], count)),
        Some((existing, segments, n)) if *existing == field => {
            segments.push(f.value_range.clone());
            // Counts are bounded by the file size, so this cannot overflow.
            *n += count;
        }
        Some((existing, _, _)) => {
            return Err(f.error(format!(
                "tensor holds data in both {} and {}",
                existing.name(),
                field.name()
            )));
        }
    }
    Ok(())
}

/// Reads a `StringStringEntryProto` (`key`, `value`).
fn string_pair<'a>(f: &Field<'a>, what: &str) -> WireResult<(&'a str, &'a str)> {
    let (mut key, mut value) = ("", "");
    let mut m = f.span(what)?.message();
    while let Some(f) = m.next_field()? {
        match f.number {
            1 => key = f.str("metadata key")?,
            2 => value = f.str("metadata value")?,
            _ => {}
        }
    }
    Ok((key, value))
}

/// Describes a `ValueInfoProto` as `name: TYPE [dims]` (`input: INT64 [1, phonemes]`).
fn value_info(span: Span<'_>) -> WireResult<String> {
    let mut name = "";
    let mut desc = String::from("(no type)");
    let mut m = span.message();
    while let Some(f) = m.next_field()? {
        match f.number {
            1 => name = f.str("value name")?,
            // TypeProto: only tensor types (field 1) are described.
            2 => {
                let mut ty = f.span("value type")?.message();
                while let Some(f) = ty.next_field()? {
                    match f.number {
                        1 => desc = tensor_type(f.span("tensor_type")?)?,
                        // sequence, map, sparse tensor, optional
                        4 | 5 | 8 | 9 => desc = "(not a tensor)".into(),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(format!("{name}: {desc}"))
}

/// Describes a `TypeProto.Tensor`: element type and shape.
fn tensor_type(span: Span<'_>) -> WireResult<String> {
    let mut elem = 0;
    let mut dims: Option<Vec<String>> = None;
    let mut m = span.message();
    while let Some(f) = m.next_field()? {
        match f.number {
            1 => elem = f.int32("elem_type")?,
            2 => {
                let list = dims.get_or_insert_with(Vec::new);
                let mut shape = f.span("shape")?.message();
                while let Some(f) = shape.next_field()? {
                    if f.number != 1 {
                        continue;
                    }
                    let mut dim = "?".to_string();
                    let mut d = f.span("dim")?.message();
                    while let Some(f) = d.next_field()? {
                        match f.number {
                            1 => dim = f.int64("dim_value")?.to_string(),
                            2 => dim = f.str("dim_param")?.to_string(),
                            _ => {}
                        }
                    }
                    list.push(dim);
                }
            }
            _ => {}
        }
    }
    let shape =
        dims.map_or_else(|| "(unknown rank)".to_string(), |d| format!("[{}]", d.join(", ")));
    Ok(format!("{} {shape}", onnx_type_name(elem)))
}

/// The element type for an ONNX `TensorProto.DataType` code, when this reader supports it.
fn onnx_dtype(code: i32) -> Option<DType> {
    Some(match code {
        1 => DType::F32,
        2 => DType::U8,
        3 => DType::I8,
        4 => DType::U16,
        5 => DType::I16,
        6 => DType::I32,
        7 => DType::I64,
        9 => DType::Bool,
        10 => DType::F16,
        11 => DType::F64,
        12 => DType::U32,
        13 => DType::U64,
        16 => DType::BF16,
        _ => return None,
    })
}

/// The ONNX name of a `TensorProto.DataType` code, for messages.
pub(super) fn onnx_type_name(code: i32) -> String {
    const NAMES: [&str; 27] = [
        "UNDEFINED",
        "FLOAT",
        "UINT8",
        "INT8",
        "UINT16",
        "INT16",
        "INT32",
        "INT64",
        "STRING",
        "BOOL",
        "FLOAT16",
        "DOUBLE",
        "UINT32",
        "UINT64",
        "COMPLEX64",
        "COMPLEX128",
        "BFLOAT16",
        "FLOAT8E4M3FN",
        "FLOAT8E4M3FNUZ",
        "FLOAT8E5M2",
        "FLOAT8E5M2FNUZ",
        "UINT4",
        "INT4",
        "FLOAT4E2M1",
        "FLOAT8E8M0",
        "UINT2",
        "INT2",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("unknown ({code})"), |n| n.to_string())
}
