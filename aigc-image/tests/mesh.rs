//! Heightmap meshes: the `.glb` parsed back by hand (header, chunks, JSON, accessors, counts,
//! bounds, index range) and the OBJ read back, on a synthetic terrain; bad inputs are errors.

use aigc_image::mesh::{Mesh, MeshOptions, glb_bytes, heightmap_mesh, obj_string, write_mesh};
use serde_json::Value;

/// Hills on a slope, `w`x`h`.
fn hills(w: usize, h: usize) -> Vec<f32> {
    (0..w * h)
        .map(|k| {
            let (x, y) = ((k % w) as f32, (k / w) as f32);
            3.0 + 2.0 * (x * 0.11).sin() * (y * 0.07).cos() + 0.02 * x
        })
        .collect()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// The accessor's elements as `f32`/`u32` words, checked against its buffer view.
fn accessor_words(doc: &Value, bin: &[u8], index: usize) -> (Vec<[u8; 4]>, usize, usize) {
    let acc = &doc["accessors"][index];
    let view = &doc["bufferViews"][acc["bufferView"].as_u64().unwrap() as usize];
    assert_eq!(view["buffer"], 0);
    let offset = view["byteOffset"].as_u64().unwrap_or(0) as usize;
    let length = view["byteLength"].as_u64().unwrap() as usize;
    assert_eq!(offset % 4, 0, "view offset aligned");
    assert_eq!(acc["byteOffset"].as_u64().unwrap_or(0), 0);
    let count = acc["count"].as_u64().unwrap() as usize;
    let comps = match acc["type"].as_str().unwrap() {
        "SCALAR" => 1,
        "VEC3" => 3,
        t => panic!("type {t}"),
    };
    assert!(matches!(acc["componentType"].as_u64(), Some(5126) | Some(5125)));
    assert_eq!(count * comps * 4, length, "accessor {index} fills its view");
    assert!(offset + length <= bin.len());
    let words = bin[offset..offset + length].chunks_exact(4).map(|c| c.try_into().unwrap());
    (words.collect(), count, comps)
}

fn vec3s(words: &[[u8; 4]]) -> Vec<[f32; 3]> {
    words.chunks_exact(3).map(|c| [0, 1, 2].map(|k| f32::from_le_bytes(c[k]))).collect()
}

/// Parses a `.glb` and checks it against the glTF 2.0 rules this writer promises; returns
/// (vertices, triangles, positions).
fn check_glb(bytes: &[u8]) -> (usize, usize, Vec<[f32; 3]>) {
    assert_eq!(&bytes[0..4], b"glTF");
    assert_eq!(u32_at(bytes, 4), 2, "version");
    assert_eq!(u32_at(bytes, 8) as usize, bytes.len(), "total length");
    let json_len = u32_at(bytes, 12) as usize;
    assert_eq!(&bytes[16..20], b"JSON");
    assert_eq!(json_len % 4, 0);
    let doc: Value = serde_json::from_slice(&bytes[20..20 + json_len]).unwrap();
    let bin_at = 20 + json_len;
    let bin_len = u32_at(bytes, bin_at) as usize;
    assert_eq!(&bytes[bin_at + 4..bin_at + 8], b"BIN\0");
    assert_eq!(bin_len % 4, 0);
    assert_eq!(bin_at + 8 + bin_len, bytes.len());
    let bin = &bytes[bin_at + 8..];
    assert_eq!(doc["asset"]["version"], "2.0");
    assert!(doc["buffers"][0]["byteLength"].as_u64().unwrap() as usize <= bin_len);
    assert!(doc["buffers"][0].get("uri").is_none(), "the GLB buffer has no uri");
    let prim = &doc["meshes"][0]["primitives"][0];
    assert_eq!(prim["mode"], 4);
    assert!(doc["materials"][prim["material"].as_u64().unwrap() as usize].is_object());
    let attr = |name: &str| prim["attributes"][name].as_u64().unwrap() as usize;

    let (pw, n, _) = accessor_words(&doc, bin, attr("POSITION"));
    let positions = vec3s(&pw);
    // min/max are required on POSITION and must be the data's bounds exactly.
    let acc = &doc["accessors"][attr("POSITION")];
    for k in 0..3 {
        let lo = positions.iter().map(|p| p[k]).fold(f32::INFINITY, f32::min);
        let hi = positions.iter().map(|p| p[k]).fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(acc["min"][k].as_f64().unwrap() as f32, lo, "min[{k}]");
        assert_eq!(acc["max"][k].as_f64().unwrap() as f32, hi, "max[{k}]");
    }
    let (nw, nn, _) = accessor_words(&doc, bin, attr("NORMAL"));
    assert_eq!(nn, n);
    for v in vec3s(&nw) {
        let len = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        assert!((len - 1.0).abs() < 1e-5 && v[1] > 0.0, "normal {v:?}");
    }
    let (cw, cn, _) = accessor_words(&doc, bin, attr("COLOR_0"));
    assert_eq!(cn, n);
    assert!(vec3s(&cw).iter().flatten().all(|c| (0.0..=1.0).contains(c)));
    let index = prim["indices"].as_u64().unwrap() as usize;
    let (iw, ni, comps) = accessor_words(&doc, bin, index);
    assert_eq!((comps, ni % 3), (1, 0));
    assert_eq!(doc["accessors"][index]["componentType"], 5125);
    let indices: Vec<u32> = iw.iter().map(|w| u32::from_le_bytes(*w)).collect();
    assert!(indices.iter().all(|&i| (i as usize) < n), "indices in range");
    // Every triangle faces up (counter-clockwise seen from +Y).
    for t in indices.chunks_exact(3) {
        let [a, b, c] = [0, 1, 2].map(|k| positions[t[k] as usize]);
        let (u, v) = ([0, 1, 2].map(|k| b[k] - a[k]), [0, 1, 2].map(|k| c[k] - a[k]));
        assert!(u[2] * v[0] - u[0] * v[2] > 0.0);
    }
    (n, ni / 3, positions)
}

#[test]
fn glb_parses_back_with_counts_and_bounds() {
    let heights = hills(128, 128);
    let options = MeshOptions { cell_size: 0.5, vertical_scale: 3.0, stride: 1, max_error: 0.0 };
    let mesh = heightmap_mesh(&heights, 128, 128, &options).unwrap();
    let (n, tris, positions) = check_glb(&glb_bytes(&mesh).unwrap());
    assert_eq!((n, tris), (128 * 128, 127 * 127 * 2));
    assert_eq!(positions, mesh.positions);
    // Horizontal extent from the cell size, vertical from the exaggeration.
    let (lo, hi) = mesh.bounds();
    assert_eq!((lo[0], hi[0], lo[2], hi[2]), (-31.75, 31.75, -31.75, 31.75));
    let hmax = heights.iter().copied().fold(f32::MIN, f32::max);
    assert_eq!(hi[1], hmax * 3.0);

    // Decimation: every 4th row and column, and the last: 33 x 33.
    let small = heightmap_mesh(&heights, 128, 128, &MeshOptions { stride: 4, ..options }).unwrap();
    let (n, tris, _) = check_glb(&glb_bytes(&small).unwrap());
    assert_eq!((n, tris), (33 * 33, 32 * 32 * 2));
    assert_eq!(small.bounds().0[0], lo[0]);
    assert_eq!(small.bounds().1[0], hi[0]);

    // A rectangular map with a stride that does not divide it.
    let rect = heightmap_mesh(&hills(10, 7), 10, 7, &MeshOptions { stride: 3, ..options }).unwrap();
    let (n, tris, _) = check_glb(&glb_bytes(&rect).unwrap());
    assert_eq!((n, tris), (4 * 3, 3 * 2 * 2)); // columns 0 3 6 9, rows 0 3 6
}

#[test]
fn simplification_keeps_the_error_bound_without_cracks() {
    // 33 x 33 samples: 32 cells, a power of two, so the RTIN grid is the map itself.
    let (n, max_error) = (33usize, 0.25f32);
    let heights = hills(n, n);
    let options = MeshOptions { vertical_scale: 2.0, max_error, ..MeshOptions::default() };
    let mesh = heightmap_mesh(&heights, n, n, &options).unwrap();
    let full = heightmap_mesh(&heights, n, n, &MeshOptions { max_error: 0.0, ..options }).unwrap();
    let (v, t, _) = check_glb(&glb_bytes(&mesh).unwrap());
    assert_eq!((v, t), (mesh.positions.len(), mesh.triangles()));
    assert!(
        t < full.triangles() / 2 && v < full.positions.len() / 2,
        "{v} vertices, {t} triangles"
    );
    assert_eq!(mesh.bounds().0[0], full.bounds().0[0]);
    assert_eq!(mesh.bounds().1[2], full.bounds().1[2]);
    // Grid coordinates of each vertex.
    let c = (n - 1) as f32 / 2.0;
    let grid: Vec<(i64, i64)> = mesh
        .positions
        .iter()
        .map(|p| ((p[2] + c).round() as i64, (p[0] + c).round() as i64))
        .collect();
    let used: std::collections::HashSet<(i64, i64)> = grid.iter().copied().collect();
    let mut area = 0.0;
    for tri in mesh.indices.chunks_exact(3) {
        let [a, b, d] = [0, 1, 2].map(|k| grid[tri[k] as usize]);
        // No vertex in the middle of an edge (a T-junction would crack the surface).
        for (p, q) in [(a, b), (b, d), (d, a)] {
            let steps = (q.0 - p.0).abs().max((q.1 - p.1).abs());
            let dir = ((q.0 - p.0) / steps, (q.1 - p.1) / steps);
            for k in 1..steps {
                assert!(!used.contains(&(p.0 + k * dir.0, p.1 + k * dir.1)), "T-junction");
            }
        }
        // Every sample inside the triangle within max_error of the plane through its corners.
        let z = |p: (i64, i64)| heights[p.0 as usize * n + p.1 as usize] * 2.0;
        let det = ((b.0 - a.0) * (d.1 - a.1) - (d.0 - a.0) * (b.1 - a.1)) as f32;
        area += det.abs() / 2.0;
        for r in a.0.min(b.0).min(d.0)..=a.0.max(b.0).max(d.0) {
            for col in a.1.min(b.1).min(d.1)..=a.1.max(b.1).max(d.1) {
                let l1 = ((b.0 - r) * (d.1 - col) - (d.0 - r) * (b.1 - col)) as f32 / det;
                let l2 = ((d.0 - r) * (a.1 - col) - (a.0 - r) * (d.1 - col)) as f32 / det;
                let l3 = 1.0 - l1 - l2;
                if l1 >= -1e-6 && l2 >= -1e-6 && l3 >= -1e-6 {
                    let plane = l1 * z(a) + l2 * z(b) + l3 * z(d);
                    let err = (plane - z((r, col))).abs();
                    assert!(err <= max_error + 1e-4, "sample ({r}, {col}) off by {err}");
                }
            }
        }
    }
    // The triangles tile the square exactly.
    assert_eq!(area, ((n - 1) * (n - 1)) as f32);
    // A flat map is two triangles; a bad tolerance is an error.
    let flat = heightmap_mesh(&vec![1.0; 65 * 65], 65, 65, &options).unwrap();
    assert_eq!((flat.positions.len(), flat.triangles()), (4, 2));
    let tiny = heightmap_mesh(&[0.0, 1.0, 2.0, 3.0], 2, 2, &options).unwrap();
    assert_eq!((tiny.positions.len(), tiny.triangles()), (4, 2));
    // Any size: resampled to 2^k + 1 over the same extent.
    let odd = heightmap_mesh(&hills(50, 20), 50, 20, &options).unwrap();
    let (v, t, _) = check_glb(&glb_bytes(&odd).unwrap());
    assert!(v > 4 && t > 2);
    assert_eq!(odd.bounds().0[0], -24.5);
    assert_eq!(odd.bounds().1[2], 9.5);
    for bad in [-1.0, f32::NAN, f32::INFINITY] {
        assert!(
            heightmap_mesh(&heights, n, n, &MeshOptions { max_error: bad, ..options }).is_err()
        );
    }
}

#[test]
fn obj_has_coloured_vertices_normals_and_faces() {
    let mesh = heightmap_mesh(&hills(20, 12), 20, 12, &MeshOptions::default()).unwrap();
    let text = obj_string(&mesh).unwrap();
    let (mut v, mut vn, mut f) = (Vec::new(), 0, 0);
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.first() {
            Some(&"v") => {
                assert_eq!(parts.len(), 7, "v x y z r g b");
                let xs: Vec<f32> = parts[1..].iter().map(|p| p.parse().unwrap()).collect();
                assert!(xs[3..].iter().all(|c| (0.0..=1.0).contains(c)));
                v.push([xs[0], xs[1], xs[2]]);
            }
            Some(&"vn") => vn += 1,
            Some(&"f") => {
                f += 1;
                for corner in &parts[1..] {
                    let (a, b) = corner.split_once("//").unwrap();
                    let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
                    assert!(a == b && (1..=v.len()).contains(&a));
                }
            }
            _ => {}
        }
    }
    assert_eq!((v.len(), vn, f), (240, 240, 19 * 11 * 2));
    assert_eq!(v, mesh.positions);
}

