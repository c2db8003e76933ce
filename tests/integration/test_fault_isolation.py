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
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
FLEET = REPO / "inventories" / "lab" / "lab.fleet.yml"
NODES = ("node1", "node2", "node3", "node4")
CONTAINER = "edgefleet-{}"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=False, timeout=60)


def _lab_is_up() -> bool:
    names = _podman("ps", "--format", "{{.Names}}").stdout.split()
    return all(CONTAINER.format(n) in names for n in NODES)


def pause(*nodes: str) -> None:
    for node in nodes:
        assert _podman("pause", CONTAINER.format(node)).returncode == 0, f"cannot pause {node}"


def unpause(*nodes: str) -> None:
    for node in nodes:
        state = _podman("inspect", "-f", "{{.State.Status}}", CONTAINER.format(node)).stdout.strip()
        if state == "paused":
            _podman("unpause", CONTAINER.format(node))


@dataclass
class Run:
    rc: int
    out: str
    report: dict[str, Any]
    retry: list[str] | None

    def recap(self) -> dict[str, dict[str, int]]:
        return {
            m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
            for m in RECAP.finditer(self.out)
        }

    def node(self, name: str) -> dict[str, Any]:
        found = [n for n in self.report.get("nodes", []) if n["name"] == name]
        assert found, f"{name} is not in the report: {self.report}"
        return found[0]

    def cluster(self, name: str) -> dict[str, Any]:
        found = [c for c in self.report.get("clusters", []) if c["name"] == name]
        assert found, f"cluster {name} is not in the report"
        return found[0]

    def tail(self) -> str:
        return self.out[-6000:]


class Site:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.count = 0

    def _argv(self, *extra: str) -> tuple[list[str], dict[str, str], Path, Path]:
        self.count += 1
        report = self.work / f"report-{self.count}.json"
        retry = self.work / f"retry-{self.count}"
        env = dict(os.environ)
        env.update(
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
            ANSIBLE_CALLBACKS_ENABLED="edgefleet.k8s.fleet_summary",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_NOCOLOR="1",
            EDGEFLEET_REPORT=str(report),
            EDGEFLEET_RETRY_FILE=str(retry),
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        )
        argv = [str(VENV_BIN / "ansible-playbook"), "playbooks/site.yml", "-i", str(FLEET), *extra]
        return argv, env, report, retry

    @staticmethod
    def _result(rc: int, out: str, report: Path, retry: Path) -> Run:
        data = json.loads(report.read_text()) if report.exists() else {}
        lines = retry.read_text().split() if retry.exists() else None
        return Run(rc, out, data, lines)

    def run(self, *extra: str, timeout: int = 900) -> Run:
        argv, env, report, retry = self._argv(*extra)
        proc = subprocess.run(
            argv,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return self._result(proc.returncode, proc.stdout + proc.stderr, report, retry)

    def run_killed(self, when_line: str, *extra: str, timeout: int = 900) -> str:
        """A run whose controller (ansible-playbook and its workers) is killed with SIGKILL as soon as the
        output shows ``when_line``; returns the output up to then."""
        argv, env, _report, _retry = self._argv(*extra)
        log = self.work / f"run-{self.count}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + timeout
            killed = False
            while proc.poll() is None and time.monotonic() < deadline:
                if when_line in log.read_text():
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.2)
            proc.wait()
        assert killed, f"the run never reached {when_line!r}: {log.read_text()[-3000:]}"
        return log.read_text()

    def run_pausing(self, node: str, when_line: str, *extra: str, timeout: int = 900) -> Run:
        """A run during which ``node`` is paused as soon as the output shows ``when_line``."""
        argv, env, report, retry = self._argv(*extra)
        log = self.work / f"run-{self.count}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
            deadline = time.monotonic() + timeout
            paused = False
            while proc.poll() is None and time.monotonic() < deadline:
                if not paused and when_line in log.read_text():
                    pause(node)
                    paused = True
                time.sleep(0.5)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        assert paused, f"the run never reached {when_line!r}: {log.read_text()[-3000:]}"
        return self._result(proc.returncode, log.read_text(), report, retry)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not _lab_is_up():
        pytest.fail(
            "the lab nodes edgefleet-node1..4 are not up (make lab-up); tests/lab/run-integration.sh brings them up"
        )
    try:
        yield Site(tmp_path_factory.mktemp("faults"))
    finally:
        unpause(*NODES)


