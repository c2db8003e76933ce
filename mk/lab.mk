# The podman node lab (tests/lab/, docs/lab.md): node containers with systemd
# on the internal network edgefleet-lab, the Molecule harness, and the
# integration runner that `make test` calls.
NODES ?= 4

.PHONY: lab-bootstrap lab-image lab-up lab-down test-lab test-lab-late test-lab-own
lab-bootstrap:
	tests/lab/bootstrap.sh

lab-image: lab-bootstrap
	tests/lab/image/build.sh >/dev/null

lab-up:
	NODES=$(NODES) tests/lab/up.sh

lab-down:
	tests/lab/down.sh

# Brings the lab up, runs every scenario in tests/lab/scenarios.txt and
# tests/integration, and always tears down what it brought up.
test-lab: venv controlplane-bundle gitops-lab-bundle
	tests/lab/run-integration.sh

TEST_TARGETS += test-lab

# Podman-lab tests with containers of their own (marker lab_late). `make test` runs them in the VM lane after
# the VM tests, beside the rest of the lab lane, so that the two lanes end closer together. They need no lab
# nodes, only the lab image and network (labsite.scenario_containers prepares those when missing).
test-lab-late: venv controlplane-bundle
	$(BIN)/python -m pytest -v -s --durations=0 -p no:cacheprovider -m lab_late tests/integration

TEST_TARGETS += test-lab-late

# More of them (marker lab_own): the edge-workloads test. `make test` runs it at the end of its api lane, which
# ends earliest; the lab lane is the longest. The upgrade tests stay in the lab lane, where they share its two
# pytest workers; at the end of the api lane they would make that lane the longest (docs/lab.md has the times).
test-lab-own: venv controlplane-bundle
	$(BIN)/python -m pytest -v -s --durations=0 -p no:cacheprovider -m lab_own tests/integration

TEST_TARGETS += test-lab-own
