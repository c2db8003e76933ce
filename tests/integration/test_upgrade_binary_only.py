# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A new binary alone (the fleet's version moved, no config change) restarts the service that runs it.

Before, `playbooks/site.yml` swapped the binary but restarted the unit only on config, token, unit or
environment changes, so the old process kept running and the run reported success. Now the artifact module
records the owed restart (/var/lib/edgefleet/restart-pending/<unit>) before it replaces an installed binary,
and the distribution role restarts the unit and removes the record.

On the lab fleet (tests/integration/labsite.py): node1 (lab-k3s server) and node4 (lab-k0s). The binaries are
the lab's stand-ins (a real kube-apiserver on kine/SQLite behind a K3s/K0s-shaped CLI), NOT K3s or K0s; the
"next" version (tests/lab/controlplane/versions.env) is the same stand-in under the next patch version's name,
which the running process carries in its environment (EDGEFLEET_STANDIN_VERSION).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from labsite import CONTAINER, REPO, Site, exec_on, podman, sha

pytestmark = pytest.mark.lab

NODES = {"node1": ("k3s", "/etc/rancher/k3s/config.yaml"), "node4": ("k0scontroller", "/etc/k0s/k0s.yaml")}
BINARY = {"node1": "/usr/local/bin/k3s", "node4": "/usr/local/bin/k0s"}


def _versions() -> dict[str, str]:
    env = (REPO / "tests" / "lab" / "controlplane" / "versions.env").read_text()
    return dict(line.split("=", 1) for line in env.splitlines() if "=" in line and not line.startswith("#"))


def _running_version(node: str, unit: str) -> str:
    """The version of the process the unit runs now, not of the file on disk."""
    pid = exec_on(node, "systemctl", "show", "-p", "MainPID", "--value", unit).strip()
    assert pid not in ("", "0"), f"{node}: {unit} runs no process"
    environ = exec_on(node, "cat", f"/proc/{pid}/environ").split("\0")
    found = [e.split("=", 1)[1] for e in environ if e.startswith("EDGEFLEET_STANDIN_VERSION=")]
    assert found, f"{node}: the process of {unit} (pid {pid}) is not the lab stand-in"
    return found[0]


def _active(node: str, unit: str) -> bool:
    return podman("exec", CONTAINER.format(node), "systemctl", "is-active", "--quiet", unit).returncode == 0


def _restarts(node: str, unit: str) -> str:
    return exec_on(node, "systemctl", "show", "-p", "InvocationID", "--value", unit).strip()


def test_a_new_binary_alone_restarts_the_service_that_runs_it(site: Site, tmp_path: Path) -> None:
    versions = _versions()
    old, new = versions["EDGEFLEET_LAB_K3S_VERSION"], versions["EDGEFLEET_LAB_K3S_NEXT_VERSION"]
    assert versions["EDGEFLEET_LAB_K0S_VERSION"] == old and versions["EDGEFLEET_LAB_K0S_NEXT_VERSION"] == new
    limit = ("--limit", ",".join(NODES))
    # The fault tests before this file leave the fleet converged; alone, this test converges it first.
    if not all(_active(node, unit) for node, (unit, _config) in NODES.items()):
        first = site.run(*limit)
        assert first.rc == 0, first.tail()
    for node, (unit, _config) in NODES.items():
        assert _running_version(node, unit) == old, f"{node} does not run {old} before the test"
    configs = {node: sha(node, config) for node, (_unit, config) in NODES.items()}
    invocations = {node: _restarts(node, unit) for node, (unit, _config) in NODES.items()}

    run = site.run(*limit, "-e", f"edgefleet_version={new}")
    assert run.rc == 0, run.tail()
    for node, (unit, config) in NODES.items():
        assert sha(node, config) == configs[node], f"{node}: the config changed, so this is not a binary-only upgrade"
        assert new in exec_on(node, BINARY[node], "--version"), f"{node}: {new} is not installed"
        assert _running_version(node, unit) == new, f"{node}: {unit} still runs the old binary after the run"
        assert _restarts(node, unit) != invocations[node]
        marker = f"/var/lib/edgefleet/restart-pending/{unit}.service"
        assert exec_on(node, "sh", "-c", f"test -e {marker} || echo gone").strip() == "gone", f"{node}: {marker} left"
        assert run.node(node)["state"] == "ready", run.node(node)

    # Nothing owed any more: a second run changes nothing and restarts nothing.
    invocations = {node: _restarts(node, unit) for node, (unit, _config) in NODES.items()}
    again = site.run(*limit, "-e", f"edgefleet_version={new}")
    assert again.rc == 0, again.tail()
    for node, (unit, _config) in NODES.items():
        assert again.recap()[node]["changed"] == 0, (node, again.node(node)["changed"])
        assert _restarts(node, unit) == invocations[node], f"{node}: {unit} restarted without need"

    # Back to the fleet's own version, for whatever runs on the lab next; that swap restarts too.
    back = site.run(*limit)
    assert back.rc == 0, back.tail()
    for node, (unit, _config) in NODES.items():
        assert _running_version(node, unit) == old, f"{node}: {unit} does not run {old} again"
