//! CTranslate2 `model.bin` files: named variables with a shape, a type and raw bytes.
//!
//! The container is written by `ModelSpec._serialize` in the `ctranslate2` Python package and
//! read by `Model::load` in CTranslate2's `src/models/model.cc`. All integers are
//! little-endian:
//!
//! ```text
//! u32 binary_version                      1 ..= 6 (6 is current)
//! if version >= 2: string spec_name, u32 spec_revision
//! u32 variable_count
//! per variable:
//!   string name
//!   u8 rank, then rank x u32 dims         outermost first
//!   version >= 4: u8 type_id, u32 byte_count
//!   version <  4: u8 item_size, u32 element_count   (4: f32, 2: i16, 1: i8)
//!   byte_count raw bytes                  row-major, no alignment padding
//! if version >= 3: u32 alias_count, then per alias: string alias, string target
//!
//! string = u16 length (including a trailing NUL) + bytes + NUL
//! type_id: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16
//! ```
//!
//! Quantized models store int8 (or int16) weights next to a float `<name>_scale` variable; they
//! are exposed as stored. Like CTranslate2, an alias `a -> t` also makes `a_scale` an alias of
//! `t_scale` when that variable exists, so tied quantized weights find their scale.
//!
//! ```no_run
//! use aigc_core::weights::{Ct2File, TensorSource};
//! let model = Ct2File::open("whisper-tiny-en/model.bin")?;
//! let qkv = model.tensor("decoder/layer_0/self_attention/linear_0/weight")?;
//! println!("{} {:?} {}", qkv.name, qkv.shape, qkv.dtype);
//! # Ok::<(), aigc_core::Error>(())
//! ```

use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::bytes::ByteReader;
use super::{DType, Storage, TensorInfo, TensorSource, TensorView, map_file};
use crate::error::{Error, Result};

/// The format name used in errors.
const FORMAT: &str = "CTranslate2";

/// The newest binary version this reader knows (the one the `ctranslate2` package writes).
pub const CURRENT_BINARY_VERSION: u32 = 6;

/// The largest binary version [`Ct2File::looks_like`] accepts as plausible: a newer file is
/// still recognised as CTranslate2, so that `open` can say its version is unsupported.
const PLAUSIBLE_VERSION: u32 = 255;

/// One stored variable: where its bytes lie in the map.
#[derive(Debug, Clone)]
struct Variable {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    data: Range<usize>,
}

/// A memory-mapped CTranslate2 `model.bin`.
///
/// Variables are listed in file order, then aliases (file order), then the implied `_scale`
/// aliases; an alias reads its target's bytes under its own name.
pub struct Ct2File {
    path: PathBuf,
    map: Storage,
    version: u32,
    spec_name: String,
    spec_revision: u32,
    variables: Vec<Variable>,
    /// `(alias, target variable)`, the stored ones first, then the implied `_scale` ones.
    aliases: Vec<(String, String)>,
    /// The number of aliases stored in the file (the rest of `aliases` are implied).
    stored_aliases: usize,
    /// Every name (variable or alias) to its index in `variables`.
    index: HashMap<String, usize>,
}

