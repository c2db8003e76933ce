# Real Flux controllers against the lab API server (tests/lab/flux/, docs/gitops.md
# "Flux controllers in the lab"). Test-only; nothing built here goes into the collection.
# flux: build source-controller + kustomize-controller from their Go modules into
#   $(CACHE)/flux/sc-<v>_kc-<v>/ (bin/ and the modules' CRDs in crd/); a cached run takes seconds.
# test-flux: kine + kube-apiserver + both controllers + a loopback Git host; the fleet file moves a
#   cluster and Flux follows it. In `make test`; the cold build is long (cached by version, see docs/gitops.md).
.PHONY: flux test-flux
flux:
	tests/lab/flux/build.sh

test-flux: venv controlplane flux
	$(BIN)/python -m pytest -q -s -p no:cacheprovider tests/integration/test_flux_e2e.py
TEST_TARGETS += test-flux
