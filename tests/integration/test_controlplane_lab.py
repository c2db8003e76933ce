"""Lab acceptance of the K3s/K0s stand-ins on podman nodes of their own, installed from the air-gap bundle.

Four containers (scenario label `controlplane`): edgefleet-cp1..3 (cpnode1..3, 10.231.0.171-173) run the K3s
stand-in and edgefleet-cp4 (cpnode4, 10.231.0.174) the K0s stand-in. Each stand-in is copied from the bundle,
checked against its sha256 file, installed and run by systemd units, as the k3s/k0s roles do. The stand-ins
are NOT K3s/K0s: a real kube-apiserver on kine/etcd, no kubelet/containerd/pods (docs/lab.md "Control-plane
stand-ins").

The tests share the nodes and run in file order: the single K3s server on cpnode1 with agents on cpnode2/3,
then the refusals on cpnode3, then a 3-server etcd cluster on cpnode1..3, then K0s on cpnode4. Each group's
fixture sets up the state it needs from a wiped node, so a `-k` selection works too.

Needs `make controlplane-bundle` and root with podman (`make test-controlplane-lab` runs it). The nodes are
removed by name afterwards, also on failure or SIGTERM; KEEP=1 leaves them running.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CP_DIR, REPO
from labsite import scenario_containers

pytestmark = pytest.mark.controlplane_lab

LAB = REPO / "tests" / "lab"
CACHE = Path(os.environ.get("EDGEFLEET_CACHE", str(Path.home() / ".cache" / "edgefleet")))
SCENARIO = "controlplane"
IMAGE = "localhost/edgefleet-node:bookworm"
NETWORK = "edgefleet-lab"


def _versions() -> dict[str, str]:
    out = {}
    for line in (CP_DIR / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _sep, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


VERSIONS = _versions()
K3S_BUNDLE = CACHE / "bundle" / "k3s" / VERSIONS["EDGEFLEET_LAB_K3S_VERSION"]
K0S_BUNDLE = CACHE / "bundle" / "k0s" / VERSIONS["EDGEFLEET_LAB_K0S_VERSION"]
K0S_FILE = f"k0s-{VERSIONS['EDGEFLEET_LAB_K0S_VERSION']}-amd64"

SERVER_DB = "/var/lib/rancher/k3s/server/db/state.db"
NODE_TOKEN = "/var/lib/rancher/k3s/server/node-token"
# How long a poll waits for something the stand-ins do on their own (join, 401, health, manifests). make test runs
# this file beside the VM and lab lanes, which keep every core of the machine busy, so the margin is wide. A pass
# returns as soon as the condition holds.
LOADED_WAIT = 240.0
K3S_UNIT = """\
[Unit]
Description=edgefleet LAB STAND-IN for k3s {role} (not K3s)
After=network-online.target
[Service]
Type=exec
ExecStart=/usr/local/bin/k3s {role}
KillMode=mixed
Restart=always
RestartSec=5
[Install]
WantedBy=multi-user.target
"""
K0S_UNIT = """\
[Unit]
Description=edgefleet LAB STAND-IN for k0s {role} (not K0s)
[Service]
Type=exec
ExecStart=/usr/local/bin/k0s {role} {args}
KillMode=mixed
Restart=always
RestartSec=5
"""
# etcdctl from the extracted stand-in, with the client certificate the K3s stand-in writes.
ETCDCTL = (
    "d=$(ls -d /var/lib/rancher/k3s/data/*/bin | head -1); t=/var/lib/rancher/k3s/server/tls/etcd; "
    "$d/etcdctl --cacert=$t/etcd-ca.crt --cert=$t/etcd-client.crt --key=$t/etcd-client.key"
)


def note(msg: str) -> None:
    """A line for the report (`-rP` shows it): what was measured or seen, beside pass/fail."""
    print(f"[controlplane] {msg}", flush=True)


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 2.0) -> bool:
    """Poll `check` until it holds or `timeout` seconds pass; True when it held."""
    end = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= end:
            note(f"gave up after {timeout:.0f} s: {what}")
            return False
        time.sleep(interval)


@dataclass(frozen=True)
class Node:
    """One lab container; commands run as root through `podman exec`."""

    name: str
    host: str
    ip: str

    def run(self, script: str, *, stdin: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        cmd = ["podman", "exec", *(["-i"] if stdin is not None else []), self.name, "bash", "-c", script]
        return subprocess.run(
            cmd,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def sh(self, script: str, *, stdin: str | None = None, timeout: float = 600) -> str:
        """Run `script`; its stdout, or fail the test with both streams."""
        res = self.run(script, stdin=stdin, timeout=timeout)
        if res.returncode != 0:
            pytest.fail(f"{self.name}: `{script}` exited {res.returncode}\n{res.stdout}\n{res.stderr}")
        return res.stdout

    def ok(self, script: str) -> bool:
        return self.run(script, timeout=120).returncode == 0

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        p = shlex.quote(path)
        self.sh(f"mkdir -p $(dirname {p}) && install -m {mode} /dev/stdin {p}", stdin=text)

    def copy_in(self, src: Path, dest: str) -> None:
        subprocess.run(["podman", "cp", str(src), f"{self.name}:{dest}"], check=True, timeout=300)

    def journal(self, unit: str, *extra: str) -> str:
        return self.run(f"journalctl -u {unit} --no-pager {' '.join(extra)}", timeout=120).stdout

    def wait_ready(self, timeout: float = 240) -> None:
        """Wait until the K3s stand-in here answers /readyz; fail with its journal."""
        if not wait_until(f"{self.host} /readyz", lambda: self.ok("k3s kubectl get --raw /readyz"), timeout):
            pytest.fail(f"{self.name} not ready in {timeout:.0f} s:\n{self.journal('k3s', '| tail -40')}")

    def wipe_k3s(self) -> None:
        """Stop the K3s units and remove their config and state (not the extracted stand-in)."""
        self.run(
            "systemctl stop k3s k3s-agent 2>/dev/null; systemctl reset-failed k3s k3s-agent 2>/dev/null; "
            "rm -rf /etc/rancher /var/lib/rancher/k3s/server /var/lib/rancher/k3s/agent; true"
        )

    def unit_rss_mib(self, unit: str) -> int:
        """RSS of the unit's process tree in MiB."""
        main = int(self.sh(f"systemctl show -p MainPID --value {unit}").strip() or 0)
        parent, rss = {}, {}
        for line in self.sh("ps -e -o pid=,ppid=,rss=").splitlines():
            pid, ppid, kib = (int(x) for x in line.split())
            parent[pid], rss[pid] = ppid, kib
        total = 0
        for pid in parent:
            p = pid
            while p and p != main:
                p = parent.get(p, 0)
            if main and p == main:
                total += rss[pid]
        return total // 1024