impl Ct2File {
    /// Memory-maps and indexes a CTranslate2 `model.bin`, checking every header field against
    /// the file size. Tensor bytes are not read until asked for.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_storage(path.to_path_buf(), map_file(path)?)
    }

    /// Reads a `model.bin` held in memory; `name` stands for the path in messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::from_storage(name.into(), Storage::Owned(bytes))
    }

    fn from_storage(path: PathBuf, map: Storage) -> Result<Self> {
        let p = parse(&map, &path)?;
        Ok(Self {
            path,
            map,
            version: p.version,
            spec_name: p.spec_name,
            spec_revision: p.spec_revision,
            variables: p.variables,
            aliases: p.aliases,
            stored_aliases: p.stored_aliases,
            index: p.index,
        })
    }

    /// The file's path (or the name given to [`Ct2File::from_bytes`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `path` starts like a CTranslate2 model: a plausible binary version followed by
    /// a NUL-terminated spec name (version 2 and later) or a variable count and a first
    /// NUL-terminated variable name (version 1). Reads at most a few hundred bytes.
    pub fn looks_like(path: &Path) -> bool {
        let mut head = Vec::with_capacity(512);
        let Ok(file) = std::fs::File::open(path) else { return false };
        if file.take(512).read_to_end(&mut head).is_err() {
            return false;
        }
        looks_like_bytes(&head)
    }

    /// The binary version (6 for files written by current `ctranslate2` releases).
    pub fn binary_version(&self) -> u32 {
        self.version
    }

    /// The model specification's name (`"WhisperSpec"`, `"TransformerSpec"`, ...); empty for
    /// version 1 files, which do not store it.
    pub fn spec_name(&self) -> &str {
        &self.spec_name
    }

    /// The specification's revision (1 for version 1 files, as CTranslate2 assumes).
    pub fn spec_revision(&self) -> u32 {
        self.spec_revision
    }

    /// The aliases as `(alias, target)` pairs: those stored in the file, in file order, then
    /// the implied `<alias>_scale -> <target>_scale` ones.
    pub fn aliases(&self) -> &[(String, String)] {
        &self.aliases
    }

    /// Header facts for an `inspect` tool: version, spec name and revision, counts, bytes per
    /// dtype.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("format".to_string(), FORMAT.to_string()),
            ("binary_version".to_string(), self.version.to_string()),
            ("spec_name".to_string(), self.spec_name.clone()),
            ("spec_revision".to_string(), self.spec_revision.to_string()),
            ("variables".to_string(), self.variables.len().to_string()),
            ("aliases".to_string(), self.stored_aliases.to_string()),
            (
                "implied_scale_aliases".to_string(),
                (self.aliases.len() - self.stored_aliases).to_string(),
            ),
        ];
        let mut by_dtype: Vec<(DType, usize, usize)> = Vec::new();
        for v in &self.variables {
            match by_dtype.iter_mut().find(|(d, _, _)| *d == v.dtype) {
                Some((_, n, bytes)) => {
                    *n += 1;
                    *bytes += v.data.len();
                }
                None => by_dtype.push((v.dtype, 1, v.data.len())),
            }
        }
        for (dtype, n, bytes) in by_dtype {
            out.push((format!("dtype.{dtype}"), format!("{n} variables, {bytes} bytes")));
        }
        out
    }

    fn variable(&self, name: &str) -> Option<&Variable> {
        self.index.get(name).map(|&i| &self.variables[i])
    }
}

impl TensorSource for Ct2File {
    fn source_name(&self) -> String {
        self.path.display().to_string()
    }

    fn tensor_names(&self) -> Vec<String> {
        self.variables
            .iter()
            .map(|v| v.name.clone())
            .chain(self.aliases.iter().map(|(a, _)| a.clone()))
            .collect()
    }

    fn tensor_info(&self, name: &str) -> Option<TensorInfo> {
        let v = self.variable(name)?;
        Some(TensorInfo { name: name.to_string(), dtype: v.dtype, shape: v.shape.clone() })
    }

    fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        // The index's own key lends the view a name that lives as long as the file.
        let (key, &i) = self
            .index
            .get_key_value(name)
            .ok_or_else(|| Error::tensor(name, format!("absent from {}", self.path.display())))?;
        let v = &self.variables[i];
        // The range was checked against the map at open; `get` keeps this panic-free anyway.
        let data = self
            .map
            .get(v.data.clone())
            .ok_or_else(|| Error::tensor(name, "data range lies outside the file"))?;
        TensorView::new(key.as_str(), v.dtype, v.shape.clone(), data)
    }
}

/// What `open` learns from the bytes; the path and map are added by the caller.
struct Parsed {
    version: u32,
    spec_name: String,
    spec_revision: u32,
    variables: Vec<Variable>,
    aliases: Vec<(String, String)>,
    stored_aliases: usize,
    index: HashMap<String, usize>,
}

