//! Heightmaps as 3D meshes: a regular triangle grid with normals and height-tinted vertex
//! colours, written as binary glTF 2.0 (`.glb`) or Wavefront OBJ.
//!
//! [`heightmap_mesh`] turns a row-major heightmap into a [`Mesh`]: sample `(row, col)` becomes
//! the vertex `(col * cell_size, height * vertical_scale, row * cell_size)`, centred on the
//! origin horizontally, Y up as glTF wants it, two counter-clockwise triangles per grid cell
//! (front faces up). A `stride` keeps every `stride`-th row and column (and always the last
//! ones, so the mesh covers the whole map) to decimate large grids. A `max_error` above 0
//! simplifies instead, with an error bound: a right-triangulated irregular network (RTIN, as
//! mapbox/martini builds it) keeps large triangles where the ground is flat and small ones
//! where it is rough, every sample within `max_error` of the surface, with no cracks. Normals
//! are central differences of the sampled grid (so a simplified mesh still shades like the
//! full one); colours are the hypsometric tint of
//! [`crate::terrain::Terrain::render_rgb`]'s renderings over the map's height span.
//!
//! [`glb_bytes`] / [`write_glb`] follow the glTF 2.0 specification's binary container: a
//! 12-byte header, a JSON chunk padded with spaces and a BIN chunk padded with zeros, each to 4
//! bytes; one buffer with four buffer views (positions, normals, colours, `u32` indices), and
//! `POSITION`'s accessor carries the `min`/`max` the specification requires. Colours are stored
//! linear (glTF's `COLOR_0` is linear; viewers convert to sRGB on display), so the model shows
//! the PNG renderings' colours. [`obj_string`] / [`write_obj`] write `v x y z r g b` (the vertex
//! colour extension MeshLab, Blender and Open3D read, sRGB), `vn` and `f v//vn` faces.
//!
//! Why here: a mesh of a heightmap is one more output of the image crate's generated terrain,
//! next to [`crate::png`], and its writers need nothing but `serde_json`, which the crate
//! already uses. A crate of its own would hold two hundred lines and one dependency; nothing
//! else in the workspace makes meshes yet.
//!
//! ```no_run
//! use aigc_image::mesh::{MeshOptions, heightmap_mesh, write_glb};
//! # fn main() -> aigc_image::Result<()> {
//! let heights = vec![0.0f32; 128 * 128];
//! let options = MeshOptions { cell_size: 1.0, vertical_scale: 2.0, stride: 1, max_error: 0.05 };
//! let mesh = heightmap_mesh(&heights, 128, 128, &options)?;
//! write_glb("terrain.glb", &mesh)?;
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use aigc_core::{Error, Result};
use serde_json::json;

use crate::terrain::hypsometric_tint;

/// How a heightmap becomes a mesh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeshOptions {
    /// Horizontal distance between neighbouring samples of the heightmap (before decimation),
    /// in the heights' units.
    pub cell_size: f32,
    /// Vertical exaggeration: heights are multiplied by this.
    pub vertical_scale: f32,
    /// Keep every `stride`-th row and column (1 keeps all); the last row and column are always
    /// kept.
    pub stride: usize,
    /// When above 0, simplify: the fewest right triangles (an RTIN) whose surface is within
    /// this vertical distance (after `vertical_scale`) of every sample of the map resampled to
    /// `2^k + 1` samples a side over the same extent (`2^k` at least the map's cells across
    /// divided by `stride`). 0 keeps the regular grid.
    pub max_error: f32,
}

impl Default for MeshOptions {
    fn default() -> Self {
        Self { cell_size: 1.0, vertical_scale: 1.0, stride: 1, max_error: 0.0 }
    }
}

/// A triangle mesh with per-vertex normals and colours.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mesh {
    /// Vertex positions, Y up.
    pub positions: Vec<[f32; 3]>,
    /// Unit vertex normals.
    pub normals: Vec<[f32; 3]>,
    /// Vertex colours, sRGB in `[0, 1]`.
    pub colors: Vec<[f32; 3]>,
    /// Triangles, three vertex indices each, counter-clockwise seen from the front.
    pub indices: Vec<u32>,
}