CP1, CP2, CP3, CP4 = (Node(f"edgefleet-cp{i}", f"cpnode{i}", f"10.231.0.{170 + i}") for i in (1, 2, 3, 4))
K3S_NODES = (CP1, CP2, CP3)
ALL_NODES = (*K3S_NODES, CP4)


def _install_from_bundle(node: Node, bundle: Path, file: str, target: str) -> None:
    """Copy one stand-in and its sha256 file, verify the sum on the node, install it 0755 at `target`."""
    node.sh("rm -rf /tmp/bundle && mkdir -p /tmp/bundle")
    node.copy_in(bundle / file, f"/tmp/bundle/{file}")
    node.copy_in(bundle / "sha256sum-amd64.txt", "/tmp/bundle/sha256sum-amd64.txt")
    # The sums file lists the bundle's other files too (the WASM shims), which are not copied here.
    check = "sha256sum -c --quiet --ignore-missing sha256sum-amd64.txt"
    res = node.run(f"cd /tmp/bundle && {check} && install -m 0755 {file} {target}")
    assert res.returncode == 0, f"{node.name}: the bundle failed its sha256 check:\n{res.stdout}{res.stderr}"
    node.sh("rm -rf /tmp/bundle")


def _installed_sum_matches(node: Node, bundle: Path, file: str, target: str) -> bool:
    sums = (bundle / "sha256sum-amd64.txt").read_text().split()
    expected = sums[sums.index(file) - 1]
    return node.sh(f"sha256sum {target}").split()[0] == expected


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Node, ...]]:
    """cp1..4 running (a fresh container each), the K3s stand-in and its units installed on cp1..3."""
    assert os.access(K3S_BUNDLE / "k3s", os.X_OK), f"no stand-in bundle at {K3S_BUNDLE}: run `make controlplane-bundle`"

    with scenario_containers([(n.name, n.host, n.ip) for n in ALL_NODES], SCENARIO):
        note(f"nodes up: {' '.join(n.name for n in ALL_NODES)}")
        for n in K3S_NODES:
            _install_from_bundle(n, K3S_BUNDLE, "k3s", "/usr/local/bin/k3s")
            n.sh("ln -sf k3s /usr/local/bin/kubectl")
            n.write("/etc/systemd/system/k3s.service", K3S_UNIT.format(role="server"))
            n.write("/etc/systemd/system/k3s-agent.service", K3S_UNIT.format(role="agent"))
            n.sh("systemctl daemon-reload")
        note(f"K3s stand-in installed from {K3S_BUNDLE} (sha256 verified) on {len(K3S_NODES)} nodes")
        yield ALL_NODES


