# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failure isolation of `playbooks/site.yml` on the lab fleet, with nodes made unreachable by `podman pause`.

The lab fleet (inventories/lab/lab.fleet.yml) has two clusters: lab-k3s (node1 server, node2 and node3
agents) and lab-k0s (node4). Their control planes are the lab's stand-ins (a real kube-apiserver on
kine/SQLite behind a K3s/K0s-shaped CLI), not real K3s or K0s. A paused container keeps its address but
answers nothing, as a site that dropped off the network would.

The tests run in order on the same nodes, each starting from what the one before left:
  budget   two of four nodes paused, budget 25%: the run stops at preflight, nothing changed anywhere
  server   the K3s server paused: its agents are skipped naming it, the K0s cluster converges
  agent    one agent paused: every other node converges; the report and the retry file name it alone;
           after unpausing, --limit @retry converges it and it registers
  midrun   an agent paused in the middle of a run: the others finish with failed=0 and changed=0
  killed   the controller killed (SIGKILL) inside the distribution role, then a re-run: it converges,
           restarts what the dead run left unrestarted, no file half-written, no datastore row lost
  drift    a running sysctl, files (content and mode), a unit and a config key changed on the converged
           fleet: the next run finds and repairs each (restarting what must restart), the run after changes
           nothing
"""

from __future__ import annotations

import json
import re
import time

import pytest
from labsite import CONTAINER, Run, Site, exec_on, pause, podman, registered_nodes, sha, unpause

pytestmark = pytest.mark.lab


def _config_exists(node: str, path: str) -> bool:
    return podman("exec", CONTAINER.format(node), "test", "-e", path).returncode == 0


def test_budget_stops_the_run_before_any_change(site: Site) -> None:
    pause("node2", "node3")
    try:
        run = site.run("-e", "edgefleet_max_unreachable_percent=25")
    finally:
        unpause("node2", "node3")
    assert run.rc != 0, run.tail()
    assert "2 of 4 nodes (50%) could not be reached: node2, node3" in run.out, run.tail()
    assert "edgefleet_max_unreachable_percent=25" in run.out
    recap = run.recap()
    assert all(recap[n]["changed"] == 0 for n in ("node1", "node4")), recap
    # The run ends with the preflight play: no later play starts, so no node is changed.
    assert "PLAY [OS hardening]" not in run.out, run.tail()


def test_lost_server_skips_its_agents_and_spares_the_other_cluster(site: Site) -> None:
    pause("node1")
    try:
        run = site.run()
    finally:
        unpause("node1")
    assert run.rc != 0, "a run with an unreachable server must not exit 0"
    recap = run.recap()
    assert recap["node1"]["unreachable"] == 1 and recap["node4"]["failed"] == 0, recap
    for agent in ("node2", "node3"):
        assert f"{agent}: skipped, because node1, the init server of cluster lab-k3s" in run.out, run.tail()
        assert recap[agent]["failed"] == 0 and recap[agent]["unreachable"] == 0, recap
        assert run.node(agent)["state"] == "skipped", run.node(agent)
        assert "node1, the init server" in (run.node(agent)["error"] or {}).get("message", ""), run.node(agent)
        assert not _config_exists(agent, "/etc/rancher/k3s/config.yaml"), f"{agent} was configured without its server"
    assert run.node("node1")["state"] == "unreachable"
    assert run.node("node4")["state"] == "ready", run.node("node4")
    assert run.cluster("lab-k0s")["ok"] is True
    assert sorted(run.retry or []) == ["node1", "node2", "node3"], run.retry


def test_lost_agent_drops_out_alone_and_a_retry_brings_it_back(site: Site) -> None:
    pause("node3")
    try:
        run = site.run()
    finally:
        unpause("node3")
    recap = run.recap()
    assert recap["node3"]["unreachable"] == 1, recap
    for node in ("node1", "node2", "node4"):
        assert recap[node]["failed"] == 0 and recap[node]["unreachable"] == 0, recap
        assert run.node(node)["state"] == "ready", run.node(node)
    assert run.node("node3")["state"] == "unreachable" and run.node("node3")["error"]["message"], run.node("node3")
    assert re.search(r"lab-k3s .* 1/1 ready\s+1/2 ready .* node3 \(unreachable\)", run.out), run.tail()
    assert run.retry == ["node3"], run.retry
    assert "node3" not in registered_nodes("node1")

    retry = site.run("--limit", f"@{site.work / f'retry-{site.count}'}")
    assert retry.rc == 0, retry.tail()
    assert set(retry.recap()) == {"node3"}, retry.recap()
    assert retry.node("node3")["state"] == "ready", retry.node("node3")
    assert "node3" in registered_nodes("node1")
    assert retry.retry is None, "a retry file was left after every node converged"


def test_agent_lost_in_the_middle_of_a_run_stops_nobody_else(site: Site) -> None:
    run = site.run_pausing("node2", "PLAY [OS hardening]")
    unpause("node2")
    recap = run.recap()
    assert recap["node2"]["unreachable"] == 1, recap
    for node in ("node1", "node3", "node4"):
        assert recap[node]["failed"] == 0 and recap[node]["unreachable"] == 0, recap
        # The fleet converged in the tests before: a run that loses one agent changes nothing elsewhere.
        assert recap[node]["changed"] == 0, (node, run.node(node)["changed"])
        assert run.node(node)["state"] == "ready", run.node(node)
    assert run.retry == ["node2"], run.retry


K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
AGENT_MARKER = "/var/lib/edgefleet/restart-pending/k3s-agent.service"
CONFIGMAP_ROWS = (
    "import sqlite3; db = sqlite3.connect('file:/var/lib/rancher/k3s/server/db/state.db?mode=ro', uri=True); "
    "print(db.execute(\"SELECT COUNT(*) FROM kine k WHERE name LIKE '/registry/configmaps/faults/%' AND deleted = 0 "
    'AND id = (SELECT MAX(id) FROM kine WHERE name = k.name)").fetchone()[0])'
)


def _rows(server: str) -> tuple[int, int]:
    """ConfigMaps of the namespace faults, through the API and as live rows of kine's SQLite table."""
    api = exec_on(server, "k3s", "kubectl", "get", "configmaps", "-n", "faults", "-o", "name")
    return len([line for line in api.split() if line.startswith("configmap/")]), int(
        exec_on(server, "python3", "-c", CONFIGMAP_ROWS).strip()
    )