impl Mesh {
    /// The number of triangles.
    pub fn triangles(&self) -> usize {
        self.indices.len() / 3
    }

    /// The smallest and largest coordinates of the positions (zeros when empty).
    pub fn bounds(&self) -> ([f32; 3], [f32; 3]) {
        if self.positions.is_empty() {
            return ([0.0; 3], [0.0; 3]);
        }
        let mut lo = [f32::INFINITY; 3];
        let mut hi = [f32::NEG_INFINITY; 3];
        for p in &self.positions {
            for k in 0..3 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        (lo, hi)
    }

    fn check(&self) -> Result<()> {
        let n = self.positions.len();
        if n == 0 || self.indices.is_empty() || !self.indices.len().is_multiple_of(3) {
            return Err(Error::invalid_argument(
                "mesh",
                format!("{n} vertices and {} indices is not a triangle mesh", self.indices.len()),
            ));
        }
        if self.normals.len() != n || self.colors.len() != n {
            return Err(Error::invalid_argument(
                "mesh",
                format!(
                    "{n} positions, {} normals, {} colours",
                    self.normals.len(),
                    self.colors.len()
                ),
            ));
        }
        if let Some(i) = self.indices.iter().find(|&&i| i as usize >= n) {
            return Err(Error::invalid_argument("mesh", format!("index {i} past {n} vertices")));
        }
        let finite = |v: &[[f32; 3]]| v.iter().flatten().all(|x| x.is_finite());
        if !finite(&self.positions) || !finite(&self.normals) || !finite(&self.colors) {
            return Err(Error::invalid_argument("mesh", "a coordinate is not finite"));
        }
        Ok(())
    }
}

/// The kept rows (or columns) of `n` samples at `stride`: 0, stride, 2 stride, ..., n - 1.
fn kept(n: usize, stride: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).step_by(stride).collect();
    if v.last() != Some(&(n - 1)) {
        v.push(n - 1);
    }
    v
}

