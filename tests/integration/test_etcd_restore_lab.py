# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A planned credential rotation keeps a 3-server K3s cluster's API up; an etcd snapshot of it restores with
playbooks/restore.yml, and the other servers rejoin. One bring-up serves both, in this order.

Three containers of this test's own (scenario label `etcd-restore`), created by the fixture and always removed:
edgefleet-er1..3 (er1..er3, 10.231.0.214-216), the three servers of cluster er-k3s (datastore etcd, er1 the init
server), converged with playbooks/site.yml through a fleet file the test writes.

The binaries are the lab's K3s STAND-IN, NOT K3s: a real kube-apiserver on a real etcd 3.6 behind a K3s-shaped CLI
(tests/lab/controlplane). Its `k3s etcd-snapshot save` runs `etcdctl snapshot save`, and its TEST-ONLY `k3s server
--cluster-reset --cluster-reset-restore-path` restores with `etcdutl snapshot restore` into a fresh data directory
(the old one moved to server/db/etcd-old-<time>) as a one-member cluster, as K3s documents it. So this proves the
collection's sequence and its modules against real etcd membership and data, not K3s's own restore code.

The rotation: playbooks/rotate_credentials.yml while a client polls every server's /readyz each second with the
admin client certificate; a tick fails only when no server answers (as for a client that knows every server). Then
the same rotation ID again, which changes nothing.

The restore: ConfigMaps written, a backup of the init server taken with playbooks/backup.yml, more ConfigMaps
written and some deleted, then playbooks/restore.yml on the cluster (in check mode first, then for real).
Afterwards: 3 started etcd members and 3 healthy endpoints, every server ready, the ConfigMaps exactly those of
backup time on every server, and the old etcd data of every server kept aside.

Needs the lab image, network and key (tests/lab/node.sh prepare) and the stand-in bundle with etcdutl
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
    ReadyzPoller,
    Site,
    lab_fleet_defaults,
    lab_versions,
    scenario_containers,
)

pytestmark = pytest.mark.lab_late

SCENARIO = "etcd-restore"
NODES = {"er1": "10.231.0.214", "er2": "10.231.0.215", "er3": "10.231.0.216"}
CONTAINER = "edgefleet-{}"
CLUSTER = "er-k3s"
K3S = "/usr/local/bin/k3s"
TOKEN = "/etc/rancher/k3s/token"
BACKUPS = "/var/lib/rancher/edgefleet-backups"
DB = "/var/lib/rancher/k3s/server/db"
NAMESPACE = "restore-test"
BEFORE = 60  # ConfigMaps written before the backup
ETCDCTL = (
    "d=$(ls -d /var/lib/rancher/k3s/data/*/bin | head -1); t=/var/lib/rancher/k3s/server/tls/etcd; "
    "$d/etcdctl --cacert=$t/etcd-ca.crt --cert=$t/etcd-client.crt --key=$t/etcd-client.key"
)


def note(msg: str) -> None:
    print(f"[etcd-restore-lab] {msg}", flush=True)


VERSION = lab_versions()["EDGEFLEET_LAB_K3S_VERSION"]


class Lab(Site):
    """ansible-playbook on this test's own fleet file: site.yml, backup.yml and restore.yml."""

    def __init__(self, work: Path) -> None:
        inventory = work / "inventory"
        super().__init__(work, inventory / "er.fleet.yml")
        (inventory / "group_vars").mkdir(parents=True, exist_ok=True)
        self.evidence = work / "evidence"
        (inventory / "group_vars" / "all.yml").write_text(
            yaml.safe_dump({**LAB_CONNECTION_VARS, "edgefleet_lifecycle_evidence_dir": str(self.evidence)})
        )
        site = {
            "name": CLUSTER,
            "distribution": "k3s",
            "nodes": [{"name": n, "address": ip, "role": "server"} for n, ip in NODES.items()],
        }
        defaults = lab_fleet_defaults("etcd", VERSION, VERSION)
        fleet = {"plugin": "edgefleet.k8s.fleet", "defaults": defaults, "sites": [site]}
        self.fleet.write_text(yaml.safe_dump(fleet, sort_keys=False))

    def play(self, playbook: str, *extra: str, timeout: int = 900) -> tuple[int, str]:
        started = time.monotonic()
        run = self.run(*extra, timeout=timeout, playbook=playbook)
        (self.work / f"run-{self.count}.log").write_text(run.out)
        note(f"{playbook} {' '.join(extra)}: rc {run.rc} in {time.monotonic() - started:.0f} s")
        return run.rc, run.out


