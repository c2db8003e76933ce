# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failure isolation decisions: which nodes a lost server stops, and the fleet's unreachable budget."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_faults import cluster_lost, unreachable_over_budget


def _node(host: str, servers: list[str], datastore: str = "sqlite", cluster: str = "site-a") -> dict[str, Any]:
    return {
        "inventory_hostname": host,
        "edgefleet_cluster": cluster,
        "edgefleet_cluster_servers": servers,
        "edgefleet_cluster_init_server": servers[0],
        "edgefleet_datastore": datastore,
    }


def test_agent_of_a_cluster_whose_init_server_is_lost_is_skipped_naming_it() -> None:
    msg = cluster_lost(_node("a2", ["s1"]), ["s1"])
    assert msg.startswith("a2: skipped") and "s1, the init server of cluster site-a" in msg


def test_a_lost_agent_stops_nobody_else() -> None:
    assert cluster_lost(_node("a2", ["s1"]), ["a3"]) == ""
    assert cluster_lost(_node("s1", ["s1"]), ["a3"]) == ""


def test_a_lost_node_of_another_cluster_stops_nobody_here() -> None:
    assert cluster_lost(_node("b2", ["b1"], cluster="site-b"), ["s1", "a2"]) == ""


def test_the_init_server_itself_is_not_skipped_by_its_own_loss() -> None:
    assert cluster_lost(_node("s1", ["s1", "s2", "s3"], "etcd"), ["s1"]) == ""


@pytest.mark.parametrize(
    ("lost", "skipped"),
    [
        (["s3"], False),  # 2 of 3 remain: quorum kept
        (["s2", "s3"], True),  # 1 of 3 remains: no quorum
        (["s1"], True),  # the init server hands out the tokens
    ],
)
def test_etcd_quorum(lost: list[str], skipped: bool) -> None:
    msg = cluster_lost(_node("a1", ["s1", "s2", "s3"], "etcd"), lost)
    assert bool(msg) is skipped, msg
    if skipped and "s1" not in lost:
        assert "lost its etcd quorum" in msg and "1 of 3 servers remain and 2 are needed" in msg


def test_sqlite_has_no_quorum_rule() -> None:
    # A lost second server (external datastore, or a bad fleet) never skips the others on quorum grounds.
    assert cluster_lost(_node("a1", ["s1", "s2", "s3"], "external"), ["s2", "s3"]) == ""


def test_a_node_without_cluster_facts_is_never_skipped() -> None:
    assert cluster_lost({"inventory_hostname": "x"}, ["y"]) == ""


@pytest.mark.parametrize(
    ("targeted", "up", "percent", "stops"),
    [
        (["n1", "n2", "n3", "n4"], ["n1", "n2", "n4"], 25, False),  # 25% is within a 25% budget
        (["n1", "n2", "n3", "n4"], ["n1", "n4"], 25, True),  # 50% is over it
        (["n1", "n2", "n3", "n4"], ["n1", "n2", "n3", "n4"], 0, False),
        (["n1", "n2"], ["n1"], 0, True),
        ([], [], 0, False),
    ],
)
def test_unreachable_budget(targeted: list[str], up: list[str], percent: float, stops: bool) -> None:
    msg = unreachable_over_budget(targeted, up, percent)
    assert bool(msg) is stops, msg
    if stops:
        lost = [h for h in targeted if h not in up]
        assert msg.startswith(f"{len(lost)} of {len(targeted)} nodes")
        assert all(h in msg for h in lost) and f"edgefleet_max_unreachable_percent={percent:g}" in msg


def test_budget_message_lists_at_most_twenty_names() -> None:
    targeted = [f"n{i:03d}" for i in range(100)]
    msg = unreachable_over_budget(targeted, targeted[:10], 50)
    assert "n010" in msg and "n029" in msg and "n030" not in msg and "and 70 more" in msg