#[test]
fn bad_input_is_an_error() {
    let ok = MeshOptions::default();
    let h = hills(4, 4);
    assert!(heightmap_mesh(&[], 0, 0, &ok).is_err(), "empty grid");
    assert!(heightmap_mesh(&h[..1], 1, 1, &ok).is_err(), "one sample");
    assert!(heightmap_mesh(&h, 5, 4, &ok).is_err(), "size mismatch");
    assert!(heightmap_mesh(&h, usize::MAX, 2, &ok).is_err(), "overflowing size");
    let mut nan = h.clone();
    nan[5] = f32::NAN;
    assert!(heightmap_mesh(&nan, 4, 4, &ok).is_err(), "NaN height");
    nan[5] = f32::INFINITY;
    assert!(heightmap_mesh(&nan, 4, 4, &ok).is_err(), "infinite height");
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(heightmap_mesh(&h, 4, 4, &MeshOptions { cell_size: bad, ..ok }).is_err());
        assert!(heightmap_mesh(&h, 4, 4, &MeshOptions { vertical_scale: bad, ..ok }).is_err());
    }
    assert!(heightmap_mesh(&h, 4, 4, &MeshOptions { stride: 0, ..ok }).is_err());
    // Writers refuse meshes that are not triangle meshes.
    assert!(glb_bytes(&Mesh::default()).is_err());
    let mut mesh = heightmap_mesh(&h, 4, 4, &ok).unwrap();
    mesh.indices[0] = 99;
    assert!(glb_bytes(&mesh).is_err() && obj_string(&mesh).is_err());
    let dir = std::env::temp_dir();
    let good = heightmap_mesh(&h, 4, 4, &ok).unwrap();
    assert!(write_mesh(dir.join("aigc-mesh.stl"), &good).is_err(), "unknown extension");
    assert!(write_mesh(dir.join("no-such-dir/x.glb"), &good).is_err());
}