def sh(node: str, script: str, stdin: str | None = None, timeout: int = 300) -> str:
    proc = subprocess.run(
        ["podman", "exec", "-i", CONTAINER.format(node), "bash", "-c", script],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"{node}: `{script}` exited {proc.returncode}: {proc.stdout[-1500:]}{proc.stderr[-1500:]}"
    )
    return proc.stdout


def configmaps(node: str) -> set[str]:
    names = sh(node, f"{K3S} kubectl get configmaps -n {NAMESPACE} -o name -l test=etcd-restore")
    return {line.removeprefix("configmap/") for line in names.split()}


def create_configmaps(node: str, names: list[str]) -> None:
    items = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "labels": {"test": "etcd-restore"}}}
        for n in names
    ]
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    sh(node, f"{K3S} kubectl create -n {NAMESPACE} -f - -o name | wc -l", stdin=doc)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    bundle = CACHE / "bundle" / "k3s" / VERSION
    assert (bundle / "sha256sum-amd64.txt").is_file(), (
        f"no stand-in bundle {bundle}: run tests/lab/controlplane/bundle.sh"
    )
    nodes = [(CONTAINER.format(name), name, ip) for name, ip in NODES.items()]
    with scenario_containers(nodes, SCENARIO):
        yield Lab(tmp_path_factory.mktemp("etcd-restore-lab"))