def _config_exists(node: str, path: str) -> bool:
    return _podman("exec", CONTAINER.format(node), "test", "-e", path).returncode == 0


def _registered_nodes(server: str) -> list[str]:
    out = _podman("exec", CONTAINER.format(server), "k3s", "kubectl", "get", "nodes", "-o", "name").stdout
    return [line.removeprefix("node/") for line in out.split() if line.startswith("node/")]


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
    assert "node3" not in _registered_nodes("node1")

    retry = site.run("--limit", f"@{site.work / f'retry-{site.count}'}")
    assert retry.rc == 0, retry.tail()
    assert set(retry.recap()) == {"node3"}, retry.recap()
    assert retry.node("node3")["state"] == "ready", retry.node("node3")
    assert "node3" in _registered_nodes("node1")
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


def _exec(node: str, *argv: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["podman", "exec", "-i", CONTAINER.format(node), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, f"{node}: {argv} exited {proc.returncode}: {proc.stderr[-1000:]}"
    return proc.stdout


def _rows(server: str) -> tuple[int, int]:
    """ConfigMaps of the namespace faults, through the API and as live rows of kine's SQLite table."""
    api = _exec(server, "k3s", "kubectl", "get", "configmaps", "-n", "faults", "-o", "name")
    return len([line for line in api.split() if line.startswith("configmap/")]), int(
        _exec(server, "python3", "-c", CONFIGMAP_ROWS).strip()
    )


def _sha(node: str, path: str) -> str | None:
    proc = _podman("exec", CONTAINER.format(node), "sha256sum", path)
    return proc.stdout.split()[0] if proc.returncode == 0 else None


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
    _exec("node1", "k3s", "kubectl", "apply", "-f", "-", stdin=json.dumps(doc))
    rows_before = _rows("node1")
    assert rows_before == (120, 120), rows_before
    want = _sha("node2", K3S_CONFIG)
    assert want, "node2 has no K3s config after the earlier tests"
    # Work for the distribution role on node2: its config is gone, so the run writes it again and must
    # restart the agent. The controller dies when that restart begins.
    _exec("node2", "rm", "-f", K3S_CONFIG)
    out = site.run_killed("TASK [edgefleet.k8s.distribution : Enable and start or restart k3s-agent.service]")
    assert "PLAY RECAP" not in out
    assert _sha("node2", K3S_CONFIG) == want, "the config on node2 is not the whole file after the kill"
    assert _podman("exec", CONTAINER.format("node2"), "test", "-f", AGENT_MARKER).returncode == 0, (
        "the restart that the dead run owed is not recorded on node2"
    )

    rerun_started = time.time()
    rerun = site.run()
    assert rerun.rc == 0, rerun.tail()
    recap = rerun.recap()
    for node in ("node1", "node3", "node4"):
        assert recap[node]["changed"] == 0, (node, rerun.node(node)["changed"])
    assert recap["node2"]["changed"] >= 1 and recap["node2"]["failed"] == 0, recap
    assert _sha("node2", K3S_CONFIG) == want
    assert _podman("exec", CONTAINER.format("node2"), "test", "-e", AGENT_MARKER).returncode != 0
    started = _exec("node2", "systemctl", "show", "-p", "ActiveEnterTimestampMonotonic", "--value", "k3s-agent")
    uptime = float(_exec("node2", "cat", "/proc/uptime").split()[0])
    assert uptime - int(started) / 1e6 < time.time() - rerun_started, "the re-run did not restart the agent"
    assert _rows("node1") == rows_before
    assert "node2" in _registered_nodes("node1")
