# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The upgrade plan (plugin_utils/upgrade_plan.py) and its filters: versions, refusals, canary and waves, budgets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.filter import upgrade as f
from ansible_collections.edgefleet.k8s.plugins.plugin_utils import upgrade_plan as up


def node(
    name: str, cluster: str, current: str | None = "v1.36.3+lab", target: str = "v1.36.4+lab", **kw: Any
) -> up.NodeFacts:
    return up.NodeFacts(
        name=name,
        cluster=cluster,
        role=kw.get("role", "server"),
        distribution=kw.get("distribution", "k3s"),
        target=target,
        current=current,
        reachable=kw.get("reachable", True),
        groups=tuple(kw.get("groups", ())),
        init_server=kw.get("init_server", False),
    )


def fleet(n: int, **kw: Any) -> list[up.NodeFacts]:
    return [node(f"n{i:02}", f"c{i:02}", **kw) for i in range(n)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.36.4+lab", (1, 36, 4, 0)),
        ("v1.30.2+k3s1 (aa4794b3)", (1, 30, 2, 1)),
        ("v1.30.2+k0s.0", (1, 30, 2, 0)),
        ("1.29.0", (1, 29, 0, 0)),
        ("v1.30.2-rc1+k3s2", (1, 30, 2, 2)),
    ],
)
def test_versions_parse(text: str, expected: tuple[int, int, int, int]) -> None:
    v = up.Version.parse(text)
    assert v is not None
    assert (v.major, v.minor, v.patch, v.build) == expected


@pytest.mark.parametrize("text", ["", "latest", "v1.30", "stable", "v1.x.2"])
def test_non_versions_do_not_parse(text: str) -> None:
    assert up.Version.parse(text) is None


def test_versions_order_by_number_and_build() -> None:
    p = up.Version.parse
    assert p("v1.30.2+k3s1") < p("v1.30.2+k3s2") < p("v1.30.10+k3s1") < p("v1.31.0+k3s1")  # type: ignore[operator]


def test_a_patch_upgrade_is_planned_with_servers_first_init_server_first() -> None:
    nodes = [
        node("b-server", "c", init_server=False),
        node("a-agent", "c", role="agent"),
        node("z-init", "c", init_server=True),
    ]
    plan = up.build_plan(nodes, up.Settings())
    assert plan.refusals == []
    c = plan.clusters["c"]
    assert c.action == "upgrade"
    assert (c.before, c.target) == ("v1.36.3+lab", "v1.36.4+lab")
    assert c.servers == ["z-init", "b-server"]
    assert c.agents == ["a-agent"]
    assert c.nodes_to_upgrade == ["z-init", "b-server", "a-agent"]
    assert [w.name for w in plan.waves] == ["wave 1"]
    assert plan.waves[0].hosts == ["z-init", "b-server", "a-agent"]


def test_one_minor_up_is_allowed_two_are_refused_naming_cluster_and_both_versions() -> None:
    assert up.build_plan([node("a", "one", target="v1.37.0+lab")], up.Settings()).refusals == []
    plan = up.build_plan([node("a", "two", target="v1.38.0+lab")], up.Settings())
    assert len(plan.refusals) == 1
    msg = plan.refusals[0]
    assert "cluster two" in msg and "v1.36.3+lab" in msg and "v1.38.0+lab" in msg and "more than one minor" in msg
    assert plan.clusters["two"].action == "skip"
    assert plan.waves == []


def test_a_major_change_is_refused() -> None:
    plan = up.build_plan([node("a", "c", target="v2.0.0+lab")], up.Settings())
    assert "more than one minor" in plan.refusals[0]


def test_a_downgrade_is_refused_unless_forced() -> None:
    plan = up.build_plan([node("a", "c", target="v1.36.2+lab")], up.Settings())
    assert len(plan.refusals) == 1
    assert "cluster c" in plan.refusals[0] and "v1.36.3+lab" in plan.refusals[0] and "v1.36.2+lab" in plan.refusals[0]
    assert "downgrade" in plan.refusals[0] and "edgefleet_upgrade_allow_downgrade" in plan.refusals[0]
    forced = up.build_plan([node("a", "c", target="v1.36.2+lab")], up.Settings(allow_downgrade=True))
    assert forced.refusals == [] and forced.clusters["c"].action == "upgrade"


def test_a_forced_downgrade_of_two_minors_is_still_refused() -> None:
    plan = up.build_plan([node("a", "c", target="v1.34.0+lab")], up.Settings(allow_downgrade=True))
    assert len(plan.refusals) == 1 and "more than one minor" in plan.refusals[0]


