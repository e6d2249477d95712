#!/usr/bin/env bash
# Measures on this machine and renders the results into docs/performance.md: `cargo bench`
# over every modality on every compiled backend, then the side-by-side comparisons with the
# reference engines (llama.cpp, onnxruntime, CTranslate2), whose logs are kept in
# benches/results/, then `bench-table` writes the tables between docs/performance.md's markers.
#
#   benches/report.sh [--features ndarray,wgpu] [--no-bench] [--no-compare] [--bench NAME ...]
#
# --no-bench / --no-compare reuse the results already on disk (criterion's under the target
# directory, the comparison logs in benches/results/). Timing is only honest on an otherwise
# idle machine: see the load averages printed with each comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
features=ndarray,wgpu bench=1 compare=1 benches=()
while [ $# -gt 0 ]; do
    case "$1" in
        --features) features=$2; shift 2 ;;
        --no-bench) bench=0; shift ;;
        --no-compare) compare=0; shift ;;
        --bench) benches+=(--bench "$2"); shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
results=benches/results
mkdir -p "$results"
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

if [ "$bench" = 1 ]; then
    echo "== cargo bench (features $features)" >&2
    cargo bench -p aigc-benches --features "$features" "${benches[@]}" 2>&1 \
        | tee "$results/cargo-bench.txt"
fi
if [ "$compare" = 1 ]; then
    for script in compare compare-terrain compare-tts compare-whisper; do
        echo "== benches/$script.sh" >&2
        "benches/$script.sh" | tee "$results/$script.txt"
    done
fi
{
    echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
    echo "rustc: $(rustc --version)"
} > "$results/machine.txt"
cargo run --quiet --release -p aigc-benches --bin bench-table -- \
    --criterion "$target_dir/criterion" --results "$results" --date "$(date -u +%F)" \
    --max-age-hours 6 \
    --out docs/performance.md
