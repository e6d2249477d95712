//! GGUF reader: metadata and tensor parsing, dequantization against the `gguf` package,
//! the real models, and a corpus of corrupt files.

mod common;

use aigc_core::Error;
use aigc_core::quant::GgmlType;
use aigc_core::weights::gguf::{MetadataArray, MetadataValue};
use aigc_core::weights::{DType, GgufFile, TensorSource};
use common::{corruptions, must_not_panic};

/// Writes GGUF files for tests, field by field as the spec lays them out.
struct Writer {
    version: u32,
    kvs: Vec<u8>,
    n_kv: u64,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
    alignment: u64,
}

impl Writer {
    fn new() -> Self {
        Self { version: 3, kvs: Vec::new(), n_kv: 0, tensors: Vec::new(), alignment: 32 }
    }

    fn string(buf: &mut Vec<u8>, s: &str) {
        buf.extend((s.len() as u64).to_le_bytes());
        buf.extend(s.as_bytes());
    }

    /// A key with a raw type id and already-encoded value.
    fn raw(&mut self, key: &str, ty: u32, value: &[u8]) -> &mut Self {
        Self::string(&mut self.kvs, key);
        self.kvs.extend(ty.to_le_bytes());
        self.kvs.extend(value);
        self.n_kv += 1;
        self
    }

    fn str(&mut self, key: &str, v: &str) -> &mut Self {
        let mut b = Vec::new();
        Self::string(&mut b, v);
        self.raw(key, 8, &b)
    }

    fn u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.raw(key, 4, &v.to_le_bytes())
    }

    fn tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> &mut Self {
        self.tensors.push((name.to_string(), dims.to_vec(), ty.id(), data));
        self
    }

    fn build(&self) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(self.version.to_le_bytes());
        b.extend((self.tensors.len() as u64).to_le_bytes());
        b.extend(self.n_kv.to_le_bytes());
        b.extend(&self.kvs);
        let mut offset = 0u64;
        let mut offsets = Vec::new();
        for (name, dims, ty, data) in &self.tensors {
            Self::string(&mut b, name);
            b.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(ty.to_le_bytes());
            b.extend(offset.to_le_bytes());
            offsets.push(offset);
            offset = (offset + data.len() as u64).next_multiple_of(self.alignment);
        }
        let pad =
            |b: &mut Vec<u8>, a: u64| b.resize((b.len() as u64).next_multiple_of(a) as usize, 0);
        pad(&mut b, self.alignment);
        let start = b.len() as u64;
        for ((_, _, _, data), off) in self.tensors.iter().zip(offsets) {
            b.resize((start + off) as usize, 0);
            b.extend(data);
        }
        b
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A Q8_0 block: scale `d` (f16) and 32 signed bytes.
fn q8_0_block(d: f32, qs: impl Fn(usize) -> i8) -> Vec<u8> {
    let mut b = half::f16::from_f32(d).to_le_bytes().to_vec();
    b.extend((0..32).map(|i| qs(i) as u8));
    b
}

