"""Golden fixtures for GGML block dequantization, produced with the `gguf` Python package.

Run (from the repository root; needs the reference venv, see tools/requirements.txt):

    /work/venv/bin/python tools/gguf_dequant_fixtures.py

Writes, under tools/fixtures/gguf/ (and nowhere else):

    input.f32        the f32 source matrix [8, 512] (little-endian) that every
                     "quantized-by-gguf" type below was quantized from
    <TYPE>.q         raw block bytes of an [8, 512] tensor, exactly as stored in a GGUF file
    <TYPE>.f32       gguf's dequantization of <TYPE>.q, raw little-endian f32, row-major [8, 512]
    manifest.json    per type: ggml type id, shape, block/type size, byte and value counts,
                     how the bytes were made, what dequantized them, sha256 of both files;
                     plus the gguf and numpy versions and the seed

Types and how their bytes were made (gguf 0.19.0):

    quantized-by-gguf (gguf.quants.quantize of input.f32):
        F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
    random-bytes (the package has no quantizer for these): every byte of the block is
    uniformly random except the floating-point scale fields (d, and dmin where the type has
    one), which are drawn finite: magnitude log-uniform in [1e-4, 2] with a random sign, and
    a few blocks set to edge values (+0, -0, the smallest f16 subnormal 2^-24, the largest
    f16 subnormal, 1.0, 65504 = f16 max, -65504):
        Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, IQ4_NL, IQ4_XS
    Q8_K's bsums field (int16[16], unused by dequantization) is filled consistently: the sum
    of each group of 16 quants.

Dequantization: gguf.quants.dequantize for every type except Q8_K, which gguf 0.19.0 does
not implement; for Q8_K the script computes ggml's dequantize_row_q8_K, y = d * q (f32 times
f32, one rounding), and the manifest says so ("dequantized_by").

Bit-exactness notes for the Rust side: every .f32 is exactly the float32 array numpy
returned (no f16 round trip). numpy evaluates each formula step by step in f32 without
fused multiply-add, e.g. Q4_1 is (d * q) + m, Q4_K/Q5_K are (d * sc) * q - (dmin * m),
Q2_K is (d * sc) * q - (dmin * m), Q3_K/Q6_K/IQ4_XS are (d * sc) * q. No value is NaN
or infinite (the source data is bounded by 1000 in magnitude).

The input has edge rows: zeros and -0.0, a row of all-equal values, large magnitudes,
tiny values (f16 subnormal scales), all-positive and all-negative rows, outliers, and a
block of exact .5 ties for Q8_0's round-half-away-from-zero.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf import quants

SEED = 20250601
ROWS, COLS = 8, 512
OUT = Path(__file__).resolve().parent / "fixtures" / "gguf"

QUANTIZED = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
RANDOM = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ4_NL", "IQ4_XS"]

# Byte offsets of the f16 scale fields inside one block (ggml struct layouts).
F16_FIELDS = {
    "Q2_K": [("d", 80), ("dmin", 82)],   # scales[16], qs[64], d, dmin
    "Q3_K": [("d", 108)],                # hmask[32], qs[64], scales[12], d
    "Q4_K": [("d", 0), ("dmin", 2)],     # d, dmin, scales[12], qs[128]
    "Q5_K": [("d", 0), ("dmin", 2)],     # d, dmin, scales[12], qh[32], qs[128]
    "Q6_K": [("d", 208)],                # ql[128], qh[64], scales[16] (int8), d
    "IQ4_NL": [("d", 0)],                # d, qs[16]
    "IQ4_XS": [("d", 0)],                # d, scales_h (u16), scales_l[4], qs[128]
}
F16_EDGES = np.array([0x0000, 0x8000, 0x0001, 0x03FF, 0x3C00, 0x7BFF, 0xFBFF], dtype=np.uint16)


def source_matrix(rng: np.random.Generator) -> np.ndarray:
    x = np.empty((ROWS, COLS), dtype=np.float32)
    # row 0: typical values, a block of zeros, a block with -0.0 and tiny values
    x[0] = rng.normal(0.0, 0.5, COLS)
    x[0, 0:32] = 0.0
    x[0, 32:64:2] = -0.0
    x[0, 33:64:2] = rng.normal(0.0, 1e-6, 16)
    # row 1: all equal
    x[1] = 0.375
    # row 2: large magnitudes, including exactly +-1000
    x[2] = rng.uniform(-1000.0, 1000.0, COLS)
    x[2, ::97] = 1000.0
    x[2, 5::97] = -1000.0
    # row 3: tiny values -> f16-subnormal scales
    x[3] = rng.normal(0.0, 1e-5, COLS)
    # rows 4, 5: one-signed
    x[4] = rng.uniform(0.0, 1.0, COLS)
    x[5] = -rng.uniform(0.0, 1.0, COLS)
    # row 6: small weights with outliers
    x[6] = rng.normal(0.0, 0.02, COLS)
    x[6, ::64] *= 50.0
    # row 7: exact .5 ties in the first two blocks (Q8_0: d = 1, x * id = k + 0.5), normal after
    x[7] = rng.normal(0.0, 1.0, COLS)
    x[7, 0:64] = rng.integers(-127, 127, 64) + 0.5
    x[7, 0] = 127.0
    x[7, 32] = -127.0
    return x


def random_f16(rng: np.random.Generator, n: int) -> np.ndarray:
    mag = np.exp(rng.uniform(np.log(1e-4), np.log(2.0), n))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    bits = (mag * sign).astype(np.float16).view(np.uint16).copy()
    k = min(n, len(F16_EDGES))
    pos = rng.choice(n, size=k, replace=False)
    bits[pos] = F16_EDGES[:k]
    return bits


def random_blocks(rng: np.random.Generator, name: str) -> np.ndarray:
    qtype = T[name]
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    n_blocks = ROWS * COLS // block_size
    blocks = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    if name == "Q8_K":
        mag = np.exp(rng.uniform(np.log(1e-4), np.log(2.0), n_blocks))
        d = (mag * np.where(rng.random(n_blocks) < 0.5, -1.0, 1.0)).astype(np.float32)
        d[0], d[1] = 0.0, 1.0
        blocks[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)
        q = blocks[:, 4:260].view(np.int8).astype(np.int16)
        bsums = q.reshape(n_blocks, 16, 16).sum(axis=-1).astype("<i2")
        blocks[:, 260:292] = bsums.view(np.uint8).reshape(n_blocks, 32)
    else:
        for _field, off in F16_FIELDS[name]:
            bits = random_f16(rng, n_blocks).astype("<u2")
            blocks[:, off:off + 2] = bits.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(ROWS, COLS // block_size * type_size)


def dequantize_q8_k(data: np.ndarray) -> np.ndarray:
    blocks = data.reshape(-1, GGML_QUANT_SIZES[T.Q8_K][1])
    d = blocks[:, 0:4].copy().view("<f4").astype(np.float32)
    q = blocks[:, 4:260].view(np.int8).astype(np.float32)
    return (d * q).astype(np.float32).reshape(ROWS, COLS)


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def main() -> None:
    assert sys.byteorder == "little"
    rng = np.random.default_rng(SEED)
    x = source_matrix(rng)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "input.f32").write_bytes(x.astype("<f4").tobytes())

    entries = []
    for name in QUANTIZED + RANDOM:
        qtype = T[name]
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        if name in QUANTIZED:
            q = quants.quantize(x, qtype)
            q = np.ascontiguousarray(q).view(np.uint8).reshape(ROWS, -1)
            made_by = "quantized-by-gguf"
        else:
            q = random_blocks(rng, name)
            made_by = "random-bytes"
        assert q.dtype == np.uint8 and q.shape == (ROWS, COLS // block_size * type_size), (name, q.shape)
        qbytes = q.tobytes()

        # Dequantize from a fresh copy of the bytes, as a reader of the file would.
        raw = np.frombuffer(qbytes, dtype=np.uint8).reshape(q.shape).copy()
        if name == "Q8_K":
            y = dequantize_q8_k(raw)
            dequantized_by = "script: ggml dequantize_row_q8_K, y = d * q (gguf 0.19.0 has no Q8_K dequantizer)"
        else:
            y = quants.dequantize(raw, qtype)
            dequantized_by = "gguf.quants.dequantize"
        assert y.dtype == np.float32 and y.shape == (ROWS, COLS), (name, y.dtype, y.shape)
        assert np.isfinite(y).all(), name
        ybytes = y.astype("<f4", copy=False).tobytes()

        (OUT / f"{name}.q").write_bytes(qbytes)
        (OUT / f"{name}.f32").write_bytes(ybytes)
        entries.append({
            "name": name,
            "ggml_type": int(qtype),
            "shape": [ROWS, COLS],
            "block_size": block_size,
            "type_size": type_size,
            "q_file": f"{name}.q",
            "q_bytes": len(qbytes),
            "f32_file": f"{name}.f32",
            "n_values": ROWS * COLS,
            "source": made_by,
            "dequantized_by": dequantized_by,
            "q_sha256": sha256(qbytes),
            "f32_sha256": sha256(ybytes),
        })

    xbytes = x.astype("<f4").tobytes()
    manifest = {
        "generator": "tools/gguf_dequant_fixtures.py",
        "gguf_version": importlib.metadata.version("gguf"),
        "numpy_version": np.__version__,
        "seed": SEED,
        "input": {"file": "input.f32", "shape": [ROWS, COLS], "sha256": sha256(xbytes),
                  "note": "source of every quantized-by-gguf type"},
        "layout": "row-major; .q rows are consecutive blocks of the row, as in GGUF; "
                  "GGUF dims of these tensors would be [512, 8]",
        "types": entries,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(entries)} types to {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
