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
from labsite import (
    CACHE,
    LAB_CONNECTION_VARS,
    REPO,
    Run,
    Site,
    lab_fleet_defaults,
    lab_versions,
    scenario_containers,
    unpause,
)

pytestmark = pytest.mark.lab

LAB = REPO / "tests" / "lab"
SCENARIO = "upgrade"
NODES = {"up1": "10.231.0.211", "up2": "10.231.0.212", "up3": "10.231.0.213"}
CONTAINER = "edgefleet-{}"
K3S = "/usr/local/bin/k3s"
K0S = "/usr/local/bin/k0s"
CONFIGMAPS = 1000
LIMIT_KBIT = 8000  # the staging bandwidth limit the prestage test sets (about 1 MB/s)
BINARIES = (("k3s", "k3s"), ("k0s", "k0s-{}-amd64"))


def note(msg: str) -> None:
    print(f"[upgrade-lab] {msg}", flush=True)


VERSIONS = lab_versions()
OLD = VERSIONS["EDGEFLEET_LAB_K3S_VERSION"]
NEW = VERSIONS["EDGEFLEET_LAB_K3S_NEXT_VERSION"]
# TEST-ONLY: the stand-in built with its fault switch set to never-ready (tests/lab/controlplane/bundle.sh): as a
# server it keeps its datastore running but never starts its API server, so it never becomes ready.
BROKEN = VERSIONS["EDGEFLEET_LAB_BROKEN_VERSION"]
# TEST-ONLY: the stand-in built with its fault switch set to migrates-datastore: as a server it marks its SQLite
# datastore as migrated and never becomes ready, and no version becomes ready on a datastore so marked.
MIGRATES = VERSIONS["EDGEFLEET_LAB_MIGRATES_VERSION"]


def fleet(k3s: str, k0s: str) -> dict[str, object]:
    return {
        "plugin": "edgefleet.k8s.fleet",
        "defaults": lab_fleet_defaults("sqlite", k3s, k0s),
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


class Fleet(Site):
    """ansible-playbook on this test's own fleet file (written by `write`), any playbook."""

    def __init__(self, work: Path) -> None:
        self.inventory = work / "inventory"
        super().__init__(work, self.inventory / "up.fleet.yml")
        (self.inventory / "group_vars").mkdir(parents=True, exist_ok=True)
        (self.inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(LAB_CONNECTION_VARS))

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


def kubectl_list(node: str, command: str, items: list[dict[str, object]], timeout: int = 900) -> None:
    """`kubectl <command> -f -` on node with the items as one List on stdin."""
    proc = subprocess.run(
        ["podman", "exec", "-i", CONTAINER.format(node), "bash", "-c", f"{kubectl(node)} {command} -f -"],
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def write_configmaps(node: str, count: int) -> None:
    out(node, f"{kubectl(node)} create namespace upgrade-test --dry-run=client -o yaml | {kubectl(node)} apply -f -")
    items: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:04}"}, "data": {"i": str(i)}}
        for i in range(count)
    ]
    kubectl_list(node, "create -n upgrade-test -o name", items)


def installed(node: str) -> str:
    found = installed_or_none(node)
    assert found, f"{node}: no installed binary reports a version"
    return found