/// Builds the mesh of a row-major `width`x`height` heightmap (see the module docs).
///
/// Errors when the map has fewer than 2x2 samples, `heights` does not hold `width * height`
/// values, a height is not finite, the cell size or vertical scale is not positive and finite,
/// or the stride is 0.
pub fn heightmap_mesh(
    heights: &[f32],
    width: usize,
    height: usize,
    options: &MeshOptions,
) -> Result<Mesh> {
    if width < 2 || height < 2 {
        return Err(Error::invalid_argument(
            "heights",
            format!("a {width}x{height} map; a mesh needs at least 2x2 samples"),
        ));
    }
    if Some(heights.len()) != width.checked_mul(height) {
        return Err(Error::invalid_argument(
            "heights",
            format!("{} values for a {width}x{height} map", heights.len()),
        ));
    }
    if let Some(i) = heights.iter().position(|h| !h.is_finite()) {
        return Err(Error::invalid_argument(
            "heights",
            format!("value {i} (row {}, column {}) is not finite", i / width, i % width),
        ));
    }
    let positive = |v: f32| v.is_finite() && v > 0.0;
    if !positive(options.cell_size) {
        return Err(Error::invalid_argument(
            "cell_size",
            format!("{} is not a positive size", options.cell_size),
        ));
    }
    if !positive(options.vertical_scale) {
        return Err(Error::invalid_argument(
            "vertical_scale",
            format!("{} is not a positive scale", options.vertical_scale),
        ));
    }
    if options.stride == 0 {
        return Err(Error::invalid_argument("stride", "at least 1"));
    }
    if !(options.max_error.is_finite() && options.max_error >= 0.0) {
        return Err(Error::invalid_argument(
            "max_error",
            format!("{} is not a tolerance", options.max_error),
        ));
    }
    // The sampled grid: sample coordinates (in source rows and columns) and heights there.
    let (rows, cols): (Vec<f32>, Vec<f32>) = if options.max_error > 0.0 {
        // The simplification needs a square of 2^k + 1 samples: the map resampled over the
        // same extent, at least as finely as the stride asks.
        let cells = (width.max(height) - 1).div_ceil(options.stride).max(1);
        let side = cells.checked_next_power_of_two().filter(|&n| n <= MAX_RTIN_CELLS);
        let Some(side) = side else {
            return Err(Error::invalid_argument(
                "heights",
                format!("{cells} cells across; simplify at most {MAX_RTIN_CELLS} (use a stride)"),
            ));
        };
        let span = |n: usize| (0..=side).map(|i| (i * (n - 1)) as f32 / side as f32).collect();
        (span(height), span(width))
    } else {
        let at = |n: usize| kept(n, options.stride).into_iter().map(|i| i as f32).collect();
        (at(height), at(width))
    };
    let (nr, nc) = (rows.len(), cols.len());
    if nr.checked_mul(nc).is_none_or(|n| n >= u32::MAX as usize) {
        return Err(Error::invalid_argument("heights", "too many vertices for 32-bit indices"));
    }
    let grid: Vec<f32> = rows
        .iter()
        .flat_map(|&r| cols.iter().map(move |&c| bilinear(heights, width, height, r, c)))
        .collect();
    let (lo, hi) =
        grid.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &h| (lo.min(h), hi.max(h)));
    let span = hi - lo;
    let (cx, cz) = ((width - 1) as f32 * 0.5, (height - 1) as f32 * 0.5);
    let (s, v) = (options.cell_size, options.vertical_scale);
    let h = |r: usize, c: usize| grid[r * nc + c];
    let pos = |r: usize, c: usize| [(cols[c] - cx) * s, h(r, c) * v, (rows[r] - cz) * s];
    // Position, normal (central differences over the sampled neighbours, one-sided at the
    // edges) and colour of grid sample (r, c).
    let vertex = |mesh: &mut Mesh, r: usize, c: usize| {
        let (c0, c1) = (c.saturating_sub(1), (c + 1).min(nc - 1));
        let (r0, r1) = (r.saturating_sub(1), (r + 1).min(nr - 1));
        let (a, b) = (pos(r, c0), pos(r, c1));
        let dydx = (b[1] - a[1]) / (b[0] - a[0]);
        let (a, b) = (pos(r0, c), pos(r1, c));
        let dydz = (b[1] - a[1]) / (b[2] - a[2]);
        let len = (dydx * dydx + 1.0 + dydz * dydz).sqrt();
        mesh.positions.push(pos(r, c));
        mesh.normals.push([-dydx / len, 1.0 / len, -dydz / len]);
        let t = if span > 0.0 { (h(r, c) - lo) / span } else { 0.0 };
        mesh.colors.push(hypsometric_tint(t));
    };
    let mut mesh = Mesh::default();
    if options.max_error > 0.0 {
        let scaled: Vec<f32> = grid.iter().map(|g| g * v).collect();
        let triangles = rtin_triangles(&scaled, nr - 1, options.max_error);
        let mut index = vec![u32::MAX; nr * nc];
        for t in triangles.chunks_exact(3) {
            let mut tri = [0u32; 3];
            for (k, &(r, c)) in t.iter().enumerate() {
                let slot = &mut index[r * nc + c];
                if *slot == u32::MAX {
                    *slot = mesh.positions.len() as u32;
                    vertex(&mut mesh, r, c);
                }
                tri[k] = *slot;
            }
            // Counter-clockwise seen from +Y: the y component of (b - a) x (c - a) positive.
            let [a, b, c] = t.try_into().unwrap_or([(0, 0); 3]);
            let (u, w) = (
                (b.0 as i64 - a.0 as i64, b.1 as i64 - a.1 as i64),
                (c.0 as i64 - a.0 as i64, c.1 as i64 - a.1 as i64),
            );
            // (row, col) = (z, x): y of u x w = u.z w.x - u.x w.z.
            if u.0 * w.1 - u.1 * w.0 < 0 {
                tri.swap(1, 2);
            }
            mesh.indices.extend_from_slice(&tri);
        }
    } else {
        for r in 0..nr {
            for c in 0..nc {
                vertex(&mut mesh, r, c);
            }
        }
        for r in 0..nr - 1 {
            for c in 0..nc - 1 {
                let a = (r * nc + c) as u32;
                let (b, d, e) = (a + 1, a + nc as u32, a + nc as u32 + 1);
                // (a, d, b) and (b, d, e): counter-clockwise seen from +Y.
                mesh.indices.extend_from_slice(&[a, d, b, b, d, e]);
            }
        }
    }
    Ok(mesh)
}

