#!/usr/bin/env python3
"""llama.cpp's logits for the prompts of tools/fixtures/text/<id>.json, each token fed as its own
decoding step (8-bit activations, f32 KV cache): the reference for aigc's 8-bit-activation mode.

Needs the `logits` program (benches/llama-cpp/logits.cpp) that benches/compare.sh builds next
to llama.cpp (${AIGC_CACHE:-~/.cache/aigc}/llama.cpp-<version>/logits; run compare.sh once) and the models from
scripts/fetch-models.sh. Writes tools/fixtures/text/<id>.llamacpp.json.

    python3 tools/llamacpp_logits.py
"""
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = "0.1.161"  # LLAMA_SYS_VERSION in benches/compare.sh
CACHE = Path(os.environ.get("AIGC_CACHE", Path.home() / ".cache/aigc"))
MODELS = Path(os.environ.get("AIGC_MODELS", CACHE / "models"))
PROGRAM = CACHE / f"llama.cpp-{VERSION}" / "logits"


def gguf_path(model_id):
    for line in (ROOT / "scripts/models.tsv").read_text().splitlines():
        cols = line.split("\t")
        if cols[0] == model_id and cols[1].endswith(".gguf"):
            return MODELS / model_id / cols[1]
    raise SystemExit(f"{model_id} is not in scripts/models.tsv")


def main():
    for model_id in ["smollm2-135m-instruct", "gemma-3-270m"]:
        fixture = json.loads((ROOT / f"tools/fixtures/text/{model_id}.json").read_text())
        path = gguf_path(model_id)
        cases = []
        for case in fixture["logits"]:
            ids = ",".join(str(i) for i in case["ids"])
            out = subprocess.run([str(PROGRAM), str(path), "2", ids], check=True,
                                 capture_output=True, text=True).stdout
            cases.append({"name": case["name"], "ids": case["ids"], "last": json.loads(out)})
        result = {
            "model_id": model_id,
            "gguf_file": path.name,
            "how": "llama.cpp from llama-cpp-sys-2 " + VERSION + " (GGML_NATIVE, AVX2), one "
                   "llama_decode per token, f32 KV cache, flash attention off",
            "logits": cases,
        }
        dest = ROOT / f"tools/fixtures/text/{model_id}.llamacpp.json"
        dest.write_text(json.dumps(result, indent=1) + "\n")
        print("wrote", dest)


if __name__ == "__main__":
    main()