def _started_since(node: str, unit: str, since: float) -> bool:
    """Whether ``unit`` on ``node`` (re)started after the controller's wall-clock time ``since``."""
    started = exec_on(node, "systemctl", "show", "-p", "ActiveEnterTimestampMonotonic", "--value", unit)
    uptime = float(exec_on(node, "cat", "/proc/uptime").split()[0])
    return uptime - int(started) / 1e6 < time.time() - since


def test_controller_killed_inside_the_distribution_role_then_rerun_converges(site: Site) -> None:
    items = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i:03d}", "namespace": "faults"},
            "data": {"i": str(i)},
        }
        for i in range(120)
    ]
    doc = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "faults"}}, *items],
    }
    exec_on("node1", "k3s", "kubectl", "apply", "-f", "-", stdin=json.dumps(doc))
    rows_before = _rows("node1")
    assert rows_before == (120, 120), rows_before
    want = sha("node2", K3S_CONFIG)
    assert want, "node2 has no K3s config after the earlier tests"
    # Work for the distribution role on node2: its config is gone, so the run writes it again and must
    # restart the agent. The controller dies when that restart begins.
    exec_on("node2", "rm", "-f", K3S_CONFIG)
    out = site.run_killed("TASK [edgefleet.k8s.distribution : Enable and start or restart k3s-agent.service]")
    assert "PLAY RECAP" not in out
    assert sha("node2", K3S_CONFIG) == want, "the config on node2 is not the whole file after the kill"
    assert podman("exec", CONTAINER.format("node2"), "test", "-f", AGENT_MARKER).returncode == 0, (
        "the restart that the dead run owed is not recorded on node2"
    )

    rerun_started = time.time()
    rerun = site.run()
    assert rerun.rc == 0, rerun.tail()
    recap = rerun.recap()
    for node in ("node1", "node3", "node4"):
        assert recap[node]["changed"] == 0, (node, rerun.node(node)["changed"])
    assert recap["node2"]["changed"] >= 1 and recap["node2"]["failed"] == 0, recap
    assert sha("node2", K3S_CONFIG) == want
    assert podman("exec", CONTAINER.format("node2"), "test", "-e", AGENT_MARKER).returncode != 0
    assert _started_since("node2", "k3s-agent", rerun_started), "the re-run did not restart the agent"
    assert _rows("node1") == rows_before
    assert "node2" in registered_nodes("node1")