def test_a_planned_rotation_keeps_the_api_of_three_servers_up(lab: Lab) -> None:
    """rotate_credentials.yml while each server's /readyz is polled every second: the servers restart with the new
    token one at a time, so on every tick some server answers; each server was down for its own restart; every
    server ends on one new token; a second run with the same ID changes nothing."""
    started = time.monotonic()
    rc, out = lab.play("site.yml", "--skip-tags", "os_hardening,gitops")
    assert rc == 0, out[-6000:]
    before = {node: sh(node, f"cat {TOKEN}").strip() for node in NODES}
    assert len(set(before.values())) == 1, "the servers do not share one token"

    urls = {f"https://{ip}:6443": node for node, ip in NODES.items()}
    with ReadyzPoller(lab.work, sh("er1", "cat /etc/rancher/k3s/k3s.yaml"), list(urls)) as poller:
        rc, out = lab.play("rotate_credentials.yml", "-e", "edgefleet_rotation_id=planned-ha")
        time.sleep(3)
    assert rc == 0, out[-6000:]
    outages = {urls[url]: ticks for url, ticks in poller.server_outages().items()}
    note(
        f"rotate_credentials on 3 servers: {len(poller.results)} ticks, {poller.failed()} with no server answering; "
        f"each server's longest outage in ticks {outages}"
    )
    assert poller.results and poller.failed() == 0, f"the API was down on {poller.failed()} ticks: {outages}"
    # Every server restarted (so the poll would have seen all three down at once).
    assert all(ticks > 0 for ticks in outages.values()), outages
    after = {node: sh(node, f"cat {TOKEN}").strip() for node in NODES}
    assert len(set(after.values())) == 1, "the servers are not on one token"
    assert set(after.values()).isdisjoint(before.values()), "the token did not change"
    for node in NODES:
        assert sh(node, f"{K3S} kubectl get --raw=/readyz").strip() == "ok", node
    records = sorted(lab.evidence.glob(f"rotate_credentials-{CLUSTER}-*.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["nodes"] == sorted(NODES), records

    again = lab.run("-e", "edgefleet_rotation_id=planned-ha", playbook="rotate_credentials.yml")
    assert again.rc == 0, again.tail()
    assert all(counts["changed"] == 0 for counts in again.recap().values()), again.recap()
    assert {node: sh(node, f"cat {TOKEN}").strip() for node in NODES} == after
    note(f"planned rotation test {time.monotonic() - started:.0f} s")


def test_an_etcd_snapshot_of_a_three_server_k3s_cluster_restores_and_the_other_servers_rejoin(lab: Lab) -> None:
    started = time.monotonic()
    rc, out = lab.play("site.yml", "--skip-tags", "os_hardening,gitops")
    assert rc == 0, out[-6000:]
    members = sh("er1", f"{ETCDCTL} --endpoints=https://127.0.0.1:2379 member list")
    assert members.count(", started,") == 3, members
    converged = time.monotonic()

    sh("er1", f"{K3S} kubectl create namespace {NAMESPACE}")
    kept = [f"cm-{i:03}" for i in range(BEFORE)]
    create_configmaps("er1", kept)
    at_backup = configmaps("er2")
    assert at_backup == set(kept)

    rc, out = lab.play("backup.yml", "--limit", "er1", "-e", "edgefleet_upgrade_backup_label=before")
    assert rc == 0, out[-4000:]
    manifests = sh("er1", f"ls {BACKUPS}/*.json").split()
    assert len(manifests) == 1, manifests
    backup = json.loads(sh("er1", f"cat {manifests[0]}"))
    assert backup["kind"] == "etcd" and backup["size"] > 0, backup
    note(f"backup {backup['name']}: {backup['size']} bytes, from {backup['original_name']}")

    # After the backup: more ConfigMaps, and some of the first ones deleted.
    create_configmaps("er2", [f"later-{i:03}" for i in range(20)])
    sh("er3", f"{K3S} kubectl delete -n {NAMESPACE} configmap " + " ".join(kept[:10]))
    assert len(configmaps("er1")) == BEFORE - 10 + 20

    # Without every server of the etcd cluster in the run, refused before any host is touched.
    partial_rc, partial = lab.play(
        "restore.yml", "--limit", "er1", "-e", f"edgefleet_upgrade_restore_backup={backup['name']}"
    )
    assert partial_rc != 0 and "edgefleet.k8s.restore refused, no host was changed" in partial, partial[-4000:]
    assert "servers not in the run: er2, er3" in partial, partial[-4000:]

    limit = ("--limit", "cluster_er_k3s", "-e", f"edgefleet_upgrade_restore_backup={backup['name']}")
    check_rc, check = lab.play("restore.yml", *limit, "--check", "-v")
    assert check_rc == 0, check[-4000:]
    assert f"er1: would restore etcd backup {backup['name']}" in check, check[-4000:]
    assert "er2: would have moved its etcd data" in check and "er3: would have moved its etcd data" in check
    assert configmaps("er1") != at_backup, "check mode restored something"
    assert not sh("er2", f"ls -d {DB}.pre-restore-* 2>/dev/null || true").strip(), "check mode moved data aside"

    before_restore = time.monotonic()
    rc, out = lab.play("restore.yml", *limit, "-v")
    assert rc == 0, out[-6000:]
    restored = time.monotonic()
    for msg in re.findall(r'"msg": "(er\d: [^"]*)"', out):
        note(msg)
    assert f"er1: restored etcd backup {backup['name']}" in out, out[-4000:]
    assert "--cluster-reset-restore-path=" in out
    for node in ("er2", "er3"):
        assert re.search(rf"{node}: moved its etcd data {DB} aside to {DB}\.pre-restore-\d{{8}}T\d{{12}}Z", out), node
        assert f"to rejoin the cluster restored from backup {backup['name']}" in out
        assert f"gate of {node} passed" in out, out[-4000:]
    assert "gate of er1 passed" in out, out[-4000:]

    # The cluster: 3 started members, 3 healthy endpoints, every server ready.
    members = sh("er1", f"{ETCDCTL} --endpoints=https://127.0.0.1:2379 member list")
    assert members.count(", started,") == 3, members
    listing = json.loads(sh("er1", f"{ETCDCTL} --endpoints=https://127.0.0.1:2379 member list -w json"))
    assert not any(m.get("isLearner") for m in listing["members"]), listing  # every member a voter
    endpoints = ",".join(f"https://{ip}:2379" for ip in NODES.values())
    health = sh("er1", f"{ETCDCTL} --endpoints={endpoints} endpoint health 2>&1")
    assert health.count("is healthy") == 3, health
    for node in NODES:
        assert sh(node, f"{K3S} kubectl get --raw=/readyz").strip() == "ok", node
        # The data: exactly the ConfigMaps of backup time, on every server (none lost, the later ones gone).
        assert configmaps(node) == at_backup, node

    # The old data is kept: the restored server's by the cluster-reset, the others' by the rejoin.
    assert sh("er1", f"ls -d {DB}/etcd-old-*/member").strip(), "er1: no etcd-old-* kept"
    for node in ("er2", "er3"):
        kept_dirs = sh(node, f"ls -d {DB}.pre-restore-*/etcd/member").split()
        assert len(kept_dirs) == 1, (node, kept_dirs)
    note(
        f"converge {converged - started:.0f} s, restore sequence {restored - before_restore:.0f} s, "
        f"whole test {time.monotonic() - started:.0f} s"
    )
