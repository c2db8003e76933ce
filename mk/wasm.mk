# A real WASM run (docs/wasm.md "A real WASM run"): Debian's containerd on this host runs a WASM module through the
# lab's own shim (tests/lab/wasm/shim: runwasi's containerd-shim-wasm and wasmtime, built from crates.io and cached
# under $(CACHE)/wasm-shim keyed by its sources). Not in `make test`: the cold build's cost is in docs/wasm.md.
.PHONY: wasm-shim test-wasm-run
wasm-shim:
	tests/lab/wasm/build.sh

test-wasm-run: venv wasm-shim
	$(BIN)/python -m pytest -v -p no:cacheprovider -m wasm_run tests/integration/test_wasm_run.py
