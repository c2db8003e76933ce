# The podman node lab (tests/lab/, docs/lab.md): node containers with systemd
# on the internal network edgefleet-lab, the Molecule harness, and the
# integration runner that `make test` calls.
NODES ?= 4

.PHONY: lab-bootstrap lab-image lab-up lab-down test-lab
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