def test_agents_newer_than_their_servers_are_refused() -> None:
    nodes = [node("s", "c", current="v1.36.3+lab"), node("a", "c", role="agent", current="v1.36.4+lab")]
    plan = up.build_plan(nodes, up.Settings())
    assert any("agent a runs v1.36.4+lab, newer than its server's v1.36.3+lab" in r for r in plan.refusals)
    assert plan.clusters["c"].action == "skip"


def test_every_refusal_is_listed_across_clusters() -> None:
    nodes = [node("a", "down", target="v1.36.1+lab"), node("b", "jump", target="v1.38.0+lab"), node("c", "ok")]
    plan = up.build_plan(nodes, up.Settings())
    assert len(plan.refusals) == 2
    assert {r.split(":")[0] for r in plan.refusals} == {"cluster down", "cluster jump"}


def test_a_target_that_is_no_version_is_refused() -> None:
    plan = up.build_plan([node("a", "c", target="latest")], up.Settings())
    assert plan.refusals and "'latest'" in plan.refusals[0]


def test_a_reported_version_that_is_no_version_is_refused() -> None:
    plan = up.build_plan([node("a", "c", current="garbage")], up.Settings())
    assert plan.refusals and "a reports 'garbage'" in plan.refusals[0]


def test_clusters_at_target_are_current_and_in_no_wave() -> None:
    plan = up.build_plan(fleet(2, current="v1.36.4+lab"), up.Settings())
    assert plan.refusals == [] and plan.waves == []
    assert {c.action for c in plan.clusters.values()} == {"current"}


def test_a_half_upgraded_cluster_upgrades_only_the_nodes_left() -> None:
    nodes = [node("s", "c", current="v1.36.4+lab"), node("a", "c", role="agent", current="v1.36.3+lab")]
    plan = up.build_plan(nodes, up.Settings())
    assert plan.refusals == []
    assert plan.clusters["c"].nodes_to_upgrade == ["a"]


def test_unreachable_and_uninstalled_clusters_are_left_out_of_the_waves() -> None:
    nodes = [node("a", "dark", reachable=False, current=None), node("b", "bare", current=None), node("c", "ok")]
    plan = up.build_plan(nodes, up.Settings())
    assert plan.refusals == []
    assert plan.clusters["dark"].action == "unreachable" and "a" in plan.clusters["dark"].reason
    assert plan.clusters["bare"].action == "skip" and "no installed binary on b" in plan.clusters["bare"].reason
    assert [w.clusters for w in plan.waves] == [["ok"]]


def test_canary_first_then_waves_of_the_rest_as_cumulative_percentages() -> None:
    nodes = fleet(5)
    nodes[3] = node("n03", "c03", groups=("canary", "k3s"))
    plan = up.build_plan(nodes, up.Settings(waves=(50, 100)))
    assert [(w.name, w.clusters) for w in plan.waves] == [
        ("canary", ["c03"]),
        ("wave 1", ["c00", "c01"]),
        ("wave 2", ["c02", "c04"]),
    ]
    assert [w.index for w in plan.waves] == [0, 1, 2]
    assert plan.clusters["c03"].wave == 0 and plan.clusters["c04"].wave == 2


def test_waves_round_up_and_skip_empty_ones() -> None:
    plan = up.build_plan(fleet(3), up.Settings(waves=(10, 20, 100)))
    # ceil(0.3) = 1, ceil(0.6) = 1 (nothing new: no empty wave), then the rest
    assert [(w.name, w.clusters) for w in plan.waves] == [("wave 1", ["c00"]), ("wave 3", ["c01", "c02"])]


def test_a_configurable_canary_group() -> None:
    nodes = [node("a", "x", groups=("pilots",)), node("b", "y", groups=("canary",))]
    plan = up.build_plan(nodes, up.Settings(canary_group="pilots", waves=(100,)))
    assert [(w.name, w.clusters) for w in plan.waves] == [("canary", ["x"]), ("wave 1", ["y"])]


def test_budgets_per_wave() -> None:
    nodes = fleet(11)
    nodes[0] = node("n00", "c00", groups=("canary",))
    plan = up.build_plan(nodes, up.Settings(waves=(50, 100), failure_budget_percent=25, canary_failure_budget=3))
    assert [(len(w.clusters), w.budget) for w in plan.waves] == [(1, 1), (5, 1), (5, 1)]


