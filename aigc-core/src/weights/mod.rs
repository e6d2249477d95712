//! Weight files: named raw tensors read from safetensors, GGUF, ONNX and CTranslate2 files.
//!
//! Every reader memory-maps its file and hands out [`TensorView`]s that borrow the bytes
//! (quantized GGML blocks stay as they are). The [`TensorSource`] trait is what loaders and
//! tools use, whatever the format. Shapes are always outermost-first (row-major, as in PyTorch
//! and NumPy), including for GGUF, whose header lists dimensions innermost-first.

use std::borrow::Cow;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::quant::GgmlType;

pub(crate) mod bytes;
pub mod ct2;
pub mod gguf;
pub mod loader;
pub mod onnx;
pub mod safetensors;

pub use ct2::Ct2File;
pub use gguf::{GgufFile, MetadataValue};
pub use loader::{LoadOptions, WeightLoader, load_module};
pub use onnx::OnnxFile;
pub use safetensors::SafetensorsFile;

/// The element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// 64-bit float.
    F64,
    /// 32-bit float.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// Signed integers.
    I64,
    /// 32-bit signed integer.
    I32,
    /// 16-bit signed integer.
    I16,
    /// 8-bit signed integer.
    I8,
    /// Unsigned integers.
    U64,
    /// 32-bit unsigned integer.
    U32,
    /// 16-bit unsigned integer.
    U16,
    /// 8-bit unsigned integer.
    U8,
    /// One byte per boolean.
    Bool,
    /// A GGML block-quantized type (Q4_0, Q4_K, IQ4_XS, ...).
    Quant(GgmlType),
}

impl DType {
    /// Bytes per element, for the types that are not block-quantized.
    pub fn element_size(self) -> Option<usize> {
        Some(match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::Quant(_) => return None,
        })
    }

    /// The number of bytes that `shape` takes in this type, or an error when the count
    /// overflows or the innermost dimension is not a whole number of quantization blocks.
    pub fn byte_len(self, shape: &[usize]) -> Result<usize> {
        let overflow = || Error::invalid_argument("shape", format!("{shape:?} overflows"));
        let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(overflow)?;
        match self {
            DType::Quant(q) => {
                let inner = shape.last().copied().unwrap_or(1);
                if inner % q.block_size() != 0 {
                    return Err(Error::invalid_argument(
                        "shape",
                        format!(
                            "innermost dimension {inner} is not a multiple of {q}'s block size {}",
                            q.block_size()
                        ),
                    ));
                }
                (numel / q.block_size()).checked_mul(q.type_size()).ok_or_else(overflow)
            }
            other => {
                numel.checked_mul(other.element_size().expect("not quantized")).ok_or_else(overflow)
            }
        }
    }

    /// The conventional short name (`"F32"`, `"BF16"`, `"Q4_K"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::I16 => "I16",
            DType::I8 => "I8",
            DType::U64 => "U64",
            DType::U32 => "U32",
            DType::U16 => "U16",
            DType::U8 => "U8",
            DType::Bool => "BOOL",
            DType::Quant(q) => q.name(),
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Name, type and shape of a stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name in the file.
    pub name: String,
    /// Its element type.
    pub dtype: DType,
    /// Its shape, outermost dimension first.
    pub shape: Vec<usize>,
}

/// A stored tensor: its type, shape and bytes (little-endian, row-major; GGML blocks as stored).
#[derive(Debug, Clone)]
pub struct TensorView<'a> {
    /// The tensor's name in the file.
    pub name: Cow<'a, str>,
    /// Its element type.
    pub dtype: DType,
    /// Its shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// Its bytes: borrowed from the memory map when the format stores them raw.
    pub data: Cow<'a, [u8]>,
}

