#!/usr/bin/env bash
# Side-by-side: one denoising step of the terrain consistency UNet in onnxruntime (CPU
# provider, pip) and in aigc (flex), same input, same thread count, in one run.
#
#   benches/compare-terrain.sh [--threads N] [--steps N] [--rounds N]
#
# A shared machine drifts between fast and slow phases, so the two alternate over several
# rounds (the order swapped each round) and the ratio reported is the median of the rounds'
# ratios of median step times.
#
# onnxruntime comes from pip into ${AIGC_CACHE:-~/.cache/aigc}/venv-onnxruntime (created once;
# set PYTHON to use an interpreter that already has onnxruntime and numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 steps=5 rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
cache="${AIGC_CACHE:-$HOME/.cache/aigc}"
models="${AIGC_MODELS:-$cache/models}"
model="$models/terrain-consistency-unet/terrain_consistency_unet_difficulty100.onnx"
[ -f "$model" ] || { echo "not installed: scripts/fetch-models.sh terrain-consistency-unet" >&2; exit 1; }
if [ -z "${PYTHON:-}" ]; then
    venv="$cache/venv-onnxruntime"
    if [ ! -x "$venv/bin/python" ]; then
        echo "== installing onnxruntime into $venv (once)" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet onnxruntime numpy
    fi
    PYTHON="$venv/bin/python"
fi
echo "== building aigc's harness (benches/examples/terrain_speed.rs)" >&2
cargo build --quiet --release -p aigc-benches --example terrain_speed
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

run() { setsid bash -c 'echo -15 > /proc/self/autogroup 2>/dev/null; exec nice -n -15 "$@"' _ "$@"; }
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
ort() { run "$PYTHON" -c "$ort_py" "$model" "$threads" "$steps"; }
ours() { AIGC_THREADS=$threads RAYON_NUM_THREADS=$threads run "$target_dir/release/examples/terrain_speed" "$model" "$steps"; }
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" <<<"$2"; }
printf '%-6s %-12s %10s %10s\n' round system best_s median_s
ratios=()
for round in $(seq "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then o=$(ort); a=$(ours); else a=$(ours); o=$(ort); fi
    printf '%-6s %-12s %10s %10s\n' "$round" onnxruntime "$(field best_s "$o")" "$(field median_s "$o")"
    printf '%-6s %-12s %10s %10s\n' "$round" aigc-flex "$(field best_s "$a")" "$(field median_s "$a")"
    ratios+=("$(awk -v a="$(field median_s "$a")" -v b="$(field median_s "$o")" 'BEGIN{printf "%.3f", a/b}')")
done
printf 'time ratio aigc/onnxruntime per round: %s\n' "${ratios[*]}"
printf 'time ratio aigc/onnxruntime (median of rounds): %sx\n' \
    "$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END{printf "%.2f", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}')"
echo "threads $threads, steps $steps, rounds $rounds, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
