# Shared by benches/compare-terrain.sh, compare-tts.sh and compare-whisper.sh (sourced, not
# run): argument parsing, the reference's interpreter, the harness build, and the reference
# (onnxruntime unless `ref_name` and `ref_pip` say otherwise) and aigc timed in alternating
# rounds (the order swapped each round, since a shared machine drifts between fast
# and slow phases); the ratio reported is the median of the rounds' ratios of median times.
#
# The caller sets `model_id`, `model_file` (relative to the model's directory), `harness` (an
# example of aigc-benches printing {"best_s", "median_s", ...}) and `ort_py` (a Python program
# taking MODEL THREADS STEPS and printing the same JSON), then calls `compare_main "$@"`.
# Optional: `extra_column NAME` and a function `extra JSON` printing that column's value.

compare_main() {
    threads=2 steps=5 rounds=3
    while [ $# -gt 0 ]; do
        case "$1" in
            --threads) threads=$2; shift 2 ;;
            --steps) steps=$2; shift 2 ;;
            --rounds) rounds=$2; shift 2 ;;
            -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
            *) echo "unknown argument $1" >&2; exit 2 ;;
        esac
    done
    local cache="${AIGC_CACHE:-$HOME/.cache/aigc}"
    model="${AIGC_MODELS:-$cache/models}/$model_id/$model_file"
    [ -f "$model" ] || { echo "not installed: scripts/fetch-models.sh $model_id" >&2; exit 1; }
    ref="${ref_name:-onnxruntime}"
    if [ -z "${PYTHON:-}" ]; then
        local venv="$cache/venv-$ref"
        if [ ! -x "$venv/bin/python" ]; then
            echo "== installing $ref into $venv (once)" >&2
            python3 -m venv "$venv"
            # shellcheck disable=SC2086
            "$venv/bin/pip" install --quiet ${ref_pip:-onnxruntime numpy}
        fi
        PYTHON="$venv/bin/python"
    fi
    echo "== building aigc's harness (benches/examples/$harness.rs)" >&2
    cargo build --quiet --release -p aigc-benches --example "$harness"
    target_dir=$(cargo metadata --format-version 1 --no-deps \
        | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    local column="${extra_column:-}"
    printf '%-6s %-12s %10s %10s %8s\n' round system best_s median_s "$column"
    local ratios=() o a round
    for round in $(seq "$rounds"); do
        if [ $((round % 2)) -eq 1 ]; then o=$(ort); a=$(ours); else a=$(ours); o=$(ort); fi
        printf '%-6s %-12s %10s %10s %8s\n' "$round" "$ref" "$(field best_s "$o")" \
            "$(field median_s "$o")" "$(extra_value "$o")"
        printf '%-6s %-12s %10s %10s %8s\n' "$round" aigc-flex "$(field best_s "$a")" \
            "$(field median_s "$a")" "$(extra_value "$a")"
        ratios+=("$(awk -v a="$(field median_s "$a")" -v b="$(field median_s "$o")" \
            'BEGIN{printf "%.3f", a/b}')")
    done
    printf 'time ratio aigc/%s per round: %s\n' "$ref" "${ratios[*]}"
    printf 'time ratio aigc/%s (median of rounds): %sx\n' "$ref" \
        "$(printf '%s\n' "${ratios[@]}" | sort -n \
            | awk '{v[NR]=$1} END{printf "%.2f", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}')"
    echo "threads $threads, steps $steps, rounds $rounds, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
}

run() { setsid bash -c 'echo -15 > /proc/self/autogroup 2>/dev/null; exec nice -n -15 "$@"' _ "$@"; }
ort() { run "$PYTHON" -c "$ort_py" "$model" "$threads" "$steps"; }
ours() {
    AIGC_THREADS=$threads RAYON_NUM_THREADS=$threads run "$target_dir/release/examples/$harness" \
        "$model" "$steps"
}
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" <<<"$2"; }
extra_value() { if declare -F extra >/dev/null; then extra "$1"; fi; }
