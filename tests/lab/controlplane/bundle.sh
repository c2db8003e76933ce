#!/usr/bin/env bash
# Build the lab air-gap bundle of the K3s/K0s stand-ins (test-only) from the control-plane binaries:
#   $EDGEFLEET_CACHE/bundle/k3s/<ver>/{k3s,sha256sum-amd64.txt}
#   $EDGEFLEET_CACHE/bundle/k0s/<ver>/{k0s-<ver>-amd64,sha256sum-amd64.txt}
# for the version in versions.env, for its "next" version (upgrade tests: the same stand-in under
# another version string) and for the BROKEN version: the same stand-in with its TEST-ONLY fault switch
# set to never-ready (a server that never starts its API server, for the upgrade rollback test), and the
# MIGRATES version, with the fault switch migrates-datastore (a server that marks its SQLite datastore as
# migrated and never becomes ready; no version becomes ready on a datastore so marked, until it is restored).
# Each stand-in is one self-extracting file (standin/header.sh + tar.gz of bin/ and the Python code).
# Each bundle directory also holds a STAND-IN for the containerd shim of every WASM runtime the collection knows,
# containerd-shim-<runtime>-v1-amd64 (standin/wasm-shim.sh: a script that says it is no shim and exits 1), listed
# in the sums file like the binary, so the lab stages shims as a real bundle's are staged.
# The Python code is the edgefleet_standin package plus a copy of the collection's K3s flag table
# (plugins/module_utils/_distribution/k3s_flag_table.py, the one list of K3s flags; the stand-in
# imports it as edgefleet_standin.k3s_flag_table).
# Idempotent: rebuilt only when the binaries, the staged Python code (the flag table included) or the
# header change.
# Usage: bundle.sh | bundle.sh --stage-lib DIR (stage only the Python code into DIR, print its hash)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FLAG_TABLE="$HERE/../../../plugins/module_utils/_distribution/k3s_flag_table.py"
WASM_TABLE="$HERE/../../../plugins/module_utils/_distribution/wasm.py"

