# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each fact is published once, at its level (edgefleet group, cluster group, host), and every host still
resolves the same merged values as when every fact was a host var (fixtures/merged_hostvars.json)."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from fleet_helpers import REPO, run_plugin
from merged_hostvars import FIXTURE, all_fleets, bench_fleet

NODE_VARS = {"ansible_host", "edgefleet_node_role", "edgefleet_arch", "inventory_file", "inventory_dir"}


@pytest.fixture(scope="module")
def now(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, t.Any]]]:
    return all_fleets(tmp_path_factory.mktemp("levels"))


@pytest.mark.parametrize("fleet", ["example", "lab", "bench"])
def test_merged_hostvars_are_unchanged(now: dict[str, dict[str, dict[str, t.Any]]], fleet: str) -> None:
    before = json.loads(FIXTURE.read_text())[fleet]
    after = now[fleet]
    assert sorted(after) == sorted(before)
    for host, expected in before.items():
        assert after[host] == expected, host


def _inventories(tmp_path: Path) -> list[t.Any]:
    return [
        run_plugin(REPO / "inventories" / "example" / "example.fleet.yml"),
        run_plugin(REPO / "inventories" / "lab" / "lab.fleet.yml"),
        run_plugin(bench_fleet(tmp_path)),
    ]


def test_each_fact_is_published_once_at_its_level(tmp_path: Path) -> None:
    for inv in _inventories(tmp_path):
        fleet_vars = inv.groups["edgefleet"].vars
        for name, host in inv.hosts.items():
            clusters = [g for g in host.groups if g.name.startswith("cluster_")]
            assert len(clusters) == 1, name  # no host takes group vars from two clusters
            assert set(host.vars) <= NODE_VARS | {"edgefleet_labels", "edgefleet_node_labels"}, name
            assert not set(clusters[0].vars) & set(fleet_vars)  # sibling groups: no key in both
        for group in inv.groups.values():
            if group.name not in ("edgefleet", "all") and not group.name.startswith("cluster_"):
                assert not group.vars, group.name


def test_fleet_wide_facts_are_on_the_edgefleet_group(tmp_path: Path) -> None:
    example, lab, bench = _inventories(tmp_path)
    assert bench.groups["edgefleet"].vars["edgefleet_gitops_repo"] == "https://git.example.org/edge/fleet-config.git"
    assert "edgefleet_gitops_repo" not in bench.groups["cluster_s000000"].vars
    assert bench.groups["cluster_s000000"].vars["edgefleet_cluster_servers"] == ["s000000n0"]
    assert lab.groups["edgefleet"].vars["edgefleet_region"] == "lab"
    assert "edgefleet_distribution" in lab.groups["cluster_lab_k3s"].vars
    assert "edgefleet_cluster" not in example.groups["edgefleet"].vars


def _graph(inv: t.Any) -> dict[str, t.Any]:
    """The group graph as ansible-core keeps it: parents, children and depth of each group, ancestors of each host."""
    groups = {
        g.name: (sorted(p.name for p in g.parent_groups), sorted(c.name for c in g.child_groups), g.depth)
        for g in inv.groups.values()
    }
    hosts = {h.name: sorted(g.name for g in h.get_groups()) for h in inv.hosts.values()}
    return {"groups": groups, "hosts": hosts, "all": sorted(h.name for h in inv.groups["all"].get_hosts())}


def test_new_groups_are_linked_under_all_as_ansible_core_links_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin links its new parentless groups under all without ansible-core's scan of all's children; the
    graph must be the one add_child (ansible-core's own path, as reconcile_inventory takes it) builds."""
    from ansible_collections.edgefleet.k8s.plugins.inventory import fleet

    fast = [_graph(inv) for inv in _inventories(tmp_path / "fast")]

    def public(inv: t.Any, new_groups: list[t.Any]) -> None:
        for group in new_groups:
            if not group.parent_groups:
                inv.add_child("all", group.name)

    monkeypatch.setattr(fleet, "attach_to_all", public)
    slow = [_graph(inv) for inv in _inventories(tmp_path / "slow")]
    assert fast == slow
    assert fast[2]["groups"]["cluster_s000000"][0] != []  # the cluster groups do hang under a parent


def _state(inv: t.Any, root: Path) -> dict[str, t.Any]:
    """Everything the direct publish writes, in order: hosts with their vars and groups, groups with their hosts,
    vars, parents, children and depth (inventory_file and inventory_dir relative to root)."""

    def relative(value: t.Any) -> t.Any:
        return value.replace(str(root), "") if isinstance(value, str) else value

    hosts = {
        name: ({k: relative(v) for k, v in host.vars.items()}, [g.name for g in host.groups])
        for name, host in inv.hosts.items()
    }
    groups = {
        name: (
            [h.name for h in g.hosts],
            g.vars,
            [p.name for p in g.parent_groups],
            [c.name for c in g.child_groups],
            g.depth,
            sorted(g.host_names),
        )
        for name, g in inv.groups.items()
    }
    return {"hosts": list(hosts.items()), "groups": list(groups.items())}


def test_direct_publish_writes_what_add_host_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a fresh inventory the plugin creates hosts and memberships itself; the result must be what ansible-core's
    add_host/add_child path (taken for a second source or constructed groups) gives, in the same order."""
    from ansible_collections.edgefleet.k8s.plugins.inventory import fleet

    direct = [_state(inv, tmp_path / "direct") for inv in _inventories(tmp_path / "direct")]
    monkeypatch.setattr(fleet, "direct_publish_ok", lambda *args: False)
    through_core = [_state(inv, tmp_path / "core") for inv in _inventories(tmp_path / "core")]
    assert direct == through_core


def test_fast_trust_is_trust_as_template() -> None:
    from ansible.module_utils._internal._datatag import AnsibleTagHelper
    from ansible.template import trust_as_template
    from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_publish import fast_trust

    trust = fast_trust(trust_as_template)
    for text in ("plain", "", "with {{ marker }}", "ünïcode"):
        fast, slow = trust(text), trust_as_template(text)
        assert fast == slow and type(fast) is type(slow)
        assert AnsibleTagHelper.tags(fast) == AnsibleTagHelper.tags(slow)
    assert fast_trust(lambda value: value)("x") == "x"  # no template trust (ansible-core < 2.19): unchanged
