# The lab control plane (tests/lab/controlplane/, docs/lab.md "Control-plane stand-ins"):
# kine/SQLite or etcd + a real kube-apiserver built from Go modules, behind K3s/K0s CLI stand-ins.
# Binaries and bundles are cached under $(CACHE), keyed by version; a cached run takes seconds.
CONTROLPLANE := tests/lab/controlplane

.PHONY: controlplane controlplane-bundle test-controlplane controlplane-lab test-controlplane-lab
controlplane:
	$(CONTROLPLANE)/build.sh

# The air-gap bundle of the stand-ins: $(CACHE)/bundle/{k3s,k0s}/<version>/ (needs `controlplane`).
controlplane-bundle: controlplane
	$(CONTROLPLANE)/bundle.sh

# pytest: the bare loopback control plane fixture and the stand-ins' CLI contract.
test-controlplane: venv controlplane-bundle
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_controlplane_config.py \
	  tests/integration/test_controlplane.py

# The lab acceptance tests on podman nodes of their own (edgefleet-cp1..4, 10.231.0.171-174): the K3s
# stand-in under systemd, agents with right/wrong tokens, unknown keys, a broken audit policy, a 3-server
# etcd cluster, the K0s stand-in. Builds the node image if needed; removes its containers afterwards
# (KEEP=1 leaves them). -rP prints what each test measured or saw.
test-controlplane-lab: venv controlplane-bundle
	$(BIN)/python -m pytest -v -rP --durations=10 -p no:cacheprovider -m controlplane_lab \
	  tests/integration/test_controlplane_lab.py

controlplane-lab: test-controlplane-lab

TEST_TARGETS += test-controlplane test-controlplane-lab
