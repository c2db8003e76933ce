# edgefleet.k8s: every entry point a developer or CI uses.
# Each target bootstraps what it needs (venv, packages, images, builds) and is
# safe to run again. Slow things are cached under $(CACHE), keyed by version.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CACHE ?= $(HOME)/.cache/edgefleet
PYTHON ?= python3
# The venv is keyed by the pinned dependency list, so a warm run reuses it.
VENV_KEY := $(shell $(PYTHON) -c 'import tomllib,hashlib;d=tomllib.load(open("pyproject.toml","rb"))["project"]["dependencies"];print(hashlib.sha256("\n".join(d).encode()).hexdigest()[:12])')
VENV ?= $(CACHE)/venv-$(VENV_KEY)
BIN := $(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections
export EDGEFLEET_CACHE := $(CACHE)
# Outside the checkout: inside a git work tree ansible-test only sees tracked
# files, and build/ is ignored, so it would skip everything.
SANITY_ROOT := $(CACHE)/sanity/$(shell printf '%s' '$(CURDIR)' | sha256sum | cut -c1-12)
SANITY_TREE := $(SANITY_ROOT)/ansible_collections/edgefleet/k8s

# Targets that `make test` runs after the gates and units; mk/*.mk append to it.
TEST_TARGETS :=

.PHONY: help venv test gates lint ruff mypy yamllint ansible-lint sanity units demo bench bench-playbook changelog clean
help:
	@echo "make demo    bring up the edge lab, provision it with playbooks/site.yml, print the fleet summary"
	@echo "make test    every gate and test (lint, sanity, units, lab integration)"
	@echo "make bench   inventory and fleet benchmarks (figures and ratios)"
	@echo "make bench-playbook  controller cost per host-task of a no-op site.yml on 1, 5, 10, 25 lab nodes"
	@echo "make fuzz    the fleet registry fuzzer at length (10,000 mutated fleets; make units runs 500)"
	@echo "make lab-up [NODES=n] / lab-down / lab-vm-up / lab-vm-down"

$(VENV)/.ready:
	@mkdir -p $(CACHE)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(PYTHON) -c 'import tomllib;print("\n".join(tomllib.load(open("pyproject.toml","rb"))["project"]["dependencies"]))' > $(VENV)/requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r $(VENV)/requirements.txt
	@touch $@
venv: $(VENV)/.ready

include $(sort $(wildcard mk/*.mk))

# `make test`: the gates and unit tests, then the builds the lanes use (one at a time: they fill the
# same caches), then three lanes at once (tests/lab/lanes.sh), on separate hosts:
#   vm   the dm-crypt and Secure Boot VM tests (qemu/TCG), then the podman tests marked lab_late;
#   lab  test-lab: the Molecule scenarios and the tests marked lab, LAB_JOBS (2) at a time;
#   api  every other target in TEST_TARGETS: stand-ins on the host, Flux, Helm, AWX, kube-bench, docs, and last
#        the podman tests marked lab_own (test-lab-own: edge workloads), taken off the lab lane, the longest.
# The VM is the longest lane and the one that loses most when it shares the CPU, so its qemu runs at
# VM_NICE (tests/lab/vm/up.sh); the other lanes fill what it leaves (docs/lab.md has the lane times).
# TEST_LANES=1 runs every target one after the other.
TEST_LANES ?= 3
LAB_LANE_NICE ?= 5
TEST_BUILDS := controlplane-bundle kubectl helm kube-bench flux gitops-lab-bundle docs-browser lab-image lab-vm-image
VM_TEST_TARGETS := test-vm-full test-vm-secureboot test-lab-late
LAB_TEST_TARGETS := test-lab
test: gates units
	@$(MAKE) --no-print-directory $(TEST_BUILDS)
ifeq ($(TEST_LANES),1)
	@$(MAKE) --no-print-directory $(TEST_TARGETS)
else
	@# The lab network outlives the lab lane while the VM lane's own lab containers use it: once every lane has
	@# ended, lab-down removes it (and any lab node left), whether the lanes passed or not.
	@rc=0; tests/lab/lanes.sh "vm=$(MAKE) --no-print-directory -k $(VM_TEST_TARGETS)" \
	  "lab=nice -n $(LAB_LANE_NICE) $(MAKE) --no-print-directory $(LAB_TEST_TARGETS)" \
	  "api=nice -n $(LAB_LANE_NICE) $(MAKE) --no-print-directory -k $(filter-out $(VM_TEST_TARGETS) $(LAB_TEST_TARGETS),$(TEST_TARGETS))" \
	  || rc=$$?; tests/lab/down.sh; exit $$rc
endif
	@echo "make test: all gates and tests passed"

gates: ruff mypy yamllint ansible-lint changelog sanity

ruff: venv
	$(BIN)/ruff check plugins tests
	$(BIN)/ruff format --check plugins tests/unit

mypy: venv
	cd collections && $(BIN)/mypy --config-file ../pyproject.toml -p ansible_collections.edgefleet.k8s.plugins

yamllint: venv
	$(BIN)/yamllint -s .

ansible-lint: venv
	$(BIN)/ansible-lint --offline --format pep8

# ansible-test wants the collection at ansible_collections/<ns>/<name>; we copy
# what the collection ships (not build_ignore'd paths) plus its unit tests.
# ansible-test bootstraps pip in its venvs with a script from a host we cannot
# reach; mk/ansible-test-get-pip.py does the same from ensurepip + PyPI.
sanity: venv
	@pipver=$$($(BIN)/python -c 'import ansible_test,pathlib,re;print(re.search(r"pip=.([0-9.]+).", (pathlib.Path(ansible_test.__file__).parent/"_internal/python_requirements.py").read_text()).group(1))'); \
	  mkdir -p $(HOME)/.ansible/test/cache; \
	  install -m 0644 mk/ansible-test-get-pip.py $(HOME)/.ansible/test/cache/get_pip_$${pipver//./_}.py
	rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_TREE)
	git ls-files -co --exclude-standard | grep -Ev '^(tests/lab|tests/bench|extensions/molecule|collections|mk|\.ci)/' | grep -Ev '^(Makefile|pyproject\.toml)$$' \
	  | while read -r f; do [ -e "$$f" ] && printf '%s\n' "$$f"; done | tar -cf - -T - | tar -xf - -C $(SANITY_TREE)
	cd $(SANITY_TREE) && $(BIN)/ansible-test sanity --venv --python 3.11 --color no 2>&1 | tee $(SANITY_ROOT)/sanity.log
	@grep -q 'Running sanity test' $(SANITY_ROOT)/sanity.log || { echo 'sanity: ansible-test ran no test (all targets skipped?)'; exit 1; }

units: venv
	$(BIN)/python -m pytest -q -n 2 tests/unit

changelog: venv
	$(BIN)/antsibull-changelog lint

bench: venv
	$(BIN)/python tests/bench/run.py

# Not in `make test`: it brings the lab to each size, converges it, measures a no-op site.yml (docs/scale.md) and
# tears the lab down (--keep leaves it up). E.g. BENCH_PLAYBOOK_ARGS="--sizes 1,5 --json /tmp/bench.json".
BENCH_PLAYBOOK_ARGS ?=
bench-playbook: venv controlplane-bundle gitops-lab-bundle
	$(BIN)/python tests/bench/playbook.py $(BENCH_PLAYBOOK_ARGS)

clean:
	rm -rf build tests/output
