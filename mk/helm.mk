# Helm as the other layering (docs/gitops.md "Helm values layers").
# helm: build the helm CLI from its Go module into $(CACHE)/helm/<version>/bin (tests/lab/helm/build.sh;
#   no PyPI package ships a Linux helm binary). A cached run takes seconds.
# test-helm: scaffold a fleet repo with Helm values layers, render the small chart tests/integration/helm/edge-app
#   with a real `helm template`, the Argo CD valueFiles and the Flux valuesFrom (the ConfigMaps from
#   `kubectl kustomize`), and check each value comes from the right layer.
HELM_BINDIR = $(shell tests/lab/helm/build.sh --print-bindir)

.PHONY: helm test-helm
helm:
	tests/lab/helm/build.sh

test-helm: venv kubectl helm
	PATH="$(HELM_BINDIR):$(BIN):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_gitops_helm.py

TEST_TARGETS += test-helm