def installed_or_none(node: str) -> str | None:
    """What the installed binary reports, or None when there is none (a test run alone, on fresh containers)."""
    res = sh(node, f"{K0S} version" if node == "up3" else f"{K3S} --version")
    found = re.search(r"v\d+\.\d+\.\d+\+\S+", res.stdout) if res.returncode == 0 else None
    return found.group(0) if found else None


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
    for version in (OLD, NEW, BROKEN, MIGRATES):
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
    started_staging = time.monotonic()
    staged = lab.play("upgrade.yml", "--tags", "prestage", "-e", f"edgefleet_artifacts_bandwidth_kbit={LIMIT_KBIT}")
    staging = time.monotonic() - started_staging
    assert staged.rc == 0, staged.tail()
    # The bandwidth limit held: no node can have received its bundle faster than the limit (sftp -l counts
    # 1024 bits to the Kbit, the lower of the two readings); each node has the new version staged (below).
    biggest = max((CACHE / "bundle" / dist / NEW / name.format(NEW)).stat().st_size for dist, name in BINARIES)
    floor = biggest * 8 / (LIMIT_KBIT * 1024)
    note(f"prestage at {LIMIT_KBIT} Kbit/s: {staging:.0f} s for {biggest / 1e6:.0f} MB a node (floor {floor:.0f} s)")
    assert staging >= floor, f"staging took {staging:.0f} s, under the {floor:.0f} s the limit allows"
    for node in NODES:
        assert installed(node) == OLD and running_version(node) == OLD
        assert out(node, f"ls /var/lib/edgefleet/artifacts/{'k0s' if node == 'up3' else 'k3s'}/").split() == [OLD, NEW]
    again = lab.play("upgrade.yml", "--tags", "prestage")
    assert again.rc == 0 and all(r["changed"] == 0 for r in again.recap().values()), again.recap()

    # The upgrade: canary (up-k3s) first, then wave 1 (up-k0s); nothing is sent in the window (prestaged).
    fetched = lab.work / "fetched-backups"
    run = lab.play(
        "upgrade.yml", "-e", "edgefleet_upgrade_drain=true", "-e", f"edgefleet_upgrade_fetch_backups={fetched}"
    )
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
    # Cordoned and drained through the API before the restart (the nodes that register one), schedulable after.
    for node in ("up1", "up2"):
        tasks = run.node(node)["changed"]["tasks"]
        assert "edgefleet.k8s.upgrade : Cordon and drain this node through the API" in tasks, tasks
        assert "edgefleet.k8s.upgrade : Uncordon this node through the API" in tasks, tasks
    assert out("up1", f"{K3S} kubectl get nodes -o jsonpath='{{.items[*].spec.unschedulable}}'").strip() == ""
    # The servers' backups were fetched to the controller, owner-only, the same bytes as on the node.
    for node, cluster, where in (
        ("up1", "up-k3s", "/var/lib/rancher/edgefleet-backups"),
        ("up3", "up-k0s", "/var/lib/k0s/edgefleet-backups"),
    ):
        files = sorted((fetched / cluster / node).iterdir())
        assert [f.suffix for f in files] == [".db", ".json"], files
        manifest = json.loads(files[1].read_text())
        assert all(f.stat().st_mode & 0o777 == 0o600 for f in files), [oct(f.stat().st_mode) for f in files]
        assert (fetched / cluster / node).stat().st_mode & 0o777 == 0o700
        assert (
            subprocess.run(["sha256sum", str(files[0])], capture_output=True, text=True, check=True).stdout.split()[0]
            == manifest["sha256"]
            == sha(node, f"{where}/{manifest['file']}")
        )

    # A second run: every cluster is current, nothing changes.
    second = lab.play("upgrade.yml")
    assert second.rc == 0, second.tail()
    assert all(r["changed"] == 0 for r in second.recap().values()), second.recap()
    assert {c: second.cluster(c)["upgrade"]["outcome"] for c in ("up-k3s", "up-k0s")} == {
        "up-k3s": "current",
        "up-k0s": "current",
    }
    note(f"whole test: {time.monotonic() - started:.0f} s")


def test_a_broken_version_fails_the_canary_gate_and_the_canary_is_rolled_back(lab: Fleet) -> None:
    """The canary (up-k3s) goes to a version whose server never becomes ready: its gate fails, it is rolled back to
    the version it ran, with the same ConfigMaps; the next wave (up-k0s) is not touched; the run exits non-zero and
    the summary and the JSON report say "rolled back"."""
    started = time.monotonic()
    at_new(lab, configmaps_on=("up1", "up3"))
    counts = {node: configmaps(node) for node in ("up1", "up3")}
    k0s_binary = sha("up3", K0S)
    k0s_invocation = out("up3", "systemctl show -p InvocationID --value k0scontroller").strip()

    lab.write(BROKEN, BROKEN)
    run = lab.play("upgrade.yml", "-e", "edgefleet_upgrade_gate_timeout=90")
    assert run.rc != 0, run.tail()
    assert "gate of up1 failed" in run.out, run.tail()
    assert "/readyz did not answer ok" in run.out
    # It was the stand-in's test-only fault switch that kept the server from becoming ready.
    assert "TEST-ONLY FAULT SWITCH never-ready" in out("up1", "journalctl -u k3s --no-pager -o cat"), "no fault switch"
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


