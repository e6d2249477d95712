//! GGUF files (versions 2 and 3): typed metadata, tensor infos and block-quantized data.
//!
//! Layout (little-endian): `"GGUF"`, `version: u32`, `tensor_count: u64`, `kv_count: u64`, the
//! metadata key-value pairs, the tensor infos (name, rank, dims innermost-first, ggml type,
//! offset), padding to `general.alignment` (default 32), then the tensor data. See
//! <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>.
//!
//! Everything in the header is validated against the file size before it is used: counts are
//! bounded by the bytes left, ranks by ggml's four dimensions, tensor extents by the data
//! section, offsets by the alignment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::bytes::ByteReader;
use super::{DType, Storage, TensorInfo, TensorSource, TensorView, map_file};
use crate::error::{Error, Result};
use crate::quant::GgmlType;

const FORMAT: &str = "GGUF";
/// ggml tensors have at most four dimensions (`GGML_MAX_DIMS`).
const MAX_DIMS: usize = 4;
/// Arrays nested deeper than this are rejected (real files nest at most once).
const MAX_ARRAY_DEPTH: usize = 8;
/// Alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// One value of the GGUF header's key-value metadata (`general.architecture`,
/// `llama.context_length`, `tokenizer.ggml.tokens`, ...), in the type the file stores it as.
/// [`as_i128`](Self::as_i128) and [`as_f64`](Self::as_f64) read any numeric type.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// `uint8`
    U8(u8),
    /// `int8`
    I8(i8),
    /// `uint16`
    U16(u16),
    /// `int16`
    I16(i16),
    /// `uint32`
    U32(u32),
    /// `int32`
    I32(i32),
    /// `uint64`
    U64(u64),
    /// `int64`
    I64(i64),
    /// `float32`
    F32(f32),
    /// `float64`
    F64(f64),
    /// `bool`
    Bool(bool),
    /// `string`
    String(String),
    /// `array`, stored by element type.
    Array(MetadataArray),
}

/// A metadata array, held as a vector of its element type.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataArray {
    /// `uint8[]`
    U8(Vec<u8>),
    /// `int8[]`
    I8(Vec<i8>),
    /// `uint16[]`
    U16(Vec<u16>),
    /// `int16[]`
    I16(Vec<i16>),
    /// `uint32[]`
    U32(Vec<u32>),
    /// `int32[]`
    I32(Vec<i32>),
    /// `uint64[]`
    U64(Vec<u64>),
    /// `int64[]`
    I64(Vec<i64>),
    /// `float32[]`
    F32(Vec<f32>),
    /// `float64[]`
    F64(Vec<f64>),
    /// `bool[]`
    Bool(Vec<bool>),
    /// `string[]`
    String(Vec<String>),
    /// An array of arrays.
    Array(Vec<MetadataArray>),
}

impl MetadataArray {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            MetadataArray::U8(v) => v.len(),
            MetadataArray::I8(v) => v.len(),
            MetadataArray::U16(v) => v.len(),
            MetadataArray::I16(v) => v.len(),
            MetadataArray::U32(v) => v.len(),
            MetadataArray::I32(v) => v.len(),
            MetadataArray::U64(v) => v.len(),
            MetadataArray::I64(v) => v.len(),
            MetadataArray::F32(v) => v.len(),
            MetadataArray::F64(v) => v.len(),
            MetadataArray::Bool(v) => v.len(),
            MetadataArray::String(v) => v.len(),
            MetadataArray::Array(v) => v.len(),
        }
    }

    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The GGUF name of the element type.
    pub fn element_type_name(&self) -> &'static str {
        match self {
            MetadataArray::U8(_) => "uint8",
            MetadataArray::I8(_) => "int8",
            MetadataArray::U16(_) => "uint16",
            MetadataArray::I16(_) => "int16",
            MetadataArray::U32(_) => "uint32",
            MetadataArray::I32(_) => "int32",
            MetadataArray::U64(_) => "uint64",
            MetadataArray::I64(_) => "int64",
            MetadataArray::F32(_) => "float32",
            MetadataArray::F64(_) => "float64",
            MetadataArray::Bool(_) => "bool",
            MetadataArray::String(_) => "string",
            MetadataArray::Array(_) => "array",
        }
    }
}

