# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stolen K3s agent is decommissioned while it does not answer; a planned rotation while /readyz is polled;
a node reset. One bring-up serves all three.

Three containers of this test's own (scenario label `stolen-device`), created by the fixture and always removed:
edgefleet-sd1..3 (sd1..sd3, 10.231.0.217-219): cluster sd-k3s, sd1 its server (SQLite), sd2 and sd3 agents,
converged with playbooks/site.yml through a fleet file the test writes.

The binaries are the lab's K3s STAND-IN, NOT K3s: a real kube-apiserver on kine/SQLite behind a K3s-shaped CLI
(tests/lab/controlplane). Its `k3s token rotate` rewrites the server's token and, once the server restarts, the
token store its kube-apiserver's token webhook reads holds only the new token (and the new agent token derived from
it), so a request with an old token gets a real 401 from kube-apiserver. Its agents authenticate with their token
itself (real K3s agents use it only to join), so an agent left on the old agent token would lose its Node's
heartbeat: staying registered shows it got the new one.

Order: site.yml; playbooks/rotate_credentials.yml while a client polls sd1's /readyz every second with the admin
client certificate, then again with the same rotation ID (changed=0); then sd2 is "stolen" (a copy of its token
file kept, the container paused) and playbooks/decommission.yml runs (refused first without the confirmation),
then again (changed=0); last playbooks/reset.yml on sd2 (unpaused), twice.

Needs the lab image, network and key (tests/lab/node.sh prepare) and the stand-in bundle
(tests/lab/controlplane/bundle.sh). KEEP=1 leaves the containers running.
"""

from __future__ import annotations

import calendar
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from labsite import (
    CACHE,
    LAB_CONNECTION_VARS,
    REPO,
    ReadyzPoller,
    Run,
    Site,
    bash_on,
    lab_fleet_defaults,
    lab_versions,
    pause,
    scenario_containers,
    unpause,
)

pytestmark = pytest.mark.lab_late

SCENARIO = "stolen-device"
NODES = {"sd1": "10.231.0.217", "sd2": "10.231.0.218", "sd3": "10.231.0.219"}
ROLES = {"sd1": "server", "sd2": "agent", "sd3": "agent"}
CONTAINER = "edgefleet-{}"
CLUSTER = "sd-k3s"
K3S = "/usr/local/bin/k3s"
TOKEN = "/etc/rancher/k3s/token"
API = f"https://{NODES['sd1']}:6443"
STOLEN = "sd2"


def note(msg: str) -> None:
    print(f"[stolen-device-lab] {msg}", flush=True)


VERSION = lab_versions()["EDGEFLEET_LAB_K3S_VERSION"]


class Lab(Site):
    """ansible-playbook on this test's own fleet file."""

    def __init__(self, work: Path) -> None:
        inventory = work / "inventory"
        super().__init__(work, inventory / "sd.fleet.yml")
        self.fleet_repo = work / "fleet-repo"
        self.fleet_repo.mkdir()
        self.evidence = work / "evidence"
        (inventory / "group_vars").mkdir(parents=True, exist_ok=True)
        (inventory / "group_vars" / "all.yml").write_text(
            yaml.safe_dump(
                {
                    **LAB_CONNECTION_VARS,
                    "edgefleet_gitops_fleet_repo_dir": str(self.fleet_repo),
                    "edgefleet_lifecycle_evidence_dir": str(self.evidence),
                }
            )
        )
        site = {
            "name": CLUSTER,
            "distribution": "k3s",
            "nodes": [{"name": n, "address": ip, "role": ROLES[n]} for n, ip in NODES.items()],
        }
        defaults = lab_fleet_defaults("sqlite", VERSION, VERSION)
        fleet = {"plugin": "edgefleet.k8s.fleet", "defaults": defaults, "sites": [site]}
        self.fleet.write_text(yaml.safe_dump(fleet, sort_keys=False))
        # The fleet repo scaffold on its own (site.yml runs it only with gitops).
        self.scaffold = work / "scaffold.yml"
        self.scaffold.write_text(
            yaml.safe_dump(
                [
                    {
                        "name": "Scaffold the fleet repo",
                        "hosts": "edgefleet",
                        "gather_facts": False,
                        "tasks": [
                            {
                                "name": "Scaffold",
                                "ansible.builtin.include_role": {
                                    "name": "edgefleet.k8s.gitops",
                                    "tasks_from": "fleet_repo",
                                },
                            }
                        ],
                    }
                ],
                sort_keys=False,
            )
        )

    def play(self, playbook: str, *extra: str, timeout: int = 900) -> Run:
        started = time.monotonic()
        path = playbook if playbook.startswith("/") else str(REPO / "playbooks" / playbook)
        run = self.run(*extra, timeout=timeout, playbook=os.path.relpath(path, REPO / "playbooks"))
        (self.work / f"run-{self.count}.log").write_text(run.out)
        note(f"{Path(playbook).name} {' '.join(extra)}: rc {run.rc} in {time.monotonic() - started:.0f} s")
        return run

    def nodes_listed(self) -> list[str]:
        data = yaml.safe_load((self.fleet_repo / "clusters" / CLUSTER / "edgefleet-nodes.yaml").read_text())
        return list(data["nodes"])


