//! Writes synthetic gradient frames with every writer and decodes them back.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use aigc_core::Error;
use aigc_video::writer::{
    ApngWriter, GifWriter, PngSequenceWriter, RgbFrame, VideoWriter, Y4mWriter, open_writer,
};

const W: u32 = 96;
const H: u32 = 64;
const FRAMES: usize = 5;

/// A fresh, empty directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aigc-video-writer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A smooth diagonal colour gradient that drifts with `t`, like a terrain render.
fn gradient(t: usize) -> RgbFrame {
    let mut data = Vec::with_capacity((W * H * 3) as usize);
    for y in 0..H {
        for x in 0..W {
            let u = x as f32 / (W - 1) as f32;
            let v = y as f32 / (H - 1) as f32;
            let s = t as f32 / FRAMES as f32;
            data.push((40.0 + 180.0 * u) as u8);
            data.push((30.0 + 150.0 * v + 40.0 * s) as u8);
            data.push((200.0 - 120.0 * (u + v) / 2.0 + 20.0 * s) as u8);
        }
    }
    RgbFrame { width: W, height: H, data }
}

/// Grass to rock across, lit from the top: the kind of gradient a terrain render holds.
fn terrain_frame() -> RgbFrame {
    let mut data = Vec::with_capacity((W * H * 3) as usize);
    for y in 0..H {
        for x in 0..W {
            let u = x as f32 / (W - 1) as f32;
            let light = 1.0 - 0.45 * y as f32 / (H - 1) as f32;
            let (grass, rock) = ([70.0, 120.0, 45.0], [150.0, 125.0, 95.0]);
            for c in 0..3 {
                data.push(((grass[c] * (1.0 - u) + rock[c] * u) * light) as u8);
            }
        }
    }
    RgbFrame { width: W, height: H, data }
}

fn write_all(mut writer: Box<dyn VideoWriter>) -> PathBuf {
    for t in 0..FRAMES {
        writer.write_frame(&gradient(t)).unwrap();
    }
    writer.finish().unwrap()
}

fn mean_abs_error(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).abs()).sum::<f64>() / a.len() as f64
}

/// The means of 4x4 blocks: what an eye sees of a dithered area.
fn blur4(rgb: &[u8]) -> Vec<u8> {
    let (w, h) = (W as usize, H as usize);
    let mut out = Vec::new();
    for by in (0..h).step_by(4) {
        for bx in (0..w).step_by(4) {
            for c in 0..3 {
                let sum: u32 =
                    (0..16).map(|k| rgb[3 * ((by + k / 4) * w + bx + k % 4) + c] as u32).sum();
                out.push(((sum + 8) / 16) as u8);
            }
        }
    }
    out
}

/// Decodes a GIF into RGB frames, with its repeat setting and delays.
fn decode_gif(path: &Path) -> (Vec<Vec<u8>>, gif::Repeat, Vec<u16>) {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(File::open(path).unwrap()).unwrap();
    assert_eq!((decoder.width(), decoder.height()), (W as u16, H as u16));
    let (mut frames, mut delays) = (Vec::new(), Vec::new());
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        assert_eq!((frame.width, frame.height), (W as u16, H as u16));
        delays.push(frame.delay);
        let rgb: Vec<u8> = frame.buffer.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        frames.push(rgb);
    }
    // The loop extension is read as it is met, before the first frame.
    (frames, decoder.repeat(), delays)
}

