"""Golden values read from the real GGUF models with the `gguf` package's GGUFReader.

Run (from the repository root, after `scripts/fetch-models.sh smollm2-135m-instruct gemma-3-270m`;
needs the reference venv, see tools/requirements.txt):

    /work/venv/bin/python tools/real_gguf_values.py

Finds the models under ${AIGC_MODELS:-$HOME/.cache/aigc/models} (ids smollm2-135m-instruct and
gemma-3-270m) and writes tools/fixtures/real_gguf_values.json (and nothing else) with, per model:

  file metadata: file name, size, sha256, GGUF version, tensor count, kv count, alignment, the
  absolute offset of the tensor data section, tensor type counts, and the hyperparameters a
  loader reads (general.architecture, <arch>.block_count, embedding_length, head counts, ...);

  tensors:
    SmolLM2:  token_embd.weight (Q8_0), blk.0.attn_q.weight (Q4_1), blk.0.attn_norm.weight (F32)
    Gemma 3:  token_embd.weight (whatever its type; Q8_0 in this file), the first Q4_K tensor
              and the first Q6_K tensor in file order ("picked_as" says why each was chosen),
              and blk.0.attn_norm.weight (F32)
  and for each: GGUF dims (innermost first, as in the file), numpy shape (outermost first),
  ggml type, absolute byte offset and byte length of its data, sha256 of those raw bytes, and
  dequantized values (gguf.quants.dequantize, f32) as decimal floats and as f32 bit patterns
  (hex): the first 64 values, 16 values from flat element index 100000, and the last 16
  values (flat indices in numpy row-major order, i.e. GGUF order: dims[0] varies fastest).
  Also the sha256 of the whole dequantized tensor as little-endian f32 bytes, and its
  sum / sum of absolute values in float64 (numpy's pairwise order; compare with a tolerance).

Deterministic (no randomness). Dequantization is done a few thousand rows at a time, which
gives exactly the same values as dequantizing the whole tensor (GGML blocks never span rows).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader
from gguf import quants

ROOT = Path(os.environ.get("AIGC_MODELS", Path.home() / ".cache" / "aigc" / "models"))
OUT = Path(__file__).resolve().parent / "fixtures" / "real_gguf_values.json"
DEEP_OFFSET = 100000
N_HEAD, N_DEEP, N_TAIL = 64, 16, 16
CHUNK_ROWS = 4096

MODELS = [
    ("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("gemma-3-270m", "gemma-3-270m-q4_k_m.gguf"),
]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def field(reader: GGUFReader, key: str):
    f = reader.get_field(key)
    if f is None:
        return None
    v = f.contents()
    if isinstance(v, float):
        # f32 metadata: record the exact f32 value and its bits
        return {"f32": float(np.float32(v)), "bits": f"0x{np.float32(v).view(np.uint32):08x}"}
    return v


def values(arr: np.ndarray, start: int) -> dict:
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    return {
        "offset": int(start),
        "f32": [float(v) for v in arr],
        "bits": [f"0x{b:08x}" for b in arr.view(np.uint32)],
    }


def tensor_record(reader: GGUFReader, t, picked_as: str) -> dict:
    qtype = GGMLQuantizationType(t.tensor_type)
    dims = [int(d) for d in t.shape]                # innermost first
    np_shape = list(reversed(dims))
    n = int(t.n_elements)
    ne0 = dims[0]
    n_rows = n // ne0
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    row_bytes = ne0 // block_size * type_size
    raw = np.asarray(reader.data[t.data_offset:t.data_offset + t.n_bytes])
    assert raw.size == t.n_bytes == n_rows * row_bytes
    rows = raw.reshape(n_rows, row_bytes)

    def deq(r0: int, r1: int) -> np.ndarray:
        y = quants.dequantize(np.ascontiguousarray(rows[r0:r1]), qtype)
        y = np.asarray(y).reshape(-1)
        assert y.dtype == np.float32 and y.size == (r1 - r0) * ne0
        return y

    def flat(start: int, count: int) -> np.ndarray:
        r0, r1 = start // ne0, (start + count - 1) // ne0 + 1
        y = deq(r0, r1)
        return y[start - r0 * ne0:start - r0 * ne0 + count]

    h = hashlib.sha256()
    total = 0.0
    total_abs = 0.0
    for r0 in range(0, n_rows, CHUNK_ROWS):
        y = deq(r0, min(n_rows, r0 + CHUNK_ROWS))
        h.update(y.astype("<f4", copy=False).tobytes())
        total += float(y.sum(dtype=np.float64))
        total_abs += float(np.abs(y).sum(dtype=np.float64))

    rec = {
        "name": t.name,
        "picked_as": picked_as,
        "ggml_type": qtype.name,
        "ggml_type_id": int(qtype),
        "gguf_dims": dims,
        "numpy_shape": np_shape,
        "n_elements": n,
        "data_offset": int(t.data_offset),
        "data_offset_in_section": int(t.data_offset - reader.data_offset),
        "n_bytes": int(t.n_bytes),
        "raw_sha256": hashlib.sha256(raw.tobytes()).hexdigest(),
        "head": values(flat(0, N_HEAD), 0),
        "deep": values(flat(DEEP_OFFSET, N_DEEP), DEEP_OFFSET) if n >= DEEP_OFFSET + N_DEEP else None,
        "tail": values(flat(n - N_TAIL, N_TAIL), n - N_TAIL),
        "dequant_f32_sha256": h.hexdigest(),
        "dequant_sum_f64": total,
        "dequant_sum_abs_f64": total_abs,
    }
    return rec


def model_record(model_id: str, file_name: str) -> dict:
    path = ROOT / model_id / file_name
    if not path.is_file():
        sys.exit(f"{path} not found; run scripts/fetch-models.sh {model_id} (or set AIGC_MODELS)")
    reader = GGUFReader(path)
    arch = field(reader, "general.architecture")
    tensors = {t.name: t for t in reader.tensors}

    picks: list[tuple[object, str]] = []
    if model_id.startswith("smollm2"):
        picks = [(tensors["token_embd.weight"], "token_embd.weight"),
                 (tensors["blk.0.attn_q.weight"], "blk.0.attn_q.weight (Q4_1)"),
                 (tensors["blk.0.attn_norm.weight"], "F32 norm")]
    else:
        picks.append((tensors["token_embd.weight"], "token_embd.weight"))
        for ty in ("Q4_K", "Q6_K"):
            first = next(t for t in reader.tensors if t.tensor_type.name == ty)
            picks.append((first, f"first {ty} tensor in file order"))
        picks.append((tensors["blk.0.attn_norm.weight"], "F32 norm"))

    keys = ["block_count", "context_length", "embedding_length", "feed_forward_length",
            "attention.head_count", "attention.head_count_kv", "attention.key_length",
            "attention.value_length", "attention.layer_norm_rms_epsilon", "attention.sliding_window",
            "rope.freq_base", "rope.dimension_count", "vocab_size"]
    hparams = {k: field(reader, f"{arch}.{k}") for k in keys}
    tok = reader.get_field("tokenizer.ggml.tokens")
    tokenizer = {
        "model": field(reader, "tokenizer.ggml.model"),
        "pre": field(reader, "tokenizer.ggml.pre"),
        "n_tokens": len(tok.data) if tok is not None else None,
        "has_scores": reader.get_field("tokenizer.ggml.scores") is not None,
        "has_merges": reader.get_field("tokenizer.ggml.merges") is not None,
        "has_chat_template": reader.get_field("tokenizer.chat_template") is not None,
        "bos_token_id": field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": field(reader, "tokenizer.ggml.eos_token_id"),
        "add_bos_token": field(reader, "tokenizer.ggml.add_bos_token"),
    }
    return {
        "id": model_id,
        "file": file_name,
        "file_size": path.stat().st_size,
        "sha256": file_sha256(path),
        "gguf_version": field(reader, "GGUF.version"),
        "tensor_count": len(reader.tensors),
        "kv_count": field(reader, "GGUF.kv_count"),
        "alignment": int(reader.alignment),
        "alignment_from_metadata": reader.get_field("general.alignment") is not None,
        "data_offset": int(reader.data_offset),
        "general.architecture": arch,
        "general.name": field(reader, "general.name"),
        "general.file_type": field(reader, "general.file_type"),
        "general.quantization_version": field(reader, "general.quantization_version"),
        "hparams": {k: v for k, v in hparams.items() if v is not None},
        "tokenizer": tokenizer,
        "tensor_type_counts": dict(sorted(Counter(t.tensor_type.name for t in reader.tensors).items())),
        "first_tensor": reader.tensors[0].name,
        "tensors": [tensor_record(reader, t, why) for t, why in picks],
    }


def dumps(obj, indent: int = 0) -> str:
    """JSON with one key per line but lists of scalars kept on one line."""
    pad = " " * (indent + 1)
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        items = [pad + dumps(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    return json.dumps(obj)


def main() -> None:
    assert sys.byteorder == "little"
    out = {
        "generator": "tools/real_gguf_values.py",
        "gguf_version": importlib.metadata.version("gguf"),
        "numpy_version": np.__version__,
        "notes": "gguf_dims innermost first; numpy_shape outermost first; flat offsets index "
                 "the dequantized tensor in numpy row-major order; bits are f32 bit patterns",
        "models": [model_record(m, f) for m, f in MODELS],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(dumps(out) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