def test_a_version_that_migrates_the_datastore_is_rolled_back_with_the_datastore_restored(lab: Fleet) -> None:
    """The canary goes to a version that marks its datastore as migrated and never becomes ready. Back on the version
    it ran, the server cannot read the marked datastore either (the stand-in's test-only fault switch
    migrates-datastore, like a release that changed the schema), so its rollback gate fails too, and the rollback
    restores the datastore from the backup taken before the upgrade: the server is ready on the old version with
    every ConfigMap, and the marked database is kept aside."""
    started = time.monotonic()
    at_new(lab, configmaps_on=("up1",))
    count = configmaps("up1")

    lab.write(MIGRATES, MIGRATES)
    run = lab.play("upgrade.yml", "-e", "edgefleet_upgrade_gate_timeout=60")
    assert run.rc != 0, run.tail()
    assert "gate of up1 failed" in run.out, run.tail()
    journal = out("up1", "journalctl -u k3s --no-pager -o cat")
    assert (
        "TEST-ONLY FAULT SWITCH migrates-datastore: marked /var/lib/rancher/k3s/server/db/state.db "
        f"as migrated by {MIGRATES}" in journal
    )
    assert f"was migrated by {MIGRATES} (TEST-ONLY fault switch migrates-datastore); {NEW} cannot read it" in journal
    tasks = run.node("up1")["changed"]["tasks"]
    assert "edgefleet.k8s.upgrade : Restore the datastore backup taken before the upgrade" in tasks, tasks
    assert installed("up1") == NEW and running_version("up1") == NEW
    assert kubelet_versions()["up1"] == NEW
    assert configmaps("up1") == count
    assert "state.db.pre-restore-" in out("up1", "ls /var/lib/rancher/k3s/server/db/")
    k3s = run.cluster("up-k3s")["upgrade"]
    assert (k3s["outcome"], k3s["before"], k3s["target"], k3s["after"]) == ("rolled_back", NEW, MIGRATES, NEW), k3s
    assert run.cluster("up-k0s")["upgrade"]["outcome"] == "skipped"
    assert installed("up3") == NEW

    lab.write(NEW, NEW)
    after = lab.play("upgrade.yml")
    assert after.rc == 0 and all(r["changed"] == 0 for r in after.recap().values()), after.tail()
    note(f"rollback with a datastore restore: {time.monotonic() - started:.0f} s")


def test_a_backup_that_cannot_be_fetched_fails_the_cluster_but_its_untouched_node_is_not_rolled_back(
    lab: Fleet,
) -> None:
    """The canary server's backup is taken, but its copy to the controller fails (the controller's directory cannot
    be made). The node was not touched yet: its cluster fails and the rollout halts, but the node is not rolled back
    (no reinstall, no restart: its unit keeps running as it was) and stays on the version it ran."""
    started = time.monotonic()
    at_new(lab, nodes=("up1", "up2"))
    invocation = out("up1", "systemctl show -p InvocationID --value k3s").strip()
    blocker = lab.work / "not-a-directory"
    blocker.write_text("a file where the controller's backup directory should be made\n")

    lab.write(BROKEN, BROKEN)
    run = lab.play("upgrade.yml", "-e", f"edgefleet_upgrade_fetch_backups={blocker}/backups")
    assert run.rc != 0, run.tail()
    assert "it was not touched (still on " + NEW + ")" in run.out, run.tail()
    assert "Install the previous binary again" not in run.out and "Restart the unit on the" not in run.out
    assert out("up1", "systemctl show -p InvocationID --value k3s").strip() == invocation
    assert installed("up1") == NEW and running_version("up1") == NEW
    k3s = run.cluster("up-k3s")["upgrade"]
    assert (k3s["outcome"], k3s["before"], k3s["after"]) == ("failed", NEW, None), k3s
    k0s = run.cluster("up-k0s")["upgrade"]
    assert k0s["outcome"] == "skipped" and k0s["reason"].startswith("not reached: canary"), k0s
    lab.write(NEW, NEW)
    note(f"untouched node after a failed fetch: {time.monotonic() - started:.0f} s")


