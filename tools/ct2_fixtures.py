"""Golden values of the real Whisper tiny.en CTranslate2 model, for aigc-core/tests/ct2.rs.

Run from the repository root, after `scripts/fetch-models.sh whisper-tiny-en` (needs numpy
from the reference venv, see tools/requirements.txt):

    /work/venv/bin/python tools/ct2_fixtures.py

Reads ${AIGC_MODELS:-~/.cache/aigc/models}/whisper-tiny-en/model.bin with plain `struct`,
following the writer (`ModelSpec._serialize` in the ctranslate2 Python package):

    u32 binary_version; (>= 2) string spec_name, u32 spec_revision; u32 variable_count;
    per variable: string name, u8 rank, rank x u32 dims, u8 type_id (>= 4; older files: item
    size), u32 byte_count, bytes; (>= 3) u32 alias_count, per alias: string alias, string target.
    string = u16 length counting a trailing NUL, bytes, NUL.
    type ids: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.

and writes tools/fixtures/ct2/real_values.json: the header (version, spec, revision), variable
and alias counts, every alias, counts per dtype, the byte offset where the alias table starts,
for a few variables their dtype, shape, data offset, first values (as bit patterns) and the
float64 sum of all values, and every integer variable (the spec's attributes) with its values. The real file is never committed.
"""

from __future__ import annotations

import json
import os
import struct
from collections import Counter
from pathlib import Path

import numpy as np

MODELS = Path(os.environ.get("AIGC_MODELS", Path.home() / ".cache" / "aigc" / "models"))
OUT = Path(__file__).resolve().parent / "fixtures" / "ct2" / "real_values.json"
TYPES = [("F32", np.float32), ("I8", np.int8), ("I16", np.int16), ("I32", np.int32),
         ("F16", np.float16), ("BF16", np.uint16)]
PICKS = [
    "decoder/layer_0/self_attention/linear_0/weight",
    "decoder/layer_0/self_attention/linear_0/bias",
    "decoder/layer_0/attention/linear_1/weight",
    "encoder/conv1/weight",
    "encoder/position_encodings/encodings",
    "decoder/embeddings/weight",
]


def read(path: Path) -> dict:
    data = path.read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def string() -> str:
        nonlocal pos
        n = take("H")
        raw = data[pos:pos + n]
        pos += n
        assert raw.endswith(b"\0")
        return raw[:-1].decode()

    version = take("I")
    spec, revision = (string(), take("I")) if version >= 2 else ("", 1)
    variables = []
    for _ in range(take("I")):
        name = string()
        rank = take("B")
        shape = [take("I") for _ in range(rank)]
        type_id = take("B")
        nbytes = take("I")
        variables.append({"name": name, "type_id": type_id, "shape": shape, "offset": pos, "bytes": nbytes})
        pos += nbytes
    alias_offset = pos
    aliases = [[string(), string()] for _ in range(take("I"))] if version >= 3 else []
    assert pos == len(data), "trailing bytes"
    return {"data": data, "version": version, "spec": spec, "revision": revision,
            "variables": variables, "aliases": aliases, "alias_offset": alias_offset}


def summary(data: bytes, v: dict) -> dict:
    dtype_name, np_type = TYPES[v["type_id"]]
    a = np.frombuffer(data, np_type, count=v["bytes"] // np.dtype(np_type).itemsize, offset=v["offset"])
    bits = a.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[a.itemsize])
    width = a.itemsize * 2
    if dtype_name == "BF16":
        values = (a.astype(np.uint32) << 16).view(np.float32)
    else:
        values = a
    return {
        "name": v["name"], "dtype": dtype_name, "shape": v["shape"], "offset": v["offset"],
        "first_bits": [f"0x{int(b):0{width}x}" for b in bits[:8]],
        "sum": float(values.astype(np.float64).sum()),
    }


def integers(data: bytes, v: dict) -> dict:
    """An integer variable (the spec's attributes: flags, head counts, strings as int8) in full."""
    _, np_type = TYPES[v["type_id"]]
    a = np.frombuffer(data, np_type, count=v["bytes"] // np.dtype(np_type).itemsize, offset=v["offset"])
    return {"name": v["name"], "dtype": TYPES[v["type_id"]][0], "shape": v["shape"],
            "values": [int(x) for x in a[:64]]}


def main() -> None:
    path = MODELS / "whisper-tiny-en" / "model.bin"
    if not path.exists():
        raise SystemExit(f"{path} is absent: run scripts/fetch-models.sh whisper-tiny-en")
    m = read(path)
    by_name = {v["name"]: v for v in m["variables"]}
    out = {
        "file_size": len(m["data"]),
        "binary_version": m["version"],
        "spec_name": m["spec"],
        "spec_revision": m["revision"],
        "variable_count": len(m["variables"]),
        "alias_count": len(m["aliases"]),
        "aliases": m["aliases"],
        "alias_table_offset": m["alias_offset"],
        "dtype_counts": dict(Counter(TYPES[v["type_id"]][0] for v in m["variables"])),
        "scalars": [v["name"] for v in m["variables"] if not v["shape"]][:8],
        "first_names": [v["name"] for v in m["variables"][:5]],
        "variables": [summary(m["data"], by_name[p]) for p in PICKS if p in by_name],
        "integer_variables": [integers(m["data"], v) for v in m["variables"] if v["type_id"] in (1, 2, 3)],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
