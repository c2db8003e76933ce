#!/usr/bin/env bash
# Build Flux's source-controller and kustomize-controller from their Go modules (test-only,
# linux/amd64), for the stretch end-to-end test tests/integration/test_flux_e2e.py.
#
# Each controller's go.mod replaces its own `api` submodule with `./api` (and pins a few other
# modules), so `go install <module>@<tag>` is refused. We build each one from a small wrapper
# module that requires the controller at its tag and carries the same replace directives, derived
# from the controller's go.mod by wrapper_gomod.py (a local-path `api` replace becomes the published
# api submodule at the version the controller requires), plus the overrides in versions.env, and
# the controller's own go.sum. `go build -mod=mod` then fetches only what the binary needs (a
# `go mod tidy` would also want test-only modules, some of which the proxy does not serve).
#
# Output: $EDGEFLEET_CACHE/flux/sc-<v>_kc-<v>/bin/{source-controller,kustomize-controller} and
# crd/ (the CRDs from each module's config/crd/bases). Idempotent: when the stamp matches the
# pinned versions and the binaries are present, it prints the path and exits.
# Usage: build.sh [--print-root]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC1091
. "$HERE/versions.env"
SC="$EDGEFLEET_FLUX_SOURCE_CONTROLLER_VERSION"
KC="$EDGEFLEET_FLUX_KUSTOMIZE_CONTROLLER_VERSION"
CACHE="${EDGEFLEET_CACHE:-$HOME/.cache/edgefleet}"
ROOT="$CACHE/flux/sc-${SC}_kc-${KC}"
BIN="$ROOT/bin"
CRD="$ROOT/crd"
SC_OVR="${EDGEFLEET_FLUX_SOURCE_CONTROLLER_OVERRIDES:-}"
KC_OVR="${EDGEFLEET_FLUX_KUSTOMIZE_CONTROLLER_OVERRIDES:-}"
STAMP_WANT="source-controller=$SC [$SC_OVR] kustomize-controller=$KC [$KC_OVR] goos=linux goarch=amd64"

if [[ "${1:-}" == "--print-root" ]]; then
    echo "$ROOT"
    exit 0
fi

complete() {
    [[ -f "$ROOT/.stamp" && "$(cat "$ROOT/.stamp")" == "$STAMP_WANT" ]] || return 1
    [[ -x "$BIN/source-controller" && -x "$BIN/kustomize-controller" ]] || return 1
    compgen -G "$CRD/*.yaml" >/dev/null
}

if complete; then
    echo "flux: cached $ROOT ($STAMP_WANT)"
    exit 0
fi

command -v go >/dev/null || { echo "flux: 'go' not found on PATH (need go >= 1.26)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "flux: 'python3' not found on PATH" >&2; exit 2; }

start=$(date +%s)
mkdir -p "$BIN" "$CRD"
# Two shared cores: one package at a time, lowest priority. GOTOOLCHAIN=local: never fetch a toolchain.
export GOFLAGS="${GOFLAGS:--p=2} -buildvcs=false"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=linux GOARCH=amd64

# wrapper <name> <module> <version> [module=version ...]: write $ROOT/wrap-<name>/go.mod and go.sum.
wrapper() {
    local name="$1" mod="$2" ver="$3" info dir gomod w
    shift 3
    info="$(go mod download -json "$mod@$ver")" || { echo "flux: cannot download $mod@$ver" >&2; exit 1; }
    dir="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
    gomod="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
    w="$ROOT/wrap-$name"
    mkdir -p "$w"
    go mod edit -json "$gomod" | python3 "$HERE/wrapper_gomod.py" "$mod" "$ver" "$@" > "$w/go.mod.new"
    if ! cmp -s "$w/go.mod.new" "$w/go.mod.in" 2>/dev/null; then
        cp "$w/go.mod.new" "$w/go.mod"
        cp "$w/go.mod.new" "$w/go.mod.in"
        cp "$dir/go.sum" "$w/go.sum"
        chmod 0644 "$w/go.mod" "$w/go.sum"
        rm -f "$BIN/.$name.ok"
        echo "flux: wrapper module for $mod@$ver${*:+ (overrides: $*)}"
    fi
    rm -f "$w/go.mod.new"
    # The real CRDs ship in the module zip.
    cp -f "$dir"/config/crd/bases/*.yaml "$CRD/"
    chmod 0644 "$CRD"/*.yaml
    echo "$dir" > "$w/module-dir"
}

build() {
    local name="$1" mod="$2" ver="$3"
    [[ -x "$BIN/$name" && -f "$BIN/.$name.ok" ]] && return 0
    echo "flux: building $name $ver (GOFLAGS=$GOFLAGS)"
    local t0=$SECONDS
    (cd "$ROOT/wrap-$name" && nice -n 19 go build -mod=mod -trimpath -ldflags "-s -w" -o "$BIN/$name.tmp" "$mod")
    mv -f "$BIN/$name.tmp" "$BIN/$name"
    touch "$BIN/.$name.ok"
    echo "flux: built $name in $((SECONDS - t0)) s, $(stat -c %s "$BIN/$name") bytes"
}

# shellcheck disable=SC2086  # the overrides are a space-separated list
wrapper source-controller github.com/fluxcd/source-controller "$SC" $SC_OVR
# shellcheck disable=SC2086
wrapper kustomize-controller github.com/fluxcd/kustomize-controller "$KC" $KC_OVR
build source-controller github.com/fluxcd/source-controller "$SC"
build kustomize-controller github.com/fluxcd/kustomize-controller "$KC"
echo "$STAMP_WANT" > "$ROOT/.stamp"
echo "flux: done in $(($(date +%s) - start)) s into $ROOT"
ls -l "$BIN" "$CRD"
