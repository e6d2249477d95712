//! A zero-copy reader of the protobuf wire format, for the part of it that ONNX files use.
//!
//! ONNX models are serialized `ModelProto` messages. Rather than generate code from
//! `onnx.proto` (which would need `protoc` or a protobuf crate at build time), this module reads
//! the wire format directly: a message is a sequence of `(field number, wire type, value)`
//! records, and length-delimited values (strings, bytes, nested messages, packed arrays) are
//! handed out as slices of the memory map, never copied.
//!
//! Every length is checked against the bytes that remain before anything is sliced, and errors
//! carry the absolute byte offset in the file, so corrupt input gives an error, never a panic.

/// A problem found while reading, at an absolute byte offset in the file. `OnnxFile::open`
/// turns it into [`crate::Error::Format`] with the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError {
    /// Where the problem is, counted from the start of the file.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

pub(crate) type WireResult<T> = std::result::Result<T, WireError>;

/// An error at `offset`.
pub(crate) fn wire_error(offset: usize, reason: impl Into<String>) -> WireError {
    WireError { offset, reason: reason.into() }
}

/// The longest a varint may be: ten 7-bit groups hold 64 bits.
const MAX_VARINT_LEN: usize = 10;

/// A field's value, as the wire type encodes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    /// Wire type 0: an integer of up to 64 bits (int32, int64, uint64, bool, enum).
    Varint(u64),
    /// Wire type 1: eight little-endian bytes (double, fixed64); `Field::value_range` has them.
    Fixed64,
    /// Wire type 5: four little-endian bytes (float, fixed32); `Field::value_range` has them.
    Fixed32,
    /// Wire type 2: a length-delimited slice (string, bytes, message, packed array).
    Len(Span<'a>),
}

impl Value<'_> {
    /// The wire type's name, for messages.
    pub(crate) fn wire_name(&self) -> &'static str {
        match self {
            Value::Varint(_) => "varint",
            Value::Fixed64 => "fixed64",
            Value::Fixed32 => "fixed32",
            Value::Len(_) => "length-delimited",
        }
    }
}

/// A slice of the file together with its absolute offset, so that anything read from it can
/// report where it is, and so that its position can be kept (as a range) after parsing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// The absolute offset of `bytes[0]` in the file.
    pub start: usize,
}

impl<'a> Span<'a> {
    /// The range this slice covers in the file.
    pub(crate) fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.bytes.len()
    }

    /// The bytes as UTF-8 text.
    pub(crate) fn str(&self, what: &str) -> WireResult<&'a str> {
        std::str::from_utf8(self.bytes)
            .map_err(|e| wire_error(self.start, format!("{what} is not valid UTF-8: {e}")))
    }

    /// A reader of the fields of the message held in this slice.
    pub(crate) fn message(&self) -> Message<'a> {
        Message { span: *self, pos: 0 }
    }
}

/// One field of a message.
#[derive(Debug, Clone)]
pub(crate) struct Field<'a> {
    /// The field number from `onnx.proto`.
    pub number: u32,
    /// The value.
    pub value: Value<'a>,
    /// The absolute offset of the field's key, for messages.
    pub offset: usize,
    /// Where the value's bytes lie in the file: the encoded varint or fixed value, or the
    /// payload of a length-delimited field. Kept so that typed tensor data can be decoded later.
    pub value_range: std::ops::Range<usize>,
}

impl<'a> Field<'a> {
    /// An error naming this field's offset.
    pub(crate) fn error(&self, reason: impl Into<String>) -> WireError {
        wire_error(self.offset, reason)
    }

    fn wrong_type(&self, what: &str, want: &str) -> WireError {
        self.error(format!(
            "{what} (field {}) should be {want}, found {}",
            self.number,
            self.value.wire_name()
        ))
    }

    /// The value of a varint field.
    pub(crate) fn varint(&self, what: &str) -> WireResult<u64> {
        match self.value {
            Value::Varint(v) => Ok(v),
            _ => Err(self.wrong_type(what, "a varint")),
        }
    }

    /// The value of an `int64` field (two's complement in the varint).
    pub(crate) fn int64(&self, what: &str) -> WireResult<i64> {
        self.varint(what).map(|v| v as i64)
    }

    /// The value of an `int32` (or enum) field: protobuf sign-extends negative int32 values to
    /// 64 bits, so a value outside the i32 range is corrupt.
    pub(crate) fn int32(&self, what: &str) -> WireResult<i32> {
        let v = self.varint(what)? as i64;
        i32::try_from(v).map_err(|_| self.error(format!("{what} {v} is out of the int32 range")))
    }

    /// The slice of a length-delimited field.
    pub(crate) fn span(&self, what: &str) -> WireResult<Span<'a>> {
        match self.value {
            Value::Len(s) => Ok(s),
            _ => Err(self.wrong_type(what, "length-delimited")),
        }
    }

    /// The text of a `string` field.
    pub(crate) fn str(&self, what: &str) -> WireResult<&'a str> {
        self.span(what)?.str(what)
    }
}

/// A cursor over the fields of one message.
#[derive(Debug, Clone)]
pub(crate) struct Message<'a> {
    span: Span<'a>,
    pos: usize,
}

impl<'a> Message<'a> {
    /// A reader of the message that fills `bytes`, which start at absolute offset `start`.
    pub(crate) fn new(bytes: &'a [u8], start: usize) -> Self {
        Span { bytes, start }.message()
    }

