# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet summary rows and table."""

from __future__ import annotations

import sys
from pathlib import Path

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_summary import render_table, summarise


def node(cluster: str, role: str, **over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "cluster": cluster,
        "distribution": "k3s",
        "version": "v1.31.4+k3s1",
        "datastore": "sqlite",
        "role": role,
        "unit_active": "True",
        "registered": True,
        "needs_node": True,
        "gitops_engine": "flux",
        "gitops_path": f"clusters/{cluster}",
        "overlays": ["base", "region-lab"],
        "artifact_bytes_sent": 0,
    }
    base.update(over)
    return base


def test_counts_per_cluster_and_failed_hosts() -> None:
    nodes = {
        "node1": node("lab-k3s", "server"),
        "node2": node("lab-k3s", "agent"),
        "node3": node("lab-k3s", "agent", registered=False),
        "node4": node(
            "lab-k0s", "server", distribution="k0s", needs_node=False, registered=False, gitops_engine="none"
        ),
        "node5": node("lab-k0s", "agent", distribution="k0s", gitops_engine="none"),
    }
    rows = summarise(nodes, failed={"node5"})
    assert [r.cluster for r in rows] == ["lab-k0s", "lab-k3s"]
    k0s, k3s = rows
    assert (k3s.servers_ready, k3s.servers, k3s.agents_ready, k3s.agents) == (1, 1, 1, 2)
    assert (k0s.servers_ready, k0s.servers, k0s.agents_ready, k0s.agents) == (1, 1, 0, 1)
    assert k0s.gitops == "none"
    assert k3s.gitops == "flux clusters/lab-k3s"
    assert not k3s.ok


def test_inactive_unit_is_not_ready() -> None:
    (row,) = summarise({"n": node("c", "server", unit_active="False")})
    assert row.servers_ready == 0


def test_table_has_every_column() -> None:
    table = render_table(summarise({"node1": node("lab-k3s", "server", artifact_bytes_sent="1234")}))
    header, rule, line = table.splitlines()
    assert header.split() == [
        "cluster",
        "distribution",
        "datastore",
        "servers",
        "agents",
        "gitops",
        "overlays",
        "bytes",
        "sent",
    ]
    assert set(rule.replace(" ", "")) == {"-"}
    assert "lab-k3s" in line and "k3s v1.31.4+k3s1" in line and "1/1 ready" in line and "0/0 ready" in line
    assert "flux clusters/lab-k3s" in line and "base,region-lab" in line and line.endswith("1234")