def sh(node: str, script: str, timeout: int = 120) -> str:
    return bash_on(node, script, timeout=timeout).stdout


def token_of(node: str) -> str:
    return sh(node, f"cat {TOKEN}").strip()


def status_with_token(token: str) -> int:
    """The HTTP status kube-apiserver answers a request authenticated with ``token`` (the stand-in's bearer is the
    token's password part: the bare token the role keeps)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    bearer = token.rsplit(":", 1)[-1]
    request = urllib.request.Request(f"{API}/api/v1/nodes", headers={"Authorization": f"Bearer {bearer}"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def nodes() -> list[str]:
    out = sh("sd1", f"{K3S} kubectl get nodes -o name")
    return sorted(line.removeprefix("node/") for line in out.split())


def heartbeat_age(node: str) -> float:
    raw = sh("sd1", f"{K3S} kubectl get node {node} -o json")
    ready = next(c for c in json.loads(raw)["status"]["conditions"] if c["type"] == "Ready")
    beat = calendar.timegm(time.strptime(ready["lastHeartbeatTime"], "%Y-%m-%dT%H:%M:%SZ"))
    return time.time() - beat


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    bundle = CACHE / "bundle" / "k3s" / VERSION
    assert (bundle / "sha256sum-amd64.txt").is_file(), (
        f"no stand-in bundle {bundle}: run tests/lab/controlplane/bundle.sh"
    )
    containers = [(CONTAINER.format(name), name, ip) for name, ip in NODES.items()]
    with scenario_containers(containers, SCENARIO):
        try:
            yield Lab(tmp_path_factory.mktemp("stolen-device-lab"))
        finally:
            unpause(*NODES)


def changed_total(run: Run) -> dict[str, int]:
    return {host: counts["changed"] for host, counts in run.recap().items()}


def test_a_stolen_agent_is_decommissioned_unreachable_and_the_cluster_rotates_without_it(lab: Lab) -> None:
    started = time.monotonic()
    run = lab.play("site.yml", "--skip-tags", "os_hardening,gitops")
    assert run.rc == 0, run.tail()
    assert nodes() == ["sd1", "sd2", "sd3"]
    run = lab.play(str(lab.scaffold))
    assert run.rc == 0, run.tail()
    assert lab.nodes_listed() == ["sd1", "sd2", "sd3"]
    converged = time.monotonic()

    # The agents join with the agent token, one for both and not the server's: K3s's secure format for the node
    # user, which kube-apiserver takes as an agent (the stand-in's agent group), never as the cluster's admin.
    before = token_of("sd1")
    agent_tokens = {token_of(n) for n in NODES if ROLES[n] == "agent"}
    assert len(agent_tokens) == 1 and before not in agent_tokens, "the agents do not share an agent token of their own"
    (agent_before,) = agent_tokens
    assert agent_before.split("::", 1)[1].startswith("node:") and agent_before.rsplit(":", 1)[-1] not in before
    assert status_with_token(agent_before) == 200

    # --- Planned rotation while /readyz is polled every second.
    with ReadyzPoller(lab.work, sh("sd1", "cat /etc/rancher/k3s/k3s.yaml"), [API]) as poller:
        run = lab.play("rotate_credentials.yml", "-e", "edgefleet_rotation_id=planned-1")
        time.sleep(3)
    assert run.rc == 0, run.tail()
    planned = token_of("sd1")
    assert planned != before
    agent_planned = token_of("sd2")
    assert {token_of(n) for n in NODES} == {planned, agent_planned}, "a node is not on the new token"
    assert token_of("sd3") == agent_planned and agent_planned not in (agent_before, planned)
    assert status_with_token(before) == 401 and status_with_token(planned) == 200
    assert status_with_token(agent_before) == 401 and status_with_token(agent_planned) == 200
    note(
        f"rotate_credentials: {len(poller.results)} /readyz polls, {poller.failed()} failed, longest outage "
        f"{poller.longest_outage()} polls (a single server restarts with the new token)"
    )
    assert poller.results and poller.longest_outage() <= 90, poller.results
    assert nodes() == ["sd1", "sd2", "sd3"]
    # The rotation's evidence record: one per cluster, on the controller, fingerprints and no token.
    rotations = sorted(lab.evidence.glob(f"rotate_credentials-{CLUSTER}-*.json"))
    assert len(rotations) == 1, rotations
    text = rotations[0].read_text()
    for secret in (before, planned, agent_before, agent_planned):
        assert secret not in text, "the rotation record holds a token"
    rotation = json.loads(text)
    assert rotation["cluster"] == CLUSTER and rotation["nodes"] == sorted(NODES)
    assert rotation["join_token"]["rotated_now"] is True and rotation["join_token"]["rotation_id"] == "planned-1"
    assert rotation["join_token"]["old_fingerprint"] != rotation["join_token"]["new_fingerprint"]
    again = lab.play("rotate_credentials.yml", "-e", "edgefleet_rotation_id=planned-1")
    assert again.rc == 0 and not any(changed_total(again).values()), changed_total(again)
    assert token_of("sd1") == planned
    assert sorted(lab.evidence.glob("rotate_credentials-*.json")) == rotations, "a rotation of nothing wrote a record"
    rotated = time.monotonic()

    # --- The stolen device: its token file copied, the container paused.
    stolen_token = token_of(STOLEN)
    assert stolen_token == agent_planned
    pause(STOLEN)

    refused = lab.play("decommission.yml", "-e", f"edgefleet_lifecycle_node={STOLEN}")
    assert refused.rc != 0 and "edgefleet.k8s.decommission refused, no host was changed" in refused.out, refused.tail()
    assert "edgefleet_lifecycle_confirm: found ''" in refused.out
    assert token_of("sd1") == planned and STOLEN in nodes()

    args = ("-e", f"edgefleet_lifecycle_node={STOLEN}", "-e", f"edgefleet_lifecycle_confirm={STOLEN}")
    run = lab.play("decommission.yml", *args)
    assert run.rc == 0, run.tail()
    decommissioned = time.monotonic()
    new = token_of("sd1")
    assert new not in (planned, stolen_token)
    assert nodes() == ["sd1", "sd3"], "the stolen node's Node object is still there"
    assert status_with_token(stolen_token) == 401, "kube-apiserver still accepts the stolen token"
    assert status_with_token(new) == 200
    new_agent = token_of("sd3")
    assert new_agent not in (stolen_token, new) and status_with_token(new_agent) == 200
    assert lab.nodes_listed() == ["sd1", "sd3"]

    # The remaining agent stays registered on the new token: its heartbeats go on.
    time.sleep(25)
    assert nodes() == ["sd1", "sd3"]
    assert heartbeat_age("sd3") < 25, "sd3 stopped heartbeating after the rotation"
    assert sh("sd3", "systemctl is-active k3s-agent").strip() == "active"

    records = sorted(lab.evidence.glob(f"decommission-{STOLEN}-*.json"))
    assert len(records) == 1, records
    text = records[0].read_text()
    for secret in (stolen_token, planned, new, before, agent_before, new_agent):
        assert secret not in text, "the evidence record holds a token"
    record = json.loads(text)
    assert record["node"] == STOLEN and record["node_object"]["node_object"] == "deleted"
    assert record["join_token"]["old_fingerprint"] and record["join_token"]["new_fingerprint"]
    assert record["join_token"]["old_fingerprint"] != record["join_token"]["new_fingerprint"]
    assert record["node_reachable"] is False
    note(f"evidence record {records[0].name}: {json.dumps(record['join_token'])}")

    again = lab.play("decommission.yml", *args)
    assert again.rc == 0, again.tail()
    assert not any(changed_total(again).values()), changed_total(again)
    assert token_of("sd1") == new and len(list(lab.evidence.glob("decommission-*.json"))) == 1

    # --- Reset: refused unless named; then nothing of the distribution is left; a second reset changes nothing.
    unpause(STOLEN)
    refused = lab.play("reset.yml", "-e", f"edgefleet_lifecycle_node={STOLEN}")
    assert refused.rc != 0 and "edgefleet.k8s.reset refused, no host was changed" in refused.out, refused.tail()
    run = lab.play("reset.yml", *args)
    assert run.rc == 0, run.tail()
    left = sh(
        STOLEN,
        "ls -d /etc/systemd/system/k3s*.service /var/lib/rancher/k3s /etc/rancher/k3s "
        f"{TOKEN} {K3S} 2>/dev/null || true",
    ).split()
    assert left == [], left
    assert sh(STOLEN, "systemctl is-active k3s-agent || true").strip() != "active"
    again = lab.play("reset.yml", *args)
    assert again.rc == 0 and not any(changed_total(again).values()), changed_total(again)
    note(
        f"converge {converged - started:.0f} s, planned rotation {rotated - converged:.0f} s, decommission "
        f"{decommissioned - rotated:.0f} s, whole test {time.monotonic() - started:.0f} s"
    )