/// The type of a variable in files of version 4 and later, from CTranslate2's `DataType`
/// (the order of `_dtype_to_type_id` in `model_spec.py`).
fn dtype_from_id(id: u8) -> Option<DType> {
    Some(match id {
        0 => DType::F32,
        1 => DType::I8,
        2 => DType::I16,
        3 => DType::I32,
        4 => DType::F16,
        5 => DType::BF16,
        _ => return None,
    })
}

/// The type of a variable in files before version 4, which stored only the item size
/// (CTranslate2's `get_dtype_from_item_size`).
fn dtype_from_item_size(size: u8) -> Option<DType> {
    Some(match size {
        4 => DType::F32,
        2 => DType::I16,
        1 => DType::I8,
        _ => return None,
    })
}

/// Reads a string: a u16 length that counts a trailing NUL, then the bytes and the NUL.
fn read_string<'a>(r: &mut ByteReader<'a>, what: &str) -> Result<&'a str> {
    let at = r.pos();
    let len = r.u16()? as usize;
    if len == 0 {
        return Err(r.error_at(at, format!("{what} has length 0 (no room for its NUL)")));
    }
    let bytes = r.bytes(len)?;
    let (text, nul) = bytes.split_at(len - 1);
    if nul != [0] || text.contains(&0) {
        return Err(r.error_at(at, format!("{what} is not one NUL-terminated string")));
    }
    std::str::from_utf8(text).map_err(|e| r.error_at(at + 2, format!("{what} is not UTF-8: {e}")))
}

/// Indexes the variables and aliases of a whole file held in `buf`.
fn parse(buf: &[u8], path: &Path) -> Result<Parsed> {
    let mut r = ByteReader::new(buf, path, FORMAT);
    let version = r.u32()?;
    if version == 0 {
        return Err(r.error_at(0, "binary version 0 does not exist"));
    }
    if version > CURRENT_BINARY_VERSION {
        return Err(Error::unsupported(
            "CTranslate2 binary version",
            format!(
                "{}: version {version}; this reader knows versions 1 to {CURRENT_BINARY_VERSION}",
                path.display()
            ),
        ));
    }
    let (spec_name, spec_revision) = if version >= 2 {
        let name = read_string(&mut r, "the spec name")?.to_string();
        (name, r.u32()?)
    } else {
        (String::new(), 1)
    };

    // Each variable takes at least a 3-byte name, a rank byte, a type byte and a u32 count.
    const MIN_VARIABLE_BYTES: usize = 3 + 1 + 1 + 4;
    let raw_count = r.u32()?;
    let count = r.count(raw_count.into(), MIN_VARIABLE_BYTES, "variable")?;
    let mut variables = Vec::with_capacity(count);
    let mut index = HashMap::with_capacity(count);
    for _ in 0..count {
        let at = r.pos();
        let name = read_string(&mut r, "a variable name")?.to_string();
        let rank = r.u8()? as usize;
        // The dims are read one by one, so a large rank fails on the bytes left.
        let mut shape = Vec::with_capacity(rank.min(r.remaining() / 4));
        for _ in 0..rank {
            shape.push(r.u32()? as usize);
        }
        let type_at = r.pos();
        let (dtype, byte_count) = if version >= 4 {
            let id = r.u8()?;
            let dtype = dtype_from_id(id).ok_or_else(|| {
                r.error_at(type_at, format!("variable `{name}` has unknown type id {id}"))
            })?;
            (dtype, r.u32()? as usize)
        } else {
            let size = r.u8()?;
            let dtype = dtype_from_item_size(size).ok_or_else(|| {
                r.error_at(type_at, format!("variable `{name}` has unknown item size {size}"))
            })?;
            let elements = r.u32()? as usize;
            let bytes = elements.checked_mul(size as usize).ok_or_else(|| {
                r.error_at(type_at, format!("variable `{name}`: {elements} elements overflow"))
            })?;
            (dtype, bytes)
        };
        let want = dtype
            .byte_len(&shape)
            .map_err(|_| r.error_at(at, format!("variable `{name}`: shape {shape:?} overflows")))?;
        if want != byte_count {
            return Err(r.error_at(
                type_at,
                format!(
                    "variable `{name}`: {dtype} {shape:?} needs {want} bytes, the header says \
                     {byte_count}"
                ),
            ));
        }
        let start = r.pos();
        r.skip(byte_count)?;
        if index.insert(name.clone(), variables.len()).is_some() {
            return Err(r.error_at(at, format!("variable `{name}` appears twice")));
        }
        variables.push(Variable { name, dtype, shape, data: start..start + byte_count });
    }

    let mut aliases = Vec::new();
    if version >= 3 {
        // Each alias takes two strings of at least 3 bytes.
        let raw = r.u32()?;
        let n = r.count(raw.into(), 6, "alias")?;
        aliases.reserve(n);
        for _ in 0..n {
            let at = r.pos();
            let alias = read_string(&mut r, "an alias name")?.to_string();
            let target = read_string(&mut r, "an alias target")?.to_string();
            // CTranslate2 resolves targets against what is registered so far (variables and
            // earlier aliases); its writer only ever aliases stored variables.
            let Some(&i) = index.get(&target) else {
                return Err(
                    r.error_at(at, format!("alias `{alias}` names an absent variable `{target}`"))
                );
            };
            if index.insert(alias.clone(), i).is_some() {
                return Err(r.error_at(at, format!("alias `{alias}` reuses an existing name")));
            }
            aliases.push((alias, target));
        }
    }
    if !r.is_empty() {
        return Err(r.error(format!("{} unexpected bytes after the last alias", r.remaining())));
    }
    let stored_aliases = aliases.len();
    // CTranslate2 also aliases each alias's quantization scale (`register_variable_alias`).
    for k in 0..stored_aliases {
        let (alias, target) = &aliases[k];
        let (alias_scale, target_scale) = (format!("{alias}_scale"), format!("{target}_scale"));
        if let Some(&i) = index.get(&target_scale)
            && !index.contains_key(&alias_scale)
        {
            index.insert(alias_scale.clone(), i);
            aliases.push((alias_scale, target_scale));
        }
    }
    Ok(Parsed { version, spec_name, spec_revision, variables, aliases, stored_aliases, index })
}

