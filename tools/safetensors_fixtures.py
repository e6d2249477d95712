"""Small safetensors fixtures (a few KB) for the Rust safetensors loader tests.

Run (from the repository root; needs the reference venv, see tools/requirements.txt):

    /work/venv/bin/python tools/safetensors_fixtures.py

Writes, under tools/fixtures/safetensors/ (and nowhere else):

    mixed.safetensors       F32 [2, 3], F32 scalar (shape []), F16 [2, 4], BF16 [2, 3, 4] and
                            I64 [6] tensors, and a __metadata__ dict
    sharded/model-00001-of-00002.safetensors
    sharded/model-00002-of-00002.safetensors
    sharded/model.safetensors.index.json
                            a two-shard checkpoint with a Hugging Face index:
                            {"metadata": {"total_size": N}, "weight_map": {name: file}};
                            total_size is the sum of the tensors' byte sizes, as HF writes it
    expected.json           for every file: its sha256, its __metadata__, and each tensor's
                            name, dtype, shape, byte length and values (flat, row-major). Float
                            values are the exact value of each element as a JSON number
                            (shortest repr of the f64 that equals it) and also its raw bit
                            pattern ("bits": u32 hex for F32, u16 hex for F16/BF16); I64 values
                            are JSON integers, all exactly representable in f32 and f64.

The files are written by the safetensors package's own serializer (safetensors.serialize), so
the tensor order, offsets and 8-byte header padding are the reference ones; only the
__metadata__ keys are re-sorted afterwards so that the bytes are reproducible. BF16 tensors are built from
bit patterns, so every value is exactly representable; F16 values come from numpy's float16.
Deterministic: fixed values and a fixed seed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
from safetensors import TensorSpec, deserialize, serialize

SEED = 7
OUT = Path(__file__).resolve().parent / "fixtures" / "safetensors"

NP_NAME = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64"}
BITS = {"F32": np.uint32, "F16": np.uint16, "BF16": np.uint16}


def bf16(values) -> np.ndarray:
    """BF16 bit patterns of values that must already be exactly representable in bf16."""
    v = np.asarray(values, dtype=np.float32)
    bits = v.view(np.uint32)
    assert (bits & 0xFFFF == 0).all(), "value not exactly representable in bf16"
    return (bits >> 16).astype(np.uint16)


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def mixed_tensors(rng: np.random.Generator) -> dict[str, tuple[str, np.ndarray]]:
    # BF16 [2, 3, 4]: fixed edge values, then random finite bit patterns
    fixed = [0x3F80, 0xC000, 0x3F00, 0x7F7F, 0xFF7F, 0x0001, 0x8000, 0x0000, 0x3DCD, 0x4049]
    rnd = rng.integers(0, 1 << 16, 24 - len(fixed), dtype=np.uint32).astype(np.uint16)
    exp = (rnd >> 7) & 0xFF
    rnd = np.where(exp == 0xFF, rnd & 0x807F, rnd).astype(np.uint16)  # keep finite
    brain = np.concatenate([np.array(fixed, dtype=np.uint16), rnd]).reshape(2, 3, 4)
    assert np.isfinite(bf16_to_f32(brain)).all()
    return {
        "encoder.weight": ("F32", np.array([[1.0, -2.5, 0.1],
                                            [-0.0, 3.4028234663852886e38, 1.401298464324817e-45]],
                                           dtype=np.float32)),
        "encoder.scale": ("F32", np.array(2.7182817, dtype=np.float32)),  # shape []
        "half.values": ("F16", np.array([[1.0, -2.0, 1.0 / 3.0, 65504.0],
                                         [-65504.0, 6.103515625e-05, 5.960464477539063e-08, -0.0]],
                                        dtype=np.float16)),
        "brain.cube": ("BF16", brain),
        "token.ids": ("I64", np.array([0, -1, 42, 1 << 24, 1 << 40, -(1 << 62)], dtype=np.int64)),
    }


def sharded_tensors(rng: np.random.Generator) -> list[dict[str, tuple[str, np.ndarray]]]:
    q = lambda shape: (rng.integers(-64, 64, shape) / 16.0).astype(np.float32)  # noqa: E731
    shard1 = {
        "model.embed_tokens.weight": ("F32", q((5, 4))),
        "model.layers.0.self_attn.q_proj.weight": ("F16", q((4, 4)).astype(np.float16)),
        "model.layers.0.input_layernorm.weight": ("BF16", bf16(q((4,)))),
    }
    shard2 = {
        "model.layers.1.self_attn.q_proj.weight": ("F16", q((4, 4)).astype(np.float16)),
        "model.layers.1.input_layernorm.weight": ("BF16", bf16(q((4,)))),
        "model.norm.weight": ("F32", q((4,))),
        "lm_head.weight": ("F32", q((5, 4))),
    }
    return [shard1, shard2]


def write(path: Path, tensors: dict[str, tuple[str, np.ndarray]], metadata: dict[str, str]) -> bytes:
    specs = {}
    keep_alive = []  # TensorSpec holds a raw pointer: the arrays must outlive serialize()
    for name, (dtype, arr) in tensors.items():
        arr = np.array(arr, order="C", copy=True)  # (ascontiguousarray would turn shape [] into [1])
        assert arr.dtype.byteorder in "=<|"
        keep_alive.append(arr)
        specs[name] = TensorSpec(dtype=NP_NAME[dtype], shape=list(arr.shape),
                                 data_ptr=arr.ctypes.data, data_len=arr.nbytes)
    data = bytes(serialize(specs, metadata=metadata))
    del keep_alive
    # The serializer writes __metadata__ in hash-map order, which varies between runs; rewrite
    # the header with sorted metadata keys (tensor entries and data untouched), padded with
    # spaces to a multiple of 8 bytes as the serializer does.
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    header = {"__metadata__": header.pop("__metadata__"), **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    data = len(text).to_bytes(8, "little") + text + data[8 + n:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def describe(tensors: dict[str, tuple[str, np.ndarray]], data: bytes) -> list[dict]:
    # Check the file with the package's own parser and describe the tensors in file order.
    parsed = dict(deserialize(data))
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    order = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    out = []
    for name in order:
        dtype, arr = tensors[name]
        arr = np.array(arr, order="C", copy=True)  # (ascontiguousarray would turn shape [] into [1])
        assert parsed[name]["dtype"] == dtype and list(parsed[name]["shape"]) == list(arr.shape)
        assert bytes(parsed[name]["data"]) == arr.tobytes(), name
        rec = {"name": name, "dtype": dtype, "shape": list(arr.shape), "n_bytes": arr.nbytes,
               "data_offsets": header[name]["data_offsets"]}
        flat = arr.reshape(-1)
        if dtype == "I64":
            rec["values"] = [int(v) for v in flat]
            assert all(float(np.float32(v)) == v for v in rec["values"])
        else:
            f32 = bf16_to_f32(flat) if dtype == "BF16" else flat.astype(np.float32)
            bits = flat.view(BITS[dtype])
            width = 8 if dtype == "F32" else 4
            rec["values"] = [float(v) for v in f32]
            rec["bits"] = [f"0x{int(b):0{width}x}" for b in bits]
        out.append(rec)
    return out


def main() -> None:
    assert sys.byteorder == "little"
    rng = np.random.default_rng(SEED)
    expected = {
        "generator": "tools/safetensors_fixtures.py",
        "safetensors_version": importlib.metadata.version("safetensors"),
        "numpy_version": np.__version__,
        "files": {},
    }

    mixed = mixed_tensors(rng)
    meta = {"format": "pt", "generator": "tools/safetensors_fixtures.py", "purpose": "aigc loader test"}
    data = write(OUT / "mixed.safetensors", mixed, meta)
    expected["files"]["mixed.safetensors"] = {
        "sha256": hashlib.sha256(data).hexdigest(), "metadata": meta, "tensors": describe(mixed, data)}

    shards = sharded_tensors(rng)
    weight_map = {}
    total = 0
    for i, shard in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        data = write(OUT / "sharded" / fname, shard, {"format": "pt"})
        expected["files"][f"sharded/{fname}"] = {
            "sha256": hashlib.sha256(data).hexdigest(), "metadata": {"format": "pt"},
            "tensors": describe(shard, data)}
        for name, (_dtype, arr) in shard.items():
            weight_map[name] = fname
            total += arr.nbytes
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    index_text = json.dumps(index, indent=2) + "\n"
    (OUT / "sharded" / "model.safetensors.index.json").write_text(index_text)
    expected["files"]["sharded/model.safetensors.index.json"] = {
        "sha256": hashlib.sha256(index_text.encode()).hexdigest(), "index": index}

    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    total_bytes = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total_bytes} bytes)")


if __name__ == "__main__":
    main()