/// The most cells across that [`MeshOptions::max_error`] simplifies (4096: 16.8 million
/// samples).
pub const MAX_RTIN_CELLS: usize = 4096;

/// Bilinear sample of a `width`x`height` map at (row, col); exact at whole coordinates.
fn bilinear(h: &[f32], width: usize, height: usize, r: f32, c: f32) -> f32 {
    let (r0, c0) = ((r.floor() as usize).min(height - 1), (c.floor() as usize).min(width - 1));
    let (r1, c1) = ((r0 + 1).min(height - 1), (c0 + 1).min(width - 1));
    let (fr, fc) = (r - r0 as f32, c - c0 as f32);
    if fr == 0.0 && fc == 0.0 {
        return h[r0 * width + c0];
    }
    let top = h[r0 * width + c0] * (1.0 - fc) + h[r0 * width + c1] * fc;
    let bottom = h[r1 * width + c0] * (1.0 - fc) + h[r1 * width + c1] * fc;
    top * (1.0 - fr) + bottom * fr
}

/// Right-triangulated irregular network (Evans, Kirkpatrick and Townsend 2001, as in
/// mapbox/martini): over a square of `cells + 1` samples a side (`cells` a power of two), the
/// coarsest triangles whose surface stays within `max_error` of every sample. Each triangle
/// is split at its hypotenuse's midpoint while the error there, or anywhere below it, exceeds
/// the tolerance; errors are propagated up the hierarchy first, so neighbours split together
/// and the mesh has no cracks. Returns (row, col) corners, three per triangle.
fn rtin_triangles(grid: &[f32], cells: usize, max_error: f32) -> Vec<(usize, usize)> {
    type P = (usize, usize);
    let n = cells + 1;
    let mid = |a: P, b: P| ((a.0 + b.0) / 2, (a.1 + b.1) / 2);
    let leaf = |a: P, c: P| a.0.abs_diff(c.0) + a.1.abs_diff(c.1) <= 1;
    // Errors bottom-up, finest level first, as martini does: triangle i has heap id i + 2
    // (ids 2 and 3 are the two halves of the square, id k's children are 2k and 2k + 1, the
    // path read from the lowest bit up), so walking i downwards finishes every level before
    // the coarser one reads it. The finest level here is the triangles of area 1; the unit
    // half-squares below them have no sample at their hypotenuse's middle.
    let t = cells;
    let corners = |i: usize| {
        let mut id = i + 2;
        let (mut a, mut b, mut c) =
            if id & 1 == 1 { ((0, 0), (t, t), (0, t)) } else { ((t, t), (0, 0), (t, 0)) };
        loop {
            id >>= 1;
            if id <= 1 {
                break;
            }
            let m = mid(a, b);
            (a, b, c) = if id & 1 == 1 { (c, a, m) } else { (b, c, m) };
        }
        (a, b, c)
    };
    let triangles = 2 * t * t - 2;
    let parents = triangles.saturating_sub(t * t);
    let mut errors = vec![0f32; n * n];
    let at = |p: P| p.0 * n + p.1;
    for i in (0..triangles).rev() {
        let (a, b, c) = corners(i);
        let m = at(mid(a, b));
        let mut e = errors[m].max(((grid[at(a)] + grid[at(b)]) * 0.5 - grid[m]).abs());
        if i < parents {
            e = e.max(errors[at(mid(c, a))]).max(errors[at(mid(b, c))]);
        }
        errors[m] = e;
    }
    let last = cells;
    let halves = [((0, 0), (last, last), (0, last)), ((last, last), (0, 0), (last, 0))];
    let mut out = Vec::new();
    let mut stack: Vec<(P, P, P)> = halves.to_vec();
    while let Some((a, b, c)) = stack.pop() {
        let m = mid(a, b);
        if !leaf(a, c) && errors[m.0 * n + m.1] > max_error {
            stack.push((c, a, m));
            stack.push((b, c, m));
        } else {
            out.extend_from_slice(&[a, b, c]);
        }
    }
    out
}