def test_settings_problems_are_all_listed_with_key_found_and_allowed() -> None:
    _settings, problems = up.settings_from(
        {
            "waves": [60, 40],
            "failure_budget_percent": 150,
            "allow_downgrade": "maybe",
            "canary_group": "not a group",
            "canary_failure_budget": -1,
            "agent_batch": "some",
            "drain": "perhaps",
            "drain_timeout": 0,
        }
    )
    text = "\n".join(problems)
    assert "edgefleet_upgrade_waves: found [60, 40], allowed strictly increasing" in text
    assert "edgefleet_upgrade_waves: found last 40, allowed 100" in text
    assert "edgefleet_upgrade_failure_budget_percent: found 150, allowed an integer from 0 to 100" in text
    assert "edgefleet_upgrade_allow_downgrade: found 'maybe', allowed true or false" in text
    assert "edgefleet_upgrade_canary_group: found 'not a group'" in text
    assert "edgefleet_upgrade_canary_failure_budget: found -1" in text
    assert "edgefleet_upgrade_agent_batch: found 'some', allowed an integer from 0 to 10000" in text
    assert "edgefleet_upgrade_drain: found 'perhaps', allowed true or false" in text
    assert "edgefleet_upgrade_drain_timeout: found 0, allowed an integer from 1 to 86400" in text
    assert len(problems) == 9


@pytest.mark.parametrize("waves", [[], "50,100", [0, 100], [50, 101], [True]])
def test_bad_waves_are_problems(waves: Any) -> None:
    assert up.settings_from({"waves": waves})[1]


def test_settings_accept_strings_from_extra_vars() -> None:
    settings, problems = up.settings_from(
        {"waves": ["30", "100"], "allow_downgrade": "true", "failure_budget_percent": "10"}
    )
    assert problems == []
    assert settings.waves == (30, 100) and settings.allow_downgrade and settings.failure_budget_percent == 10


def test_wave_verdict_budget_and_rollback() -> None:
    wave = {"name": "wave 1", "clusters": ["a", "b", "c"], "budget": 1}
    ok = up.wave_verdict(wave, {"a": "upgraded", "b": "unreachable", "c": "upgraded"}, up.Settings())
    assert ok["halt"] is False and ok["failed"] == ["b"] and "within its budget of 1" in ok["msg"]
    over = up.wave_verdict(wave, {"a": "unreachable", "b": "unreachable", "c": "upgraded"}, up.Settings())
    assert over["halt"] is True and "over its budget of 1" in over["msg"]
    rolled = up.wave_verdict(wave, {"a": "rolled_back", "b": "upgraded", "c": "upgraded"}, up.Settings())
    assert rolled["halt"] is True and "rolled back a" in rolled["msg"]
    tolerated = up.wave_verdict(
        wave, {"a": "rolled_back", "b": "upgraded", "c": "upgraded"}, up.Settings(halt_on_rollback=False)
    )
    assert tolerated["halt"] is False
    missing = up.wave_verdict(wave, {"a": "upgraded", "b": "upgraded"}, up.Settings())
    assert missing["failed"] == ["c"]


def hostvars() -> dict[str, dict[str, Any]]:
    def hv(cluster: str, role: str, current: str | None, **extra: Any) -> dict[str, Any]:
        return {
            "edgefleet_cluster": cluster,
            "edgefleet_node_role": role,
            "edgefleet_distribution": "k0s" if cluster == "k0" else "k3s",
            "edgefleet_version": "v1.36.4+lab",
            "edgefleet_upgrade_current": current,
            "group_names": extra.pop("groups", []),
            **extra,
        }

    return {
        "up1": hv("k3", "server", "v1.36.3+lab (lab)", groups=["canary"], edgefleet_cluster_init_server="up1"),
        "up2": hv("k3", "agent", "v1.36.3+lab"),
        "up3": hv("k0", "controller", "v1.36.3+lab"),
        "up4": {"edgefleet_cluster": "off", "edgefleet_version": "v1.36.4+lab"},
    }


def test_filter_plans_from_hostvars() -> None:
    plan = f.upgrade_plan(hostvars(), ["up1", "up2", "up3", "up4"], {"waves": [100]})
    assert plan["refusals"] == []
    assert [(w["name"], w["clusters"], w["hosts"]) for w in plan["waves"]] == [
        ("canary", ["k3"], ["up1", "up2"]),
        ("wave 1", ["k0"], ["up3"]),
    ]
    assert plan["clusters"]["k0"]["servers"] == ["up3"]
    assert plan["clusters"]["off"]["action"] == "unreachable"


