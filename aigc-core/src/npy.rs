//! NumPy `.npy` files of little-endian float32 in C order, the format the reference scripts
//! exchange arrays in.

use std::path::Path;

use crate::{Error, Result};

/// Reads a float32 `.npy` file: its shape and values.
pub fn read_f32(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_f32(&bytes)
        .map_err(|why| Error::invalid_argument("npy", format!("{}: {why}", path.display())))
}

/// Parses the bytes of a float32 `.npy` file.
pub fn parse_f32(bytes: &[u8]) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    let (shape, data) = parse(bytes, "<f4", 4)?;
    Ok((
        shape,
        data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
    ))
}

/// Reads an int64 `.npy` file (token ids): its shape and values.
pub fn read_i64(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<i64>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (shape, data) = parse(&bytes, "<i8", 8)
        .map_err(|why| Error::invalid_argument("npy", format!("{}: {why}", path.display())))?;
    Ok((
        shape,
        data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
    ))
}

/// The shape and data bytes of an `.npy` file of dtype `descr` (`<f4`, `<i8`).
fn parse<'a>(
    bytes: &'a [u8],
    want: &str,
    size: usize,
) -> std::result::Result<(Vec<usize>, &'a [u8]), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not an .npy file".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let end =
        start.checked_add(header_len).filter(|&e| e <= bytes.len()).ok_or("truncated header")?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not text")?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").ok_or("no descr")?;
    if !descr.starts_with(&format!("'{want}'")) {
        return Err(format!("dtype {} is not {want}", &descr[..descr.len().min(8)]));
    }
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran order is not supported".into());
    }
    let shape_text = field("shape").ok_or("no shape")?;
    let close = shape_text.find(')').ok_or("bad shape")?;
    let shape: Vec<usize> = shape_text[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad dimension `{s}`")))
        .collect::<std::result::Result<_, _>>()?;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("shape overflows")?;
    let data = &bytes[end..];
    if count.checked_mul(size) != Some(data.len()) {
        return Err(format!("{} data bytes for shape {shape:?}", data.len()));
    }
    Ok((shape, data))
}

/// The bytes of a float32 `.npy` file (version 1.0) holding `values` with `shape`.
pub fn to_bytes(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes a float32 `.npy` file.
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], values: &[f32]) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(shape, values)).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_files() {
        let values: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let bytes = to_bytes(&[2, 3, 4], &values);
        assert_eq!(parse_f32(&bytes).unwrap(), (vec![2, 3, 4], values.clone()));
        assert_eq!(parse_f32(&to_bytes(&[24], &values)).unwrap().0, vec![24]);
        // Truncated data, a wrong dtype, garbage.
        assert!(parse_f32(&bytes[..bytes.len() - 1]).is_err());
        let f8 = String::from_utf8_lossy(&bytes).replace("<f4", "<f8");
        assert!(parse_f32(f8.as_bytes()).is_err());
        assert!(parse_f32(b"hello world").is_err());
        for cut in 0..bytes.len() {
            let _ = parse_f32(&bytes[..cut]);
        }
    }
}