def test_k3s_standin_installed_from_verified_bundle(nodes: tuple[Node, ...]) -> None:
    for n in K3S_NODES:
        assert _installed_sum_matches(n, K3S_BUNDLE, "k3s", "/usr/local/bin/k3s"), n.name
        assert n.sh("readlink /usr/local/bin/kubectl").strip() == "k3s", n.name


# ---------------------------------------------------------------- one K3s server on cpnode1, under systemd

AUDIT_POLICY = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: {level}\n"
SERVER_CONFIG = """\
write-kubeconfig-mode: "0600"
secrets-encryption: true
tls-san: [cp.lab.example]
kube-apiserver-arg:
  - audit-policy-file=/var/lib/rancher/k3s/server/audit.yaml
  - audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log
"""


@pytest.fixture(scope="module")
def k3s_server(nodes: tuple[Node, ...]) -> Node:
    """cpnode1: the K3s stand-in server (kine/SQLite) enabled and started by systemd, with an audit policy
    and secrets encryption, ready."""
    for n in K3S_NODES:
        n.wipe_k3s()
    CP1.write("/var/lib/rancher/k3s/server/audit.yaml", AUDIT_POLICY.format(level="Metadata"))
    CP1.write("/etc/rancher/k3s/config.yaml", SERVER_CONFIG)
    CP1.sh("systemctl enable --now k3s >/dev/null 2>&1")
    CP1.wait_ready(240)
    return CP1


def test_server_under_systemd_serves_readyz(k3s_server: Node) -> None:
    assert k3s_server.sh("systemctl is-active k3s").strip() == "active"
    assert k3s_server.sh("k3s kubectl get --raw /readyz").strip() == "ok"


def test_server_version_over_kubeconfig(k3s_server: Node) -> None:
    ver = k3s_server.sh("kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml get --raw /version")
    assert f'"gitVersion": "{VERSIONS["EDGEFLEET_CP_K8S_VERSION"]}"' in ver, ver
    note(f"kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml get --raw /version -> {VERSIONS['EDGEFLEET_CP_K8S_VERSION']}")


def test_kubeconfig_and_tokens_are_0600(k3s_server: Node) -> None:
    modes = k3s_server.sh(f"stat -c '%n %a' /etc/rancher/k3s/k3s.yaml /var/lib/rancher/k3s/server/token {NODE_TOKEN}")
    assert {line.split()[1] for line in modes.splitlines()} == {"600"}, modes


def test_node_token_format(k3s_server: Node) -> None:
    token = k3s_server.sh(f"cat {NODE_TOKEN}").strip()
    assert re.fullmatch(r"K10[0-9a-f]{64}::server:[0-9a-f]{32}", token), "node-token has not the K3s format"