impl<'a> TensorView<'a> {
    /// Builds a view, checking that `data` holds exactly what `dtype` and `shape` need.
    pub fn new(
        name: impl Into<Cow<'a, str>>,
        dtype: DType,
        shape: Vec<usize>,
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<Self> {
        let (name, data) = (name.into(), data.into());
        let want =
            dtype.byte_len(&shape).map_err(|e| Error::tensor(name.as_ref(), e.to_string()))?;
        if want != data.len() {
            return Err(Error::tensor(
                name.as_ref(),
                format!("{dtype} {shape:?} needs {want} bytes, found {}", data.len()),
            ));
        }
        Ok(Self { name, dtype, shape, data })
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Name, type and shape, owned.
    pub fn info(&self) -> TensorInfo {
        TensorInfo { name: self.name.to_string(), dtype: self.dtype, shape: self.shape.clone() }
    }

    /// All values converted (or dequantized) to f32.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        self.to_f32_prefix(self.numel())
    }

    /// The first `count` values (in row-major order) converted to f32; only the blocks that
    /// hold them are decoded.
    pub fn to_f32_prefix(&self, count: usize) -> Result<Vec<f32>> {
        self.to_f32_range(0, count)
    }

    /// `count` values starting at element `start` (row-major), converted to f32; only the
    /// blocks that hold them are decoded. The range is clipped to the tensor.
    pub fn to_f32_range(&self, start: usize, count: usize) -> Result<Vec<f32>> {
        let start = start.min(self.numel());
        let end = start.saturating_add(count).min(self.numel());
        let err = |reason: String| Error::tensor(self.name.as_ref(), reason);
        let (bs, ts) = match self.dtype {
            DType::Quant(q) => (q.block_size(), q.type_size()),
            d => (1, d.element_size().expect("plain type")),
        };
        // Whole blocks covering [start, end).
        let (first, last) = (start / bs, end.div_ceil(bs));
        let bytes = &self.data[first * ts..last * ts];
        let mut out = Vec::with_capacity((last - first) * bs);
        macro_rules! conv {
            ($n:literal, $f:expr) => {
                out.extend(bytes.chunks_exact($n).map(|c| $f(c.try_into().unwrap())))
            };
        }
        match self.dtype {
            DType::F32 => conv!(4, f32::from_le_bytes),
            DType::F64 => conv!(8, |c| f64::from_le_bytes(c) as f32),
            DType::F16 => conv!(2, |c| f16::from_le_bytes(c).to_f32()),
            DType::BF16 => conv!(2, |c| bf16::from_le_bytes(c).to_f32()),
            DType::I64 => conv!(8, |c| i64::from_le_bytes(c) as f32),
            DType::I32 => conv!(4, |c| i32::from_le_bytes(c) as f32),
            DType::I16 => conv!(2, |c| i16::from_le_bytes(c) as f32),
            DType::I8 => conv!(1, |c: [u8; 1]| c[0] as i8 as f32),
            DType::U64 => conv!(8, |c| u64::from_le_bytes(c) as f32),
            DType::U32 => conv!(4, |c| u32::from_le_bytes(c) as f32),
            DType::U16 => conv!(2, |c| u16::from_le_bytes(c) as f32),
            DType::U8 | DType::Bool => conv!(1, |c: [u8; 1]| c[0] as f32),
            DType::Quant(q) => {
                out.resize((last - first) * bs, 0.0);
                crate::quant::dequantize(q, bytes, &mut out).map_err(|e| err(e.to_string()))?;
            }
        }
        let skip = start - first * bs;
        out.truncate(skip + (end - start));
        out.drain(..skip);
        Ok(out)
    }

    /// The tensor as a burn float tensor of rank `D` on `device`, converted to f32.
    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Result<Tensor<D>> {
        if self.shape.len() != D {
            return Err(Error::tensor(
                self.name.as_ref(),
                format!("has rank {} ({:?}), expected rank {D}", self.shape.len(), self.shape),
            ));
        }
        let data = TensorData::new(self.to_f32()?, self.shape.clone());
        Ok(Tensor::from_data(data, device))
    }
}

/// A file (or set of files) of named tensors.
pub trait TensorSource {
    /// Where the tensors come from, for messages (usually the file path).
    fn source_name(&self) -> String;

    /// The names of all tensors, in file order.
    fn tensor_names(&self) -> Vec<String>;

    /// Name, type and shape of one tensor, or `None` when absent.
    fn tensor_info(&self, name: &str) -> Option<TensorInfo>;

    /// One tensor's view; an error names the tensor when it is absent or unreadable.
    fn tensor(&self, name: &str) -> Result<TensorView<'_>>;

    /// The tensor's stored bytes as [`SharedBytes`] that outlive this reader, when the format
    /// keeps them raw in its map (GGUF); `None` otherwise.
    fn shared_bytes(&self, name: &str) -> Option<SharedBytes> {
        let _ = name;
        None
    }

