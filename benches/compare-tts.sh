#!/usr/bin/env bash
# Side-by-side: Piper en_US-joe-medium synthesising "How are you doing today?" (57 phoneme ids,
# zero noise, 1.15 s of audio) in onnxruntime (CPU provider, pip) and in aigc (flex), same ids,
# same thread count, in one run; prints real-time factors.
#
#   benches/compare-tts.sh [--threads N] [--steps N] [--rounds N]
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
model="$models/piper-en-us-joe-medium/en_US-joe-medium.onnx"
[ -f "$model" ] || { echo "not installed: scripts/fetch-models.sh piper-en-us-joe-medium" >&2; exit 1; }
if [ -z "${PYTHON:-}" ]; then
    venv="$cache/venv-onnxruntime"
    if [ ! -x "$venv/bin/python" ]; then
        echo "== installing onnxruntime into $venv (once)" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet onnxruntime numpy
    fi
    PYTHON="$venv/bin/python"
fi
echo "== building aigc's harness (benches/examples/tts_speed.rs)" >&2
cargo build --quiet --release -p aigc-benches --example tts_speed
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
ort() { run "$PYTHON" -c "$ort_py" "$model" "$threads" "$steps"; }
ours() { AIGC_THREADS=$threads RAYON_NUM_THREADS=$threads run "$target_dir/release/examples/tts_speed" "$model" "$steps"; }
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" <<<"$2"; }
printf '%-6s %-12s %10s %10s %8s\n' round system best_s median_s rtf
ratios=()
for round in $(seq "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then o=$(ort); a=$(ours); else a=$(ours); o=$(ort); fi
    rtf() { awk -v t="$(field median_s "$1")" -v d="$(field audio_s "$1")" 'BEGIN{printf "%.3f", t/d}'; }
    printf '%-6s %-12s %10s %10s %8s\n' "$round" onnxruntime "$(field best_s "$o")" "$(field median_s "$o")" "$(rtf "$o")"
    printf '%-6s %-12s %10s %10s %8s\n' "$round" aigc-flex "$(field best_s "$a")" "$(field median_s "$a")" "$(rtf "$a")"
    ratios+=("$(awk -v a="$(field median_s "$a")" -v b="$(field median_s "$o")" 'BEGIN{printf "%.3f", a/b}')")
done
printf 'time ratio aigc/onnxruntime per round: %s\n' "${ratios[*]}"
printf 'time ratio aigc/onnxruntime (median of rounds): %sx\n' \
    "$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END{printf "%.2f", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}')"
echo "threads $threads, steps $steps, rounds $rounds, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