    fn offset(&self) -> usize {
        self.span.start + self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> WireResult<&'a [u8]> {
        let left = self.span.bytes.len() - self.pos;
        if n > left {
            return Err(wire_error(
                self.offset(),
                format!("{what} needs {n} bytes but the enclosing message has {left} left"),
            ));
        }
        let out = &self.span.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn varint(&mut self) -> WireResult<u64> {
        let start = self.offset();
        let (value, len) = decode_varint(&self.span.bytes[self.pos..])
            .map_err(|reason| wire_error(start, reason))?;
        self.pos += len;
        Ok(value)
    }

    /// The next field, or `None` at the end of the message. Groups (wire types 3 and 4, long
    /// deprecated and absent from `onnx.proto`) and the undefined wire types 6 and 7 are errors.
    pub(crate) fn next_field(&mut self) -> WireResult<Option<Field<'a>>> {
        if self.pos == self.span.bytes.len() {
            return Ok(None);
        }
        let offset = self.offset();
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(wire_error(offset, format!("invalid field number {number}")));
        }
        let number = number as u32;
        let value_start = self.offset();
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8, "a fixed64 value")?;
                Value::Fixed64
            }
            2 => {
                let len_at = self.offset();
                let len = self.varint()?;
                let len = usize::try_from(len)
                    .map_err(|_| wire_error(len_at, format!("length {len} is too large")))?;
                let start = self.offset();
                let bytes = self.take(len, "a length-delimited field")?;
                Value::Len(Span { bytes, start })
            }
            5 => {
                self.take(4, "a fixed32 value")?;
                Value::Fixed32
            }
            3 | 4 => {
                return Err(wire_error(
                    offset,
                    format!(
                        "field {number} is a group (wire type {}), which ONNX never uses",
                        key & 7
                    ),
                ));
            }
            t => {
                return Err(wire_error(offset, format!("invalid wire type {t} in field {number}")));
            }
        };
        let value_range = match value {
            Value::Len(s) => s.range(),
            _ => value_start..self.offset(),
        };
        Ok(Some(Field { number, value, offset, value_range }))
    }
}

/// Decodes one varint from the front of `bytes`: its value and its length in bytes.
pub(crate) fn decode_varint(bytes: &[u8]) -> std::result::Result<(u64, usize), String> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(MAX_VARINT_LEN).enumerate() {
        // The tenth byte may only contribute the 64th bit.
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            return Err("varint overflows 64 bits".into());
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if bytes.len() < MAX_VARINT_LEN {
        Err("truncated varint".into())
    } else {
        Err("varint longer than 10 bytes".into())
    }
}

/// Counts the varints packed in `span`, checking that each is well formed and that the last
/// one ends exactly at the end of the slice.
pub(crate) fn count_varints(span: Span<'_>) -> WireResult<usize> {
    let mut pos = 0;
    let mut n = 0;
    while pos < span.bytes.len() {
        let (_, len) =
            decode_varint(&span.bytes[pos..]).map_err(|r| wire_error(span.start + pos, r))?;
        pos += len;
        n += 1;
    }
    Ok(n)
}

/// An iterator over the varints packed in a slice that [`count_varints`] has checked; it stops
/// at the first malformed one (which a checked slice does not have).
pub(crate) fn varints(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let (v, len) = decode_varint(bytes.get(pos..)?).ok()?;
        pos += len;
        Some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        assert_eq!(decode_varint(&[0x00]), Ok((0, 1)));
        assert_eq!(decode_varint(&[0xac, 0x02]), Ok((300, 2)));
        // -1 as int64: nine 0xff then 0x01.
        let mut minus_one = vec![0xff; 9];
        minus_one.push(0x01);
        assert_eq!(decode_varint(&minus_one), Ok((u64::MAX, 10)));
        minus_one[9] = 0x02;
        assert!(decode_varint(&minus_one).is_err());
        assert!(decode_varint(&[0x80, 0x80]).is_err());
        assert!(decode_varint(&[0x80; 11]).is_err());
        assert!(decode_varint(&[]).is_err());
    }

    #[test]
    fn fields_are_bounds_checked() {
        // Field 1, length-delimited, claims 5 bytes but has 2.
        let mut m = Message::new(&[0x0a, 0x05, 1, 2], 0);
        assert!(m.next_field().is_err());
        // Group start.
        let mut m = Message::new(&[0x0b], 0);
        assert!(m.next_field().is_err());
        // Field 0.
        let mut m = Message::new(&[0x00, 0x00], 0);
        assert!(m.next_field().is_err());
        // A fixed32 and a varint.
        let mut m = Message::new(&[0x0d, 1, 0, 0, 0, 0x10, 0x96, 0x01], 100);
        let f = m.next_field().unwrap().unwrap();
        assert!(matches!(f.value, Value::Fixed32) && f.number == 1 && f.offset == 100);
        assert_eq!(f.value_range, 101..105);
        let f = m.next_field().unwrap().unwrap();
        assert!(matches!(f.value, Value::Varint(150)) && f.number == 2 && f.offset == 105);
        assert!(m.next_field().unwrap().is_none());
    }

    #[test]
    fn packed_varints_are_counted() {
        let span = Span { bytes: &[1, 0xac, 0x02, 0x7f], start: 0 };
        assert_eq!(count_varints(span), Ok(3));
        assert_eq!(varints(span.bytes).collect::<Vec<_>>(), vec![1, 300, 127]);
        assert!(count_varints(Span { bytes: &[1, 0x80], start: 0 }).is_err());
    }
}
