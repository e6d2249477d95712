#!/usr/bin/env python3
"""Golden values for aigc-crossmodal's sentence embeddings: sentence-transformers on the real
all-MiniLM-L6-v2 (fetched by scripts/fetch-models.sh all-minilm-l6-v2).

Encodes 12 varied sentences (short, long, punctuation, numbers, accents and CJK, one longer
than the model's 256-token limit) with `SentenceTransformer(dir, device="cpu")` in float32,
one thread, and writes tools/fixtures/crossmodal/minilm.json:

- model, versions, max_seq_length, pooling, normalize;
- sentences: per sentence the text, the token ids sentence-transformers feeds the model
  (its tokenizer call: [CLS] ... [SEP], truncated to max_seq_length, no padding), the number
  of tokens before truncation, and the 384-d embedding (mean-pooled, L2-normalised), each
  value rounded to 7 significant digits.

The script checks that encoding the sentences one by one gives the batch's vectors (within
1e-6), so that the fixture does not depend on padding.

    /work/venv/bin/python tools/embed_golden.py
"""
import json
import os
import re
from pathlib import Path

import numpy as np
import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("AIGC_MODELS", Path.home() / ".cache/aigc/models"))
MODEL = MODELS / "all-minilm-l6-v2"
OUT = ROOT / "tools/fixtures/crossmodal/minilm.json"

LONG = (
    "The history of the printing press begins in the fifteenth century, when Johannes "
    "Gutenberg combined movable metal type, oil-based ink and a wooden screw press into a "
    "system that could produce books far faster than scribes. "
)

SENTENCES = [
    "Hello world",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Hi!",
    "What's the weather like in Paris, France, on 14 July 2024?",
    "Prices rose 3.5% to $1,299.99 (up from $1,255) -- see table #12.",
    "Crème brûlée, naïve café, Straße und Übermut; 東京は日本の首都です。",
    "I can't believe it's not butter!!! ... or is it?!",
    "The quick brown fox jumps over the lazy dog near the riverbank while the farmer, "
    "who had been watching since dawn, wondered aloud whether foxes ever tire of the chase.",
    "embeddings map sentences to vectors; similar meanings land close together",
    # Well over 256 tokens: exercises truncation to max_seq_length.
    (LONG * 8).strip(),
]


def rounded(v):
    return [float(f"{x:.7g}") for x in v]


def main():
    torch.set_num_threads(1)
    model = SentenceTransformer(str(MODEL), device="cpu")
    model.eval()
    max_len = model.max_seq_length
    tokenizer = model.tokenizer
    with torch.no_grad():
        batch = model.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True)
        single = np.stack([model.encode([s], convert_to_numpy=True)[0] for s in SENTENCES])
    drift = float(np.abs(batch - single).max())
    assert drift < 1e-6, drift
    # The ids the model sees: sentence-transformers' own preprocess() (truncation to
    # max_seq_length), one sentence at a time so that there is no padding.
    entries = []
    for text, vec in zip(SENTENCES, batch):
        features = model.preprocess([text])
        ids = features["input_ids"][0].tolist()
        full = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert len(ids) == min(len(full), max_len)
        norm = float(np.linalg.norm(vec))
        entries.append({
            "text": text,
            "ids": ids,
            "tokens_before_truncation": len(full),
            "norm": norm,
            "embedding": rounded(vec.tolist()),
        })
    pooling = json.loads((MODEL / "1_Pooling/config.json").read_text())
    modules = json.loads((MODEL / "modules.json").read_text())
    out = {
        "model": "all-minilm-l6-v2",
        "versions": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "max_seq_length": max_len,
        "dim": int(batch.shape[1]),
        "pooling_mode_mean_tokens": pooling["pooling_mode_mean_tokens"],
        "normalize": any(m["type"].endswith("Normalize") for m in modules),
        "batch_vs_single_max_abs_diff": drift,
        "sentences": entries,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One line per list of numbers, so that the file diffs by sentence.
    text = json.dumps(out, indent=1, ensure_ascii=False)
    text = re.sub(r"\[\n\s*(-?[0-9][^\]]*?)\n\s*\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
    OUT.write_text(text + "\n")
    lens = [len(e["ids"]) for e in entries]
    print(f"wrote {OUT} ({len(entries)} sentences, token counts {lens}, drift {drift:.2e})")


if __name__ == "__main__":
    main()
