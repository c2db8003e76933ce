#!/usr/bin/env bash
# Build the helm CLI from its Go module (test-only, linux/amd64), for the Helm layering test
# tests/integration/test_gitops_helm.py. helm's go.mod has no replace directives, so a plain
# `go install <module>/cmd/helm@<tag>` builds it.
# Output: $EDGEFLEET_CACHE/helm/<version>/bin/helm. Idempotent: when the stamp matches the pinned
# version and the binary is present, it prints the path and exits.
# Usage: build.sh [--print-bindir]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC1091
. "$HERE/versions.env"
VERSION="$EDGEFLEET_HELM_VERSION"
MAJOR="${VERSION%%.*}"
MODULE="helm.sh/helm/$MAJOR"
CACHE="${EDGEFLEET_CACHE:-$HOME/.cache/edgefleet}"
BIN="$CACHE/helm/$VERSION/bin"
STAMP_WANT="helm=$VERSION goos=linux goarch=amd64"

if [[ "${1:-}" == "--print-bindir" ]]; then
    echo "$BIN"
    exit 0
fi

if [[ -x "$BIN/helm" && -f "$BIN/.stamp" && "$(cat "$BIN/.stamp")" == "$STAMP_WANT" ]]; then
    echo "helm: cached $BIN ($STAMP_WANT)"
    exit 0
fi

command -v go >/dev/null || { echo "helm: 'go' not found on PATH (need go >= 1.26)" >&2; exit 2; }

start=$(date +%s)
mkdir -p "$BIN"
rm -f "$BIN/.stamp"
# Two shared cores: one package at a time. GOTOOLCHAIN=local: never fetch a toolchain.
export GOFLAGS="${GOFLAGS:--p=2} -buildvcs=false"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=linux GOARCH=amd64
GOBIN="$BIN" go install -trimpath -ldflags "-s -w -X $MODULE/internal/version.version=$VERSION" \
    "$MODULE/cmd/helm@$VERSION"
"$BIN/helm" version --short >/dev/null
echo "$STAMP_WANT" > "$BIN/.stamp"
echo "helm: built $BIN/helm ($VERSION) in $(($(date +%s) - start)) s"