impl MetadataValue {
    /// The GGUF name of the value's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetadataValue::U8(_) => "uint8",
            MetadataValue::I8(_) => "int8",
            MetadataValue::U16(_) => "uint16",
            MetadataValue::I16(_) => "int16",
            MetadataValue::U32(_) => "uint32",
            MetadataValue::I32(_) => "int32",
            MetadataValue::U64(_) => "uint64",
            MetadataValue::I64(_) => "int64",
            MetadataValue::F32(_) => "float32",
            MetadataValue::F64(_) => "float64",
            MetadataValue::Bool(_) => "bool",
            MetadataValue::String(_) => "string",
            MetadataValue::Array(_) => "array",
        }
    }

    /// The value as an integer, whatever its integer type.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            MetadataValue::U8(v) => v.into(),
            MetadataValue::I8(v) => v.into(),
            MetadataValue::U16(v) => v.into(),
            MetadataValue::I16(v) => v.into(),
            MetadataValue::U32(v) => v.into(),
            MetadataValue::I32(v) => v.into(),
            MetadataValue::U64(v) => v.into(),
            MetadataValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as a float, from a float type.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(v.into()),
            MetadataValue::F64(v) => Some(v),
            _ => None,
        }
    }
}

impl std::fmt::Display for MetadataValue {
    /// Scalars as themselves; arrays as their type and length with the first few elements.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataValue::String(s) => write!(f, "{s:?}"),
            MetadataValue::Bool(b) => write!(f, "{b}"),
            MetadataValue::F32(v) => write!(f, "{v}"),
            MetadataValue::F64(v) => write!(f, "{v}"),
            MetadataValue::Array(a) => {
                write!(f, "[{}; {}]", a.element_type_name(), a.len())?;
                let preview: Vec<String> = match a {
                    MetadataArray::String(v) => {
                        v.iter().take(5).map(|s| format!("{s:?}")).collect()
                    }
                    MetadataArray::F32(v) => v.iter().take(5).map(|x| x.to_string()).collect(),
                    MetadataArray::I32(v) => v.iter().take(5).map(|x| x.to_string()).collect(),
                    MetadataArray::U32(v) => v.iter().take(5).map(|x| x.to_string()).collect(),
                    MetadataArray::Bool(v) => v.iter().take(5).map(|x| x.to_string()).collect(),
                    _ => Vec::new(),
                };
                if !preview.is_empty() {
                    write!(f, " {}", preview.join(", "))?;
                    if a.len() > preview.len() {
                        write!(f, ", ...")?;
                    }
                }
                Ok(())
            }
            other => write!(f, "{}", other.as_i128().expect("integer")),
        }
    }
}

/// A tensor's entry in the GGUF header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Dimensions as stored: innermost first (`ne[0]` is the row length).
    pub dims: Vec<u64>,
    /// The element or block type (`F32`, `F16`, `Q4_K`, ...), which fixes how `size` bytes
    /// decode.
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Size of the data in bytes.
    pub size: u64,
}

impl GgufTensorInfo {
    /// Shape outermost-first (the reverse of `dims`), as numpy and burn expect.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// The type as a [`DType`]: plain types map to plain variants, block types to `Quant`.
    pub fn dtype(&self) -> DType {
        ggml_dtype(self.ggml_type)
    }
}

/// Maps a GGML type to a [`DType`].
pub fn ggml_dtype(t: GgmlType) -> DType {
    match t {
        GgmlType::F32 => DType::F32,
        GgmlType::F16 => DType::F16,
        GgmlType::BF16 => DType::BF16,
        GgmlType::F64 => DType::F64,
        GgmlType::I8 => DType::I8,
        GgmlType::I16 => DType::I16,
        GgmlType::I32 => DType::I32,
        GgmlType::I64 => DType::I64,
        q => DType::Quant(q),
    }
}

/// A memory-mapped GGUF file: the header (version, key-value metadata, tensor entries) parsed
/// and checked when opened, tensor data read from the map only when a tensor is asked for
/// (through [`TensorSource`], quantized blocks included).
pub struct GgufFile {
    path: PathBuf,
    map: std::sync::Arc<Storage>,
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl GgufFile {
    /// Opens and validates a GGUF file. The tensor data is not read until asked for.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_storage(path.to_path_buf(), map_file(path)?)
    }

