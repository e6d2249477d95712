#!/usr/bin/env bash
# Side-by-side: llama.cpp and aigc on the same GGUF model, prompt, token count and threads, in
# one run; prints tokens/s, ratios and peak RSS.
#
#   benches/compare.sh [--threads N] [--prompt N] [--decode N] [MODEL_ID...]
#
# llama.cpp is built once (cmake, g++) from the sources that the crates.io crate
# `llama-cpp-sys-2` vendors, fetched with `cargo fetch` (no other download), into
# ${AIGC_CACHE:-$HOME/.cache/aigc}/llama.cpp-<version>. Models come from scripts/fetch-models.sh.
# Each timed process runs in its own session at raised priority (see BENCHMARKING.md); the
# load average is printed next to the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 prompt=128 decode=128 ids=()
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads=$2; shift 2 ;;
        --prompt) prompt=$2; shift 2 ;;
        --decode) decode=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) ids+=("$1"); shift ;;
    esac
done
[ ${#ids[@]} -gt 0 ] || ids=(smollm2-135m-instruct gemma-3-270m)

LLAMA_SYS_VERSION=0.1.161
cache="${AIGC_CACHE:-$HOME/.cache/aigc}"
llama_dir="$cache/llama.cpp-$LLAMA_SYS_VERSION"
harness="$llama_dir/harness"
models="${AIGC_MODELS:-$HOME/.cache/aigc/models}"

if [ -z "$(find "$llama_dir/build" -name libllama.a 2>/dev/null)" ]; then
    command -v cmake >/dev/null || { echo "cmake is needed (apt install cmake)" >&2; exit 1; }
    echo "== building llama.cpp from llama-cpp-sys-2 $LLAMA_SYS_VERSION (once)" >&2
    tmp=$(mktemp -d)
    mkdir -p "$tmp/fetch/src" "$llama_dir"
    printf '[package]\nname = "llama-fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nllama-cpp-sys-2 = "=%s"\n' \
        "$LLAMA_SYS_VERSION" > "$tmp/fetch/Cargo.toml"
    touch "$tmp/fetch/src/lib.rs"
    cargo fetch --quiet --manifest-path "$tmp/fetch/Cargo.toml"
    crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/llama-cpp-sys-2-"$LLAMA_SYS_VERSION".crate | head -1)
    rm -rf "$llama_dir/build" "$llama_dir/llama-cpp-sys-2-$LLAMA_SYS_VERSION"
    tar xzf "$crate" -C "$llama_dir"
    src="$llama_dir/llama-cpp-sys-2-$LLAMA_SYS_VERSION/llama.cpp"
    cmake -S "$src" -B "$llama_dir/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
        -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_APP=OFF >/dev/null
    cmake --build "$llama_dir/build" --target llama -j "$(nproc)" >/dev/null
    rm -rf "$tmp"
fi
src="$llama_dir/llama-cpp-sys-2-$LLAMA_SYS_VERSION/llama.cpp"
libs=$(find "$llama_dir/build" -name '*.a' | sort -r | tr '\n' ' ')
# The timing harness, and the reference-logits program of tools/llamacpp_logits.py.
for prog in harness logits; do
    if [ ! -x "$llama_dir/$prog" ] || [ "benches/llama-cpp/$prog.cpp" -nt "$llama_dir/$prog" ]; then
        g++ -O2 -std=c++17 "benches/llama-cpp/$prog.cpp" -I"$src/include" -I"$src/ggml/include" \
            -Wl,--start-group $libs -Wl,--end-group -lpthread -fopenmp -o "$llama_dir/$prog"
    fi
done

echo "== building aigc's harness (benches/examples/speed.rs)" >&2
cargo build --quiet --release -p aigc-benches --example speed
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
aigc="$target_dir/release/examples/speed"

timed() { # command... -> "JSON<TAB>peak RSS kB"
    local out rss
    out=$(setsid bash -c 'echo -15 > /proc/self/autogroup 2>/dev/null; exec nice -n -15 /usr/bin/time -v "$@" 2>/tmp/aigc-compare-time' _ "$@")
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' /tmp/aigc-compare-time)
    printf '%s\t%s\n' "$out" "$rss"
}
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" <<<"$2"; }

printf '%-24s %-10s %12s %12s %10s\n' model system prefill_t/s decode_t/s peak_MiB
row() { printf '%-24s %-10s %12s %12s %10s\n' "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a/b}'; }
for id in "${ids[@]}"; do
    file=$(awk -F'\t' -v id="$id" '$1 == id && $2 ~ /\.gguf$/ {print $2; exit}' scripts/models.tsv)
    path="$models/$id/$file"
    [ -f "$path" ] || { echo "$id is not installed: scripts/fetch-models.sh $id" >&2; exit 1; }
    IFS=$'\t' read -r l_json l_rss < <(timed "$harness" "$path" "$prompt" "$decode" "$threads")
    lp=$(field prefill_tokens_per_s "$l_json") ld=$(field decode_tokens_per_s "$l_json")
    row "$id" llama.cpp "$lp" "$ld" $((l_rss / 1024))
    # aigc with f32 activations (the default, faithful to transformers) and with 8-bit
    # activations (llama.cpp's scheme, `AIGC_ACTIVATIONS=q8`).
    for act in f32 q8; do
        IFS=$'\t' read -r a_json a_rss < <(AIGC_ACTIVATIONS=$act AIGC_THREADS=$threads \
            RAYON_NUM_THREADS=$threads timed "$aigc" "$path" "$prompt" "$decode")
        ap=$(field prefill_tokens_per_s "$a_json") ad=$(field decode_tokens_per_s "$a_json")
        row "$id" "aigc-$act" "$ap" "$ad" $((a_rss / 1024))
        row "$id" "ratio-$act" "$(ratio "$ap" "$lp")" "$(ratio "$ad" "$ld")" ""
    done
done
echo "threads $threads, prompt $prompt, decode $decode, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