/// sRGB to linear light (the sRGB transfer function).
fn srgb_to_linear(c: f32) -> f32 {
    if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
}

const GLB_MAGIC: u32 = 0x4654_6C67; // "glTF"
const CHUNK_JSON: u32 = 0x4E4F_534A; // "JSON"
const CHUNK_BIN: u32 = 0x004E_4942; // "BIN\0"
const FLOAT: u32 = 5126;
const UNSIGNED_INT: u32 = 5125;
const ARRAY_BUFFER: u32 = 34962;
const ELEMENT_ARRAY_BUFFER: u32 = 34963;

/// The mesh as a binary glTF 2.0 file (see the module docs).
pub fn glb_bytes(mesh: &Mesh) -> Result<Vec<u8>> {
    mesh.check()?;
    let n = mesh.positions.len();
    let mut bin: Vec<u8> = Vec::with_capacity(n * 36 + mesh.indices.len() * 4);
    let mut views = Vec::new();
    let mut push_view = |bin: &mut Vec<u8>, bytes: Vec<u8>, target: u32| {
        // Every element is 4 bytes, so each view starts aligned.
        views.push(json!({
            "buffer": 0, "byteOffset": bin.len(), "byteLength": bytes.len(), "target": target
        }));
        bin.extend_from_slice(&bytes);
    };
    let floats = |v: &[[f32; 3]]| v.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
    let linear: Vec<[f32; 3]> = mesh.colors.iter().map(|c| c.map(srgb_to_linear)).collect();
    push_view(&mut bin, floats(&mesh.positions), ARRAY_BUFFER);
    push_view(&mut bin, floats(&mesh.normals), ARRAY_BUFFER);
    push_view(&mut bin, floats(&linear), ARRAY_BUFFER);
    let indices = mesh.indices.iter().flat_map(|i| i.to_le_bytes()).collect();
    push_view(&mut bin, indices, ELEMENT_ARRAY_BUFFER);
    let (lo, hi) = mesh.bounds();
    let vec3 = |view: usize| json!({"bufferView": view, "componentType": FLOAT, "count": n, "type": "VEC3"});
    let mut position = vec3(0);
    position["min"] = json!(lo.map(f64::from));
    position["max"] = json!(hi.map(f64::from));
    let doc = json!({
        "asset": {"version": "2.0", "generator": concat!("aigc-image ", env!("CARGO_PKG_VERSION"))},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "terrain"}],
        "meshes": [{"name": "terrain", "primitives": [{
            "attributes": {"POSITION": 0, "NORMAL": 1, "COLOR_0": 2},
            "indices": 3, "material": 0, "mode": 4
        }]}],
        "materials": [{"name": "terrain", "pbrMetallicRoughness": {
            "baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0, "roughnessFactor": 1.0
        }}],
        "accessors": [position, vec3(1), vec3(2), {
            "bufferView": 3, "componentType": UNSIGNED_INT, "count": mesh.indices.len(),
            "type": "SCALAR",
            "min": [mesh.indices.iter().min().copied().unwrap_or(0)],
            "max": [mesh.indices.iter().max().copied().unwrap_or(0)]
        }],
        "bufferViews": views,
        "buffers": [{"byteLength": bin.len()}]
    });
    let mut text = serde_json::to_vec(&doc)
        .map_err(|e| Error::invalid_argument("mesh", format!("glTF JSON: {e}")))?;
    while !text.len().is_multiple_of(4) {
        text.push(b' ');
    }
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }
    let total = 12 + 8 + text.len() + 8 + bin.len();
    let too_big =
        || Error::invalid_argument("mesh", format!("{total} bytes exceed a .glb's 4 GiB"));
    let len32 = |v: usize| u32::try_from(v).map_err(|_| too_big());
    let mut out = Vec::with_capacity(total);
    for word in [GLB_MAGIC, 2, len32(total)?, len32(text.len())?, CHUNK_JSON] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&text);
    out.extend_from_slice(&len32(bin.len())?.to_le_bytes());
    out.extend_from_slice(&CHUNK_BIN.to_le_bytes());
    out.extend_from_slice(&bin);
    Ok(out)
}