    /// Reads a GGUF file held in memory; `name` stands for the path in messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::from_storage(name.into(), Storage::Owned(bytes))
    }

    fn from_storage(path: PathBuf, map: Storage) -> Result<Self> {
        let header = parse(&map, &path)?;
        Ok(Self {
            path,
            map: std::sync::Arc::new(map),
            version: header.version,
            metadata_index: index(header.metadata.iter().map(|(k, _)| k.as_str())),
            metadata: header.metadata,
            tensor_index: index(header.tensors.iter().map(|t| t.name.as_str())),
            tensors: header.tensors,
            alignment: header.alignment,
            data_offset: header.data_offset,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The alignment of tensor data (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Where the tensor data section starts in the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// All metadata in file order.
    pub fn metadata(&self) -> &[(String, MetadataValue)] {
        &self.metadata
    }

    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    fn require(&self, key: &str) -> Result<&MetadataValue> {
        self.get(key).ok_or_else(|| self.meta_error(key, "is missing"))
    }

    fn meta_error(&self, key: &str, what: impl std::fmt::Display) -> Error {
        Error::format(&self.path, FORMAT, 0, format!("metadata `{key}` {what}"))
    }

    fn wrong_type(&self, key: &str, want: &str, v: &MetadataValue) -> Error {
        self.meta_error(key, format!("is {}, expected {want}", v.type_name()))
    }

    /// A string value; an error names the key when it is missing or not a string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.require(key)? {
            MetadataValue::String(s) => Ok(s),
            v => Err(self.wrong_type(key, "string", v)),
        }
    }

    /// An integer value of any integer type that fits in `u64`.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        let i = v.as_i128().ok_or_else(|| self.wrong_type(key, "an integer", v))?;
        u64::try_from(i).map_err(|_| self.meta_error(key, format!("= {i} is out of range")))
    }

    /// An integer value that fits in `u32`.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let i = self.get_u64(key)?;
        u32::try_from(i).map_err(|_| self.meta_error(key, format!("= {i} is out of range")))
    }

    /// An integer value that fits in `usize`.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        let i = self.get_u64(key)?;
        usize::try_from(i).map_err(|_| self.meta_error(key, format!("= {i} is out of range")))
    }

    /// A float value (float32 or float64).
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| self.wrong_type(key, "a float", v))
    }

    /// A float value as f32.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.get_f64(key).map(|v| v as f32)
    }

    /// A boolean value.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            MetadataValue::Bool(b) => Ok(*b),
            v => Err(self.wrong_type(key, "bool", v)),
        }
    }

    /// An array value.
    pub fn get_array(&self, key: &str) -> Result<&MetadataArray> {
        match self.require(key)? {
            MetadataValue::Array(a) => Ok(a),
            v => Err(self.wrong_type(key, "array", v)),
        }
    }

    /// An array of strings.
    pub fn get_string_array(&self, key: &str) -> Result<&[String]> {
        match self.get_array(key)? {
            MetadataArray::String(v) => Ok(v),
            a => {
                Err(self
                    .meta_error(key, format!("is {}[], expected string[]", a.element_type_name())))
            }
        }
    }

    /// `general.architecture` (`"llama"`, `"gemma3"`, ...).
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// Tensor infos in file order.
    pub fn tensor_infos(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// One tensor's header entry.
    pub fn tensor_entry(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    fn view<'s>(&'s self, t: &'s GgufTensorInfo) -> Result<TensorView<'s>> {
        // Extents were checked against the file when it was opened.
        let start = (self.data_offset + t.offset) as usize;
        let bytes = &self.map[start..start + t.size as usize];
        TensorView::new(t.name.as_str(), t.dtype(), t.shape(), bytes)
    }
}

impl TensorSource for GgufFile {
    fn source_name(&self) -> String {
        self.path.display().to_string()
    }

    fn tensor_names(&self) -> Vec<String> {
        self.tensors.iter().map(|t| t.name.clone()).collect()
    }

    fn tensor_info(&self, name: &str) -> Option<TensorInfo> {
        self.tensor_entry(name).map(|t| TensorInfo {
            name: t.name.clone(),
            dtype: t.dtype(),
            shape: t.shape(),
        })
    }

    fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let t = self
            .tensor_entry(name)
            .ok_or_else(|| Error::tensor(name, format!("not found in {}", self.path.display())))?;
        self.view(t)
    }

    fn shared_bytes(&self, name: &str) -> Option<super::SharedBytes> {
        let t = self.tensor_entry(name)?;
        // Extents were checked against the file when it was opened.
        let start = (self.data_offset + t.offset) as usize;
        Some(super::SharedBytes::new(self.map.clone(), start, t.size as usize))
    }
}