def test_sqlite_grows_with_objects(k3s_server: Node) -> None:
    size = f"cat {SERVER_DB} {SERVER_DB}-wal 2>/dev/null | wc -c"
    before = int(k3s_server.sh(f"test -f {SERVER_DB} && {size}"))
    # More than SQLite's WAL holds before a checkpoint, so the files must grow, not only be reused.
    value = "0" * 65536
    docs = "".join(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: grow-{i}, namespace: default}}\n"
        f'data: {{k: "{value}"}}\n---\n'
        for i in range(1, 81)
    )
    k3s_server.sh("kubectl apply --server-side -f - >/dev/null", stdin=docs)
    after = int(k3s_server.sh(size))
    assert after > before, f"SQLite did not grow ({before} -> {after})"
    note(f"SQLite at {SERVER_DB} grew {before} -> {after} bytes after 80 ConfigMaps of 64 KiB")


def test_secrets_encrypted_at_rest(k3s_server: Node) -> None:
    k3s_server.sh("kubectl create secret generic canary --from-literal=v=plain-canary >/dev/null")
    probe = f"""\
import sqlite3
v = sqlite3.connect('file:{SERVER_DB}?mode=ro', uri=True).execute(
    "SELECT value FROM kine WHERE name='/registry/secrets/default/canary' ORDER BY id DESC LIMIT 1").fetchone()[0]
print(bytes(v)[:40])
assert bytes(v).startswith(b'k8s:enc:aescbc:v1:')
"""
    res = k3s_server.run("python3 -", stdin=probe)
    assert res.returncode == 0, f"secret not encrypted at rest: {res.stdout}{res.stderr}"


def test_audit_log_written(k3s_server: Node) -> None:
    assert k3s_server.ok('grep -q \'"level":"Metadata"\' /var/lib/rancher/k3s/server/logs/audit.log'), "no audit log"


def test_banner_in_journal(k3s_server: Node) -> None:
    # The stand-in's own banner, not the unit's Description that systemd also logs.
    banner = "edgefleet LAB STAND-IN: not K3s/K0s"
    found = banner in k3s_server.journal("k3s")
    assert found, "no stand-in banner in the journal"
    note(f"server RSS {k3s_server.unit_rss_mib('k3s')} MiB (kine/SQLite)")


# ---------------------------------------------------------------- agents joining cpnode1


def _agent_config(node: Node, token: str, extra: str = "") -> None:
    node.write("/etc/rancher/k3s/token", token + "\n", mode="0600")
    node.write(
        "/etc/rancher/k3s/config.yaml",
        f"server: https://{CP1.ip}:6443\ntoken-file: /etc/rancher/k3s/token\n{extra}",
    )


def _node_label(server: Node, kubectl: str, node: str, label: str) -> str:
    jsonpath = "{.metadata.labels." + label.replace(".", "\\.") + "}"
    return server.run(f"{kubectl} get node {node} -o jsonpath={shlex.quote(jsonpath)}", timeout=60).stdout


def test_agent_with_right_token_registers_its_node(k3s_server: Node) -> None:
    token = k3s_server.sh(f"cat {NODE_TOKEN}").strip()
    CP2.wipe_k3s()
    _agent_config(CP2, token, "node-label: [edgefleet.io/site=lab-k3s, edgefleet.io/channel=stable]\n")
    CP2.sh("systemctl start k3s-agent")
    registered = wait_until(
        "cpnode2 registered",
        lambda: _node_label(k3s_server, "kubectl", CP2.host, "edgefleet.io/site") == "lab-k3s",
        timeout=LOADED_WAIT,
    )
    assert registered, f"cpnode2 not registered:\n{CP2.journal('k3s-agent', '| tail -20')}"
    assert _node_label(k3s_server, "kubectl", CP2.host, "edgefleet.io/channel") == "stable"
    note("agent cpnode2 (right token) registered its Node with edgefleet.io/site=lab-k3s, edgefleet.io/channel=stable")


