# kube-bench (aquasecurity/kube-bench) CIS gate on the lab (docs/lab.md "kube-bench CIS gate").
# kube-bench: build kube-bench from its Go module at the pinned tag into $(CACHE)/kube-bench/<version>/{bin,cfg}
#   (tests/lab/kube-bench/build.sh). A cached run takes well under a second.
# test-kube-bench: converge a K3s stand-in server and agent (kine/SQLite) with playbooks/site.yml on lab containers
#   of its own, run kube-bench's k3s-cis-1.9 benchmark on them and require 0 scored FAIL; a second test loosens one
#   server/tls certificate and requires 1.1.20 to FAIL. The nodes run the lab's stand-in, not K3s (tests/lab/controlplane).
.PHONY: kube-bench test-kube-bench
kube-bench:
	tests/lab/kube-bench/build.sh

test-kube-bench: venv controlplane kube-bench
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider -m kube_bench tests/integration/test_kube_bench_lab.py

TEST_TARGETS += test-kube-bench