fn index<'a>(names: impl Iterator<Item = &'a str>) -> HashMap<String, usize> {
    names.enumerate().map(|(i, n)| (n.to_string(), i)).collect()
}

struct Header {
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<GgufTensorInfo>,
    alignment: u64,
    data_offset: u64,
}

fn parse(buf: &[u8], path: &Path) -> Result<Header> {
    let mut r = ByteReader::new(buf, path, FORMAT);
    let magic = r.bytes(4)?;
    if magic != b"GGUF" {
        return Err(r.error_at(0, format!("bad magic {magic:02x?}, expected \"GGUF\"")));
    }
    let version = r.u32()?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(Error::unsupported(
                "GGUF version",
                format!("{}: version 1 (32-bit counts) predates GGUF v2", path.display()),
            ));
        }
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return Err(Error::unsupported(
                "GGUF byte order",
                format!("{}: big-endian GGUF files are not supported", path.display()),
            ));
        }
        v => return Err(r.error_at(4, format!("unknown GGUF version {v}"))),
    }
    let tensor_count_raw = r.u64()?;
    let kv_count_raw = r.u64()?;
    // A key-value pair takes at least 8 (key length) + 4 (type) + 1 (smallest value) bytes, and
    // a tensor info at least 8 + 4 + 4 + 8; both are bounded by what the file can hold.
    let kv_count = r.count(kv_count_raw, 13, "metadata")?;
    let tensor_count = r.count(tensor_count_raw, 24, "tensor")?;

    let mut metadata = Vec::with_capacity(kv_count);
    let mut seen = HashMap::with_capacity(kv_count);
    for _ in 0..kv_count {
        let at = r.pos();
        let key = read_string(&mut r)?;
        if seen.insert(key.clone(), ()).is_some() {
            return Err(r.error_at(at, format!("duplicate metadata key `{key}`")));
        }
        let ty = r.u32()?;
        let value = read_value(&mut r, ty, 0)?;
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, MetadataValue::U32(a))) if a.is_power_of_two() => u64::from(*a),
        Some((_, v)) => {
            return Err(Error::format(
                path,
                FORMAT,
                0,
                format!(
                    "general.alignment must be a power-of-two uint32, found {} {v}",
                    v.type_name()
                ),
            ));
        }
    };

    let mut tensors = Vec::with_capacity(tensor_count);
    let mut names = HashMap::with_capacity(tensor_count);
    for _ in 0..tensor_count {
        let at = r.pos();
        let name = read_string(&mut r)?;
        let n_dims = r.u32()? as usize;
        if n_dims > MAX_DIMS {
            return Err(r.error_at(
                at,
                format!("tensor `{name}` has {n_dims} dimensions; ggml allows at most {MAX_DIMS}"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            dims.push(r.u64()?);
        }
        let type_at = r.pos();
        let type_id = r.u32()?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
            Error::unsupported(
                "GGML type",
                format!(
                    "{}: tensor `{name}` has unknown type id {type_id} (at byte {type_at})",
                    path.display()
                ),
            )
        })?;
        let offset = r.u64()?;
        let size = tensor_size(&dims, ggml_type)
            .map_err(|reason| r.error_at(at, format!("tensor `{name}`: {reason}")))?;
        if offset % alignment != 0 {
            return Err(r.error_at(at, format!("tensor `{name}` data offset {offset} is not a multiple of the alignment {alignment}")));
        }
        if names.insert(name.clone(), ()).is_some() {
            return Err(r.error_at(at, format!("duplicate tensor name `{name}`")));
        }
        tensors.push(GgufTensorInfo { name, dims, ggml_type, offset, size });
    }

    let data_offset = (r.pos() as u64).next_multiple_of(alignment);
    let file_len = buf.len() as u64;
    if data_offset > file_len {
        return Err(r.error(format!(
            "data section would start at {data_offset}, past the end of the {file_len}-byte file"
        )));
    }
    let data_len = file_len - data_offset;
    for t in &tensors {
        match t.offset.checked_add(t.size) {
            Some(end) if end <= data_len => {}
            _ => {
                return Err(Error::format(
                    path,
                    FORMAT,
                    data_offset.saturating_add(t.offset),
                    format!(
                        "tensor `{}` ({} bytes at data offset {}) extends past the end of the file ({} data bytes)",
                        t.name, t.size, t.offset, data_len
                    ),
                ));
            }
        }
    }
    Ok(Header { version, metadata, tensors, alignment, data_offset })
}

