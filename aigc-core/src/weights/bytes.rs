//! A bounds-checked little-endian cursor shared by the binary readers.
//!
//! Every read checks the remaining length first and reports the file and byte offset on
//! failure, so that no header field can index past the end of the buffer.

use std::path::Path;

use crate::error::{Error, Result};

/// A cursor over a byte slice that never reads past its end.
pub(crate) struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
    format: &'static str,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(buf: &'a [u8], path: &'a Path, format: &'static str) -> Self {
        Self { buf, pos: 0, path, format }
    }

    /// The current position: the file offset of the next byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// An error at the current offset.
    pub(crate) fn error(&self, reason: impl Into<String>) -> Error {
        Error::format(self.path, self.format, self.pos as u64, reason)
    }

    /// An error at a given position.
    pub(crate) fn error_at(&self, pos: usize, reason: impl Into<String>) -> Error {
        Error::format(self.path, self.format, pos as u64, reason)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(format!("needs {n} bytes but only {} remain", self.remaining())));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Bytes whose length is a `u64` read from the file; checked before any use.
    pub(crate) fn bytes_u64(&mut self, n: u64) -> Result<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| self.error(format!("length {n} is too large")))?;
        self.bytes(n)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.bytes(N)?;
        Ok(b.try_into().expect("length checked"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn i8(&mut self) -> Result<i8> {
        Ok(self.u8()? as i8)
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub(crate) fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    pub(crate) fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A count read from the file, checked against the bytes left: each counted item takes at
    /// least `min_item_bytes`, so a count larger than `remaining / min_item_bytes` is corrupt.
    /// This keeps a header field from sizing an allocation.
    pub(crate) fn count(&mut self, raw: u64, min_item_bytes: usize, what: &str) -> Result<usize> {
        let limit = self.remaining() / min_item_bytes.max(1);
        match usize::try_from(raw) {
            Ok(n) if n <= limit => Ok(n),
            _ => Err(self.error(format!(
                "{what} count {raw} cannot fit in the {} bytes left",
                self.remaining()
            ))),
        }
    }

    /// A UTF-8 string of `len` bytes.
    pub(crate) fn str(&mut self, len: u64) -> Result<&'a str> {
        let start = self.pos;
        let b = self.bytes_u64(len)?;
        std::str::from_utf8(b)
            .map_err(|e| self.error_at(start, format!("invalid UTF-8 string: {e}")))
    }
}
