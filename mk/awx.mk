# AWX/AAP parity (docs/awx.md): the built collection, AWX-style ansible-runner jobs, the documentation
# site and the execution environment. The EE image is cached in podman, keyed by its inputs.
COLLECTION_VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
COLLECTION_TARBALL := build/edgefleet-k8s-$(COLLECTION_VERSION).tar.gz
# Headless Chromium for test-docs: Debian's package (no browser download of its own).
DOCS_BROWSER_PKG ?= chromium-headless-shell

.PHONY: collection test-awx docs docs-browser test-docs ee test-ee galaxy-import
collection: venv
	@mkdir -p build
	$(BIN)/ansible-galaxy collection build --force --output-path build .
	@echo "collection: $(COLLECTION_TARBALL) ($$(stat -c %s $(COLLECTION_TARBALL)) bytes)"

# galaxy-importer (what Galaxy runs on an upload) on the tarball, in a venv of its own cached by version: it pins
# its own ansible-lint and would change the dev venv. About a minute; not in make test.
GALAXY_IMPORTER_VERSION := 0.4.44
GALAXY_IMPORTER_VENV := $(CACHE)/galaxy-importer-$(GALAXY_IMPORTER_VERSION)
galaxy-import: collection
	@$(GALAXY_IMPORTER_VENV)/bin/python -c 'import galaxy_importer' 2>/dev/null || { $(PYTHON) -m venv $(GALAXY_IMPORTER_VENV) && \
	  $(GALAXY_IMPORTER_VENV)/bin/pip install --quiet --disable-pip-version-check galaxy-importer==$(GALAXY_IMPORTER_VERSION); }
	mk/galaxy-import.sh $(GALAXY_IMPORTER_VENV) $(COLLECTION_TARBALL)

# The tarball, a fresh install, every plugin in ansible-doc, the inventory export from the tarball vs the
# checkout (seconds, no lab), then ansible-runner jobs on a lab node of their own (edgefleet-awx1,
# 10.231.0.206; removed afterwards).
test-awx: venv controlplane-bundle
	$(BIN)/python -m pytest -v -rP --durations=10 -p no:cacheprovider -m awx \
	  tests/integration/test_awx_collection.py tests/integration/test_awx_runner.py

docs: venv
	docs/site/build.sh build/docs

docs-browser:
	@command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get -o DPkg::Lock::Timeout=600 update -qq; \
	  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $(DOCS_BROWSER_PKG) >/dev/null; }

test-docs: docs docs-browser
	$(BIN)/python -m pytest -v -p no:cacheprovider -m docs tests/integration/test_docs_site.py

TEST_TARGETS += test-awx test-docs

# The execution environment (execution-environment.yml): base image made locally from the lab image, the
# collection from its tarball; cached in podman by a key of every input (ee/build.sh). Prints the image.
ee: venv lab-bootstrap
	ee/build.sh

# ansible-doc inside the EE, then site.yml through the EE with ansible-runner --process-isolation on a lab
# node of its own (edgefleet-awx2, 10.231.0.207; removed afterwards).
test-ee: ee controlplane-bundle
	$(BIN)/python -m pytest -v -rP --durations=10 -p no:cacheprovider -m ee tests/integration/test_awx_ee.py
