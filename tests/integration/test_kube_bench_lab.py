# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CIS gate: kube-bench's k3s-cis-1.9 on K3s nodes and its generic cis-1.12 on a K0s controller the collection
converged.

Three containers of this test's own (scenario label `kube-bench`), created by the fixture and always removed:
edgefleet-kb1 (K3s server, kine/SQLite, 10.231.0.227) and edgefleet-kb2 (K3s agent, .228) of cluster kb-k3s, and
edgefleet-kb3 (K3s server on etcd, .229) of cluster kb-etcd, converged with playbooks/site.yml (tags os_hardening
and gitops skipped, as in the other stand-in lab tests). test_kube_bench_k0s_generic_cis has its own container,
edgefleet-kb4 (K0s controller, kine/SQLite, 10.231.0.230) of cluster kb-k0s, converged the same way, and runs
kube-bench's generic cis-1.12 profile there (see the K0s part at the end of this file); -k k0s runs the K0s tests alone.

What is real: the kube-bench binary and its checks (built from its Go module, tests/lab/kube-bench/build.sh), the
kube-apiserver the stand-in runs and its flags, and every file and mode the collection and the stand-in write.
What is NOT: the nodes run the lab's K3s STAND-IN, NOT K3s (tests/lab/controlplane): no containerd, kubelet,
kube-proxy, kube-controller-manager or kube-scheduler runs; kb4 runs the lab's K0s STAND-IN, NOT K0s (a real
kube-apiserver on kine/SQLite only). The K3s stand-in writes to the journal the `Running <component>`
lines K3s would write for those, from the same config, marked `[stand-in: not run, args K3s would pass]`; the kubelet,
kube-proxy, controller-manager and scheduler checks grade those lines, not running processes.

