#!/usr/bin/env python3
"""Golden values for aigc-image's game worlds: the package's own tiled sampler on world noise.

`aigc_image::world::World` claims to blend windows as `TerrainGenerator._generate_tiled`
(adaptive-terrain-diffusion 0.4.2) does, on a noise canvas that is a function of world
coordinates. This script rebuilds that noise (`world_noise`: splitmix64 hash of seed, x, y and
Box-Muller, as in world.rs), hands it to the package's `_generate_tiled` as the canvas of a
256x256 terrain with overlap 64 (windows at 0, 64 and 128 on each axis, difficulty 50,
onnxruntime's CPU provider, no zero floor), and keeps the interior 128x128 from (64, 64),
where the World's windows and the package's are the same nine. Writes to
tools/fixtures/image/world/:

- heights.npy: float32 [128, 128], the package's heights of world samples 64..192;
- world.json: seed, difficulty, overlap, the window starts, and a few world_noise values.

The package's generator.py and io.py come from the model's reference files, which
scripts/fetch-models.sh installs next to the ONNX file.

    /work/venv/bin/python tools/world_golden.py
"""
import importlib
import json
import os
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("AIGC_MODELS", Path.home() / ".cache/aigc/models"))
MODEL_DIR = MODELS / "terrain-consistency-unet"
OUT = ROOT / "tools/fixtures/image/world"

SEED, DIFFICULTY, OVERLAP, SIZE = 21, 50, 64, 256
MASK = (1 << 64) - 1


def splitmix64(z):
    z = (z + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(MASK)
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(MASK)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(MASK)
    return z ^ (z >> np.uint64(31))


def world_noise(seed, x, y):
    """world.rs's world_noise over arrays of world coordinates (int64, two's complement)."""
    with np.errstate(over="ignore"):
        s = splitmix64(np.uint64(seed))
        h = splitmix64(splitmix64(s ^ x.astype(np.int64).view(np.uint64)) ^ y.astype(np.int64).view(np.uint64))
    u1 = ((h >> np.uint64(32)).astype(np.float64) + 1.0) / 4294967296.0
    u2 = (h & np.uint64(0xFFFFFFFF)).astype(np.float64) / 4294967296.0
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


class CanvasNoise:
    """Stands in for numpy's Generator: the canvas noise is the world's."""

    def __init__(self, canvas):
        self.canvas = canvas

    def standard_normal(self, shape, dtype=np.float32):
        assert shape == (1, 1) + self.canvas.shape, shape
        return self.canvas[None, None].astype(dtype)


def main():
    package = types.ModuleType("terrain_reference")
    package.__path__ = [str(MODEL_DIR / "reference")]
    sys.modules["terrain_reference"] = package
    generator = importlib.import_module("terrain_reference.generator")
    model = MODEL_DIR / "terrain_consistency_unet_difficulty100.onnx"
    gen = generator.TerrainGenerator(model=model, device="cpu")

    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    canvas = world_noise(SEED, xs, ys)
    labels = np.array([(DIFFICULTY - 1) / 99], dtype=np.float32)
    heights = gen._generate_tiled(
        labels,
        (SIZE, SIZE),
        generator=CanvasNoise(canvas),
        source_model=None,
        strength=1.0,
        overlap=OVERLAP,
        batch_size=16,
        zero_floor=False,
    )[0]
    starts = gen._tile_starts(SIZE, 128, OVERLAP)
    inner = np.ascontiguousarray(heights[64:192, 64:192], dtype=np.float32)
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(OUT / "heights.npy", inner)
    probes = [(0, 0), (5, -3), (-100000, 77), (2**40, -(2**40))]
    noise = {f"{x},{y}": float(world_noise(SEED, np.array([x]), np.array([y]))[0]) for x, y in probes}
    meta = {
        "seed": SEED,
        "difficulty": DIFFICULTY,
        "overlap": OVERLAP,
        "canvas": SIZE,
        "window_starts": starts,
        "inner_origin": [64, 64],
        "inner_size": 128,
        "world_noise": noise,
        "heights": {"min": float(inner.min()), "max": float(inner.max()), "mean": float(inner.mean())},
    }
    (OUT / "world.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta["heights"]), starts)


if __name__ == "__main__":
    main()
