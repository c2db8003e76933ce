# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`playbooks/upgrade.yml` on a small fleet of its own: refusals, prestage, canary then a wave, a second run.

Three containers of this test's own (scenario label `upgrade`), created by the fixture and always removed:
edgefleet-up1 (up1, 10.231.0.211, K3s server of cluster up-k3s, fleet group `canary`), edgefleet-up2 (up2,
10.231.0.212, its agent) and edgefleet-up3 (up3, 10.231.0.213, K0s server of cluster up-k0s). The fleet file is
written by the test; the version moves through its release channel (`defaults.channels.stable`).

The binaries are the lab's stand-ins (a real kube-apiserver on kine/SQLite behind a K3s/K0s-shaped CLI), NOT K3s
or K0s. The "next" version (tests/lab/controlplane/versions.env) is the same stand-in under another version
string; the version a node reports is its Node object's kubelet version (the stand-in's heartbeat) where it
registers one, and the version the installed binary prints.

Needs the lab image, network and key (tests/lab/node.sh prepare) and the stand-in bundles of both versions
(tests/lab/controlplane/bundle.sh). KEEP=1 leaves the containers running.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from labsite import CACHE, REPO, Run, Site, scenario_containers

pytestmark = pytest.mark.lab

LAB = REPO / "tests" / "lab"
SCENARIO = "upgrade"
NODES = {"up1": "10.231.0.211", "up2": "10.231.0.212", "up3": "10.231.0.213"}
CONTAINER = "edgefleet-{}"
K3S = "/usr/local/bin/k3s"
K0S = "/usr/local/bin/k0s"
CONFIGMAPS = 1000


def note(msg: str) -> None:
    print(f"[upgrade-lab] {msg}", flush=True)


def _versions() -> dict[str, str]:
    env = (LAB / "controlplane" / "versions.env").read_text()
    return dict(line.split("=", 1) for line in env.splitlines() if "=" in line and not line.startswith("#"))


VERSIONS = _versions()
OLD = VERSIONS["EDGEFLEET_LAB_K3S_VERSION"]
NEW = VERSIONS["EDGEFLEET_LAB_K3S_NEXT_VERSION"]


def fleet(k3s: str, k0s: str) -> dict[str, object]:
    return {
        "plugin": "edgefleet.k8s.fleet",
        "defaults": {
            "region": "lab",
            "model": "podman-node",
            "channel": "stable",
            "arch": "amd64",
            "datastore": "sqlite",
            "gitops": {"engine": "none"},
            "channels": {"stable": {"k3s": k3s, "k0s": k0s}},
        },
        "sites": [
            {
                "name": "up-k3s",
                "distribution": "k3s",
                "groups": ["canary"],
                "nodes": [
                    {"name": "up1", "address": NODES["up1"], "role": "server"},
                    {"name": "up2", "address": NODES["up2"], "role": "agent"},
                ],
            },
            {
                "name": "up-k0s",
                "distribution": "k0s",
                "nodes": [{"name": "up3", "address": NODES["up3"], "role": "server"}],
            },
        ],
    }


GROUP_VARS = {
    "ansible_user": "edge",
    "ansible_become": True,
    "ansible_ssh_private_key_file": str(CACHE / "lab" / "id_ed25519"),
    "ansible_python_interpreter": "/usr/bin/python3",
    "edgefleet_distribution_unit_type": "exec",
}


class Fleet(Site):
    """ansible-playbook on this test's own fleet file (written by `write`), any playbook."""

    def __init__(self, work: Path) -> None:
        self.inventory = work / "inventory"
        super().__init__(work, self.inventory / "up.fleet.yml")
        (self.inventory / "group_vars").mkdir(parents=True, exist_ok=True)
        (self.inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(GROUP_VARS))

    def write(self, k3s: str, k0s: str) -> None:
        self.fleet.write_text(yaml.safe_dump(fleet(k3s, k0s), sort_keys=False))

    def play(self, playbook: str, *extra: str, timeout: int = 1500) -> Run:
        started = time.monotonic()
        run = self.run(*extra, timeout=timeout, playbook=playbook)
        (self.work / f"run-{self.count}.log").write_text(run.out)
        note(f"{playbook} {' '.join(extra)}: rc {run.rc} in {time.monotonic() - started:.0f} s")
        return run