/// The header check behind [`Ct2File::looks_like`], on the first bytes of a file.
fn looks_like_bytes(head: &[u8]) -> bool {
    let r = |at: usize, n: usize| head.get(at..at.checked_add(n)?);
    let u32_at = |at| r(at, 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let u16_at = |at| r(at, 2).map(|b| u16::from_le_bytes(b.try_into().expect("2 bytes")) as usize);
    // A NUL-terminated printable string at `at`, as far as the head shows it.
    let string_at = |at: usize| -> bool {
        let Some(len) = u16_at(at) else { return false };
        if len == 0 {
            return false;
        }
        let body = &head[(at + 2).min(head.len())..];
        let shown = &body[..body.len().min(len)];
        let printable = |b: &u8| b.is_ascii_graphic() || *b == b' ' || *b >= 0x80;
        match shown.split_last() {
            // The whole string is visible: text then NUL.
            Some((&0, text)) if shown.len() == len => text.iter().all(printable),
            // Only part of a long string is visible: it must be text so far.
            Some(_) if shown.len() < len => shown.iter().all(printable),
            _ => false,
        }
    };
    match u32_at(0) {
        Some(1) => u32_at(4).is_some() && string_at(8),
        Some(v) if (2..=PLAUSIBLE_VERSION).contains(&v) => string_at(4),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sniffing() {
        let mut v6 = 6u32.to_le_bytes().to_vec();
        v6.extend(12u16.to_le_bytes());
        v6.extend(b"WhisperSpec\0");
        v6.extend(3u32.to_le_bytes());
        assert!(looks_like_bytes(&v6));
        assert!(!looks_like_bytes(b"GGUF\x03\0\0\0"));
        assert!(!looks_like_bytes(&[]));
        let mut bad = v6.clone();
        bad[6 + 11] = b'x'; // no NUL
        assert!(!looks_like_bytes(&bad));
    }
}