#[test]
fn gif_loops_and_keeps_gradients_close() {
    let dir = temp_dir("gif");
    let mut block_errors = Vec::new();
    for dither in [false, true] {
        let path = dir.join(format!("walk-{dither}.gif"));
        let mut writer = GifWriter::create(&path, W, H, 24.0).unwrap();
        assert_eq!(writer.delay_cs(), 4); // round(100 / 24) = 4 cs
        writer.set_dither(dither);
        assert_eq!(write_all(Box::new(writer)), path);
        let (frames, repeat, delays) = decode_gif(&path);
        assert_eq!(frames.len(), FRAMES);
        assert_eq!(repeat, gif::Repeat::Infinite);
        assert!(delays.iter().all(|&d| d == 4), "{delays:?}");
        let (mut worst, mut worst_blocks): (f64, f64) = (0.0, 0.0);
        for (t, frame) in frames.iter().enumerate() {
            let source = gradient(t).data;
            worst = worst.max(mean_abs_error(frame, &source));
            worst_blocks = worst_blocks.max(mean_abs_error(&blur4(frame), &blur4(&source)));
        }
        eprintln!(
            "GIF (dither {dither}): worst per-frame mean absolute error {worst:.3} levels, \
             of 4x4 block means {worst_blocks:.3}"
        );
        // 30720 distinct colours drifting over 5 frames share 256: about 4.3 levels apart
        // (4.34 without dithering, 4.95 with it; block means 3.13 and 2.57).
        assert!(worst < if dither { 5.3 } else { 4.6 }, "GIF mean absolute error {worst}");
        block_errors.push(worst_blocks);
    }
    // Dithering trades per-pixel error for areas that average to the source colour.
    assert!(block_errors[1] < block_errors[0], "{block_errors:?}");

    // For scale: the gif crate's NeuQuant with a palette of its own for frame 0 alone.
    let mut rgba: Vec<u8> =
        gradient(0).data.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    let frame = gif::Frame::from_rgba_speed(W as u16, H as u16, &mut rgba, 1);
    let palette = frame.palette.unwrap();
    let neuquant: Vec<u8> = frame
        .buffer
        .iter()
        .flat_map(|&i| palette[3 * i as usize..3 * i as usize + 3].to_vec())
        .collect();
    let path = dir.join("one.gif");
    let mut writer = GifWriter::create(&path, W, H, 10.0).unwrap();
    writer.set_dither(false);
    writer.write_frame(&gradient(0)).unwrap();
    Box::new(writer).finish().unwrap();
    let ours = mean_abs_error(&decode_gif(&path).0[0], &gradient(0).data);
    let theirs = mean_abs_error(&neuquant, &gradient(0).data);
    eprintln!("GIF, frame 0 alone: median cut {ours:.3} levels, NeuQuant (speed 1) {theirs:.3}");
    assert!(ours < 2.5 && ours < theirs, "median cut {ours}, NeuQuant {theirs}");

    // A terrain-like frame (two earth tones, shaded) keeps closer still.
    let path = dir.join("terrain.gif");
    let terrain = terrain_frame();
    let mut writer = open_writer(&path, W, H, 10.0).unwrap();
    writer.write_frame(&terrain).unwrap();
    writer.finish().unwrap();
    let (frames, _, _) = decode_gif(&path);
    let error = mean_abs_error(&frames[0], &terrain.data);
    eprintln!("GIF: terrain-like gradient mean absolute error {error:.3} levels");
    assert!(error < 1.2, "terrain-like GIF mean absolute error {error}");

    // Through open_writer, by extension; the delay rounds to the nearest centisecond.
    let path = dir.join("thirty.GIF");
    write_all(open_writer(&path, W, H, 30.0).unwrap());
    let (frames, _, delays) = decode_gif(&path);
    assert_eq!((frames.len(), delays[0]), (FRAMES, 3));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gif_with_few_colours_is_exact() {
    let dir = temp_dir("gif-few");
    let path = dir.join("flags.gif");
    let mut writer = open_writer(&path, 4, 2, 10.0).unwrap();
    let frames: Vec<RgbFrame> = (0..3u8)
        .map(|t| RgbFrame {
            width: 4,
            height: 2,
            data: (0..8u8).flat_map(|i| [i * 30 + t, 255 - i * 20, 7 * t]).collect(),
        })
        .collect();
    for frame in &frames {
        writer.write_frame(frame).unwrap();
    }
    writer.finish().unwrap();
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(File::open(&path).unwrap()).unwrap();
    let mut t = 0;
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        let rgb: Vec<u8> = frame.buffer.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        // 24 colours fit in the palette: no error at all, dithering or not.
        assert_eq!(rgb, frames[t].data);
        t += 1;
    }
    assert_eq!(t, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn apng_is_lossless_and_loops() {
    let dir = temp_dir("apng");
    let path = dir.join("walk.png");
    assert_eq!(ApngWriter::create(&path, W, H, 29.97).unwrap().delay(), (1001, 30000));
    write_all(open_writer(&path, W, H, 12.5).unwrap());
    let mut reader =
        png::Decoder::new(BufReader::new(File::open(&path).unwrap())).read_info().unwrap();
    let control = reader.info().animation_control.unwrap();
    assert_eq!((control.num_frames, control.num_plays), (FRAMES as u32, 0));
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    for t in 0..FRAMES {
        let info = reader.next_frame(&mut buffer).unwrap();
        assert_eq!((info.width, info.height), (W, H));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let fc = reader.info().frame_control.unwrap();
        assert_eq!((fc.delay_num, fc.delay_den), (2, 25)); // 1 / 12.5 s
        assert_eq!(&buffer[..info.buffer_size()], &gradient(t).data[..]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn read_png(path: &Path) -> Vec<u8> {
    let mut reader =
        png::Decoder::new(BufReader::new(File::open(path).unwrap())).read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    assert_eq!((info.width, info.height, info.color_type), (W, H, png::ColorType::Rgb));
    buffer.truncate(info.buffer_size());
    buffer
}

#[test]
fn png_sequence_in_a_directory_and_by_pattern() {
    let dir = temp_dir("seq");
    let frames = dir.join("frames");
    assert_eq!(write_all(open_writer(&frames, W, H, 24.0).unwrap()), frames);
    for t in 0..FRAMES {
        assert_eq!(read_png(&frames.join(format!("frame_{t:04}.png"))), gradient(t).data);
    }
    assert!(!frames.join(format!("frame_{FRAMES:04}.png")).exists());

    let pattern = dir.join("walk_%03d.png");
    assert_eq!(write_all(open_writer(&pattern, W, H, 24.0).unwrap()), dir);
    assert_eq!(read_png(&dir.join("walk_004.png")), gradient(4).data);

    let braces = dir.join("sub").join("f{}.png");
    let writer = PngSequenceWriter::create(&braces, W, H, 24.0).unwrap();
    assert_eq!(writer.frame_path(7), dir.join("sub").join("f0007.png"));
    assert_eq!(write_all(Box::new(writer)), dir.join("sub"));
    assert_eq!(read_png(&dir.join("sub").join("f0002.png")), gradient(2).data);
    let _ = std::fs::remove_dir_all(&dir);
}

/// BT.601 limited range back to RGB with the inverse matrix.
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let luma = (y as f64 - 16.0) * 255.0 / 219.0;
    let pb = (cb as f64 - 128.0) * 255.0 / 224.0;
    let pr = (cr as f64 - 128.0) * 255.0 / 224.0;
    let r = luma + 1.402 * pr;
    let b = luma + 1.772 * pb;
    let g = (luma - 0.299 * r - 0.114 * b) / 0.587;
    [r, g, b].map(|v| v.round().clamp(0.0, 255.0) as u8)
}

#[test]
fn y4m_header_planes_and_round_trip() {
    let dir = temp_dir("y4m");
    let path = dir.join("walk.y4m");
    write_all(Box::new(Y4mWriter::create(&path, W, H, 29.97).unwrap()));
    let bytes = std::fs::read(&path).unwrap();
    let header_end = bytes.iter().position(|&b| b == b'\n').unwrap();
    let header = std::str::from_utf8(&bytes[..header_end]).unwrap();
    assert_eq!(header, format!("YUV4MPEG2 W{W} H{H} F30000:1001 Ip A1:1 C444"));
    let plane = (W * H) as usize;
    let mut at = header_end + 1;
    let mut worst = 0u8;
    let mut frames = 0;
    while at < bytes.len() {
        assert_eq!(&bytes[at..at + 6], b"FRAME\n");
        at += 6;
        let (y, cb, cr) =
            (&bytes[at..at + plane], &bytes[at + plane..at + 2 * plane], &bytes[at + 2 * plane..]);
        let source = gradient(frames);
        for i in 0..plane {
            let back = ycbcr_to_rgb(y[i], cb[i], cr[i]);
            assert!((16..=235).contains(&y[i]) && (16..=240).contains(&cb[i]));
            for (b, s) in back.iter().zip(&source.data[3 * i..3 * i + 3]) {
                worst = worst.max(b.abs_diff(*s));
            }
        }
        at += 3 * plane;
        frames += 1;
    }
    assert_eq!(frames, FRAMES);
    eprintln!("Y4M: worst round-trip error {worst} levels");
    assert!(worst <= 2, "Y'CbCr round trip off by {worst}");

    // Every RGB value of a coarse lattice, corners included, round-trips within 2 levels.
    for r in (0..=255u8).step_by(15) {
        for g in (0..=255u8).step_by(15) {
            for b in (0..=255u8).step_by(15) {
                let [y, cb, cr] = aigc_video::writer::rgb_to_ycbcr_bt601([r, g, b]);
                let back = ycbcr_to_rgb(y, cb, cr);
                for (c, v) in [r, g, b].into_iter().enumerate() {
                    assert!(back[c].abs_diff(v) <= 2, "{r},{g},{b} -> {back:?}");
                }
            }
        }
    }
    assert_eq!(aigc_video::writer::rgb_to_ycbcr_bt601([0, 0, 0]), [16, 128, 128]);
    assert_eq!(aigc_video::writer::rgb_to_ycbcr_bt601([255, 255, 255]), [235, 128, 128]);
    let _ = std::fs::remove_dir_all(&dir);
}

fn is_invalid(e: Error) -> bool {
    matches!(e, Error::InvalidArgument { .. })
}

#[test]
fn bad_inputs_are_errors() {
    let dir = temp_dir("bad");
    let gif = dir.join("a.gif");
    for (w, h, fps) in [(0, 8, 10.0), (8, 0, 10.0), (8, 8, 0.0), (8, 8, -1.0), (8, 8, f64::NAN)] {
        for path in [dir.join("a.gif"), dir.join("a.png"), dir.join("a.y4m"), dir.join("seq")] {
            assert!(
                is_invalid(open_writer(&path, w, h, fps).err().unwrap()),
                "{path:?} {w}x{h}@{fps}"
            );
        }
    }
    assert!(is_invalid(open_writer(&gif, 8, 8, f64::INFINITY).err().unwrap()));
    assert!(is_invalid(open_writer(&gif, 70000, 8, 10.0).err().unwrap()));
    assert!(matches!(
        open_writer(&dir.join("a.mp4"), 8, 8, 10.0).err().unwrap(),
        Error::Unsupported { .. }
    ));
    assert!(matches!(
        open_writer(&dir.join("missing").join("a.y4m"), 8, 8, 10.0).err().unwrap(),
        Error::Io { .. }
    ));

    for path in [dir.join("b.gif"), dir.join("b.png"), dir.join("b.y4m"), dir.join("seq")] {
        let mut writer = open_writer(&path, 8, 8, 10.0).unwrap();
        let good = RgbFrame { width: 8, height: 8, data: vec![9; 8 * 8 * 3] };
        let other_size = RgbFrame { width: 8, height: 4, data: vec![9; 8 * 4 * 3] };
        let short = RgbFrame { width: 8, height: 8, data: vec![9; 8 * 8 * 3 - 1] };
        assert!(is_invalid(writer.write_frame(&other_size).unwrap_err()), "{path:?}");
        assert!(is_invalid(writer.write_frame(&short).unwrap_err()), "{path:?}");
        writer.write_frame(&good).unwrap();
        assert!(is_invalid(writer.write_frame(&other_size).unwrap_err()), "{path:?}");
        writer.finish().unwrap();
        // Nothing written: an error, not an empty animation.
        let empty = open_writer(&path, 8, 8, 10.0).unwrap();
        assert!(is_invalid(empty.finish().unwrap_err()), "{path:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
