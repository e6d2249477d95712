"""Fixtures for the ONNX reader (aigc-core/src/weights/onnx.rs), made with the `onnx` package.

Run from the repository root (needs the reference venv, see tools/requirements.txt):

    /work/venv/bin/python tools/onnx_fixtures.py

Writes, under tools/fixtures/onnx/:

  tensors.onnx   a small model whose tensors cover every way ONNX stores data: raw_data of
                 every supported type (f32, f16, bf16, f64, i64, i32, i16, i8, u8, u16, u32,
                 u64, bool), the typed fields (float_data, int32_data holding f16/bf16 bit
                 patterns and i8/u8/i16/u16/i32/bool values, int64_data, double_data,
                 uint64_data for u32 and u64), a scalar, an empty tensor, Constant nodes (a
                 `value` tensor, `value_floats`, `value_int`), an If node whose branches hold a
                 Constant and an initializer, a STRING tensor and an external-data tensor (both
                 unsupported), and an anonymous initializer `onnx::Conv_7` read by the node
                 `/block/conv/Conv`. ModelProto ends with its single opset_import, so every
                 strict prefix of the file lacks the graph or the opset (the truncation test
                 relies on it).
  expected.json  for every tensor: name, dtype, shape, origin, and its little-endian bytes in
                 hex as numpy_helper.to_array reads them; the unsupported tensors; the expected
                 resolution of anonymous tensors; the model's metadata.

and, when the real models are installed (${AIGC_MODELS:-~/.cache/aigc/models}),
tools/fixtures/onnx/real_values.json: per model, counts (initializers, nodes, opsets), a few
tensors (shape, dtype, first values as f32 bit patterns, float64 sum), and the expected naming of
anonymous initializers, worked out independently of the Rust rules:
  - Piper (TorchScript exporter): module path from the consuming node's name
    (`/flow/flows.6/enc/in_layers.0/Conv` -> `flow.flows.6.enc.in_layers.0`) + the role of the
    input slot (Conv 1 weight, 2 bias; Gather 0 weight);
  - terrain UNet (torch.export exporter): the parameters the node's `fx_node` metadata names
    (`%p_network_..._weight`), mapped to their PyTorch names by the graph signature in the graph's
    metadata_props, for the Mul (weight) and Add (bias) lowered from aten.group_norm.
Each list is summarised as a count, a few samples and an FNV-1a 64 hash of its sorted
`tensor=parameter` lines (the Rust test computes the same hash).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parent / "fixtures" / "onnx"
MODELS = Path(os.environ.get("AIGC_MODELS", Path.home() / ".cache" / "aigc" / "models"))

DTYPE_NAMES = {
    TensorProto.FLOAT: "F32", TensorProto.FLOAT16: "F16", TensorProto.BFLOAT16: "BF16",
    TensorProto.DOUBLE: "F64", TensorProto.INT64: "I64", TensorProto.INT32: "I32",
    TensorProto.INT16: "I16", TensorProto.INT8: "I8", TensorProto.UINT8: "U8",
    TensorProto.UINT16: "U16", TensorProto.UINT32: "U32", TensorProto.UINT64: "U64",
    TensorProto.BOOL: "BOOL",
}


def fnv1a64(lines: list[str]) -> str:
    """FNV-1a 64 of the lines joined by '\n' (UTF-8), as 16 hex digits."""
    h = 0xCBF29CE484222325
    for b in "\n".join(lines).encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def le_bytes(t: TensorProto) -> bytes:
    """The tensor's values as onnx reads them, as little-endian bytes of its element type."""
    a = numpy_helper.to_array(t)
    if t.data_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16):
        a = a.view(np.uint16)  # bf16 comes back as ml_dtypes.bfloat16; keep its bits
    if t.data_type == TensorProto.BOOL:
        a = a.astype(np.uint8)
    return np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()


def raw(name: str, arr: np.ndarray) -> TensorProto:
    t = numpy_helper.from_array(arr, name)
    assert t.HasField("raw_data")
    return t


def typed(name: str, data_type: int, dims: list[int], vals) -> TensorProto:
    """A tensor in the typed fields; make_tensor turns f16/bf16 values into int32_data bits."""
    t = helper.make_tensor(name, data_type, dims, vals, raw=False)
    assert not t.HasField("raw_data")
    return t


def bf16_bits(vals) -> list[int]:
    return [int(b) >> 16 for b in np.array(vals, np.float32).view(np.uint32)]


