#!/usr/bin/env bash
# Build kube-bench (aquasecurity/kube-bench) from its Go module at a pinned release tag (test-only, linux/amd64),
# for the CIS gate tests/integration/test_kube_bench_lab.py. kube-bench's go.mod has no replace directives; it is
# built in a copy of the module source with its own go.mod/go.sum (see below why not `go install <module>@<tag>`).
# kube-bench reads its checks from a cfg/ directory that is not in the binary: it is copied from the same module
# source (the Go module cache), never into the repository.
# Output: $EDGEFLEET_CACHE/kube-bench/<version>/{bin/kube-bench, cfg/}. Idempotent: when the stamp matches the
# pinned version and the binary and cfg/ are present, it says so and exits (a cached run takes well under a second).
# Cold build measured here (2026-12-06, 2 shared cores loaded by other work): 77 s wall, 95 s user, with the
# kube-bench module itself already in the Go module cache and its dependencies downloaded during the build (many
# were already cached from the control-plane build). Cached run: 0.003 s.
# Usage: build.sh [--print-dir]   (prints $EDGEFLEET_CACHE/kube-bench/<version>, holding bin/ and cfg/)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC1091
. "$HERE/versions.env"
VERSION="$EDGEFLEET_KUBE_BENCH_VERSION"
BENCHMARK="$EDGEFLEET_KUBE_BENCH_BENCHMARK"
MODULE="github.com/aquasecurity/kube-bench"
CACHE="${EDGEFLEET_CACHE:-$HOME/.cache/edgefleet}"
OUT="$CACHE/kube-bench/$VERSION"
STAMP_WANT="kube-bench=$VERSION goos=linux goarch=amd64"

if [[ "${1:-}" == "--print-dir" ]]; then
    echo "$OUT"
    exit 0
fi

if [[ -x "$OUT/bin/kube-bench" && -f "$OUT/cfg/$BENCHMARK/config.yaml" && -f "$OUT/.stamp" \
      && "$(cat "$OUT/.stamp")" == "$STAMP_WANT" ]]; then
    echo "kube-bench: cached $OUT ($STAMP_WANT)"
    exit 0
fi

command -v go >/dev/null || { echo "kube-bench: 'go' not found on PATH (need go >= 1.26.3)" >&2; exit 2; }

start=$(date +%s)
mkdir -p "$OUT/bin"
rm -f "$OUT/.stamp"
# Two shared cores: one package at a time. GOTOOLCHAIN=local: never fetch a toolchain (v0.16.0 needs go 1.26.3).
export GOFLAGS="${GOFLAGS:--p=2} -buildvcs=false"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=linux GOARCH=amd64
# `go install <module>@<tag>` also asks the proxy for the module's version list (deprecation check), which the proxy
# here refuses (403); so download the exact version, build in a writable copy of its source with its own go.mod/go.sum.
SRC="$(go mod download -json "$MODULE@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -f "$SRC/cfg/$BENCHMARK/config.yaml" ]] || { echo "kube-bench: no cfg/$BENCHMARK in $SRC" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'chmod -R u+w "$WORK"; rm -rf "$WORK"' EXIT
cp -r "$SRC/." "$WORK/"
chmod -R u+w "$WORK"
(cd "$WORK" && go build -trimpath -ldflags "-s -w -X $MODULE/cmd.KubeBenchVersion=$VERSION" -o "$OUT/bin/kube-bench" .)
# cfg/ (the benchmark checks) from the same module source.
rm -rf "$OUT/cfg"
cp -r "$SRC/cfg" "$OUT/cfg"
chmod -R u+w "$OUT/cfg"

"$OUT/bin/kube-bench" version >/dev/null
echo "$STAMP_WANT" > "$OUT/.stamp"
echo "kube-bench: built $OUT/bin/kube-bench ($VERSION) and $OUT/cfg in $(($(date +%s) - start)) s"