def at_new(lab: Fleet, nodes: tuple[str, ...] = tuple(NODES), configmaps_on: tuple[str, ...] = ()) -> None:
    """For a test run alone (-k), on fresh containers: bring the fleet to NEW when one of nodes is not on it, and
    write the ConfigMaps on each of configmaps_on that has none. After the tests before it, nothing to do."""
    if all(installed_or_none(node) == NEW for node in nodes):
        return
    lab.write(NEW, NEW)
    ready = lab.play("site.yml", "--skip-tags", "os_hardening,gitops")
    assert ready.rc == 0, ready.tail()
    for node in configmaps_on:
        if configmaps_or_zero(node) == 0:
            write_configmaps(node, CONFIGMAPS)


def configmaps_or_zero(node: str) -> int:
    res = sh(node, f"{kubectl(node)} get configmaps -n upgrade-test -o name | wc -l")
    return int(res.stdout.strip() or 0) if res.returncode == 0 else 0


ACKED = "/root/load-acked"
STOP_WRITER = "/root/load-stop"
# Creates load-1, load-2, ... in namespace load-test until STOP_WRITER exists, appending each number to ACKED only
# after kubectl returned success (the API server acknowledged the write).
WRITER = (
    f"n=0; while [ ! -e {STOP_WRITER} ]; do n=$((n + 1)); "
    f"{{kubectl}} create configmap load-$n -n load-test --from-literal=n=$n >/dev/null 2>&1 "
    f"&& echo $n >> {ACKED}; done"
)


def acked() -> set[int]:
    """The keys the writer has had acknowledged so far."""
    res = sh("up1", f"cat {ACKED} 2>/dev/null || true")
    return {int(n) for n in res.stdout.split()}


GATE_OBJECTS_CRD = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "applications.argoproj.io", "labels": {"edgefleet.io/test-only": "true"}},
        "spec": {
            "group": "argoproj.io",
            "scope": "Namespaced",
            "names": {
                "kind": "Application",
                "plural": "applications",
                "singular": "application",
                "listKind": "ApplicationList",
            },
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
]
GATE_OBJECTS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "edgefleet-system"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}},
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cluster-identity", "namespace": "edgefleet-system"},
        "data": {"cluster": "up-k3s"},
    },
    {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "up-k3s", "namespace": "argocd"},
        "spec": {"project": "default"},
    },
]


def apply_docs(node: str, docs: list[dict[str, object]]) -> None:
    kubectl_list(node, "apply", docs, timeout=300)


