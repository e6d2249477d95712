//! safetensors files, single or sharded (`model.safetensors.index.json`), memory-mapped.
//!
//! The header is parsed and validated by the `safetensors` crate (Hugging Face's own reader:
//! bounded header size, offsets contiguous and matching each tensor's shape and dtype, data
//! ending exactly at the end of the file); views borrow the mapped bytes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype as StDtype, Metadata};

use super::{DType, Storage, TensorInfo, TensorSource, TensorView, map_file};
use crate::error::{Error, Result};

const FORMAT: &str = "safetensors";
/// The 8-byte little-endian header length that starts every file.
const N_LEN: usize = 8;

struct Shard {
    path: PathBuf,
    map: Storage,
    header_len: usize,
    meta: Metadata,
}

impl Shard {
    fn open(path: &Path) -> Result<Self> {
        Self::from_storage(path, map_file(path)?)
    }

    fn from_storage(path: &Path, map: Storage) -> Result<Self> {
        let (header_len, meta) = safetensors::SafeTensors::read_metadata(&map)
            .map_err(|e| Error::format(path, FORMAT, 0, e.to_string()))?;
        for (name, info) in meta.tensors() {
            if dtype(info.dtype, &name).is_err() {
                return Err(Error::unsupported(
                    "safetensors dtype",
                    format!("{}: tensor `{name}` is {:?}", path.display(), info.dtype),
                ));
            }
        }
        Ok(Self { path: path.to_path_buf(), map, header_len, meta })
    }
}

/// One safetensors file, or the shards of a sharded checkpoint read as one.
pub struct SafetensorsFile {
    source: PathBuf,
    shards: Vec<Shard>,
    /// Tensor name → shard index, in file order (shard by shard, by offset).
    names: Vec<(String, usize)>,
    index: HashMap<String, usize>,
}

impl SafetensorsFile {
    /// Opens a `.safetensors` file, or a sharded checkpoint from its
    /// `model.safetensors.index.json` (each shard is opened and checked against the index).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.to_string_lossy().ends_with(".json") {
            return Self::open_index(path);
        }
        let shard = Shard::open(path)?;
        let names = shard.meta.offset_keys().into_iter().map(|n| (n, 0)).collect();
        Ok(Self::build(path.to_path_buf(), vec![shard], names))
    }

    /// Reads one safetensors file held in memory; `name` stands for the path in messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        let name = name.into();
        let shard = Shard::from_storage(&name, Storage::Owned(bytes))?;
        let names = shard.meta.offset_keys().into_iter().map(|n| (n, 0)).collect();
        Ok(Self::build(name, vec![shard], names))
    }

    fn open_index(path: &Path) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: BTreeMap<String, String>,
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let index: Index = serde_json::from_str(&text).map_err(|e| {
            Error::format(path, "safetensors index", 0, format!("not a weight_map index: {e}"))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut files: Vec<&str> = index.weight_map.values().map(String::as_str).collect();
        files.sort_unstable();
        files.dedup();
        let mut shards = Vec::with_capacity(files.len());
        let mut names = Vec::new();
        for (i, file) in files.iter().enumerate() {
            if file.contains('/') || file.contains('\\') || *file == ".." {
                return Err(Error::format(
                    path,
                    "safetensors index",
                    0,
                    format!("shard name `{file}` must be a plain file name"),
                ));
            }
            let shard = Shard::open(&dir.join(file))?;
            names.extend(shard.meta.offset_keys().into_iter().map(|n| (n, i)));
            shards.push(shard);
        }
        // The index and the shards must agree: a tensor listed for one shard but stored in
        // another (or not at all) means a mixed-up download.
        for (name, shard_i) in &names {
            match index.weight_map.get(name) {
                Some(f) if f == files[*shard_i] => {}
                Some(f) => {
                    return Err(Error::tensor(
                        name,
                        format!("index says {f}, found in {}", files[*shard_i]),
                    ));
                }
                None => {
                    return Err(Error::tensor(
                        name,
                        format!("stored in {} but absent from {}", files[*shard_i], path.display()),
                    ));
                }
            }
        }
        if names.len() != index.weight_map.len() {
            let present: std::collections::HashSet<&str> =
                names.iter().map(|(n, _)| n.as_str()).collect();
            let missing = index
                .weight_map
                .keys()
                .find(|k| !present.contains(k.as_str()))
                .expect("count differs");
            return Err(Error::tensor(
                missing,
                format!("listed in {} but found in no shard", path.display()),
            ));
        }
        Ok(Self::build(path.to_path_buf(), shards, names))
    }

    fn build(source: PathBuf, shards: Vec<Shard>, names: Vec<(String, usize)>) -> Self {
        let index = names.iter().map(|(n, s)| (n.clone(), *s)).collect();
        Self { source, shards, names, index }
    }

    /// The `__metadata__` string map of the first shard, if any.
    pub fn metadata(&self) -> Option<&HashMap<String, String>> {
        self.shards.first().and_then(|s| s.meta.metadata().as_ref())
    }

    /// The paths of the files read.
    pub fn files(&self) -> Vec<&Path> {
        self.shards.iter().map(|s| s.path.as_path()).collect()
    }

    fn lookup(&self, name: &str) -> Option<(&Shard, &safetensors::tensor::TensorInfo)> {
        let shard = &self.shards[*self.index.get(name)?];
        shard.meta.info(name).map(|info| (shard, info))
    }
}

fn dtype(d: StDtype, name: &str) -> Result<DType> {
    Ok(match d {
        StDtype::F64 => DType::F64,
        StDtype::F32 => DType::F32,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::I64 => DType::I64,
        StDtype::I32 => DType::I32,
        StDtype::I16 => DType::I16,
        StDtype::I8 => DType::I8,
        StDtype::U64 => DType::U64,
        StDtype::U32 => DType::U32,
        StDtype::U16 => DType::U16,
        StDtype::U8 => DType::U8,
        StDtype::BOOL => DType::Bool,
        other => {
            return Err(Error::unsupported(
                "safetensors dtype",
                format!("{other:?} (tensor `{name}`)"),
            ));
        }
    })
}

impl TensorSource for SafetensorsFile {
    fn source_name(&self) -> String {
        self.source.display().to_string()
    }

    fn tensor_names(&self) -> Vec<String> {
        self.names.iter().map(|(n, _)| n.clone()).collect()
    }

    fn tensor_info(&self, name: &str) -> Option<TensorInfo> {
        let (_, info) = self.lookup(name)?;
        // Every dtype was checked when the file was opened.
        let dtype = dtype(info.dtype, name).ok()?;
        Some(TensorInfo { name: name.to_string(), dtype, shape: info.shape.clone() })
    }

    fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let (shard, info) = self.lookup(name).ok_or_else(|| {
            Error::tensor(name, format!("not found in {}", self.source.display()))
        })?;
        let start = N_LEN + shard.header_len;
        let (s, e) = info.data_offsets;
        // `read_metadata` checked that the offsets are contiguous and end at the file's end.
        TensorView::new(
            name.to_string(),
            dtype(info.dtype, name)?,
            info.shape.clone(),
            &shard.map[start + s..start + e],
        )
    }
}
