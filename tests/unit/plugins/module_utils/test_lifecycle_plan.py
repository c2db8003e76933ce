# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decommission and reset plan (lifecycle_plan filter): every refusal at once, before any host, and what
remains of the cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.filter.lifecycle import clevis_tang_slots, lifecycle_plan
from ansible_collections.edgefleet.k8s.plugins.plugin_utils import lifecycle

CLUSTER = {
    "edgefleet_cluster": "sd-k3s",
    "edgefleet_cluster_servers": ["sd1"],
    "edgefleet_cluster_agents": ["sd2", "sd3"],
    "edgefleet_cluster_init_server": "sd1",
}
HOSTVARS = {
    "sd1": {**CLUSTER, "edgefleet_node_role": "server"},
    "sd2": {**CLUSTER, "edgefleet_node_role": "agent"},
    "sd3": {**CLUSTER, "edgefleet_node_role": "agent"},
}


def test_an_agent_named_and_confirmed_leaves_the_rest_of_its_cluster() -> None:
    plan = lifecycle.plan(HOSTVARS, "sd2", "sd2")
    assert plan["problems"] == []
    assert plan["cluster"] == "sd-k3s" and plan["init_server"] == "sd1"
    assert plan["servers"] == ["sd1"] and plan["agents"] == ["sd3"] and plan["remaining"] == ["sd1", "sd3"]
    assert plan["revoke_deploy_key"] is False
    assert lifecycle.plan(HOSTVARS, "sd2", "sd2", revoke_deploy_key="true")["revoke_deploy_key"] is True


@pytest.mark.parametrize(
    ("node", "confirm", "expected"),
    [
        ("", "", ["edgefleet_lifecycle_node: empty"]),
        ("sd2", "", ["edgefleet_lifecycle_confirm: found ''; set it to 'sd2'"]),
        ("sd2", "sd3", ["edgefleet_lifecycle_confirm: found 'sd3'"]),
        ("nope", "nope", ["'nope' is not a host of the inventory"]),
        ("sd1", "sd1", ["is the init server of cluster sd-k3s", "is the last server of cluster sd-k3s"]),
    ],
)
def test_every_refusal_is_listed(node: str, confirm: str, expected: list[str]) -> None:
    problems = lifecycle.plan(HOSTVARS, node, confirm)["problems"]
    assert len(problems) == len(expected), problems
    for text, problem in zip(expected, problems, strict=True):
        assert text in problem


def test_a_reset_needs_only_the_named_and_confirmed_node() -> None:
    assert lifecycle.plan(HOSTVARS, "sd1", "sd1", "reset")["problems"] == []
    assert lifecycle.plan(HOSTVARS, "sd1", "", "reset")["problems"]
    assert lifecycle.plan(HOSTVARS, "sd1", "sd1", "explode")["problems"] == [
        "action: found 'explode', allowed: decommission, reset"
    ]
    bad = lifecycle.plan(HOSTVARS, "sd2", "sd2", revoke_deploy_key="maybe")["problems"]
    assert bad and "edgefleet_lifecycle_revoke_deploy_key" in bad[0]


def test_the_filters() -> None:
    assert lifecycle_plan(HOSTVARS, "sd3", "sd3")["remaining"] == ["sd1", "sd2"]
    with pytest.raises(AnsibleFilterError):
        lifecycle_plan(["not hostvars"], "sd3", "sd3")
    assert clevis_tang_slots('2: tang \'{"url":"http://t"}\'\n') == [2]
