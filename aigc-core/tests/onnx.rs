//! The ONNX reader against files written by the `onnx` Python package
//! (`tools/onnx_fixtures.py` → `tools/fixtures/onnx/`), against hand-built protobuf for the
//! cases the package cannot write, against corrupt input, and against the real Piper voice and
//! terrain UNet when installed.

mod common;

use std::borrow::Cow;

use aigc_core::Error;
use aigc_core::weights::onnx::{MAX_GRAPH_DEPTH, module_path_from_node_name};
use aigc_core::weights::{OnnxFile, TensorSource};
use serde_json::Value;

fn fixture_bytes() -> Vec<u8> {
    std::fs::read(common::fixtures().join("onnx/tensors.onnx")).unwrap()
}

fn json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(common::fixtures().join("onnx").join(name)).unwrap())
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()
}

/// FNV-1a 64 of the lines joined by '\n', as `tools/onnx_fixtures.py` computes it.
fn fnv1a64(lines: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lines.join("\n").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[test]
fn fixture_tensors_match_the_onnx_package() {
    let file = OnnxFile::open(common::fixtures().join("onnx/tensors.onnx")).unwrap();
    let expected = json("expected.json");
    let tensors = expected["tensors"].as_array().unwrap();

    let mut names = file.tensor_names();
    let mut want: Vec<String> =
        tensors.iter().map(|t| t["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    want.sort();
    assert_eq!(names, want);

    for t in tensors {
        let name = t["name"].as_str().unwrap();
        let view = file.tensor(name).unwrap();
        assert_eq!(view.dtype.name(), t["dtype"].as_str().unwrap(), "{name}");
        assert_eq!(view.shape, usizes(&t["shape"]), "{name}");
        assert_eq!(hex(&view.data), t["hex"].as_str().unwrap(), "{name}");
        let info = file.tensor_info(name).unwrap();
        assert_eq!((info.dtype, &info.shape), (view.dtype, &view.shape));
        let is_constant = t["origin"] == "constant";
        assert_eq!(file.constant_node(name).is_some(), is_constant, "{name}");
    }

    // raw_data and a single packed float array are lent from the file; varints are decoded.
    assert!(matches!(file.tensor("raw_f32").unwrap().data, Cow::Borrowed(_)));
    assert!(matches!(file.tensor("typed_float").unwrap().data, Cow::Borrowed(_)));
    assert!(matches!(file.tensor("typed_i64").unwrap().data, Cow::Owned(_)));
    assert_eq!(file.tensor("typed_f16").unwrap().to_f32().unwrap(), [0.5, -3.0, 1000.0]);
    assert_eq!(file.tensor("typed_bf16").unwrap().to_f32().unwrap(), [1.5, -0.125]);

    let unsupported: Vec<&str> =
        file.unsupported_tensors().iter().map(|(n, _)| n.as_str()).collect();
    let want: Vec<&str> =
        expected["unsupported"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(unsupported, want);
    for name in want {
        assert!(!file.contains(name));
        match file.tensor(name) {
            Err(Error::Unsupported { detail, .. }) => assert!(detail.contains(name), "{detail}"),
            other => panic!("{name}: expected Unsupported, got {:?}", other.map(|v| v.info())),
        }
    }
    assert!(matches!(file.tensor("absent"), Err(Error::Tensor { .. })));
}

#[test]
fn fixture_metadata() {
    let file = OnnxFile::open(common::fixtures().join("onnx/tensors.onnx")).unwrap();
    let m = &json("expected.json")["metadata"];
    let meta = file.metadata();
    let get = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("ir_version"), m["ir_version"].to_string());
    assert_eq!(get("producer"), m["producer"].as_str().unwrap());
    assert_eq!(get("graph"), m["graph"].as_str().unwrap());
    assert_eq!(get("opset_import"), m["opset_import"].as_str().unwrap());
    assert_eq!(get("nodes"), m["nodes"].to_string());
    assert_eq!(get("initializers"), m["initializers"].to_string());
    assert_eq!(get("input"), m["inputs"][0].as_str().unwrap());
    assert_eq!(get("subgraphs"), "2");
    assert_eq!(file.ir_version(), Some(8));
    assert_eq!(file.opset_imports(), [(String::new(), 17)]);
}

#[test]
fn fixture_graph_ties_anonymous_tensors_to_modules() {
    let file = OnnxFile::open(common::fixtures().join("onnx/tensors.onnx")).unwrap();
    let main: Vec<_> = file.nodes().iter().filter(|n| n.depth == 0).collect();
    assert_eq!(main.len(), 8);
    assert_eq!(file.nodes().len(), 10); // and one Constant in each If branch

    let conv = file.node("/block/conv/Conv").unwrap();
    assert_eq!(conv.op_type, "Conv");
    assert_eq!(conv.inputs, ["x", "onnx::Conv_7", "block.conv.bias"]);
    assert_eq!(conv.int_attribute("group"), Some(1));
    assert_eq!(conv.module_path().as_deref(), Some("block.conv"));

    let uses = file.consumers("onnx::Conv_7");
    assert_eq!(uses.len(), 1);
    assert_eq!((uses[0].node.name.as_str(), uses[0].slot), ("/block/conv/Conv", 1));
    assert_eq!(file.consumers("cond")[0].node.op_type, "If");

    let by_slot = file.tensor_for_node_input("/block/conv/Conv", 1).unwrap();
    assert_eq!(by_slot.name, "onnx::Conv_7");
    assert_eq!(by_slot.data, file.tensor("onnx::Conv_7").unwrap().data);
    assert!(matches!(file.tensor_for_node_input("/block/conv/Conv", 0), Err(Error::Tensor { .. })));
    assert!(file.tensor_for_node_input("/block/conv/Conv", 3).is_err());
    assert!(file.tensor_for_node_input("/nope", 0).is_err());

    let anon = file.resolve_anonymous();
    let conv_w = anon.iter().find(|a| a.tensor == "onnx::Conv_7").unwrap();
    let want = &json("expected.json")["anonymous"]["onnx::Conv_7"];
    let p = conv_w.parameter.as_ref().unwrap();
    assert_eq!(p.name, want["parameter"].as_str().unwrap());
    assert_eq!(p.shape, usizes(&want["shape"]));
    assert!(!p.transposed);
    assert_eq!(conv_w.uses[0].module.as_deref(), Some("block.conv"));
    // A constant read by a Mul outside any norm is a graph constant, not a parameter.
    let c = anon.iter().find(|a| a.tensor == "/block/Constant_output_0").unwrap();
    assert!(c.parameter.is_err());
    assert_eq!(anon.iter().filter(|a| a.parameter.is_ok()).count(), 1);

    let params = file.parameters();
    assert_eq!(params.tensor_names(), ["block.conv.bias", "block.conv.weight"]);
    let w = params.tensor("block.conv.weight").unwrap();
    assert_eq!((w.name.as_ref(), &w.shape), ("block.conv.weight", &vec![3, 2, 1]));
    assert_eq!(w.data, file.tensor("onnx::Conv_7").unwrap().data);
    assert!(params.tensor("raw_f32").is_err());
}

#[test]
fn module_paths() {
    assert_eq!(
        module_path_from_node_name("/enc_p/encoder/attn_layers.0/conv_q/Conv").as_deref(),
        Some("enc_p.encoder.attn_layers.0.conv_q")
    );
    assert_eq!(
        module_path_from_node_name("/dec/ups.0/ConvTranspose").as_deref(),
        Some("dec.ups.0")
    );
    assert_eq!(module_path_from_node_name("/Gather"), None);
    assert_eq!(module_path_from_node_name("node_Mul_46"), None);
}

// ---------------------------------------------------------------------------------------------
// Hand-built protobuf, for encodings the `onnx` package never writes and for corrupt input.

mod pb {
    pub fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }
    pub fn key(field: u32, wire: u8) -> Vec<u8> {
        varint((u64::from(field) << 3) | u64::from(wire))
    }
    pub fn int(field: u32, v: i64) -> Vec<u8> {
        [key(field, 0), varint(v as u64)].concat()
    }
    pub fn bytes(field: u32, b: &[u8]) -> Vec<u8> {
        [key(field, 2), varint(b.len() as u64), b.to_vec()].concat()
    }
    pub fn fixed32(field: u32, b: [u8; 4]) -> Vec<u8> {
        [key(field, 5), b.to_vec()].concat()
    }
    pub fn packed(field: u32, values: &[i64]) -> Vec<u8> {
        let body: Vec<u8> = values.iter().flat_map(|&v| varint(v as u64)).collect();
        bytes(field, &body)
    }
    /// A TensorProto with a name, a data type and dims, plus extra fields.
    pub fn tensor(name: &str, data_type: i64, dims: &[i64], extra: &[u8]) -> Vec<u8> {
        [packed(1, dims), int(2, data_type), bytes(8, name.as_bytes()), extra.to_vec()].concat()
    }
    /// A model whose graph has these initializers and nodes.
    pub fn model(initializers: &[Vec<u8>], nodes: &[Vec<u8>]) -> Vec<u8> {
        let mut graph = Vec::new();
        for n in nodes {
            graph.extend(bytes(1, n));
        }
        graph.extend(bytes(2, b"g"));
        for t in initializers {
            graph.extend(bytes(5, t));
        }
        let opset = [bytes(1, b""), int(2, 17)].concat();
        [int(1, 8), bytes(7, &graph), bytes(8, &opset)].concat()
    }
}

fn open(bytes: Vec<u8>) -> aigc_core::Result<OnnxFile> {
    OnnxFile::from_bytes("hand-built.onnx", bytes)
}

fn read_all(file: &OnnxFile) -> aigc_core::Result<()> {
    for name in file.tensor_names() {
        file.tensor(&name)?;
    }
    Ok(())
}

#[test]
fn unpacked_and_split_typed_fields_are_joined() {
    // float_data as two unpacked values and one packed pair; int64_data split in two arrays.
    let f = |x: f32| pb::fixed32(4, x.to_le_bytes());
    let pair: Vec<u8> = [3.0f32, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let floats = pb::tensor("f", 1, &[2, 2], &[f(1.0), f(2.0), pb::bytes(4, &pair)].concat());
    let ints =
        pb::tensor("i", 7, &[3], &[pb::packed(7, &[-1]), pb::packed(7, &[5, 1 << 40])].concat());
    let unpacked_int = pb::tensor("j", 6, &[2], &[pb::int(5, -7), pb::int(5, 9)].concat());
    // Dims may come unpacked too.
    let dims_unpacked =
        [pb::int(1, 1), pb::int(1, 2), pb::int(2, 1), pb::bytes(8, b"d"), pb::bytes(9, &pair)]
            .concat();
    let file = open(pb::model(&[floats, ints, unpacked_int, dims_unpacked], &[])).unwrap();
    assert_eq!(file.tensor("f").unwrap().to_f32().unwrap(), [1.0, 2.0, 3.0, 4.0]);
    let i = file.tensor("i").unwrap();
    let vals: Vec<i64> =
        i.data.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(vals, [-1, 5, 1 << 40]);
    let j = file.tensor("j").unwrap();
    assert_eq!(hex(&j.data), "f9ffffff09000000");
    assert_eq!(file.tensor("d").unwrap().shape, [1, 2]);
}

#[test]
fn constant_attribute_forms() {
    let attr = |name: &str, value: &[u8]| [pb::bytes(1, name.as_bytes()), value.to_vec()].concat();
    let node = |out: &str, a: Vec<u8>| {
        [pb::bytes(2, out.as_bytes()), pb::bytes(4, b"Constant"), pb::bytes(5, &a)].concat()
    };
    let nodes = [
        node("vf", attr("value_float", &pb::fixed32(2, 2.5f32.to_le_bytes()))),
        node("vi", attr("value_int", &pb::int(3, -3))),
        node("vis", attr("value_ints", &pb::packed(8, &[1, -2, 3]))),
        node("vs", attr("value_string", &pb::bytes(4, b"x"))),
    ];
    let file = open(pb::model(&[], &nodes)).unwrap();
    let vf = file.tensor("vf").unwrap();
    assert_eq!((vf.shape.len(), vf.to_f32().unwrap()), (0, vec![2.5]));
    assert_eq!(hex(&file.tensor("vi").unwrap().data), "fdffffffffffffff");
    assert_eq!(file.tensor("vis").unwrap().shape, [3]);
    assert!(matches!(file.tensor("vs"), Err(Error::Unsupported { .. })));
}

#[test]
fn malformed_tensors_are_errors() {
    let f32s = |n: usize| vec![0u8; 4 * n];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative dim", pb::tensor("t", 1, &[2, -1], &pb::bytes(9, &f32s(2)))),
        ("overflowing dims", pb::tensor("t", 1, &[1 << 40, 1 << 40], &pb::bytes(9, &f32s(1)))),
        ("overflowing bytes", pb::tensor("t", 1, &[1 << 62], &pb::bytes(9, &f32s(1)))),
        ("raw_data too short", pb::tensor("t", 1, &[3], &pb::bytes(9, &f32s(2)))),
        ("raw_data too long", pb::tensor("t", 1, &[1], &pb::bytes(9, &f32s(2)))),
        ("too few typed values", pb::tensor("t", 7, &[3], &pb::packed(7, &[1, 2]))),
        ("huge dims, no data", pb::tensor("t", 1, &[1 << 30, 1 << 30], &[])),
        ("no data", pb::tensor("t", 1, &[2], &[])),
        ("undefined type", pb::tensor("t", 0, &[1], &pb::bytes(9, &f32s(1)))),
        ("no type", [pb::packed(1, &[1]), pb::bytes(8, b"t"), pb::bytes(9, &f32s(1))].concat()),
        (
            "raw and typed",
            pb::tensor("t", 1, &[1], &[pb::bytes(9, &f32s(1)), pb::fixed32(4, [0; 4])].concat()),
        ),
        ("wrong typed field", pb::tensor("t", 7, &[1], &pb::fixed32(4, [0; 4]))),
        ("two typed fields", pb::tensor("t", 6, &[2], &[pb::int(5, 1), pb::int(7, 1)].concat())),
        ("packed floats not whole", pb::tensor("t", 1, &[1], &pb::bytes(4, &[0; 5]))),
        ("float_data as varint", pb::tensor("t", 1, &[1], &pb::int(4, 1))),
        ("truncated packed varint", pb::tensor("t", 7, &[1], &pb::bytes(7, &[0x80]))),
        ("no name", [pb::packed(1, &[1]), pb::int(2, 1), pb::bytes(9, &f32s(1))].concat()),
        (
            "name not UTF-8",
            pb::tensor(
                "t",
                1,
                &[1],
                &[pb::bytes(8, &[0xff, 0xfe]), pb::bytes(9, &f32s(1))].concat(),
            ),
        ),
        ("group field", pb::tensor("t", 1, &[1], &[pb::key(20, 3), pb::key(20, 4)].concat())),
        ("wire type 7", pb::tensor("t", 1, &[1], &pb::key(20, 7))),
        ("field 0", pb::tensor("t", 1, &[1], &[0, 0])),
        (
            "varint over 64 bits",
            pb::tensor("t", 1, &[1], &[pb::key(20, 0), vec![0xff; 10], vec![0x01]].concat()),
        ),
        (
            "absurd length",
            pb::tensor("t", 1, &[1], &[pb::key(9, 2), pb::varint(u64::MAX >> 1)].concat()),
        ),
    ];
    for (what, t) in cases {
        let result = open(pb::model(&[t], &[]));
        assert!(matches!(result, Err(Error::Format { .. })), "{what}: {:?}", result.err());
    }
    // Values that do not fit their type surface when the tensor is read.
    let bad_i8 = pb::tensor("t", 3, &[1], &pb::packed(5, &[200]));
    let bad_bool = pb::tensor("b", 9, &[1], &pb::packed(5, &[2]));
    let bad_u32 = pb::tensor("u", 12, &[1], &pb::packed(11, &[1 << 33]));
    let file = open(pb::model(&[bad_i8, bad_bool, bad_u32], &[])).unwrap();
    for name in ["t", "b", "u"] {
        assert!(matches!(file.tensor(name), Err(Error::Tensor { .. })), "{name}");
    }
    // Known types this reader does not represent, and unknown ones, do not stop `open`.
    let complex = pb::tensor("c", 14, &[1], &pb::bytes(9, &[0; 8]));
    let future = pb::tensor("z", 99, &[1], &pb::bytes(9, &[0; 1]));
    let file = open(pb::model(&[complex, future], &[])).unwrap();
    assert_eq!(file.tensor_names().len(), 0);
    assert!(matches!(file.tensor("z"), Err(Error::Unsupported { .. })));
    assert!(matches!(file.tensor("c"), Err(Error::Unsupported { .. })));
}

#[test]
fn malformed_models_are_errors() {
    let t = pb::tensor("t", 1, &[1], &pb::bytes(9, &[0; 4]));
    let good = pb::model(std::slice::from_ref(&t), &[]);
    assert!(open(good.clone()).is_ok());
    assert!(open(Vec::new()).is_err(), "empty file");
    assert!(open(pb::model(&[t.clone(), t.clone()], &[])).is_err(), "duplicate initializer");
    assert!(open([pb::int(1, 8), pb::bytes(8, &pb::int(2, 17))].concat()).is_err(), "no graph");
    let graph_only = [pb::int(1, 8), pb::bytes(7, &pb::bytes(2, b"g"))].concat();
    assert!(open(graph_only).is_err(), "no opset");
    let mut long_len = pb::int(1, 8);
    long_len.extend(pb::key(7, 2));
    long_len.extend(pb::varint(1 << 40));
    assert!(open(long_len).is_err(), "graph length beyond the file");

    // Subgraphs nested past the limit: If -> then_branch graph -> If -> ...
    let nested = |depth: usize| {
        let mut graph = pb::bytes(2, b"leaf");
        for _ in 0..depth {
            let attr = [pb::bytes(1, b"then_branch"), pb::bytes(6, &graph)].concat();
            let node = [pb::bytes(4, b"If"), pb::bytes(5, &attr)].concat();
            graph = [pb::bytes(1, &node), pb::bytes(2, b"g")].concat();
        }
        let opset = [pb::bytes(1, b""), pb::int(2, 17)].concat();
        [pb::int(1, 8), pb::bytes(7, &graph), pb::bytes(8, &opset)].concat()
    };
    assert!(open(nested(MAX_GRAPH_DEPTH)).is_ok());
    assert!(matches!(open(nested(MAX_GRAPH_DEPTH + 1)), Err(Error::Format { .. })));
    assert!(open(nested(10_000)).is_err());
}

/// Opens and exercises everything a caller can reach, so that a panic anywhere shows.
fn exercise(bytes: Vec<u8>) -> aigc_core::Result<usize> {
    let file = open(bytes)?;
    let _ = file.metadata();
    let mut ok = 0;
    for name in file.tensor_names() {
        if let Ok(v) = file.tensor(&name) {
            let _ = v.to_f32();
            ok += 1;
        }
    }
    for node in file.nodes() {
        let _ = node.module_path();
        for slot in 0..node.inputs.len() {
            let _ = file.tensor_for_node_input(&node.name, slot);
        }
    }
    let _ = file.resolve_anonymous();
    let params = file.parameters();
    for name in params.tensor_names() {
        let _ = params.tensor(&name);
    }
    read_all(&file)?;
    Ok(ok)
}

#[test]
fn corrupt_fixture_never_panics() {
    let bytes = fixture_bytes();
    assert!(exercise(bytes.clone()).is_ok());
    // Every strict prefix lacks the graph or the opset import (the fixture ends with it).
    for len in 0..bytes.len() {
        let r = common::must_not_panic(&format!("truncated to {len}"), &bytes[..len], exercise);
        assert!(r.is_err(), "truncated to {len} was accepted");
    }
    let mut accepted = 0;
    let corpus = common::corruptions(&bytes, bytes.len(), 3000);
    for (what, b) in &corpus {
        if common::must_not_panic(what, b, exercise).is_ok() {
            accepted += 1;
        }
    }
    eprintln!("{accepted} of {} corruptions still parse", corpus.len());
}

// ---------------------------------------------------------------------------------------------
// Real models.

fn check_real(id: &str) -> Option<OnnxFile> {
    let path = common::real_model(id)?;
    let all = json("real_values.json");
    let want = &all[id];
    assert_eq!(std::fs::metadata(&path).unwrap().len(), want["file_size"].as_u64().unwrap());
    let file = OnnxFile::open(&path).unwrap();
    let meta = file.metadata();
    let get = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("ir_version"), want["ir_version"].to_string());
    assert_eq!(get("producer"), want["producer"].as_str().unwrap());
    assert_eq!(get("opset_import"), want["opset_import"].as_str().unwrap());
    assert_eq!(get("initializers"), want["initializers"].to_string());
    assert_eq!(get("nodes"), want["nodes"].to_string());
    let inputs: Vec<String> = meta
        .iter()
        .filter(|(k, _)| k == "input")
        .map(|(_, v)| v.split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(
        inputs,
        want["inputs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect::<Vec<_>>()
    );
    // Neither model has Constant nodes or unsupported tensors: every tensor is an initializer.
    assert_eq!(file.tensor_names().len() as u64, want["initializers"].as_u64().unwrap());
    assert!(file.unsupported_tensors().is_empty());

    for t in want["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let view = file.tensor(name).unwrap();
        assert!(matches!(view.data, Cow::Borrowed(_)), "{name} should be lent from the map");
        assert_eq!(view.dtype.name(), t["dtype"].as_str().unwrap(), "{name}");
        assert_eq!(view.shape, usizes(&t["shape"]), "{name}");
        let values = view.to_f32().unwrap();
        if let Some(bits) = t.get("first_bits") {
            for (i, b) in bits.as_array().unwrap().iter().enumerate() {
                let b =
                    u32::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
                assert_eq!(values[i].to_bits(), b, "{name}[{i}]");
            }
        } else {
            let raw: Vec<i64> =
                view.data.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
            let first: Vec<i64> =
                t["first"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            assert_eq!(&raw[..first.len()], &first[..], "{name}");
        }
        let sum: f64 = if view.dtype.name() == "I64" {
            view.data.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).sum()
        } else {
            values.iter().map(|&v| f64::from(v)).sum()
        };
        let want_sum = t["sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-6 * want_sum.abs().max(1.0),
            "{name}: sum {sum} vs {want_sum}"
        );
    }

    let anon = file.resolve_anonymous();
    assert_eq!(anon.len() as u64, want["anonymous_count"].as_u64().unwrap());
    let mut lines: Vec<String> = anon
        .iter()
        .filter_map(|a| a.parameter.as_ref().ok().map(|p| format!("{}={}", a.tensor, p.name)))
        .collect();
    lines.sort();
    assert_eq!(lines.len() as u64, want["resolved_count"].as_u64().unwrap());
    for (tensor, param) in want["resolved_samples"].as_object().unwrap() {
        let a = anon.iter().find(|a| &a.tensor == tensor).unwrap();
        assert_eq!(a.parameter.as_ref().unwrap().name, param.as_str().unwrap(), "{tensor}");
    }
    assert_eq!(fnv1a64(&lines), want["resolved_fnv1a64"].as_str().unwrap());
    Some(file)
}

#[test]
fn real_piper_voice() {
    let Some(file) = check_real("piper-en-us-joe-medium") else { return };
    let w = file.tensor("dec.ups.0.weight").unwrap();
    assert_eq!(w.shape, [256, 128, 16]);
    // The TorchScript exporter names nodes after modules; weight-norm convolutions were folded
    // into `onnx::Conv_*` tensors, and the phoneme embedding is stored as `sid`.
    let up = file.node("/dec/ups.0/ConvTranspose").unwrap();
    assert_eq!(up.module_path().as_deref(), Some("dec.ups.0"));
    assert_eq!(
        file.tensor_for_node_input("/dec/ups.0/ConvTranspose", 1).unwrap().name,
        "dec.ups.0.weight"
    );
    let params = file.parameters();
    let emb = params.tensor("enc_p.emb.weight").unwrap();
    assert_eq!(emb.data, file.tensor("sid").unwrap().data);
    assert_eq!(emb.shape, [256, 192]);
    let conv = params.tensor("flow.flows.6.enc.in_layers.0.weight").unwrap();
    assert_eq!(conv.shape, file.tensor("onnx::Conv_8168").unwrap().shape);
    assert!(params.contains("flow.flows.6.enc.in_layers.0.bias"));
    assert!(!params.contains("/Constant_output_0"));
}

#[test]
fn real_terrain_unet() {
    let Some(file) = check_real("terrain-consistency-unet") else { return };
    let all = json("real_values.json");
    let want = &all["terrain-consistency-unet"];
    for (k, v) in want["metadata_props"].as_object().unwrap() {
        assert!(
            file.model_metadata().contains(&(k.clone(), v.as_str().unwrap().to_string())),
            "{k}"
        );
    }
    // torch.export names nodes `node_Mul_46`; the module path is in the node metadata.
    let mul = file.node("node_Mul_46").unwrap();
    assert_eq!(mul.module_path().as_deref(), Some("network.input_blocks.1.0.in_layers.0"));
    assert_eq!(mul.aten_op().as_deref(), Some("aten.group_norm.default"));
    // Named parameters plus resolved GroupNorm weights and biases are exactly the parameters of
    // the exported program's signature.
    let params = file.parameters();
    let mut names = params.tensor_names();
    names.sort();
    assert_eq!(names.len() as u64, want["parameter_count"].as_u64().unwrap());
    assert_eq!(fnv1a64(&names), want["parameters_fnv1a64"].as_str().unwrap());
    let gamma = params.tensor("network.input_blocks.1.0.in_layers.0.weight").unwrap();
    assert_eq!(gamma.shape, [32]);
    assert_eq!(gamma.data, file.tensor("val_45").unwrap().data);
    assert_eq!(file.tensor("val_45").unwrap().shape, [32, 1, 1]);
    let w = params.tensor("network.input_blocks.1.0.in_layers.2.weight").unwrap();
    assert_eq!(w.shape.len(), 4);
}