def sh(node: str, script: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", "exec", "-i", CONTAINER.format(node), "bash", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def out(node: str, script: str, timeout: int = 300) -> str:
    res = sh(node, script, timeout)
    assert res.returncode == 0, f"{node}: `{script}` exited {res.returncode}: {res.stdout[-1000:]}{res.stderr[-1000:]}"
    return res.stdout


def kubectl(node: str) -> str:
    return f"{K3S} kubectl" if node in ("up1", "up2") else f"{K0S} kubectl --kubeconfig /var/lib/k0s/pki/admin.conf"


def configmaps(node: str) -> int:
    return int(out(node, f"{kubectl(node)} get configmaps -n upgrade-test -o name | wc -l").strip())


def write_configmaps(node: str, count: int) -> None:
    out(node, f"{kubectl(node)} create namespace upgrade-test --dry-run=client -o yaml | {kubectl(node)} apply -f -")
    items = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:04}"}, "data": {"i": str(i)}}
        for i in range(count)
    ]
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    proc = subprocess.run(
        [
            "podman",
            "exec",
            "-i",
            CONTAINER.format(node),
            "bash",
            "-c",
            f"{kubectl(node)} create -n upgrade-test -f - -o name | wc -l",
        ],
        input=doc,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def installed(node: str) -> str:
    text = out(node, f"{K0S} version" if node == "up3" else f"{K3S} --version")
    found = re.search(r"v\d+\.\d+\.\d+\+\S+", text)
    assert found, text
    return found.group(0)


def kubelet_versions() -> dict[str, str]:
    text = out(
        "up1",
        f"{K3S} kubectl get nodes -o jsonpath="
        "'{range .items[*]}{.metadata.name}={.status.nodeInfo.kubeletVersion} {end}'",
    )
    return dict(item.split("=", 1) for item in text.split())


def running_version(node: str) -> str:
    """The version of the process the unit runs now (the stand-in carries it in its environment)."""
    unit = {"up1": "k3s", "up2": "k3s-agent", "up3": "k0scontroller"}[node]
    pid = out(node, f"systemctl show -p MainPID --value {unit}").strip()
    assert pid not in ("", "0"), f"{node}: {unit} runs no process"
    environ = out(node, f"cat /proc/{pid}/environ | tr '\\0' '\\n'")
    found = [line.split("=", 1)[1] for line in environ.splitlines() if line.startswith("EDGEFLEET_STANDIN_VERSION=")]
    assert found, f"{node}: {unit} is not the lab stand-in"
    return found[0]


def sha(node: str, path: str) -> str:
    return out(node, f"sha256sum {path}").split()[0]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    for version in (OLD, NEW):
        for dist in ("k3s", "k0s"):
            assert (CACHE / "bundle" / dist / version / "sha256sum-amd64.txt").is_file(), (
                f"no stand-in bundle {dist} {version}: run tests/lab/controlplane/bundle.sh"
            )

    nodes = [(CONTAINER.format(name), name, ip) for name, ip in NODES.items()]
    with scenario_containers(nodes, SCENARIO):
        yield Fleet(tmp_path_factory.mktemp("upgrade-lab"))


def test_upgrade_canary_first_then_a_wave_refusals_before_any_change_and_a_second_run_changes_nothing(
    lab: Fleet,
) -> None:
    started = time.monotonic()
    lab.write(OLD, OLD)
    converge = lab.play("site.yml", "--skip-tags", "os_hardening,gitops")
    assert converge.rc == 0, converge.tail()
    for node in NODES:
        assert installed(node) == OLD and running_version(node) == OLD
    write_configmaps("up1", CONFIGMAPS)
    write_configmaps("up3", CONFIGMAPS)
    counts = {node: configmaps(node) for node in ("up1", "up3")}
    assert counts == {"up1": CONFIGMAPS, "up3": CONFIGMAPS}
    binaries = {node: sha(node, K0S if node == "up3" else K3S) for node in NODES}

    # Refusals: a two-minor jump (K3s) and a downgrade (K0s), both named, before any host is touched.
    jump = "v1.38.0+lab"
    down = "v1.36.2+lab"
    lab.write(jump, down)
    refused = lab.play("upgrade.yml")
    assert refused.rc != 0
    assert re.search(
        rf"cluster up-k3s: up\d would go from {re.escape(OLD)} to {re.escape(jump)}, a jump of more", refused.out
    )
    assert f"cluster up-k0s: up3 would go from {OLD} down to {down}, a downgrade" in refused.out
    assert all(r["changed"] == 0 for r in refused.recap().values()), refused.recap()
    assert "Stage the target version" not in refused.out and "Back up the datastore" not in refused.out
    assert {node: sha(node, K0S if node == "up3" else K3S) for node in NODES} == binaries

    # Prestage only: the new version is staged on every node, nothing installed changes, no restart.
    lab.write(NEW, NEW)
    staged = lab.play("upgrade.yml", "--tags", "prestage")
    assert staged.rc == 0, staged.tail()
    for node in NODES:
        assert installed(node) == OLD and running_version(node) == OLD
        assert out(node, f"ls /var/lib/edgefleet/artifacts/{'k0s' if node == 'up3' else 'k3s'}/").split() == [OLD, NEW]
    again = lab.play("upgrade.yml", "--tags", "prestage")
    assert again.rc == 0 and all(r["changed"] == 0 for r in again.recap().values()), again.recap()

    # The upgrade: canary (up-k3s) first, then wave 1 (up-k0s); nothing is sent in the window (prestaged).
    run = lab.play("upgrade.yml")
    assert run.rc == 0, run.tail()
    canary = run.out.index("Upgrade the servers, one at a time per cluster, of canary")
    wave = run.out.index("Upgrade the servers, one at a time per cluster, of wave 1")
    assert canary < wave
    assert "gate of up1 passed" in run.out and "gate of up2 passed" in run.out and "gate of up3 passed" in run.out
    for node in NODES:
        assert installed(node) == NEW, node
        assert running_version(node) == NEW, node
        assert run.node(node)["bytes_sent"] in (0, None), run.node(node)
        assert run.node(node)["state"] == "ready", run.node(node)
    assert kubelet_versions() == {"up1": NEW, "up2": NEW}
    assert {node: configmaps(node) for node in ("up1", "up3")} == counts
    for cluster in ("up-k3s", "up-k0s"):
        upgrade = run.cluster(cluster)["upgrade"]
        assert (upgrade["outcome"], upgrade["before"], upgrade["after"]) == ("upgraded", OLD, NEW), upgrade
    assert run.cluster("up-k3s")["upgrade"]["wave"] == "canary"
    assert run.cluster("up-k0s")["upgrade"]["wave"] == "wave 1"
    backups = out("up1", "ls /var/lib/rancher/edgefleet-backups/")
    assert "pre-upgrade-v1-36-4-lab.db" in backups, backups

    # A second run: every cluster is current, nothing changes.
    second = lab.play("upgrade.yml")
    assert second.rc == 0, second.tail()
    assert all(r["changed"] == 0 for r in second.recap().values()), second.recap()
    assert {c: second.cluster(c)["upgrade"]["outcome"] for c in ("up-k3s", "up-k0s")} == {
        "up-k3s": "current",
        "up-k0s": "current",
    }
    note(f"whole test: {time.monotonic() - started:.0f} s")


BROKEN = "v1.36.5+lab.broken"
# TEST-ONLY. Not K3s/K0s and not even the lab stand-in: a few lines of shell that report the version they are
# given and, run as a server, stay up without an API server, so the server never becomes ready. Written by this
# test into a private bundle root; nothing outside this test uses it.
BROKEN_BINARY = """#!/bin/sh
# edgefleet TEST-ONLY BROKEN BINARY (tests/integration/test_upgrade_lab.py): NOT K3s/K0s, not the lab stand-in.
# Reports {version}; as a server it runs but its API server never becomes ready.
case "$1" in
  --version|version) echo "{flavor} version {version} (test-only broken binary)"; exit 0 ;;
  kubectl) echo "test-only broken binary: the API server never becomes ready" >&2; exit 1 ;;
esac
exec sleep infinity
"""


def broken_bundle(root: Path) -> Path:
    """A bundle root with the real stand-in bundles (symlinked) and a broken K3s and K0s of version BROKEN."""
    for dist in ("k3s", "k0s"):
        (root / dist).mkdir(parents=True, exist_ok=True)
        for version in (OLD, NEW):
            link = root / dist / version
            if not link.exists():
                link.symlink_to(CACHE / "bundle" / dist / version)
        directory = root / dist / BROKEN
        directory.mkdir(exist_ok=True)
        name = "k3s" if dist == "k3s" else f"k0s-{BROKEN}-amd64"
        (directory / name).write_text(BROKEN_BINARY.format(flavor=dist, version=BROKEN))
        (directory / name).chmod(0o755)
        digest = subprocess.run(["sha256sum", name], cwd=directory, capture_output=True, text=True, check=True).stdout
        (directory / "sha256sum-amd64.txt").write_text(digest)
    return root


def test_a_broken_version_fails_the_canary_gate_and_the_canary_is_rolled_back(lab: Fleet) -> None:
    """The canary (up-k3s) goes to a version whose server never becomes ready: its gate fails, it is rolled back to
    the version it ran, with the same ConfigMaps; the next wave (up-k0s) is not touched; the run exits non-zero and
    the summary and the JSON report say "rolled back"."""
    started = time.monotonic()
    if any(installed(node) != NEW for node in NODES):  # alone (-k): bring the fleet to NEW first
        lab.write(NEW, NEW)
        ready = lab.play("site.yml", "--skip-tags", "os_hardening,gitops")
        assert ready.rc == 0, ready.tail()
        for node in ("up1", "up3"):
            if configmaps_or_zero(node) == 0:
                write_configmaps(node, CONFIGMAPS)
    counts = {node: configmaps(node) for node in ("up1", "up3")}
    k0s_binary = sha("up3", K0S)
    k0s_invocation = out("up3", "systemctl show -p InvocationID --value k0scontroller").strip()

    root = broken_bundle(lab.work / "bundle")
    lab.write(BROKEN, BROKEN)
    run = lab.play("upgrade.yml", "-e", f"edgefleet_artifacts_bundle={root}", "-e", "edgefleet_upgrade_gate_timeout=90")
    assert run.rc != 0, run.tail()
    assert "gate of up1 failed" in run.out, run.tail()
    assert "/readyz did not answer ok" in run.out
    # Rolled back: the version it ran, running, every ConfigMap there.
    assert installed("up1") == NEW and running_version("up1") == NEW
    assert kubelet_versions()["up1"] == NEW
    assert configmaps("up1") == counts["up1"]
    # Nothing else touched: the canary's agent and the next wave only got the new version staged (prestage). (The
    # stand-in agent may restart by itself while its server is down, so its unit's invocation is not compared.)
    staging = ["edgefleet.k8s.artifacts : Stage the verified air-gap artifacts"]
    assert run.node("up2")["changed"]["tasks"] == staging and run.node("up3")["changed"]["tasks"] == staging
    assert installed("up2") == NEW and running_version("up2") == NEW
    assert sha("up3", K0S) == k0s_binary and installed("up3") == NEW
    assert out("up3", "systemctl show -p InvocationID --value k0scontroller").strip() == k0s_invocation
    assert configmaps("up3") == counts["up3"]
    k3s = run.cluster("up-k3s")["upgrade"]
    assert (k3s["outcome"], k3s["before"], k3s["target"], k3s["after"]) == ("rolled_back", NEW, BROKEN, NEW), k3s
    k0s = run.cluster("up-k0s")["upgrade"]
    assert k0s["outcome"] == "skipped" and k0s["reason"].startswith("not reached: canary"), k0s
    assert re.search(r"up-k3s .*rolled back " + re.escape(f"{NEW} -> {BROKEN} -> {NEW}"), run.out)
    assert run.node("up1")["state"] == "failed" and "rolled back" in run.node("up1")["error"]["message"]

    # Back to the fleet's good version for whatever runs next: nothing to do.
    lab.write(NEW, NEW)
    after = lab.play("upgrade.yml")
    assert after.rc == 0 and all(r["changed"] == 0 for r in after.recap().values()), after.tail()
    note(f"rollback test: {time.monotonic() - started:.0f} s")


def configmaps_or_zero(node: str) -> int:
    res = sh(node, f"{kubectl(node)} get configmaps -n upgrade-test -o name | wc -l")
    return int(res.stdout.strip() or 0) if res.returncode == 0 else 0