@dataclass(frozen=True)
class WrongTokenRun:
    saw_401: bool
    journal: str
    node_lookup: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def wrong_token_agent(k3s_server: Node) -> WrongTokenRun:
    """cpnode3's agent started with the server's CA hash but a wrong password, until its journal shows a 401
    (or LOADED_WAIT s pass); what it logged and whether the server knows its Node, then the agent stopped."""
    token = k3s_server.sh(f"cat {NODE_TOKEN}").strip()
    bad = token.rsplit(":", 1)[0] + ":0000000000000000wrongwrongwrong0"
    CP3.wipe_k3s()
    _agent_config(CP3, bad)
    CP3.sh("systemctl start k3s-agent")
    saw_401 = wait_until(
        "401 in the cpnode3 agent journal", lambda: "401 Unauthorized" in CP3.journal("k3s-agent"), LOADED_WAIT
    )
    run = WrongTokenRun(saw_401, CP3.journal("k3s-agent"), k3s_server.run(f"kubectl get node {CP3.host}", timeout=60))
    CP3.wipe_k3s()
    return run


def test_agent_with_wrong_token_gets_401(wrong_token_agent: WrongTokenRun) -> None:
    assert wrong_token_agent.saw_401, f"no 401 in the cpnode3 agent journal:\n{wrong_token_agent.journal[-3000:]}"
    line = next(ln for ln in wrong_token_agent.journal.splitlines() if "401 Unauthorized" in ln)
    note(f"agent cpnode3 (wrong token): {line.split(': ', 1)[-1][:110]}")


def test_agent_with_wrong_token_exits_non_zero(wrong_token_agent: WrongTokenRun) -> None:
    exited_non_zero = re.search(r"status=1/FAILURE|code=exited", wrong_token_agent.journal) is not None
    assert exited_non_zero, f"the wrong-token agent did not exit non-zero:\n{wrong_token_agent.journal[-3000:]}"


def test_agent_with_wrong_token_registers_no_node(wrong_token_agent: WrongTokenRun) -> None:
    assert wrong_token_agent.node_lookup.returncode != 0, "cpnode3 registered with a wrong token"
    assert "NotFound" in wrong_token_agent.node_lookup.stderr, wrong_token_agent.node_lookup.stderr


# ---------------------------------------------------------------- configurations `k3s server` refuses (cpnode3)


def test_unknown_config_key_is_refused(nodes: tuple[Node, ...]) -> None:
    CP3.wipe_k3s()
    CP3.write("/etc/rancher/k3s/config.yaml", 'write-kubeconfig-mode: "0600"\n')
    CP3.write("/etc/rancher/k3s/config.yaml.d/50-typo.yaml", "kube-apiserver-args: [foo=bar]\n")
    # A bound on the run: a stand-in that took the key would serve until stopped.
    res = CP3.run("timeout 120 k3s server 2>&1", timeout=300)
    # Booleans first, so a failure shows the message with the output's tail, not the whole output twice.
    named = 'unknown key "kube-apiserver-args"' in res.stdout
    assert named, f"unknown key accepted (rc={res.returncode}): {res.stdout[-2000:]}"
    assert res.returncode != 0, f"k3s server exited 0: {res.stdout[-2000:]}"
    line = next(ln for ln in res.stdout.splitlines() if "unknown key" in ln)
    note(f"unknown key -> {line.strip()} (rc={res.returncode})")


def test_broken_audit_policy_is_rejected_by_kube_apiserver(nodes: tuple[Node, ...]) -> None:
    CP3.wipe_k3s()
    CP3.write("/var/lib/rancher/k3s/server/audit.yaml", AUDIT_POLICY.format(level="Everything"))
    CP3.write(
        "/etc/rancher/k3s/config.yaml",
        "kube-apiserver-arg: [audit-policy-file=/var/lib/rancher/k3s/server/audit.yaml]\n",
    )
    res = CP3.run("timeout 300 k3s server 2>&1", timeout=400)
    assert res.returncode == 1, f"broken audit policy accepted (rc={res.returncode}): {res.stdout[-2000:]}"
    stopped = "kube-apiserver exited" in res.stdout
    assert stopped, f"no 'kube-apiserver exited': {res.stdout[-2000:]}"
    # kube-apiserver's own error names the file and the bad level.
    said = [ln for ln in res.stdout.splitlines() if "audit policy" in ln and "Everything" in ln]
    assert said, f"no kube-apiserver error about the audit policy level: {res.stdout[-2000:]}"
    note(f"broken audit policy rejected by kube-apiserver: {said[0][:150]}")


