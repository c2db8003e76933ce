#!/usr/bin/env bash
# Build the lab's containerd WASM shim (tests/lab/wasm/shim, test-only) and the test's WASM module, and install
# the Debian packages the WASM run test needs (containerd, wabt) and the shim's build needs.
# Output: $EDGEFLEET_CACHE/wasm-shim/<key>/containerd-shim-edgefleet-wasmtime-v1, where <key> is the sha256 of the
# shim's Cargo.toml, Cargo.lock and source: a cached build is reused, a changed one is built anew.
# cargo fetches from crates.io (its sparse index); the build is --locked to the committed Cargo.lock.
# Usage: build.sh [--print-path]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${EDGEFLEET_CACHE:-$HOME/.cache/edgefleet}"
SHIM=containerd-shim-edgefleet-wasmtime-v1
KEY=$(cat "$HERE/shim/Cargo.toml" "$HERE/shim/Cargo.lock" "$HERE/shim/src/main.rs" | sha256sum | cut -c1-16)
OUT="$CACHE/wasm-shim/$KEY"

if [[ "${1:-}" == "--print-path" ]]; then
  echo "$OUT/$SHIM"
  exit 0
fi

# shellcheck source=../lib.sh
source "$HERE/../lib.sh"
lab_ensure_packages containerd wabt pkg-config libdbus-1-dev libseccomp-dev protobuf-compiler
command -v cargo >/dev/null || { echo "wasm: cargo not found (the shim is Rust)" >&2; exit 1; }

if [[ -x "$OUT/$SHIM" ]]; then
  echo "wasm: cached $OUT/$SHIM"
  exit 0
fi
start=$SECONDS
mkdir -p "$CACHE/wasm-shim"
# The target directory is outside the repo and shared by every key, so a changed source rebuilds only the shim.
CARGO_TARGET_DIR="$CACHE/wasm-shim/target" cargo build --release --locked --quiet --manifest-path "$HERE/shim/Cargo.toml"
tmp=$(mktemp -d "$CACHE/wasm-shim/.tmp.XXXXXX")
install -m 0755 "$CACHE/wasm-shim/target/release/containerd-shim-edgefleet-wasmtime" "$tmp/$SHIM"
rm -rf "$OUT" && mv "$tmp" "$OUT"
echo "wasm: built $OUT/$SHIM in $((SECONDS - start)) s"
