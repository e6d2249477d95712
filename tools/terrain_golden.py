#!/usr/bin/env python3
"""Golden values for aigc-image's terrain model: onnxruntime on the real checkpoint.

Runs terrain_consistency_unet_difficulty100.onnx (adaptive-terrain-diffusion 0.4.2, see
../shared/MODELS.md; fetched by scripts/fetch-models.sh) with onnxruntime's CPU provider on
fixed unit-normal noise at several (sigma, difficulty) pairs, and writes to
tools/fixtures/image/terrain/:

- noise.npy: float32 [1, 1, 128, 128], numpy default_rng(1234) standard normal;
- case_<k>.npy: the model's `denoised` output for `noisy = noise * sigma`;
- terrain.json: for each case its sigma, difficulty label and file, plus summary statistics
  and the package's height transform of case 0 (min, max, mean), for the Rust tests.

    /work/venv/bin/python tools/terrain_golden.py
"""
import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("AIGC_MODELS", Path.home() / ".cache/aigc/models"))
MODEL = MODELS / "terrain-consistency-unet" / "terrain_consistency_unet_difficulty100.onnx"
OUT = ROOT / "tools/fixtures/image/terrain"

HEIGHT_RANGE = 22.16864013671875
ASINH_SCALE = 0.1


def from_model_space(values):
    unit = np.clip((values + 1.0) * 0.5, 0.0, 1.0)
    normalizer = np.arcsinh(HEIGHT_RANGE / ASINH_SCALE)
    heights = np.clip(ASINH_SCALE * np.sinh(unit * normalizer), 0.0, HEIGHT_RANGE).astype(np.float32)
    return heights - heights.min()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(MODEL), sess_options=options, providers=["CPUExecutionProvider"])
    noise = np.random.default_rng(1234).standard_normal((1, 1, 128, 128), dtype=np.float32)
    np.save(OUT / "noise.npy", noise)
    cases = []
    # (sigma, difficulty): the one-step sampler's sigma_max at three difficulties, and two
    # intermediate noise levels that exercise the preconditioning.
    for k, (sigma, difficulty) in enumerate([(80.0, 50), (80.0, 1), (80.0, 100), (2.5, 30), (0.3, 80)]):
        label = np.float32((difficulty - 1) / 99)
        feeds = {
            "noisy": noise * np.float32(sigma),
            "sigma": np.array([sigma], dtype=np.float32),
            "difficulty": np.array([label], dtype=np.float32),
        }
        denoised = session.run(["denoised"], feeds)[0].astype(np.float32)
        name = f"case_{k}.npy"
        np.save(OUT / name, denoised)
        cases.append({
            "file": name, "sigma": sigma, "difficulty": difficulty, "label": float(label),
            "mean": float(denoised.mean()), "std": float(denoised.std()),
            "min": float(denoised.min()), "max": float(denoised.max()),
        })
    heights = from_model_space(np.load(OUT / "case_0.npy")[0, 0])
    result = {
        "model": MODEL.name,
        "onnxruntime": ort.__version__,
        "noise": "numpy default_rng(1234).standard_normal((1, 1, 128, 128), float32)",
        "cases": cases,
        "case_0_heights": {"min": float(heights.min()), "max": float(heights.max()),
                           "mean": float(heights.mean())},
    }
    (OUT / "terrain.json").write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