/// Writes the mesh as a binary glTF 2.0 file.
pub fn write_glb(path: impl AsRef<Path>, mesh: &Mesh) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, glb_bytes(mesh)?).map_err(|e| Error::io(path, e))
}

/// The mesh as Wavefront OBJ text: `v x y z r g b` (sRGB colours), `vn`, `f v//vn`.
pub fn obj_string(mesh: &Mesh) -> Result<String> {
    use std::fmt::Write;
    mesh.check()?;
    let mut s = String::with_capacity(mesh.positions.len() * 80 + mesh.indices.len() * 8);
    let _ = writeln!(s, "# terrain mesh from aigc-image");
    let _ = writeln!(s, "o terrain");
    for (p, c) in mesh.positions.iter().zip(&mesh.colors) {
        let _ = writeln!(s, "v {} {} {} {:.4} {:.4} {:.4}", p[0], p[1], p[2], c[0], c[1], c[2]);
    }
    for n in &mesh.normals {
        let _ = writeln!(s, "vn {:.6} {:.6} {:.6}", n[0], n[1], n[2]);
    }
    for t in mesh.indices.chunks_exact(3) {
        let (a, b, c) = (t[0] + 1, t[1] + 1, t[2] + 1);
        let _ = writeln!(s, "f {a}//{a} {b}//{b} {c}//{c}");
    }
    Ok(s)
}

/// Writes the mesh as a Wavefront OBJ file.
pub fn write_obj(path: impl AsRef<Path>, mesh: &Mesh) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, obj_string(mesh)?).map_err(|e| Error::io(path, e))
}

/// Writes the mesh as `.glb` or `.obj`, chosen by the path's extension.
pub fn write_mesh(path: impl AsRef<Path>, mesh: &Mesh) -> Result<()> {
    let path = path.as_ref();
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("glb") => write_glb(path, mesh),
        Some("obj") => write_obj(path, mesh),
        _ => Err(Error::invalid_argument(
            "path",
            format!("{}: expected a .glb or .obj file name", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_rows_include_the_last() {
        assert_eq!(kept(5, 1), [0, 1, 2, 3, 4]);
        assert_eq!(kept(5, 2), [0, 2, 4]);
        assert_eq!(kept(6, 2), [0, 2, 4, 5]);
        assert_eq!(kept(6, 10), [0, 5]);
    }

    #[test]
    fn slope_normals_and_winding() {
        // A ramp rising along +x by 1 per cell: normal (-1, 1, 0) / sqrt 2 everywhere.
        let heights: Vec<f32> = (0..12).map(|i| (i % 4) as f32).collect();
        let mesh = heightmap_mesh(&heights, 4, 3, &MeshOptions::default()).unwrap();
        assert_eq!((mesh.positions.len(), mesh.triangles()), (12, 12));
        for n in &mesh.normals {
            let want = [-(0.5f32).sqrt(), (0.5f32).sqrt(), 0.0];
            assert!(n.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{n:?}");
        }
        // Every face normal points up.
        for t in mesh.indices.chunks_exact(3) {
            let [a, b, c] = [0, 1, 2].map(|k| mesh.positions[t[k] as usize]);
            let (u, v) = ([0, 1, 2].map(|k| b[k] - a[k]), [0, 1, 2].map(|k| c[k] - a[k]));
            assert!(u[2] * v[0] - u[0] * v[2] > 0.0);
        }
        let (lo, hi) = mesh.bounds();
        assert_eq!((lo, hi), ([-1.5, 0.0, -1.0], [1.5, 3.0, 1.0]));
    }
}