stage_lib() { # dir: copy the stand-in's Python code into dir, then print the hash of what was staged
    [[ -f "$FLAG_TABLE" ]] || { echo "bundle: the K3s flag table $FLAG_TABLE is missing" >&2; exit 1; }
    mkdir -p "$1/edgefleet_standin"
    cp "$HERE"/standin/edgefleet_standin/*.py "$1/edgefleet_standin/"
    cp "$FLAG_TABLE" "$1/edgefleet_standin/k3s_flag_table.py"
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}
if [[ "${1:-}" == "--stage-lib" ]]; then
    [[ -n "${2:-}" ]] || { echo "usage: bundle.sh --stage-lib DIR" >&2; exit 2; }
    stage_lib "$2"
    exit 0
fi

# shellcheck disable=SC1091
. "$HERE/versions.env"
CACHE="${EDGEFLEET_CACHE:-$HOME/.cache/edgefleet}"
"$HERE/build.sh" >/dev/null
BIN="$("$HERE/build.sh" --print-bindir)"
K3S_V="$EDGEFLEET_LAB_K3S_VERSION"
K0S_V="$EDGEFLEET_LAB_K0S_VERSION"
K3S_DIR="$CACHE/bundle/k3s/$K3S_V"
K0S_DIR="$CACHE/bundle/k0s/$K0S_V"
K3S_NEXT="$EDGEFLEET_LAB_K3S_NEXT_VERSION"
K0S_NEXT="$EDGEFLEET_LAB_K0S_NEXT_VERSION"
BROKEN="$EDGEFLEET_LAB_BROKEN_VERSION"
MIGRATES="$EDGEFLEET_LAB_MIGRATES_VERSION"

STAMP="$CACHE/controlplane/bundle-$K3S_V-$K0S_V.inputs"
start=$(date +%s)
work="$(mktemp -d "$CACHE/.bundle.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The cache key covers the code as staged, so a changed flag table (or any stand-in file) rebuilds.
lib_hash="$(stage_lib "$work/payload/lib")"
# The shims' file names, from the collection's runtime table (the one list of WASM runtimes).
mapfile -t SHIMS < <(sed -n 's/^ *for name in (\(.*\))$/\1/p' "$WASM_TABLE" | tr -d '",' | tr ' ' '\n' \
                     | sed '/^$/d; s/.*/containerd-shim-&-v1/')
[[ ${#SHIMS[@]} -gt 0 ]] || { echo "bundle: no WASM runtimes found in $WASM_TABLE" >&2; exit 1; }
inputs="$( { cat "$BIN/.stamp" "$HERE/standin/header.sh" "$HERE/standin/wasm-shim.sh" "$HERE/versions.env";
             echo "lib=$lib_hash shims=${SHIMS[*]}"; } | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$inputs" && -x "$K3S_DIR/k3s" && -x "$K0S_DIR/k0s-$K0S_V-amd64" \
      && -x "$CACHE/bundle/k3s/$K3S_NEXT/k3s" && -x "$CACHE/bundle/k0s/$K0S_NEXT/k0s-$K0S_NEXT-amd64" \
      && -x "$CACHE/bundle/k3s/$BROKEN/k3s" && -x "$CACHE/bundle/k0s/$BROKEN/k0s-$BROKEN-amd64" \
      && -x "$CACHE/bundle/k3s/$MIGRATES/k3s" && -x "$CACHE/bundle/k0s/$MIGRATES/k0s-$MIGRATES-amd64" ]]; then
    echo "bundle: cached $K3S_DIR $K0S_DIR"
    exit 0
fi
mkdir -p "$work/payload/bin"
for t in kube-apiserver kubectl etcd etcdctl etcdutl kine; do cp "$BIN/$t" "$work/payload/bin/"; done
go env GOVERSION > "$work/payload/bin/.goversion" 2>/dev/null || echo unknown > "$work/payload/bin/.goversion"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/payload" -cf - . | gzip -n -4 > "$work/payload.tgz"
hash="$(sha256sum "$work/payload.tgz" | cut -c1-16)"
make_one() { # flavor version out [fault]
    local skip
    skip=$(( $(wc -l < "$HERE/standin/header.sh") + 1 ))
    sed -e "s|@FLAVOR@|$1|g" -e "s|@VERSION@|$2|g" -e "s|@HASH@|$hash|g" -e "s|@SKIP@|$skip|g" \
        -e "s|@FAULT@|${4:-}|g" \
        "$HERE/standin/header.sh" > "$3.tmp"
    cat "$work/payload.tgz" >> "$3.tmp"
    chmod 0755 "$3.tmp"
    mv -f "$3.tmp" "$3"
}
bundle_one() { # flavor version [fault]: the bundle directory of one stand-in version, with its sums file
    local dir="$CACHE/bundle/$1/$2" file
    file=$([[ $1 == k3s ]] && echo k3s || echo "k0s-$2-amd64")
    mkdir -p "$dir"
    make_one "$1" "$2" "$dir/$file" "${3:-}"
    local shim names=("$file")
    for shim in "${SHIMS[@]}"; do
        sed -e "s|@SHIM@|$shim|g" -e "s|@ARCH@|amd64|g" "$HERE/standin/wasm-shim.sh" > "$dir/$shim-amd64.tmp"
        chmod 0755 "$dir/$shim-amd64.tmp"
        mv -f "$dir/$shim-amd64.tmp" "$dir/$shim-amd64"
        names+=("$shim-amd64")
    done
    (cd "$dir" && sha256sum "${names[@]}" > sha256sum-amd64.txt.tmp && mv -f sha256sum-amd64.txt.tmp sha256sum-amd64.txt)
    rm -f "$dir/.inputs"
}
bundle_one k3s "$K3S_V"
bundle_one k0s "$K0S_V"
bundle_one k3s "$K3S_NEXT"
bundle_one k0s "$K0S_NEXT"
bundle_one k3s "$BROKEN" never-ready  # TEST-ONLY: a server that never becomes ready
bundle_one k0s "$BROKEN" never-ready
bundle_one k3s "$MIGRATES" migrates-datastore  # TEST-ONLY: marks its datastore as migrated, never ready
bundle_one k0s "$MIGRATES" migrates-datastore
echo "$inputs" > "$STAMP"
echo "bundle: built in $(( $(date +%s) - start )) s (payload $hash, $(du -h "$K3S_DIR/k3s" | cut -f1))"
echo "  $K3S_DIR (next: $K3S_NEXT)"
echo "  $K0S_DIR (next: $K0S_NEXT)"
echo "  test-only broken versions (fault switches): $BROKEN (never-ready), $MIGRATES (migrates-datastore)"