# ---------------------------------------------------------------- 3 K3s servers with embedded etcd


@pytest.fixture(scope="module")
def etcd_cluster(nodes: tuple[Node, ...]) -> tuple[Node, ...]:
    """cpnode1 with `cluster-init: true`, then cpnode2 and cpnode3 joining it, one after the other, each
    ready before the next starts; one shared token."""
    for n in K3S_NODES:
        n.wipe_k3s()
    CP1.run("systemctl disable k3s >/dev/null 2>&1")
    secret = os.urandom(16).hex()
    for i, n in enumerate(K3S_NODES):
        n.write("/etc/rancher/k3s/token", secret + "\n", mode="0600")
        role = "cluster-init: true\n" if i == 0 else f"server: https://{CP1.ip}:6443\n"
        n.write("/etc/rancher/k3s/config.yaml", "token-file: /etc/rancher/k3s/token\n" + role)
        n.sh("systemctl start k3s")
        n.wait_ready(300)
        note(f"server {n.host} ready ({'cluster-init' if i == 0 else f'joined {CP1.ip}'})")
    return K3S_NODES


def _etcd_healthy(node: Node) -> int:
    endpoints = ",".join(f"https://{n.ip}:2379" for n in K3S_NODES)
    out = node.run(f"{ETCDCTL} --endpoints={endpoints} --command-timeout=5s endpoint health 2>&1", timeout=120).stdout
    return out.count("is healthy")


def test_etcd_servers_all_ready(etcd_cluster: tuple[Node, ...]) -> None:
    for n in etcd_cluster:
        assert n.sh("k3s kubectl get --raw /readyz").strip() == "ok", n.name


def test_etcd_has_three_started_members(etcd_cluster: tuple[Node, ...]) -> None:
    members = CP1.sh(f"{ETCDCTL} --endpoints=https://127.0.0.1:2379 member list -w simple")
    note(f"etcd members: {members.count('started')} started")
    assert members.count(", started,") == 3, f"etcd quorum is not 3: {members}"


def test_etcd_endpoints_all_healthy(etcd_cluster: tuple[Node, ...]) -> None:
    healthy = 0

    def all_healthy() -> bool:
        nonlocal healthy
        healthy = _etcd_healthy(CP2)
        return healthy == 3

    wait_until("3 healthy etcd endpoints", all_healthy, timeout=LOADED_WAIT, interval=5)
    rss = " ".join(str(n.unit_rss_mib("k3s")) for n in etcd_cluster)
    note(f"etcd endpoints healthy: {healthy}/3; servers' RSS MiB: {rss}")
    assert healthy == 3


def test_etcd_snapshot_save(etcd_cluster: tuple[Node, ...]) -> None:
    CP2.sh("k3s etcd-snapshot save --name lab >/dev/null")
    files = CP2.sh("ls /var/lib/rancher/k3s/server/db/snapshots").split()
    assert any(f.startswith(f"lab-{CP2.host}-") for f in files), f"etcd-snapshot save wrote {files}"
    note(f"k3s etcd-snapshot save on {CP2.host} wrote {' '.join(files)}")


def test_writes_and_reads_with_one_server_stopped(etcd_cluster: tuple[Node, ...]) -> None:
    CP1.sh("systemctl stop k3s")
    assert CP2.ok("kubectl create configmap after-stop --from-literal=k=v"), "writes fail with one server down"
    assert CP3.ok("kubectl get configmap after-stop"), f"{CP3.host} does not see the write"
    note(f"with {CP1.host} stopped: write on {CP2.host}, read on {CP3.host} OK; etcd healthy {_etcd_healthy(CP2)}/3")


