#!/bin/sh
# edgefleet LAB STAND-IN for the containerd WASM shim @SHIM@ (@ARCH@): NOT a shim, and it runs nothing.
# Test-only (tests/lab/controlplane/bundle.sh). The real shims come from their projects' releases, which
# cannot be had on the lab's build machine, and the lab's nodes run no containerd that could start one.
# The lab stages this file through the air-gap bundle like a real shim (sha256-pinned, per arch), so the
# staging is what the lab tests; a real shim runs only in make test-wasm-run (tests/lab/wasm).
echo "edgefleet lab stand-in for @SHIM@ (@ARCH@): not a WASM shim; the lab runs no containerd" >&2
exit 1