def test_backup_and_restore_playbooks_restore_a_named_backup_and_refuse_without_one(lab: Fleet) -> None:
    """playbooks/backup.yml takes an online backup of every server while a writer creates ConfigMaps on the K3s
    server; playbooks/restore.yml refuses, touching nothing, without a backup name or with two clusters in the run,
    and with both restores that backup on up-k3s: every key acknowledged before the backup began is back (0 lost),
    the ConfigMaps written after the backup are gone. The gate after the restore checks the
    cluster's GitOps objects: it fails naming the Flux objects that are not there, and passes with the (test-only)
    Argo CD Application and the identity ConfigMap that are."""
    started = time.monotonic()
    at_new(lab, nodes=("up1", "up3"))
    lab.write(NEW, NEW)
    before = configmaps_or_zero("up1")

    # The objects the upgrade's GitOps gate looks for with the engine argocd, on up-k3s. TEST-ONLY: the
    # CustomResourceDefinition is a minimal one of ours (Argo CD's group and kind, an open schema, no controller),
    # so that an Application object can exist on the stand-in; no Argo CD runs here.
    apply_docs("up1", GATE_OBJECTS_CRD)
    out("up1", f"{kubectl('up1')} wait --for condition=established --timeout=60s crd/applications.argoproj.io")
    apply_docs("up1", GATE_OBJECTS)

    # Backup under load: a writer on up1 creates ConfigMaps load-1, load-2, ... one after the other and logs each
    # number only once kubectl returned, i.e. once the API server acknowledged the write (committed to kine).
    out("up1", f"{kubectl('up1')} create namespace load-test; rm -f {ACKED} {STOP_WRITER}")
    writer = subprocess.Popen(
        ["podman", "exec", CONTAINER.format("up1"), "bash", "-c", WRITER.format(kubectl=kubectl("up1"))],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while len(acked()) < 20:
            assert time.monotonic() < deadline and writer.poll() is None, "the writer acknowledged no 20 keys"
            time.sleep(1)
        before_backup = acked()
        backup = lab.play("backup.yml", "-e", "edgefleet_upgrade_backup_label=lab-restore")
        after_backup = acked()
    finally:
        out("up1", f"touch {STOP_WRITER}")
        writer.wait(timeout=120)
    assert after_backup > before_backup, f"no write was acknowledged while the backup ran ({len(before_backup)})"
    assert backup.rc == 0, backup.tail()
    names = re.findall(r"up1 \(cluster up-k3s\): backup (edgefleet-sqlite-\S+-lab-restore),", backup.out)
    assert len(names) == 1, backup.tail()
    assert re.search(r"up3 \(cluster up-k0s\): backup edgefleet-sqlite-\S+-lab-restore,", backup.out), backup.tail()
    assert "up2" not in re.findall(r"(up\d) \(cluster [^)]*\): backup", backup.out)

    out("up1", f"{kubectl('up1')} create namespace upgrade-test --dry-run=client -o yaml | {kubectl('up1')} apply -f -")
    for i in range(5):
        out("up1", f"{kubectl('up1')} create configmap after-backup-{i} -n upgrade-test --from-literal=i={i}")
    assert configmaps("up1") == before + 5

    binaries = {node: sha(node, K0S if node == "up3" else K3S) for node in NODES}
    for extra in ((), ("-e", f"edgefleet_upgrade_restore_backup={names[0]}")):
        refused = lab.play("restore.yml", *extra)
        assert refused.rc != 0, refused.tail()
        assert "edgefleet.k8s.restore refused, no host was changed" in refused.out, refused.tail()
        assert all(r["changed"] == 0 for r in refused.recap().values()), refused.recap()
    assert configmaps("up1") == before + 5
    assert {node: sha(node, K0S if node == "up3" else K3S) for node in NODES} == binaries

    # With the engine flux the gate fails after the restore: no Flux objects are there (nor Flux's CRDs).
    restore = ("restore.yml", "--limit", "up1", "-e", f"edgefleet_upgrade_restore_backup={names[0]}")
    ungated = lab.play(*restore, "-e", "edgefleet_gitops_engine=flux", "-e", "edgefleet_upgrade_gate_timeout=20")
    assert ungated.rc != 0, ungated.tail()
    assert re.search(
        r"gate of up1 failed: GitOps objects missing from the API: "
        r"flux-system/gitrepository\.source\.toolkit\.fluxcd\.io/edgefleet-fleet, "
        r"flux-system/kustomization\.kustomize\.toolkit\.fluxcd\.io/edgefleet-fleet",
        ungated.out,
    ), ungated.tail()
    assert configmaps("up1") == before  # the restore itself was done: the later ConfigMaps are gone

    restored = lab.play(*restore, "-e", "edgefleet_gitops_engine=argocd")
    assert restored.rc == 0, restored.tail()
    # 0 lost committed keys: every key acknowledged before the backup began is in the restored datastore, and
    # nothing the writer never got acknowledged is.
    present = {
        int(name.removeprefix("configmap/load-"))
        for name in out("up1", f"{kubectl('up1')} get configmaps -n load-test -o name").split()
    }
    lost = before_backup - present
    note(
        f"backup under load: {len(before_backup)} keys acknowledged before the backup, {len(after_backup)} by its "
        f"end, {len(present)} restored, {len(lost)} lost"
    )
    assert not lost, f"keys acknowledged before the backup and lost by the restore: {sorted(lost)[:20]}"
    assert "gate of up1 passed: k3s.service active, /readyz ok, 2 GitOps objects present" in restored.out, (
        restored.tail()
    )
    assert configmaps("up1") == before
    moved = out("up1", "ls /var/lib/rancher/k3s/server/db/")
    assert "state.db.pre-restore-" in moved, moved
    note(f"backup and restore test: {time.monotonic() - started:.0f} s")


def test_a_node_lost_in_the_middle_of_the_canary_counts_against_its_budget(lab: Fleet) -> None:
    """The canary's server (up1) is paused as its wave starts, so it leaves the run: its cluster is unreachable, its
    agent is not touched (it must not go past its server), and the cluster counts against the canary's failure
    budget. With the default budget 0 the rollout halts and the next wave (up-k0s) is not touched; with a budget of
    1 it goes on and up-k0s is moved. (The move is a forced downgrade, NEW -> OLD, the only other version the lab
    has; the lost cluster stays on NEW, so no agent ends newer than its server.)"""
    started = time.monotonic()
    at_new(lab)
    k0s_invocation = out("up3", "systemctl show -p InvocationID --value k0scontroller").strip()
    lab.write(OLD, OLD)
    wave_start = "Upgrade the servers, one at a time per cluster, of canary"
    force = ("-e", "edgefleet_upgrade_allow_downgrade=true")
    try:
        halted = lab.run_pausing("up1", wave_start, *force, playbook="upgrade.yml", timeout=1200)
    finally:
        unpause("up1")
    (lab.work / f"run-{lab.count}.log").write_text(halted.out)
    assert halted.rc != 0, halted.tail()
    assert halted.recap()["up1"]["unreachable"] == 1, halted.recap()
    assert halted.cluster("up-k3s")["upgrade"]["outcome"] == "unreachable", halted.cluster("up-k3s")
    k0s = halted.cluster("up-k0s")["upgrade"]
    assert k0s["outcome"] == "skipped" and k0s["reason"].startswith("not reached: canary"), k0s
    assert "over its budget of 0" in halted.out, halted.tail()
    # The agent did not go past its server: nothing changed on it (the old version was still staged). (Its unit may
    # restart by itself while its server is frozen, so the running process is not compared.)
    assert installed("up2") == NEW and halted.node("up2")["changed"]["tasks"] == [], halted.node("up2")
    assert installed("up1") == NEW and installed("up3") == NEW
    assert out("up3", "systemctl show -p InvocationID --value k0scontroller").strip() == k0s_invocation

    try:
        went_on = lab.run_pausing(
            "up1", wave_start, *force, "-e", "edgefleet_upgrade_canary_failure_budget=1", playbook="upgrade.yml",
            timeout=1200,
        )  # fmt: skip
    finally:
        unpause("up1")
    (lab.work / f"run-{lab.count}.log").write_text(went_on.out)
    assert went_on.recap()["up1"]["unreachable"] == 1, went_on.recap()
    assert "within its budget of 1" in went_on.out, went_on.tail()
    assert went_on.cluster("up-k3s")["upgrade"]["outcome"] == "unreachable"
    k0s = went_on.cluster("up-k0s")["upgrade"]
    assert (k0s["outcome"], k0s["before"], k0s["after"]) == ("upgraded", NEW, OLD), k0s
    assert installed("up3") == OLD and running_version("up3") == OLD
    assert installed("up2") == NEW and installed("up1") == NEW
    note(f"lost-node budget test: {time.monotonic() - started:.0f} s")