def test_stopped_server_rejoins_and_catches_up(etcd_cluster: tuple[Node, ...]) -> None:
    # A write made while cpnode1 is down (stopping it again is a no-op after the test above).
    CP1.sh("systemctl stop k3s")
    assert CP2.ok("kubectl create configmap while-down --from-literal=k=v"), "writes fail with one server down"
    CP1.sh("systemctl start k3s")
    CP1.wait_ready(300)
    assert CP1.ok("kubectl get configmap while-down"), f"{CP1.host} did not catch up after restart"
    if CP1.ok("kubectl get configmap after-stop >/dev/null 2>&1"):
        note(f"{CP1.host} also sees after-stop, written while it was down in the test above")
    note(f"{CP1.host} restarted, rejoined and sees the write; etcd healthy {_etcd_healthy(CP1)}/3")


# ---------------------------------------------------------------- the K0s stand-in on cpnode4

K0S_CONFIG = """\
apiVersion: k0s.k0sproject.io/v1beta1
kind: ClusterConfig
spec:
  api: {sans: [k0s.lab.example]}
  storage: {type: kine}
"""


@pytest.fixture(scope="module")
def k0s_controller(nodes: tuple[Node, ...]) -> Node:
    """cpnode4: the K0s stand-in from the bundle, a controller on kine under systemd with one manifest stack,
    and a worker unit (not started); the controller up (`k0s status`) and serving /readyz."""
    _install_from_bundle(CP4, K0S_BUNDLE, K0S_FILE, "/usr/local/bin/k0s")
    CP4.write("/etc/k0s/k0s.yaml", K0S_CONFIG)
    CP4.write(
        "/var/lib/k0s/manifests/edgefleet/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: k0s-stack}\n"
    )
    CP4.write(
        "/etc/systemd/system/k0scontroller.service",
        K0S_UNIT.format(role="controller", args="--config /etc/k0s/k0s.yaml"),
    )
    CP4.write(
        "/etc/systemd/system/k0sworker.service",
        K0S_UNIT.format(role="worker", args="--token-file /etc/k0s/worker-token --labels edgefleet.io/site=lab-k0s"),
    )
    CP4.sh("systemctl daemon-reload && systemctl start k0scontroller")
    ready = wait_until(
        "k0s controller ready", lambda: CP4.ok("k0s status >/dev/null 2>&1 && k0s kubectl get --raw /readyz"), 240
    )
    if not ready:
        pytest.fail(f"k0s controller not ready:\n{CP4.journal('k0scontroller', '| tail -20')}")
    return CP4


def test_k0s_standin_installed_from_verified_bundle(k0s_controller: Node) -> None:
    assert _installed_sum_matches(k0s_controller, K0S_BUNDLE, K0S_FILE, "/usr/local/bin/k0s")


def test_k0s_controller_under_systemd_is_up(k0s_controller: Node) -> None:
    assert k0s_controller.sh("systemctl is-active k0scontroller").strip() == "active"
    status = k0s_controller.sh("k0s status 2>/dev/null")
    assert k0s_controller.sh("k0s kubectl get --raw /readyz").strip() == "ok"
    note(f"k0s: controller ready; {' '.join(status.splitlines()[:3])}")


def test_k0s_controller_uses_kine_sqlite(k0s_controller: Node) -> None:
    assert k0s_controller.ok("test -f /var/lib/k0s/db/state.db"), "no kine SQLite at /var/lib/k0s/db/state.db"


def test_k0s_manifest_stack_applied(k0s_controller: Node) -> None:
    applied = wait_until(
        "k0s-stack namespace", lambda: k0s_controller.ok("k0s kubectl get ns k0s-stack"), LOADED_WAIT, 1
    )
    assert applied, "the k0s manifest stack was not applied"


def test_k0s_worker_joins_with_token(k0s_controller: Node) -> None:
    k0s_controller.sh("umask 077 && k0s token create --role=worker 2>/dev/null > /etc/k0s/worker-token")
    k0s_controller.sh("systemctl start k0sworker")
    joined = wait_until(
        "cpnode4 registered by the k0s worker",
        lambda: _node_label(k0s_controller, "k0s kubectl", CP4.host, "edgefleet.io/site") == "lab-k0s",
        timeout=LOADED_WAIT,
    )
    assert joined, f"k0s worker did not register:\n{k0s_controller.journal('k0sworker', '| tail -20')}"
    note(f"k0s: worker joined with a `k0s token create` token, registered Node {CP4.host} (edgefleet.io/site=lab-k0s)")
