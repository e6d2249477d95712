#!/usr/bin/env bash
# Side-by-side: Piper en_US-joe-medium synthesising "How are you doing today?" (57 phoneme ids,
# zero noise, 1.15 s of audio) in onnxruntime (CPU provider, pip) and in aigc (flex), same ids,
# same thread count, in one run; prints real-time factors.
#
#   benches/compare-tts.sh [--threads N] [--steps N] [--rounds N]
#
# The two alternate over several rounds (the order swapped each round) and the ratio is the
# median of the rounds' ratios of median times (see benches/compare-lib.sh).
#
# onnxruntime comes from pip into ${AIGC_CACHE:-~/.cache/aigc}/venv-onnxruntime (created once;
# set PYTHON to use an interpreter that already has onnxruntime and numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
model_id=piper-en-us-joe-medium
model_file=en_US-joe-medium.onnx
harness=tts_speed
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
ids = [1, 0, 20, 0, 121, 0, 14, 0, 100, 0, 3, 0, 51, 0, 122, 0, 88, 0, 3, 0, 22, 0, 33, 0, 122, 0, 3,
       0, 17, 0, 121, 0, 33, 0, 122, 0, 74, 0, 44, 0, 3, 0, 32, 0, 59, 0, 17, 0, 120, 0, 18, 0, 74,
       0, 13, 0, 2]
feeds = {"input": np.array([ids], np.int64), "input_lengths": np.array([len(ids)], np.int64),
         "scales": np.array([0.0, 1.0, 0.0], np.float32)}
audio = session.run(None, feeds)[0]
times = []
for _ in range(steps):
    t = time.perf_counter()
    session.run(None, feeds)
    times.append(time.perf_counter() - t)
times.sort()
print('{"best_s": %.4f, "median_s": %.4f, "audio_s": %.4f}' % (times[0], times[len(times) // 2], audio.size / 22050))
PY
)
extra_column=rtf
extra() { awk -v t="$(field median_s "$1")" -v d="$(field audio_s "$1")" 'BEGIN{printf "%.3f", t/d}'; }
source benches/compare-lib.sh
compare_main "$@"