def test_filter_puts_bad_settings_into_refusals() -> None:
    plan = f.upgrade_plan(hostvars(), ["up1"], {"waves": [10]})
    assert plan["refusals"] == [
        "edgefleet_upgrade_waves: found last 10, allowed 100 (the last wave covers every cluster left)"
    ]


def test_filter_bad_input_is_a_clean_error() -> None:
    with pytest.raises(AnsibleFilterError, match="must be hostvars"):
        f.upgrade_plan([], ["a"])
    with pytest.raises(AnsibleFilterError, match="host names"):
        f.upgrade_plan({}, "a")
    with pytest.raises(AnsibleFilterError, match="settings must be a mapping"):
        f.upgrade_plan({}, [], [1])
    with pytest.raises(AnsibleFilterError, match="wave of the plan"):
        f.upgrade_wave_verdict([], {}, {}, [])
    with pytest.raises(AnsibleFilterError, match="edgefleet_upgrade_waves"):
        f.upgrade_wave_verdict({}, {}, {}, [], {"waves": []})
    with pytest.raises(AnsibleFilterError, match="upgrade_report"):
        f.upgrade_report([], {})


PLAN = {
    "clusters": {
        "a": {
            "action": "upgrade",
            "before": "v1.36.3+lab",
            "target": "v1.36.4+lab",
            "wave": 0,
            "nodes_to_upgrade": ["a1", "a2"],
        },
        "b": {
            "action": "upgrade",
            "before": "v1.36.3+lab",
            "target": "v1.36.4+lab",
            "wave": 1,
            "nodes_to_upgrade": ["b1"],
        },
        "c": {
            "action": "upgrade",
            "before": "v1.36.3+lab",
            "target": "v1.36.4+lab",
            "wave": 1,
            "nodes_to_upgrade": ["c1"],
        },
        "d": {
            "action": "current",
            "before": "v1.36.4+lab",
            "target": "v1.36.4+lab",
            "wave": None,
            "reason": "every node",
        },
        "e": {
            "action": "unreachable",
            "before": "",
            "target": "v1.36.4+lab",
            "wave": None,
            "reason": "unreachable: e1",
        },
    },
    "waves": [
        {"index": 0, "name": "canary", "clusters": ["a"], "budget": 0},
        {"index": 1, "name": "wave 1", "clusters": ["b", "c"], "budget": 1},
    ],
}


def test_wave_outcomes_from_node_states() -> None:
    wave = PLAN["waves"][1]
    out = up.wave_outcomes(wave, PLAN["clusters"], {"b1": "upgraded", "c1": "upgraded"}, ["b1", "c1"])
    assert out == {"b": "upgraded", "c": "upgraded"}
    out = up.wave_outcomes(wave, PLAN["clusters"], {"b1": "rolled_back", "c1": "pending"}, ["b1"])
    assert out == {"b": "rolled_back", "c": "unreachable"}
    out = up.wave_outcomes(
        PLAN["waves"][0], PLAN["clusters"], {"a1": "rolled_back", "a2": "rollback_failed"}, ["a1", "a2"]
    )
    assert out == {"a": "failed"}
    out = up.wave_outcomes(PLAN["waves"][0], PLAN["clusters"], {"a1": "upgraded", "a2": "pending"}, ["a1", "a2"])
    assert out == {"a": "failed"}  # a node never reached its gate: not upgraded
    # a backup failed before its node was touched: rolled back if another node was, else failed (never upgraded)
    out = up.wave_outcomes(
        PLAN["waves"][0], PLAN["clusters"], {"a1": "rolled_back", "a2": "failed_untouched"}, ["a1", "a2"]
    )
    assert out == {"a": "rolled_back"}
    states = {"a1": "failed_untouched", "a2": "pending"}
    out = up.wave_outcomes(PLAN["waves"][0], PLAN["clusters"], states, ["a1", "a2"])
    assert out == {"a": "failed"}


def test_filter_wave_verdict_from_states() -> None:
    canary = PLAN["waves"][0]
    verdict = f.upgrade_wave_verdict(canary, PLAN, {"a1": "rolled_back", "a2": "rolled_back"}, ["a1", "a2"])
    assert verdict["halt"] is True and verdict["outcomes"] == {"a": "rolled_back"}
    wave = PLAN["waves"][1]
    below = f.upgrade_wave_verdict(wave, PLAN, {"b1": "upgraded", "c1": "upgraded"}, ["b1"])
    assert below["halt"] is False and below["failed"] == ["c"]