kube-bench only starts a target when it sees a component's process running; for K3s it looks for `containerd`. The
test points that detection (in the node's copy of cfg/k3s-cis-1.9/config.yaml, never in the repository) at what
really runs: kube-apiserver on the server, the stand-in's python3 on the agent.

Needs the lab image, network and key (tests/lab/node.sh prepare), the control-plane build (make controlplane) and
kube-bench (make kube-bench). KEEP=1 leaves the containers running.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from labsite import LAB, Site, lab_fleet_defaults, lab_versions, scenario_containers
from labsite import bash_on as sh

# lab: a podman-lab test; kube_bench: make test-kube-bench runs it (make test-lab deselects it).
pytestmark = [pytest.mark.lab, pytest.mark.kube_bench]

SCENARIO = "kube-bench"
NODES = {"kb1": "10.231.0.227", "kb2": "10.231.0.228", "kb3": "10.231.0.229"}
CONTAINER = "edgefleet-{}"
BENCHMARK = "k3s-cis-1.9"
SERVER_TARGETS = "master,controlplane,node,policies"
# node -> (role, kube-bench targets, the process kube-bench's detection is pointed at instead of containerd)
RUNS = {
    "kb1": ("server", SERVER_TARGETS, "kube-apiserver"),
    "kb2": ("agent", "node", "python3"),
    "kb3": ("server", f"{SERVER_TARGETS},etcd", "kube-apiserver"),
}
# Scored checks that cannot pass on the lab's stand-in whatever the collection does, each with the reason. They are
# printed on every run and kept out of the gate only on the nodes named; any other scored FAIL fails the gate.
STANDIN_GAPS = {
    "1.1.9": ("kb1", "kb3", "no CNI runs in the lab, so /var/lib/cni/networks holds no file to check"),
    "1.1.10": ("kb1", "kb3", "no CNI runs in the lab, so /var/lib/cni/networks holds no file to check"),
    "5.1.6": (
        "kb1",
        "kb3",
        "no pod exists in the lab (no controller-manager, scheduler or kubelet), so the audit lists nothing and "
        "kube-bench grades its empty output FAIL",
    ),
}
# Scored checks that real K3s at its defaults FAILs as well (docs/hardening.md says where in K3s's source), kept out
# of the gate the same way, only on the nodes named.
K3S_OWN_FAILS = {
    "1.2.26": (
        "kb1",
        "K3s serves kine on its unix socket without TLS unless the hidden, experimental kine-tls is set, so it gives "
        "kube-apiserver no --etcd-cafile on SQLite (graded on kb3, etcd)",
    ),
}
REMOTE = "/opt/edgefleet-kube-bench"
JQ_FILES = ("/usr/bin/jq", "/lib/x86_64-linux-gnu/libjq.so.1", "/lib/x86_64-linux-gnu/libonig.so.5")
VERSIONS = lab_versions()
SKIP = ("--skip-tags", "os_hardening,gitops")


def note(msg: str) -> None:
    print(f"[kube-bench-lab] {msg}", flush=True)


def kube_bench_dir() -> Path:
    subprocess.run([str(LAB / "kube-bench" / "build.sh")], check=True, stdout=subprocess.DEVNULL, timeout=3600)
    out = subprocess.run(
        [str(LAB / "kube-bench" / "build.sh"), "--print-dir"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


class Lab(Site):
    def __init__(self, work: Path, sites: list[dict[str, Any]] | None = None) -> None:
        inventory = work / "inventory"
        super().__init__(work, inventory / "kb.fleet.yml")
        k3s, k0s = VERSIONS["EDGEFLEET_LAB_K3S_VERSION"], VERSIONS["EDGEFLEET_LAB_K0S_VERSION"]
        defaults = lab_fleet_defaults("sqlite", k3s, k0s)
        sites = sites or [
            {
                "name": "kb-k3s",
                "distribution": "k3s",
                "nodes": [
                    {"name": "kb1", "address": NODES["kb1"], "role": "server"},
                    {"name": "kb2", "address": NODES["kb2"], "role": "agent"},
                ],
            },
            {
                "name": "kb-etcd",
                "distribution": "k3s",
                "datastore": "etcd",
                "nodes": [{"name": "kb3", "address": NODES["kb3"], "role": "server"}],
            },
        ]
        self.write_own_fleet(defaults, sites)


def k3s_detection(detect: str) -> Callable[[Path], None]:
    """The edit of the node's cfg/ for K3s: its benchmark's config detects `detect` running instead of containerd
    (which no lab node runs)."""

    def edit(cfg: Path) -> None:
        conf = cfg / BENCHMARK / "config.yaml"
        data = yaml.safe_load(conf.read_text())
        for target in data.values():
            for section in target.values() if isinstance(target, dict) else ():
                if isinstance(section, dict) and section.get("bins") == ["containerd"]:
                    section["bins"] = [detect]
        conf.write_text(yaml.safe_dump(data))

    return edit


def install_kube_bench(
    kb: Path, node: str, edit: Callable[[Path], None], kubectl: str = "/var/lib/rancher/k3s/data/*/bin/kubectl"
) -> None:
    """kube-bench and a copy of its cfg/ into the node, the copy changed by `edit` (the cache is never changed)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "cfg"
        subprocess.run(["cp", "-r", str(kb / "cfg"), str(cfg)], check=True)
        edit(cfg)
        # kube-bench's policies checks call kubectl: K3s's installer links /usr/local/bin/kubectl to k3s, which the
        # collection does not (it calls `k3s kubectl`). The link here, for kube-bench only, is to the real kubectl
        # binary the stand-in unpacked (`k3s kubectl` would add the stand-in's banner to every output kube-bench
        # parses). Agents have no kubeconfig and run no policies checks.
        sh(
            node,
            f"rm -rf {REMOTE} && mkdir -p {REMOTE}/bin {REMOTE}/lib"
            f" && ln -s $(ls -d {kubectl} | head -n1) {REMOTE}/bin/kubectl",
        )
        name = CONTAINER.format(node)
        for src in (str(kb / "bin" / "kube-bench"), str(cfg)):
            subprocess.run(["podman", "cp", src, f"{name}:{REMOTE}/"], check=True, timeout=300)
        # Some policies checks pipe kubectl into jq, which kube-bench's own image ships and the lab node image does
        # not: the host's jq (Debian bookworm, as the nodes) with its two libraries, behind a wrapper.
        for src in JQ_FILES:
            subprocess.run(["podman", "cp", src, f"{name}:{REMOTE}/lib/"], check=True, timeout=60)
        wrapper = f'#!/bin/sh\nLD_LIBRARY_PATH={REMOTE}/lib exec {REMOTE}/lib/jq "$@"\n'
        sh(node, f"printf '%s' '{wrapper}' > {REMOTE}/bin/jq && chmod 0755 {REMOTE}/bin/jq && {REMOTE}/bin/jq -n 1")


def kube_bench(
    node: str, targets: str, benchmark: str = BENCHMARK, kubeconfig: str = "/etc/rancher/k3s/k3s.yaml"
) -> list[dict[str, Any]]:
    """Run kube-bench on the node; the results of every check, each with its target (node_type)."""
    proc = sh(
        node,
        f"cd {REMOTE} && KUBECONFIG={kubeconfig} PATH={REMOTE}/bin:/usr/local/bin:$PATH ./kube-bench run"
        f" --config-dir {REMOTE}/cfg --config {REMOTE}/cfg/config.yaml --benchmark {benchmark}"
        f" --targets {targets} --json",
        check=False,
    )
    out = proc.stdout.strip()
    assert out.startswith("{"), f"{node}: kube-bench rc {proc.returncode}: {out[-2000:]}{proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    results = []
    for control in report.get("Controls", []):
        for group in control.get("tests") or []:
            for res in group.get("results") or []:
                results.append({**res, "target": control.get("node_type") or control.get("id")})
    return results


def summary(node: str, results: list[dict[str, Any]]) -> list[str]:
    """Print PASS/FAIL/WARN/INFO counts per target and every FAIL; return the scored FAIL ids."""
    targets: dict[str, dict[str, int]] = {}
    for res in results:
        counts = targets.setdefault(res["target"], {"PASS": 0, "FAIL": 0, "WARN": 0, "INFO": 0})
        counts[res["status"]] = counts.get(res["status"], 0) + 1
    for target, counts in targets.items():
        note(f"{node} {target}: " + " ".join(f"{k}={v}" for k, v in counts.items()))
    for status in ("FAIL", "WARN"):
        ids = [f"{r['test_number']}{'' if r.get('scored') else '(unscored)'}" for r in results if r["status"] == status]
        note(f"{node} {status}: {' '.join(ids) or '-'}")
    for res in results:
        if res["status"] == "FAIL":
            seen = " ".join(str(res.get("actual_value") or "").split())[:200]
            note(f"{node}   FAIL {res['test_number']} {res.get('test_desc', '')[:90]} | saw: {seen or '(nothing)'}")
    return [r["test_number"] for r in results if r["status"] == "FAIL" and r.get("scored")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path]]:
    missing = [f for f in JQ_FILES if not Path(f).exists()]
    assert not missing, f"the host needs jq (apt-get install jq) for kube-bench's policies checks: {missing}"
    kb = kube_bench_dir()
    nodes = [(CONTAINER.format(name), name, ip) for name, ip in NODES.items()]
    with scenario_containers(nodes, SCENARIO):
        site = Lab(tmp_path_factory.mktemp("kube-bench-lab"))
        started = time.monotonic()
        run = site.run(*SKIP, timeout=1200, playbook="site.yml")
        (site.work / "converge.log").write_text(run.out)
        note(f"site.yml: rc {run.rc} in {time.monotonic() - started:.0f} s")
        assert run.rc == 0, run.out[-6000:]
        for node, (_role, _targets, detect) in RUNS.items():
            install_kube_bench(kb, node, k3s_detection(detect))
        yield site, kb


def test_kube_bench_k3s_cis_gate(lab: tuple[Lab, Path]) -> None:
    # The journal carries the lines kube-bench reads: the real kube-apiserver's, and the marked ones.
    journal = sh("kb1", "journalctl -m -u k3s --no-pager | grep 'Running kube-' || true").stdout
    assert "Running kube-apiserver --" in journal, journal[-2000:]
    assert "[stand-in: not run, args K3s would pass] Running kube-controller-manager --" in journal
    agent_journal = sh("kb2", "journalctl -m -u k3s-agent --no-pager | grep 'Running kube' || true").stdout
    assert "[stand-in: not run, args K3s would pass] Running kubelet --" in agent_journal, agent_journal[-2000:]

    failed: dict[str, list[str]] = {}
    for node, (_role, targets, _detect) in RUNS.items():
        started = time.monotonic()
        results = kube_bench(node, targets)
        note(f"{node}: kube-bench {targets} ran {len(results)} checks in {time.monotonic() - started:.0f} s")
        assert {r["target"] for r in results} >= set(targets.split(",")), {r["target"] for r in results}
        scored_fails = summary(node, results)
        gaps = [i for i in scored_fails if node in STANDIN_GAPS.get(i, ())[:-1]]
        for check in gaps:
            note(f"{node}   stand-in gap, not graded: {check}: {STANDIN_GAPS[check][-1]}")
        k3s_own = [i for i in scored_fails if node in K3S_OWN_FAILS.get(i, ())[:-1]]
        for check in k3s_own:
            note(f"{node}   K3s's own FAIL at its defaults, not graded: {check}: {K3S_OWN_FAILS[check][-1]}")
        failed[node] = [i for i in scored_fails if i not in gaps and i not in k3s_own]
    assert failed == {node: [] for node in RUNS}, (
        f"scored kube-bench FAILs (stand-in gaps and K3s's own FAILs left out): {failed}"
    )


def test_gate_fails_without_the_cert_mode_fix_and_the_fix_survives_a_rewrite(lab: tuple[Lab, Path]) -> None:
    """Acceptance 2 and 3 of issue 18. As converged, 1.1.20 PASSes. With the fix reverted (the path unit that keeps
    the certificates at 0600 stopped) one certificate at 0644 makes 1.1.20 FAIL. With the path unit back, a
    certificate rewritten 0644 (as a renewal at start does) and a restart of the unit leave every certificate 0600,
    and 1.1.20 PASSes again."""
    tls = "/var/lib/rancher/k3s/server/tls"
    crt = f"{tls}/client-admin.crt"
    converged = {r["test_number"]: r["status"] for r in kube_bench("kb1", "master")}
    assert converged["1.1.20"] == "PASS", converged["1.1.20"]
    try:
        sh("kb1", f"systemctl stop edgefleet-cert-modes.path && chmod 0644 {crt}")
        loose = kube_bench("kb1", "master")
        summary("kb1 (fix reverted, client-admin.crt at 0644)", loose)
        assert {r["test_number"]: r["status"] for r in loose}["1.1.20"] == "FAIL"
    finally:
        sh("kb1", "systemctl start edgefleet-cert-modes.path")
    sh("kb1", f"install -m 0644 {crt} {crt}.rewrite && mv {crt}.rewrite {crt} && systemctl restart k3s.service")
    modes = ""
    for _attempt in range(60):
        modes = sh("kb1", f"stat -c '%a %n' {tls}/*.crt").stdout
        if all(line.startswith("600 ") for line in modes.splitlines()):
            break
        time.sleep(1)
    assert all(line.startswith("600 ") for line in modes.splitlines()), modes
    sh("kb1", "for i in $(seq 60); do k3s kubectl get --raw=/readyz >/dev/null 2>&1 && exit 0; sleep 2; done; exit 1")
    again = {r["test_number"]: r["status"] for r in kube_bench("kb1", "master")}
    assert again["1.1.20"] == "PASS", again["1.1.20"]


# K0s: kube-bench's generic CIS profile on a K0s controller (issue 18 item 5). kube-bench v0.16.0 maps no profile to
# Kubernetes 1.36 (its newest mapping is 1.34 -> cis-1.12), so the newest generic one runs.
K0S_NODE, K0S_ADDRESS = "kb4", "10.231.0.230"
K0S_BENCHMARK = "cis-1.12"
K0S_TARGETS = "master,controlplane,policies"
K0S_CONFIG = "/etc/k0s/k0s.yaml"
K0S_PKI = "/var/lib/k0s/pki"
# Scored checks of cis-1.12 that do not apply to a K0s controller, each with the reason (docs/hardening.md, K0s).
_ADMIN_CONF = "the audit reads kubeadm's /etc/kubernetes/admin.conf; K0s's is /var/lib/k0s/pki/admin.conf (checked)"
K0S_NOT_APPLICABLE = {
    "1.1.7": "no etcd pod specification: K0s runs etcd (when used) as a plain process it supervises, not a static pod",
    "1.1.8": "no etcd pod specification: K0s runs etcd (when used) as a plain process it supervises, not a static pod",
    "1.1.11": "no etcd on the default datastore (kine/SQLite in /var/lib/k0s/db); graded only with datastore etcd",
    "1.1.12": "no etcd on the default datastore (kine/SQLite in /var/lib/k0s/db); graded only with datastore etcd",
    "1.1.13": _ADMIN_CONF,
    "1.1.14": _ADMIN_CONF,
    "1.1.19": "the audit reads kubeadm's /etc/kubernetes/pki; K0s's PKI is /var/lib/k0s/pki, where K0s itself gives "
    "some keys to the non-root users its components run as (modes checked here)",
    "1.2.23": "on kine K0s's kube-apiserver reaches kine on a local unix socket: no etcd client certificate to set",
    "1.2.26": "on kine K0s's kube-apiserver reaches kine on a local unix socket: no etcd CA to set",
}
# Scored checks a K0s controller would be graded on but the lab's stand-in cannot run, each with the reason.
_NO_SCHEDULER = "the stand-in runs no kube-scheduler (K0s runs one, from k0s.yaml's spec.scheduler)"
_NO_CONTROLLER_MANAGER = (
    "the stand-in runs no kube-controller-manager (K0s runs one, from k0s.yaml's spec.controllerManager)"
)
K0S_STANDIN_GAPS = {
    "1.1.15": "the stand-in writes no scheduler.conf (K0s writes /var/lib/k0s/pki/scheduler.conf)",
    "1.1.16": "the stand-in writes no scheduler.conf (K0s writes /var/lib/k0s/pki/scheduler.conf)",
    "1.1.17": "the stand-in writes no ccm.conf (K0s writes /var/lib/k0s/pki/ccm.conf)",
    "1.1.18": "the stand-in writes no ccm.conf (K0s writes /var/lib/k0s/pki/ccm.conf)",
    **{check: _NO_CONTROLLER_MANAGER for check in ("1.3.2", "1.3.3", "1.3.4", "1.3.5", "1.3.6", "1.3.7")},
    **{check: _NO_SCHEDULER for check in ("1.4.1", "1.4.2")},
}


def k0s_paths(cfg: Path) -> None:
    """The node's copy of kube-bench's cfg/config.yaml pointed at K0s's paths. K0s runs kube-apiserver,
    kube-scheduler and kube-controller-manager as child processes of `k0s controller`, configured from k0s.yaml
    (no static pod manifests), with their kubeconfigs and certificates under /var/lib/k0s/pki. The lab's stand-in
    runs only kube-apiserver: scheduler and controller-manager are marked optional here so that kube-bench runs the
    master target at all (it refuses a target whose required component it does not see running)."""
    conf = cfg / "config.yaml"
    data = yaml.safe_load(conf.read_text())
    master = data["master"]
    for component in ("apiserver", "scheduler", "controllermanager"):
        master[component]["confs"] = [K0S_CONFIG]
        master[component]["defaultconf"] = K0S_CONFIG
    for component in ("scheduler", "controllermanager"):
        master[component]["optional"] = True
    master["scheduler"]["kubeconfig"] = [f"{K0S_PKI}/scheduler.conf"]
    master["scheduler"]["defaultkubeconfig"] = f"{K0S_PKI}/scheduler.conf"
    master["controllermanager"]["kubeconfig"] = [f"{K0S_PKI}/ccm.conf"]
    master["controllermanager"]["defaultkubeconfig"] = f"{K0S_PKI}/ccm.conf"
    for section in (master["etcd"], data["etcd"]["etcd"]):
        section["datadirs"] = ["/var/lib/k0s/etcd"]
        section["defaultdatadir"] = "/var/lib/k0s/etcd"
    conf.write_text(yaml.safe_dump(data))


@pytest.fixture(scope="module")
def k0s_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path]]:
    kb = kube_bench_dir()
    with scenario_containers([(CONTAINER.format(K0S_NODE), K0S_NODE, K0S_ADDRESS)], SCENARIO):
        sites = [
            {
                "name": "kb-k0s",
                "distribution": "k0s",
                "nodes": [{"name": K0S_NODE, "address": K0S_ADDRESS, "role": "server"}],
            }
        ]
        site = Lab(tmp_path_factory.mktemp("kube-bench-k0s"), sites)
        started = time.monotonic()
        run = site.run(*SKIP, timeout=1200, playbook="site.yml")
        (site.work / "converge.log").write_text(run.out)
        note(f"site.yml (K0s): rc {run.rc} in {time.monotonic() - started:.0f} s")
        assert run.rc == 0, run.out[-6000:]
        install_kube_bench(kb, K0S_NODE, k0s_paths, kubectl="/var/lib/k0s/bin/*/kubectl")
        yield site, kb


def test_kube_bench_k0s_generic_cis(k0s_lab: tuple[Lab, Path]) -> None:
    """The default K0s controller (kine/SQLite, the collection's CIS profile through k0s.yaml's extraArgs) has no
    scored FAIL among the checks of cis-1.12's master target that apply, except the stand-in's gaps."""
    results = kube_bench(K0S_NODE, K0S_TARGETS, K0S_BENCHMARK, f"{K0S_PKI}/admin.conf")
    note(f"{K0S_NODE}: kube-bench {K0S_BENCHMARK} {K0S_TARGETS} ran {len(results)} checks")
    assert {r["target"] for r in results} >= set(K0S_TARGETS.split(",")), {r["target"] for r in results}
    scored_fails = summary(K0S_NODE, results)
    for check in scored_fails:
        if check in K0S_NOT_APPLICABLE:
            note(f"{K0S_NODE}   does not apply to K0s, not graded: {check}: {K0S_NOT_APPLICABLE[check]}")
        elif check in K0S_STANDIN_GAPS:
            note(f"{K0S_NODE}   stand-in gap, not graded: {check}: {K0S_STANDIN_GAPS[check]}")
    failed = [i for i in scored_fails if i not in K0S_NOT_APPLICABLE and i not in K0S_STANDIN_GAPS]
    # The K0s paths of what 1.1.13, 1.1.14, 1.1.19-1.1.21 check at kubeadm's paths: the admin kubeconfig 0600
    # root:root, no certificate or key under /var/lib/k0s/pki readable by group or others.
    admin = sh(K0S_NODE, f"stat -c '%a %U:%G' {K0S_PKI}/admin.conf").stdout.strip()
    note(f"{K0S_NODE}   {K0S_PKI}/admin.conf: {admin}")
    assert admin == "600 root:root", admin
    loose = sh(K0S_NODE, f"find {K0S_PKI} -type f \\( -name '*.crt' -o -name '*.key' \\) -perm /077").stdout.strip()
    assert not loose, f"certificates or keys readable by group or others: {loose}"
    assert not failed, f"scored FAILs on the K0s controller (not-applicable and stand-in gaps left out): {failed}"


def k0s_ready() -> None:
    ready = "k0s kubectl get --raw=/readyz >/dev/null 2>&1"
    sh(K0S_NODE, f"for i in $(seq 90); do {ready} && exit 0; sleep 2; done; exit 1")


def test_k0s_gate_grades_the_running_apiserver_flags(k0s_lab: tuple[Lab, Path]) -> None:
    """The K0s gate can fail: with the collection's `audit-log-maxage` taken out of k0s.yaml's spec.api.extraArgs and
    the controller restarted, 1.2.17 FAILs on the running kube-apiserver; with k0s.yaml back, it PASSes again."""

    def status() -> str:
        results = {r["test_number"]: r for r in kube_bench(K0S_NODE, "master", K0S_BENCHMARK, f"{K0S_PKI}/admin.conf")}
        assert "--audit-log-maxage" in results["1.2.17"]["test_desc"], results["1.2.17"]
        return str(results["1.2.17"]["status"])

    assert status() == "PASS"
    backup = "/root/k0s.yaml.kube-bench"
    sh(K0S_NODE, f"cp -p {K0S_CONFIG} {backup} && sed -i '/audit-log-maxage:/d' {K0S_CONFIG}")
    try:
        sh(K0S_NODE, f"! grep -q audit-log-maxage {K0S_CONFIG} && systemctl restart k0scontroller.service")
        k0s_ready()
        ps = sh(K0S_NODE, "ps -eo args | grep '[k]ube-apiserver '").stdout
        assert "--audit-log-path=" in ps and "--audit-log-maxage" not in ps, ps[-1500:]
        loose = status()
        note(f"{K0S_NODE} (audit-log-maxage taken out of k0s.yaml): 1.2.17 {loose}")
        assert loose == "FAIL"
    finally:
        sh(K0S_NODE, f"mv {backup} {K0S_CONFIG} && systemctl restart k0scontroller.service")
        k0s_ready()
    assert status() == "PASS"
