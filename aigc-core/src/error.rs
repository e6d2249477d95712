//! The error type of `aigc-core`.
//!
//! Every variant says what went wrong and where: the file, the byte offset, the tensor name or
//! the argument involved. Readers never panic on malformed input; they return one of these.

use std::path::{Path, PathBuf};

/// Errors returned by `aigc-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file does not follow its format: truncated, corrupt or inconsistent.
    #[error("{path}: malformed {format} at byte {offset}: {reason}")]
    Format {
        /// The file involved.
        path: PathBuf,
        /// The format being read (`"GGUF"`, `"safetensors"`, `"ONNX"`, `"CTranslate2"`, ...).
        format: &'static str,
        /// Byte offset in the file where the problem was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// A tensor is absent, misshaped or holds data that cannot be used as asked.
    #[error("tensor `{name}`: {reason}")]
    Tensor {
        /// The tensor's name in its file.
        name: String,
        /// What is wrong.
        reason: String,
    },

    /// Loading a module found tensors that are missing, unexpected or misshaped.
    #[error("{0}")]
    Load(#[from] LoadReport),

    /// A shape does not fit the operation.
    #[error("shape mismatch in {context}: expected {expected:?}, found {found:?}")]
    Shape {
        /// What was being done.
        context: String,
        /// The shape that was needed.
        expected: Vec<usize>,
        /// The shape that was given.
        found: Vec<usize>,
    },

    /// The input is well formed but uses something this library does not implement
    /// (an architecture, a quantization type, a data type, a format version).
    #[error("unsupported {what}: {detail}")]
    Unsupported {
        /// The kind of thing (`"GGML type"`, `"architecture"`, ...).
        what: &'static str,
        /// Which one, and where it was found.
        detail: String,
    },

    /// A caller-supplied argument is out of range or inconsistent.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A backend was asked for that this build does not include.
    #[error("backend `{backend}` is not compiled in: enable the cargo feature `{feature}`")]
    BackendNotCompiled {
        /// The requested backend.
        backend: String,
        /// The cargo feature that adds it.
        feature: &'static str,
    },

    /// A model file that is looked up by id is not installed.
    #[error("model `{id}` is not installed (looked for {path}); fetch it with `{command}`")]
    ModelMissing {
        /// The model id.
        id: String,
        /// Where it was expected.
        path: PathBuf,
        /// The command that fetches it.
        command: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }

    /// A format error in `path` at `offset`.
    pub fn format(
        path: impl AsRef<Path>,
        format: &'static str,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Format { path: path.as_ref().to_path_buf(), format, offset, reason: reason.into() }
    }

    /// A problem with the tensor `name`.
    pub fn tensor(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Tensor { name: name.into(), reason: reason.into() }
    }

    /// Something well formed that is not supported.
    pub fn unsupported(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Unsupported { what, detail: detail.into() }
    }

    /// [`Error::InvalidArgument`]: argument `name` is out of range or inconsistent, and
    /// `reason` says how (with the offending value).
    pub fn invalid_argument(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { name, reason: reason.into() }
    }
}

/// Everything that went wrong while filling a module from a weight file, reported at once.
///
/// A model that loads with a wrong tensor computes garbage silently; this report lists every
/// missing, unexpected and misshaped tensor so that one run shows the whole mismatch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The source being loaded from (usually a file path).
    pub source: String,
    /// Tensors the module needs that the source lacks.
    pub missing: Vec<String>,
    /// Tensors the source holds that the module does not use.
    pub unexpected: Vec<String>,
    /// Tensors whose shape differs: (name, shape the module needs in the file's layout, shape
    /// found in the file).
    pub misshaped: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Tensors that were found but could not be converted: (name, reason).
    pub unreadable: Vec<(String, String)>,
}

impl LoadReport {
    /// True when nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.misshaped.is_empty()
            && self.unreadable.is_empty()
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "loading weights from {} failed:", self.source)?;
        const SHOWN: usize = 20;
        // The return type is written out: with burn's `remote` features in the build, more
        // `From` conversions for `fmt::Error` exist and `?` alone cannot infer it.
        let list =
            |f: &mut std::fmt::Formatter<'_>, what: &str, names: &[String]| -> std::fmt::Result {
                if names.is_empty() {
                    return Ok(());
                }
                write!(f, "\n  {} {what}:", names.len())?;
                for n in names.iter().take(SHOWN) {
                    write!(f, " `{n}`")?;
                }
                if names.len() > SHOWN {
                    write!(f, " and {} more", names.len() - SHOWN)?;
                }
                Ok(())
            };
        list(f, "missing", &self.missing)?;
        list(f, "unexpected", &self.unexpected)?;
        if !self.misshaped.is_empty() {
            write!(f, "\n  {} misshaped:", self.misshaped.len())?;
            for (n, want, got) in self.misshaped.iter().take(SHOWN) {
                write!(f, " `{n}` (expected {want:?}, found {got:?})")?;
            }
        }
        if !self.unreadable.is_empty() {
            write!(f, "\n  {} unreadable:", self.unreadable.len())?;
            for (n, why) in self.unreadable.iter().take(SHOWN) {
                write!(f, " `{n}` ({why})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for LoadReport {}