def test_report_per_cluster_with_versions_before_and_after() -> None:
    report = up.upgrade_report(PLAN, {"a": "rolled_back"}, "canary: rolled back a")
    assert report["a"] == {
        "outcome": "rolled_back",
        "before": "v1.36.3+lab",
        "after": "v1.36.3+lab",
        "target": "v1.36.4+lab",
        "wave": "canary",
        "reason": None,
    }
    assert report["b"]["outcome"] == "skipped" and report["b"]["reason"] == "not reached: canary: rolled back a"
    assert report["d"]["outcome"] == "current" and report["d"]["after"] == "v1.36.4+lab"
    assert report["e"]["outcome"] == "unreachable" and report["e"]["after"] is None
    done = f.upgrade_report(PLAN, {"a": "upgraded", "b": "upgraded", "c": "unreachable"})
    assert done["a"]["after"] == "v1.36.4+lab" and done["c"]["after"] is None


def test_plan_lines() -> None:
    plan = f.upgrade_plan(hostvars(), ["up1", "up2", "up3", "up4"], {"waves": [100]})
    assert f.upgrade_plan_line(plan["clusters"]["k3"]) == "cluster k3: k3s v1.36.3+lab -> v1.36.4+lab: upgrade"
    assert f.upgrade_plan_line(plan["clusters"]["off"]).startswith("cluster off: k3s ? -> v1.36.4+lab: unreachable (")
    assert f.upgrade_plan_line(plan["waves"][0]) == "canary: k3 (failure budget 0)"
    with pytest.raises(AnsibleFilterError):
        f.upgrade_plan_line("x")


def test_the_plan_names_each_bundle_the_upgrade_needs_once_per_arch() -> None:
    spin = {"edgefleet.io/wasm-spin": "true"}
    hv = hostvars()
    hv["up1"]["edgefleet_arch"] = "arm64"
    hv["up1"]["edgefleet_node_labels"] = spin
    hv["up2"]["edgefleet_arch"] = "amd64"
    # A node pinned to another version is staged at its cluster's target all the same.
    hv["up2"]["edgefleet_artifacts_version"] = "v1.36.3+lab"
    hv["up3"]["edgefleet_arch"] = "arm64"
    hv["up3"]["edgefleet_node_labels"] = {"edgefleet.io/wasm-wasmtime": "true"}
    # A second K3s cluster on arm64, already on the target: it needs no bundle.
    hv["cur1"] = {
        **hv["up1"],
        "edgefleet_cluster": "k3b",
        "edgefleet_upgrade_current": "v1.36.4+lab",
        "edgefleet_cluster_init_server": "cur1",
        "group_names": [],
    }
    # A third, on arm64 with wasmtime, to upgrade: it shares the first cluster's arm64 bundle.
    hv["arm1"] = {
        **hv["up1"],
        "edgefleet_cluster": "k3c",
        "edgefleet_node_labels": {"edgefleet.io/wasm-wasmtime": "true"},
        "edgefleet_cluster_init_server": "arm1",
        "group_names": [],
    }
    plan = f.upgrade_plan(hv, ["up1", "up2", "up3", "up4", "cur1", "arm1"], {"waves": [100]})
    assert plan["clusters"]["k3b"]["action"] == "current"
    assert plan["bundles"] == [
        {
            "distribution": "k0s",
            "version": "v1.36.4+lab",
            "arch": "arm64",
            "key": "k0s/v1.36.4+lab/arm64",
            "wasm_runtimes": ["wasmtime"],
            "clusters": ["k0"],
        },
        {
            "distribution": "k3s",
            "version": "v1.36.4+lab",
            "arch": "arm64",
            "key": "k3s/v1.36.4+lab/arm64",
            "wasm_runtimes": ["spin", "wasmtime"],
            "clusters": ["k3", "k3c"],
        },
        {
            "distribution": "k3s",
            "version": "v1.36.4+lab",
            "arch": "amd64",
            "key": "k3s/v1.36.4+lab/amd64",
            "wasm_runtimes": [],
            "clusters": ["k3"],
        },
    ]
    # Nothing to upgrade, nothing to verify.
    assert f.upgrade_plan(hv, ["cur1"], {"waves": [100]})["bundles"] == []