def build_fixture() -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    inits = [
        # The anonymous weight of /block/conv/Conv and its named bias.
        raw("onnx::Conv_7", rng.standard_normal((3, 2, 1)).astype(np.float32)),
        raw("block.conv.bias", np.array([0.5, -1.25, 3.0], np.float32)),
        raw("raw_f32", np.array([[1.5, -2.0, 0.0], [-0.0, 3.25e-3, 1e30]], np.float32)),
        raw("raw_f16", np.array([[1.0, -0.5, 65504.0], [6e-8, -0.0, 2.0]], np.float16)),
        raw("raw_i64", np.array([0, -1, 2**62, -(2**63)], np.int64)),
        raw("raw_f64", np.array([np.pi, -1e-300], np.float64)),
        raw("raw_i32", np.array([-(2**31), 7], np.int32)),
        raw("raw_i16", np.array([-32768, 32767, 1], np.int16)),
        raw("raw_i8", np.array([-128, 127], np.int8)),
        raw("raw_u8", np.array([0, 255, 7], np.uint8)),
        raw("raw_u16", np.array([65535, 1], np.uint16)),
        raw("raw_u32", np.array([2**32 - 1, 3], np.uint32)),
        raw("raw_u64", np.array([2**64 - 1, 5], np.uint64)),
        raw("raw_bool", np.array([True, False, True], np.bool_)),
        raw("raw_scalar", np.array(42.0, np.float32)),
        raw("raw_empty", np.zeros((0, 3), np.float32)),
    ]
    bf16 = onnx.TensorProto()
    bf16.name, bf16.data_type = "raw_bf16", TensorProto.BFLOAT16
    bf16.dims.extend([3])
    bf16.raw_data = np.array(bf16_bits([1.0, -2.5, 3.0e38]), "<u2").tobytes()
    inits.append(bf16)
    inits += [
        typed("typed_float", TensorProto.FLOAT, [2, 2], [1.0, -2.5, 1e-20, 7.0]),
        typed("typed_f16", TensorProto.FLOAT16, [3], [0.5, -3.0, 1000.0]),
        typed("typed_bf16", TensorProto.BFLOAT16, [2], [1.5, -0.125]),
        typed("typed_i64", TensorProto.INT64, [3], [-5, 2**40, 0]),
        typed("typed_f64", TensorProto.DOUBLE, [2], [0.1, -2.0]),
        typed("typed_u64", TensorProto.UINT64, [2], [2**64 - 1, 9]),
        typed("typed_u32", TensorProto.UINT32, [2], [2**32 - 1, 0]),
        typed("typed_i32", TensorProto.INT32, [3], [-(2**31), -1, 2**31 - 1]),
        typed("typed_i16", TensorProto.INT16, [2], [-32768, 300]),
        typed("typed_i8", TensorProto.INT8, [3], [-128, -1, 127]),
        typed("typed_u8", TensorProto.UINT8, [2], [255, 0]),
        typed("typed_u16", TensorProto.UINT16, [2], [65535, 2]),
        typed("typed_bool", TensorProto.BOOL, [3], [1, 0, 1]),
    ]
    strings = helper.make_tensor("strings", TensorProto.STRING, [2], [b"a", b"bc"])
    external = onnx.TensorProto()
    external.name, external.data_type = "external_weight", TensorProto.FLOAT
    external.dims.extend([4])
    external.data_location = TensorProto.EXTERNAL
    entry = external.external_data.add()
    entry.key, entry.value = "location", "weights.bin"
    inits += [strings, external]

    then_branch = helper.make_graph(
        [helper.make_node("Constant", [], ["then_c"], name="then_const",
                          value=raw("", np.array([1.0, 2.0], np.float32)))],
        "then", [], [helper.make_tensor_value_info("then_c", TensorProto.FLOAT, [2])],
        initializer=[raw("then_init", np.array([9, 8], np.int64))],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Constant", [], ["else_c"], name="else_const",
                          value=typed("", TensorProto.FLOAT, [2], [3.0, 4.0]))],
        "else", [], [helper.make_tensor_value_info("else_c", TensorProto.FLOAT, [2])],
    )
    nodes = [
        helper.make_node("Conv", ["x", "onnx::Conv_7", "block.conv.bias"], ["c"],
                         name="/block/conv/Conv", group=1),
        helper.make_node("Constant", [], ["/block/Constant_output_0"], name="/block/Constant",
                         value=raw("", np.array([[0.25], [-4.0], [8.0]], np.float32))),
        helper.make_node("Mul", ["c", "/block/Constant_output_0"], ["m"], name="/block/Mul"),
        helper.make_node("Constant", [], ["/Constant_1_output_0"], name="/Constant_1",
                         value_floats=[1.0, -1.5, 2.25]),
        helper.make_node("Constant", [], ["/Constant_2_output_0"], name="/Constant_2", value_int=-7),
        helper.make_node("Constant", [], ["cond"], name="/Constant_3",
                         value=numpy_helper.from_array(np.array(True))),
        helper.make_node("If", ["cond"], ["branch"], name="/If",
                         then_branch=then_branch, else_branch=else_branch),
        helper.make_node("Identity", ["m"], ["y"], name="/Identity"),
    ]
    graph = helper.make_graph(
        nodes, "fixture",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 4]),
         helper.make_tensor_value_info("branch", TensorProto.FLOAT, [2])],
        initializer=inits,
    )
    model = helper.make_model(graph, producer_name="aigc-fixtures", producer_version="1",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def expected_for(model: onnx.ModelProto) -> dict:
    tensors, unsupported = [], []

    def add(t: TensorProto, name: str, origin: str):
        if t.data_type not in DTYPE_NAMES or t.data_location == TensorProto.EXTERNAL:
            unsupported.append(name)
            return
        tensors.append({
            "name": name, "origin": origin, "dtype": DTYPE_NAMES[t.data_type],
            "shape": [int(d) for d in t.dims], "hex": le_bytes(t).hex(),
        })

    def walk(g: onnx.GraphProto):
        for n in g.node:
            if n.op_type == "Constant":
                a = n.attribute[0]
                if a.name == "value":
                    add(a.t, n.output[0], "constant")
                elif a.name == "value_floats":
                    add(helper.make_tensor("", TensorProto.FLOAT, [len(a.floats)], a.floats), n.output[0], "constant")
                elif a.name == "value_int":
                    add(helper.make_tensor("", TensorProto.INT64, [], [a.i]), n.output[0], "constant")
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
        for t in g.initializer:
            add(t, t.name, "initializer")

    walk(model.graph)
    return {
        "tensors": tensors,
        "unsupported": unsupported,
        "anonymous": {"onnx::Conv_7": {"parameter": "block.conv.weight", "shape": [3, 2, 1]}},
        "metadata": {
            "ir_version": model.ir_version, "producer": "aigc-fixtures 1", "graph": "fixture",
            "opset_import": "ai.onnx 17", "nodes": len(model.graph.node),
            "initializers": len(model.graph.initializer),
            "inputs": ["x: FLOAT [batch, 2, 4]"],
        },
    }


def tensor_summary(t: TensorProto, first: int = 8) -> dict:
    a = numpy_helper.to_array(t)
    flat = a.reshape(-1)
    out = {"name": t.name, "dtype": DTYPE_NAMES[t.data_type], "shape": [int(d) for d in t.dims]}
    if t.data_type == TensorProto.FLOAT:
        out["first_bits"] = [f"0x{int(b):08x}" for b in flat[:first].view(np.uint32)]
    else:
        out["first"] = [int(v) for v in flat[:first]]
    out["sum"] = float(flat.astype(np.float64).sum())
    return out


PARAM_RE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$")


def piper_values(path: Path) -> dict:
    m = onnx.load(str(path))
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    role = {("Conv", 1): "weight", ("Conv", 2): "bias", ("ConvTranspose", 1): "weight",
            ("ConvTranspose", 2): "bias", ("Gather", 0): "weight"}
    uses: dict[str, list] = {}
    for n in g.node:
        for i, x in enumerate(n.input):
            uses.setdefault(x, []).append((n, i))
    resolved = {}
    anonymous = [t for t in g.initializer if not PARAM_RE.match(t.name)]
    for t in anonymous:
        names = set()
        for n, i in uses.get(t.name, []):
            parts = n.name.strip("/").split("/")
            r = role.get((n.op_type, i))
            names.add(".".join(parts[:-1]) + "." + r if r and n.name.startswith("/") and len(parts) > 1 else None)
        if len(names) == 1 and None not in names:
            resolved[t.name] = names.pop()
    lines = sorted(f"{k}={v}" for k, v in resolved.items())
    picks = ["dec.ups.0.weight", "dec.ups.0.bias", "enc_p.encoder.attn_layers.0.emb_rel_k",
             "sid", "onnx::Conv_8168", "dp.flows.0.logs"]
    i64 = next(t for t in g.initializer if t.data_type == TensorProto.INT64)
    return {
        "ir_version": m.ir_version, "producer": f"{m.producer_name} {m.producer_version}",
        "opset_import": ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in m.opset_import),
        "initializers": len(g.initializer), "nodes": len(g.node),
        "inputs": [i.name for i in g.input], "outputs": [o.name for o in g.output],
        "tensors": [tensor_summary(inits[p]) for p in picks if p in inits] + [tensor_summary(i64)],
        "anonymous_count": len(anonymous),
        "resolved_count": len(resolved),
        "resolved_samples": {k: resolved[k] for k in ["sid", "onnx::Conv_8168"] if k in resolved},
        "resolved_fnv1a64": fnv1a64(lines),
    }