SYSCTL = "net.ipv4.conf.all.accept_redirects"  # os_hardening default 0; per network namespace, so settable here
HARDENING_SYSCTLS = "/etc/sysctl.d/90-edgefleet-hardening.conf"
NFT_POLICY = "/etc/nftables.d/edgefleet.nft"
SSHD_DROPIN = "/etc/ssh/sshd_config.d/10-edgefleet.conf"
AGENT_UNIT = "/etc/systemd/system/k3s-agent.service"


def _changed(run: Run, node: str) -> list[str]:
    tasks: list[str] = run.node(node)["changed"]["tasks"]
    return tasks


def test_a_run_repairs_drift_in_sysctls_files_units_and_config_keys(site: Site) -> None:
    first = site.run()
    assert first.rc == 0, first.tail()
    want = {
        ("node1", HARDENING_SYSCTLS): sha("node1", HARDENING_SYSCTLS),
        ("node1", SSHD_DROPIN): sha("node1", SSHD_DROPIN),
        ("node2", K3S_CONFIG): sha("node2", K3S_CONFIG),
        ("node3", AGENT_UNIT): sha("node3", AGENT_UNIT),
    }
    assert all(want.values()), want
    exec_on("node1", "sysctl", "-w", f"{SYSCTL}=1")
    exec_on("node1", "bash", "-c", f"echo '# edited by hand' >> {HARDENING_SYSCTLS}")
    exec_on("node1", "bash", "-c", f"echo 'X11Forwarding yes' >> {SSHD_DROPIN}")
    exec_on("node1", "chmod", "0644", NFT_POLICY)
    exec_on("node2", "sed", "-i", "s/^protect-kernel-defaults: true$/protect-kernel-defaults: false/", K3S_CONFIG)
    exec_on("node3", "bash", "-c", f"echo '# edited by hand' >> {AGENT_UNIT}")
    assert sha("node2", K3S_CONFIG) != want[("node2", K3S_CONFIG)], "the config key edit did not take"

    started = time.time()
    run = site.run()
    assert run.rc == 0, run.tail()
    node1 = _changed(run, "node1")
    for task in (
        "os_hardening : Apply the sysctls that are safe to apply here",
        "os_hardening : Write the sysctl, kernel module, sshd and firewall files",
        "os_hardening : Reload the ssh service",
        "os_hardening : Load the firewall",
    ):
        assert any(t.endswith(task) for t in node1), (task, node1)
    assert exec_on("node1", "sysctl", "-n", SYSCTL).strip() == "0"
    assert exec_on("node1", "stat", "-c", "%a", NFT_POLICY).strip() == "600"
    assert any("distribution_config, step write" in t for t in _changed(run, "node2")), _changed(run, "node2")
    assert any("Write the systemd units" in t for t in _changed(run, "node3")), _changed(run, "node3")
    for node in ("node2", "node3"):
        assert any("restart k3s-agent.service" in t for t in _changed(run, node)), _changed(run, node)
        assert _started_since(node, "k3s-agent", started), f"{node}: the agent did not restart for its repair"
    assert _changed(run, "node4") == [], _changed(run, "node4")
    for (node, path), digest in want.items():
        assert sha(node, path) == digest, f"{node}: {path} was not restored"

    again = site.run()
    assert again.rc == 0, again.tail()
    assert all(r["changed"] == 0 for r in again.recap().values()), again.recap()
