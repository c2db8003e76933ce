# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet_stats filter (set_stats data for AWX/AAP)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.filter import fleet_stats as f


def hostvars() -> dict[str, dict[str, object]]:
    def verify(cluster: str, role: str, registered: bool = True) -> dict[str, object]:
        return {"cluster": cluster, "role": role, "unit_active": "True", "registered": registered, "needs_node": True}

    return {
        "s1": {"edgefleet_cluster": "a", "edgefleet_node_role": "server", "edgefleet_verify": verify("a", "server")},
        "s2": {
            "edgefleet_cluster": "a",
            "edgefleet_node_role": "agent",
            "edgefleet_verify": verify("a", "agent", False),
        },
        # Lost before verify: no record, still counted in its cluster from the inventory.
        "s3": {"edgefleet_cluster": "a", "edgefleet_node_role": "agent", "edgefleet_join_token": "secret"},
        "t1": {"edgefleet_cluster": "b", "edgefleet_node_role": "server", "edgefleet_verify": verify("b", "server")},
    }


def test_exported() -> None:
    assert f.FilterModule().filters() == {"fleet_stats": f.fleet_stats}


def test_counts_and_retry_from_hostvars() -> None:
    stats = f.fleet_stats(hostvars(), ["s1", "s2", "s3", "t1"])
    assert stats == {
        "schema_version": 1,
        "ok": False,
        "clusters": {
            "a": {"servers_ready": 1, "servers": 1, "agents_ready": 0, "agents": 2},
            "b": {"servers_ready": 1, "servers": 1, "agents_ready": 0, "agents": 0},
        },
        "retry": ["s2", "s3"],
    }


def test_only_the_hosts_named_count() -> None:
    stats = f.fleet_stats(hostvars(), ["t1"])
    assert stats["ok"] is True and list(stats["clusters"]) == ["b"] and stats["retry"] == []


@pytest.mark.parametrize(("data", "hosts"), [(["s1"], ["s1"]), (hostvars(), "s1"), (hostvars(), 3)])
def test_bad_input(data: object, hosts: object) -> None:
    with pytest.raises(AnsibleFilterError, match=r"edgefleet\.k8s\.fleet_stats"):
        f.fleet_stats(data, hosts)