def terrain_values(path: Path) -> dict:
    m = onnx.load(str(path))
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    sig = next(p.value for p in g.metadata_props if p.key.endswith("graph_signature"))
    params = dict(re.findall(r"^(\w+): PARAMETER target='([^']+)'", sig, re.M))
    resolved = {}
    for n in g.node:
        md = {p.key: p.value for p in n.metadata_props}
        if "aten.group_norm" not in md.get("pkg.torch.onnx.class_hierarchy", ""):
            continue
        if n.op_type not in ("Mul", "Add"):
            continue
        args = [params[a] for a in re.findall(r"%(p_\w+)", md["pkg.torch.onnx.fx_node"]) if a in params]
        want = "weight" if n.op_type == "Mul" else "bias"
        target = [a for a in args if a.endswith("." + want)]
        for x in n.input:
            if x in inits and not PARAM_RE.match(x):
                assert len(target) == 1, (n.name, args)
                resolved[x] = target[0]
    lines = sorted(f"{k}={v}" for k, v in resolved.items())
    named = [t.name for t in g.initializer if PARAM_RE.match(t.name)]
    all_params = sorted(named + list(resolved.values()))
    assert sorted(params.values()) == all_params, "named + resolved should be the whole signature"
    picks = ["network.input_blocks.1.0.in_layers.2.weight", "network.time_embed.0.weight",
             "network.out.2.bias", "val_45", "val_47"]
    return {
        "ir_version": m.ir_version, "producer": f"{m.producer_name} {m.producer_version}",
        "opset_import": ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in m.opset_import),
        "initializers": len(g.initializer), "nodes": len(g.node),
        "inputs": [i.name for i in g.input], "outputs": [o.name for o in g.output],
        "metadata_props": {p.key: p.value for p in m.metadata_props},
        "tensors": [tensor_summary(inits[p]) for p in picks],
        "anonymous_count": sum(1 for t in g.initializer if not PARAM_RE.match(t.name)),
        "resolved_count": len(resolved),
        "resolved_samples": {k: resolved[k] for k in ["val_45", "val_47"]},
        "resolved_fnv1a64": fnv1a64(lines),
        "parameter_count": len(all_params),
        "parameters_fnv1a64": fnv1a64(all_params),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    model = build_fixture()
    data = model.SerializeToString()
    # The truncation test needs the opset import to be the last top-level field.
    last = onnx.ModelProto()
    last.opset_import.extend(model.opset_import)
    assert data.endswith(last.SerializeToString()), "opset_import must be ModelProto's last field"
    (OUT / "tensors.onnx").write_bytes(data)
    reread = onnx.load_from_string(data)
    (OUT / "expected.json").write_text(json.dumps(expected_for(reread), indent=1) + "\n")
    print(f"wrote {OUT / 'tensors.onnx'} ({len(data)} bytes) and expected.json")

    real = {}
    for id_, file, fn in [
        ("piper-en-us-joe-medium", "en_US-joe-medium.onnx", piper_values),
        ("terrain-consistency-unet", "terrain_consistency_unet_difficulty100.onnx", terrain_values),
    ]:
        p = MODELS / id_ / file
        if p.exists():
            real[id_] = {"file": file, "file_size": p.stat().st_size, **fn(p)}
        else:
            print(f"SKIPPED {id_}: {p} is absent")
    if real:
        (OUT / "real_values.json").write_text(json.dumps(real, indent=1) + "\n")
        print(f"wrote {OUT / 'real_values.json'}")


if __name__ == "__main__":
    main()
