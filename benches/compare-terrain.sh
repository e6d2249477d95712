#!/usr/bin/env bash
# Side-by-side: one denoising step of the terrain consistency UNet in onnxruntime (CPU
# provider, pip) and in aigc (flex), same input, same thread count, in one run.
#
#   benches/compare-terrain.sh [--threads N] [--steps N] [--rounds N]
#
# The two alternate over several rounds (the order swapped each round) and the ratio is the
# median of the rounds' ratios of median times (see benches/compare-lib.sh).
#
# onnxruntime comes from pip into ${AIGC_CACHE:-~/.cache/aigc}/venv-onnxruntime (created once;
# set PYTHON to use an interpreter that already has onnxruntime and numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
model_id=terrain-consistency-unet
model_file=terrain_consistency_unet_difficulty100.onnx
harness=terrain_speed
ort_py=$(cat <<'PY'
import sys, time
import numpy as np
import onnxruntime as ort
path, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
noisy = np.random.default_rng(1).standard_normal((1, 1, 128, 128), dtype=np.float32) * 80
feeds = {"noisy": noisy, "sigma": np.array([80], np.float32), "difficulty": np.array([0.5], np.float32)}
session.run(["denoised"], feeds)
times = []
for _ in range(steps):
    t = time.perf_counter()
    session.run(["denoised"], feeds)
    times.append(time.perf_counter() - t)
times.sort()
print('{"best_s": %.4f, "median_s": %.4f}' % (times[0], times[len(times) // 2]))
PY
)
source benches/compare-lib.sh
compare_main "$@"