/// A small file that uses every metadata type and a few tensor types.
fn sample() -> Writer {
    let mut w = Writer::new();
    w.str("general.architecture", "llama")
        .u32("llama.block_count", 2)
        .raw("t.u8", 0, &[200])
        .raw("t.i8", 1, &[0xFE])
        .raw("t.u16", 2, &60000u16.to_le_bytes())
        .raw("t.i16", 3, &(-300i16).to_le_bytes())
        .raw("t.i32", 5, &(-7i32).to_le_bytes())
        .raw("t.f32", 6, &1.5f32.to_le_bytes())
        .raw("t.bool", 7, &[1])
        .raw("t.u64", 10, &(1u64 << 40).to_le_bytes())
        .raw("t.i64", 11, &(-1i64).to_le_bytes())
        .raw("t.f64", 12, &0.25f64.to_le_bytes());
    let mut arr = 4u32.to_le_bytes().to_vec(); // u32[3]
    arr.extend(3u64.to_le_bytes());
    for v in [1u32, 2, 3] {
        arr.extend(v.to_le_bytes());
    }
    w.raw("t.arr_u32", 9, &arr);
    let mut arr = 8u32.to_le_bytes().to_vec(); // string[2]
    arr.extend(2u64.to_le_bytes());
    Writer::string(&mut arr, "<s>");
    Writer::string(&mut arr, "héllo");
    w.raw("tokenizer.ggml.tokens", 9, &arr);
    let mut arr = 9u32.to_le_bytes().to_vec(); // array of 2 arrays of i32
    arr.extend(2u64.to_le_bytes());
    for n in [1u64, 2] {
        arr.extend(5u32.to_le_bytes());
        arr.extend(n.to_le_bytes());
        for k in 0..n {
            arr.extend((k as i32 * 10).to_le_bytes());
        }
    }
    w.raw("t.nested", 9, &arr);
    w.tensor("a.f32", &[3, 2], GgmlType::F32, f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
    let mut q = q8_0_block(0.5, |i| i as i8 - 16);
    q.extend(q8_0_block(-2.0, |i| if i % 2 == 0 { 127 } else { -128 }));
    w.tensor("b.q8_0", &[64, 1], GgmlType::Q8_0, q);
    let h: Vec<u8> = [1.0f32, -0.5, 65504.0, 0.0]
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    w.tensor("c.f16", &[4], GgmlType::F16, h);
    w
}

#[test]
fn parses_metadata_and_tensors() {
    let bytes = sample().build();
    let g = GgufFile::from_bytes("sample.gguf", bytes).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.alignment(), 32);
    assert_eq!(g.data_offset() % 32, 0);
    assert_eq!(g.architecture().unwrap(), "llama");
    assert_eq!(g.get_u32("llama.block_count").unwrap(), 2);
    assert_eq!(g.get("t.u8"), Some(&MetadataValue::U8(200)));
    assert_eq!(g.get("t.i8"), Some(&MetadataValue::I8(-2)));
    assert_eq!(g.get_u64("t.u16").unwrap(), 60000);
    assert_eq!(g.get("t.i16"), Some(&MetadataValue::I16(-300)));
    assert_eq!(g.get("t.i32"), Some(&MetadataValue::I32(-7)));
    assert_eq!(g.get_f32("t.f32").unwrap(), 1.5);
    assert!(g.get_bool("t.bool").unwrap());
    assert_eq!(g.get_u64("t.u64").unwrap(), 1 << 40);
    assert_eq!(g.get("t.i64"), Some(&MetadataValue::I64(-1)));
    assert_eq!(g.get_f64("t.f64").unwrap(), 0.25);
    assert_eq!(g.get_array("t.arr_u32").unwrap(), &MetadataArray::U32(vec![1, 2, 3]));
    assert_eq!(g.get_string_array("tokenizer.ggml.tokens").unwrap(), ["<s>", "héllo"]);
    assert_eq!(
        g.get_array("t.nested").unwrap(),
        &MetadataArray::Array(vec![MetadataArray::I32(vec![0]), MetadataArray::I32(vec![0, 10])])
    );

    // Typed access names the key and the types involved.
    let e = g.get_str("llama.block_count").unwrap_err().to_string();
    assert!(e.contains("llama.block_count") && e.contains("uint32") && e.contains("string"), "{e}");
    let e = g.get_u32("t.i64").unwrap_err().to_string();
    assert!(e.contains("t.i64") && e.contains("out of range"), "{e}");
    assert!(g.get_u32("absent.key").unwrap_err().to_string().contains("absent.key"));

    assert_eq!(g.tensor_names(), ["a.f32", "b.q8_0", "c.f16"]);
    let a = g.tensor("a.f32").unwrap();
    assert_eq!(
        (a.dtype, a.shape.clone()),
        (DType::F32, vec![2, 3]),
        "dims are reversed to outermost-first"
    );
    assert_eq!(a.to_f32().unwrap(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let b = g.tensor("b.q8_0").unwrap();
    assert_eq!((b.dtype, b.shape.clone()), (DType::Quant(GgmlType::Q8_0), vec![1, 64]));
    let v = b.to_f32().unwrap();
    assert_eq!(v[0], -8.0);
    assert_eq!(v[31], 7.5);
    assert_eq!(v[32], -254.0);
    assert_eq!(v[33], 256.0);
    assert_eq!(b.to_f32_prefix(3).unwrap(), [-8.0, -7.5, -7.0]);
    let c = g.tensor("c.f16").unwrap();
    assert_eq!(c.to_f32().unwrap(), [1.0, -0.5, 65504.0, 0.0]);
    let e = g.tensor("nope").unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn honours_custom_alignment_and_version_2() {
    let mut w = sample();
    w.alignment = 64;
    w.version = 2;
    w.u32("general.alignment", 64);
    let g = GgufFile::from_bytes("aligned.gguf", w.build()).unwrap();
    assert_eq!((g.version(), g.alignment()), (2, 64));
    assert_eq!(g.data_offset() % 64, 0);
    assert_eq!(g.tensor("c.f16").unwrap().to_f32().unwrap()[2], 65504.0);
    for t in g.tensor_infos() {
        assert_eq!(t.offset % 64, 0);
    }
}

fn expect_err(what: &str, bytes: Vec<u8>) -> String {
    match must_not_panic(what, &bytes, |b| GgufFile::from_bytes("corrupt.gguf", b)) {
        Ok(_) => panic!("{what}: accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn rejects_crafted_headers() {
    let header = |version: u32, n_tensors: u64, n_kv: u64| {
        let mut b = b"GGUF".to_vec();
        b.extend(version.to_le_bytes());
        b.extend(n_tensors.to_le_bytes());
        b.extend(n_kv.to_le_bytes());
        b
    };
    let e = expect_err("bad magic", b"GGUG\x03\0\0\0".to_vec());
    assert!(e.contains("magic"), "{e}");
    assert!(expect_err("version 1", header(1, 0, 0)).contains("version 1"));
    assert!(expect_err("version 4", header(4, 0, 0)).contains("version 4"));
    assert!(expect_err("big-endian", header(3u32.swap_bytes(), 0, 0)).contains("big-endian"));
    let e = expect_err("absurd tensor count", header(3, u64::MAX, 0));
    assert!(e.contains("tensor count"), "{e}");
    assert!(expect_err("absurd kv count", header(3, 0, 1 << 60)).contains("metadata count"));

    // Absurd string length in a key.
    let mut b = header(3, 0, 1);
    b.extend(u64::MAX.to_le_bytes());
    b.extend([0u8; 16]);
    assert!(expect_err("huge key length", b).contains("bytes"));

    let with_kv = |ty: u32, value: &[u8]| {
        let mut w = Writer::new();
        w.raw("k", ty, value);
        w.build()
    };
    assert!(
        expect_err("unknown value type", with_kv(13, &[0; 8]))
            .contains("unknown metadata value type 13")
    );
    assert!(expect_err("bool 2", with_kv(7, &[2])).contains("bool"));
    let mut arr = 0u32.to_le_bytes().to_vec();
    arr.extend((1u64 << 62).to_le_bytes());
    assert!(expect_err("huge array", with_kv(9, &arr)).contains("array element count"));
    let mut arr = 99u32.to_le_bytes().to_vec();
    arr.extend(1u64.to_le_bytes());
    assert!(
        expect_err("unknown array type", with_kv(9, &arr)).contains("unknown array element type")
    );
    let mut deep = Vec::new();
    for _ in 0..20 {
        deep.extend(9u32.to_le_bytes());
        deep.extend(1u64.to_le_bytes());
    }
    assert!(expect_err("deep arrays", with_kv(9, &deep)).contains("nested"));
    let mut bad_utf8 = 2u64.to_le_bytes().to_vec();
    bad_utf8.extend([0xC3, 0x28]);
    assert!(expect_err("invalid utf-8", with_kv(8, &bad_utf8)).contains("UTF-8"));

    let mut w = Writer::new();
    w.str("dup", "a").str("dup", "b");
    assert!(expect_err("duplicate key", w.build()).contains("duplicate metadata key"));

    for (what, value) in [("zero", 0u32), ("not a power of two", 48)] {
        let mut w = sample();
        w.u32("general.alignment", value);
        assert!(expect_err(what, w.build()).contains("alignment"), "{what}");
    }
    let mut w = sample();
    w.str("general.alignment", "32");
    assert!(expect_err("alignment as string", w.build()).contains("alignment"));

    let one_tensor = |dims: &[u64], ty: u32, offset: u64| {
        let mut b = header(3, 1, 0);
        Writer::string(&mut b, "t");
        b.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend(d.to_le_bytes());
        }
        b.extend(ty.to_le_bytes());
        b.extend(offset.to_le_bytes());
        b.resize(b.len().next_multiple_of(32) + 64, 0);
        b
    };
    assert!(GgufFile::from_bytes("ok", one_tensor(&[16], 0, 0)).is_ok());
    assert!(expect_err("5 dims", one_tensor(&[1, 1, 1, 1, 1], 0, 0)).contains("dimensions"));
    assert!(expect_err("dims overflow", one_tensor(&[u64::MAX, 2], 0, 0)).contains("overflow"));
    assert!(
        expect_err("huge dims", one_tensor(&[1 << 40, 1 << 20], 0, 0)).contains("past the end")
    );
    let e = expect_err("unknown type", one_tensor(&[16], 99, 0));
    assert!(e.contains("unknown type id 99") && e.contains("`t`"), "{e}");
    assert!(expect_err("unaligned offset", one_tensor(&[4], 0, 4)).contains("alignment"));
    assert!(expect_err("offset past end", one_tensor(&[4], 0, 1 << 20)).contains("past the end"));
    assert!(
        expect_err("offset overflow", one_tensor(&[4], 0, u64::MAX - 31)).contains("past the end")
    );
    assert!(
        expect_err("partial block", one_tensor(&[48], GgmlType::Q4_0.id(), 0))
            .contains("block size")
    );

    let mut w = sample();
    w.tensor("a.f32", &[1], GgmlType::F32, f32_bytes(&[1.0]));
    assert!(expect_err("duplicate tensor", w.build()).contains("duplicate tensor"));
}

#[test]
fn corrupt_corpus_never_panics() {
    let bytes = sample().build();
    let header_len = GgufFile::from_bytes("s", bytes.clone()).unwrap().data_offset() as usize;
    let mut accepted = 0;
    for (what, b) in corruptions(&bytes, header_len, 3000) {
        let truncated = what.starts_with("truncated");
        match must_not_panic(&what, &b, |b| GgufFile::from_bytes("corrupt.gguf", b)) {
            Ok(g) => {
                assert!(!truncated, "{what}: a truncated file was accepted");
                accepted += 1;
                // What parses must also read: every tensor view and its values.
                for name in g.tensor_names() {
                    let v = g.tensor(&name).expect("listed tensor reads");
                    let _ = must_not_panic(&what, &[], |_| v.to_f32());
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    // Flips inside string bytes or values keep a file valid; most corruptions must not.
    eprintln!("{accepted} corrupted variants still parsed (value-only changes)");
}

#[test]
fn unknown_quant_types_are_typed_errors_when_dequantized() {
    let mut w = Writer::new();
    w.tensor("iq2", &[256], GgmlType::IQ2_XXS, vec![0; 66]);
    let g = GgufFile::from_bytes("iq2.gguf", w.build()).unwrap();
    let e = g.tensor("iq2").unwrap().to_f32().unwrap_err();
    assert!(matches!(e, Error::Tensor { .. }), "{e:?}");
    assert!(e.to_string().contains("IQ2_XXS"), "{e}");
}
