//! PNG files: 16-bit grayscale heightmaps and 8-bit RGB images.

use std::io::BufWriter;
use std::path::Path;

use aigc_core::{Error, Result};

fn encoder(
    path: &Path,
    width: usize,
    height: usize,
    color: png::ColorType,
    depth: png::BitDepth,
) -> Result<png::Writer<BufWriter<std::fs::File>>> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
    enc.set_color(color);
    enc.set_depth(depth);
    enc.write_header().map_err(|e| Error::io(path, std::io::Error::other(e)))
}

fn check(name: &'static str, len: usize, width: usize, height: usize, per: usize) -> Result<()> {
    if width == 0 || height == 0 || width > u32::MAX as usize || height > u32::MAX as usize {
        return Err(Error::invalid_argument(
            name,
            format!("{width}x{height} is not an image size"),
        ));
    }
    if Some(len) != width.checked_mul(height).and_then(|n| n.checked_mul(per)) {
        return Err(Error::invalid_argument(
            name,
            format!("{len} values for {width}x{height}x{per}"),
        ));
    }
    Ok(())
}

/// Writes `values` (row-major, `width * height`, each in `[0, 1]`; clamped) as a 16-bit
/// grayscale PNG.
pub fn write_gray16(
    path: impl AsRef<Path>,
    width: usize,
    height: usize,
    values: &[f32],
) -> Result<()> {
    let path = path.as_ref();
    check("gray16", values.len(), width, height, 1)?;
    let mut bytes = Vec::with_capacity(values.len() * 2);
    for &v in values {
        let q = (v.clamp(0.0, 1.0) * 65535.0).round() as u16;
        bytes.extend_from_slice(&q.to_be_bytes());
    }
    let mut w = encoder(path, width, height, png::ColorType::Grayscale, png::BitDepth::Sixteen)?;
    w.write_image_data(&bytes).map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    w.finish().map_err(|e| Error::io(path, std::io::Error::other(e)))
}

/// Writes 8-bit RGB pixels (row-major, `width * height * 3` bytes).
pub fn write_rgb8(path: impl AsRef<Path>, width: usize, height: usize, rgb: &[u8]) -> Result<()> {
    let path = path.as_ref();
    check("rgb8", rgb.len(), width, height, 3)?;
    let mut w = encoder(path, width, height, png::ColorType::Rgb, png::BitDepth::Eight)?;
    w.write_image_data(rgb).map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    w.finish().map_err(|e| Error::io(path, std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_readable_pngs_and_refuses_bad_sizes() {
        let dir = std::env::temp_dir().join(format!("aigc-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gray = dir.join("g.png");
        write_gray16(&gray, 3, 2, &[0.0, 0.5, 1.0, 2.0, -1.0, 0.25]).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&gray).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height, info.bit_depth), (3, 2, png::BitDepth::Sixteen));
        let px: Vec<u16> = buf[..12].chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        assert_eq!(px, vec![0, 32768, 65535, 65535, 0, 16384]);
        write_rgb8(dir.join("c.png"), 1, 1, &[1, 2, 3]).unwrap();
        assert!(write_rgb8(dir.join("bad.png"), 2, 2, &[0; 5]).is_err());
        assert!(write_gray16(dir.join("bad.png"), 0, 2, &[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