/// Bytes taken by a tensor, or why its dims are invalid.
fn tensor_size(dims: &[u64], t: GgmlType) -> std::result::Result<u64, String> {
    let numel = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| format!("dims {dims:?} overflow"))?;
    let inner = dims.first().copied().unwrap_or(1);
    if inner % t.block_size() as u64 != 0 {
        return Err(format!(
            "row length {inner} is not a multiple of {t}'s block size {}",
            t.block_size()
        ));
    }
    (numel / t.block_size() as u64)
        .checked_mul(t.type_size() as u64)
        .ok_or_else(|| format!("dims {dims:?} overflow"))
}

fn read_string(r: &mut ByteReader<'_>) -> Result<String> {
    let len = r.u64()?;
    Ok(r.str(len)?.to_owned())
}

// GGUF metadata value types (`gguf_type`).
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

fn read_bool(r: &mut ByteReader<'_>) -> Result<bool> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(r.error(format!("bool value {b} is neither 0 nor 1"))),
    }
}

fn read_value(r: &mut ByteReader<'_>, ty: u32, depth: usize) -> Result<MetadataValue> {
    Ok(match ty {
        T_U8 => MetadataValue::U8(r.u8()?),
        T_I8 => MetadataValue::I8(r.i8()?),
        T_U16 => MetadataValue::U16(r.u16()?),
        T_I16 => MetadataValue::I16(r.i16()?),
        T_U32 => MetadataValue::U32(r.u32()?),
        T_I32 => MetadataValue::I32(r.i32()?),
        T_F32 => MetadataValue::F32(r.f32()?),
        T_BOOL => MetadataValue::Bool(read_bool(r)?),
        T_STRING => MetadataValue::String(read_string(r)?),
        T_ARRAY => MetadataValue::Array(read_array(r, depth)?),
        T_U64 => MetadataValue::U64(r.u64()?),
        T_I64 => MetadataValue::I64(r.i64()?),
        T_F64 => MetadataValue::F64(r.f64()?),
        other => return Err(r.error(format!("unknown metadata value type {other}"))),
    })
}

fn read_array(r: &mut ByteReader<'_>, depth: usize) -> Result<MetadataArray> {
    if depth >= MAX_ARRAY_DEPTH {
        return Err(r.error(format!("metadata arrays nested deeper than {MAX_ARRAY_DEPTH}")));
    }
    let elem = r.u32()?;
    let raw = r.u64()?;
    let min_size = match elem {
        T_U8 | T_I8 | T_BOOL => 1,
        T_U16 | T_I16 => 2,
        T_U32 | T_I32 | T_F32 => 4,
        T_U64 | T_I64 | T_F64 | T_STRING => 8,
        T_ARRAY => 12,
        other => return Err(r.error(format!("unknown array element type {other}"))),
    };
    let n = r.count(raw, min_size, "array element")?;
    macro_rules! read_n {
        ($variant:ident, $read:expr) => {{
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push($read);
            }
            MetadataArray::$variant(v)
        }};
    }
    Ok(match elem {
        T_U8 => MetadataArray::U8(r.bytes(n)?.to_vec()),
        T_I8 => MetadataArray::I8(r.bytes(n)?.iter().map(|&b| b as i8).collect()),
        T_U16 => read_n!(U16, r.u16()?),
        T_I16 => read_n!(I16, r.i16()?),
        T_U32 => read_n!(U32, r.u32()?),
        T_I32 => read_n!(I32, r.i32()?),
        T_F32 => read_n!(F32, r.f32()?),
        T_BOOL => read_n!(Bool, read_bool(r)?),
        T_STRING => read_n!(String, read_string(r)?),
        // Each inner array is written as its own element type, count and elements.
        T_ARRAY => read_n!(Array, read_array(r, depth + 1)?),
        T_U64 => read_n!(U64, r.u64()?),
        T_I64 => read_n!(I64, r.i64()?),
        T_F64 => read_n!(F64, r.f64()?),
        _ => unreachable!("checked above"),
    })
}