    /// Whether a tensor of that name exists.
    fn contains(&self, name: &str) -> bool {
        self.tensor_info(name).is_some()
    }
}

/// A weight file of any supported format, chosen by its contents (magic bytes) and extension.
#[allow(clippy::large_enum_variant)] // one per open file; boxing buys nothing
pub enum WeightFile {
    /// A `.safetensors` file or a sharded set.
    Safetensors(SafetensorsFile),
    /// A GGUF file.
    Gguf(GgufFile),
    /// An ONNX model's initializers.
    Onnx(OnnxFile),
    /// A CTranslate2 `model.bin`.
    Ct2(Ct2File),
}

impl WeightFile {
    /// Opens `path`, recognising the format from its first bytes (GGUF, CTranslate2), its name
    /// (`.safetensors`, `model.safetensors.index.json`, `.onnx`) or a directory holding one.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            for candidate in ["model.safetensors.index.json", "model.safetensors"] {
                let p = path.join(candidate);
                if p.exists() {
                    return Ok(WeightFile::Safetensors(SafetensorsFile::open(p)?));
                }
            }
            if path.join("model.bin").exists() {
                return Ok(WeightFile::Ct2(Ct2File::open(path.join("model.bin"))?));
            }
            return Err(Error::unsupported(
                "weight directory",
                format!("{} holds no model.safetensors(.index.json) or model.bin", path.display()),
            ));
        }
        let mut magic = [0u8; 4];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let _ = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if &magic == b"GGUF" {
            Ok(WeightFile::Gguf(GgufFile::open(path)?))
        } else if name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json") {
            Ok(WeightFile::Safetensors(SafetensorsFile::open(path)?))
        } else if name.ends_with(".onnx") {
            Ok(WeightFile::Onnx(OnnxFile::open(path)?))
        } else if name.ends_with(".bin") && Ct2File::looks_like(path) {
            Ok(WeightFile::Ct2(Ct2File::open(path)?))
        } else {
            Err(Error::unsupported(
                "weight file",
                format!(
                    "{}: not GGUF, safetensors (.safetensors), ONNX (.onnx) or CTranslate2 (model.bin)",
                    path.display()
                ),
            ))
        }
    }

    /// The format's name for messages: `safetensors`, `GGUF`, `ONNX` or `CTranslate2`.
    pub fn format_name(&self) -> &'static str {
        match self {
            WeightFile::Safetensors(_) => "safetensors",
            WeightFile::Gguf(_) => "GGUF",
            WeightFile::Onnx(_) => "ONNX",
            WeightFile::Ct2(_) => "CTranslate2",
        }
    }

    /// The reader as a [`TensorSource`].
    pub fn as_source(&self) -> &dyn TensorSource {
        match self {
            WeightFile::Safetensors(f) => f,
            WeightFile::Gguf(f) => f,
            WeightFile::Onnx(f) => f,
            WeightFile::Ct2(f) => f,
        }
    }
}

/// The bytes behind a reader: a read-only memory map of a file, or a buffer in memory.
pub(crate) enum Storage {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Map(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// Bytes that keep their file's memory map (or buffer) alive: a tensor's data handed to a
/// layer without copying it, so that a quantized model costs its file size once in memory.
#[derive(Clone)]
pub struct SharedBytes {
    storage: std::sync::Arc<Storage>,
    start: usize,
    len: usize,
}

impl SharedBytes {
    pub(crate) fn new(storage: std::sync::Arc<Storage>, start: usize, len: usize) -> Self {
        assert!(start + len <= storage.len(), "a range inside the storage");
        Self { storage, start, len }
    }
}

impl std::ops::Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl From<Vec<u8>> for SharedBytes {
    fn from(v: Vec<u8>) -> Self {
        let len = v.len();
        Self { storage: std::sync::Arc::new(Storage::Owned(v)), start: 0, len }
    }
}

impl From<&[u8]> for SharedBytes {
    fn from(v: &[u8]) -> Self {
        v.to_vec().into()
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.len)
    }
}

/// Memory-maps a whole file read-only.
pub(crate) fn map_file(path: &Path) -> Result<Storage> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only; as with every memory-mapped reader, the file must not be
    // truncated by another process while it is open.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(Storage::Map(map))
}
