# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Overlay rules: parsing, precedence, conflicts, kustomization."""

from __future__ import annotations

import sys
import typing as t
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_problems import Problems
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.overlays import (
    ClusterFacts,
    derived_groups,
    facts_from_hostvars,
    parse_config,
    resolve,
)


def facts(**kw: t.Any) -> ClusterFacts:
    base: dict[str, t.Any] = {
        "cluster": "ber-01",
        "region": "eu-west",
        "model": "rpi5",
        "channel": "beta",
        "distribution": "k3s",
        "labels": {"ring": "pilot"},
    }
    base.update(kw)
    groups = frozenset(
        derived_groups(base["cluster"], base["region"], base["model"], base["channel"], base["distribution"])
    ) | frozenset(base.pop("extra_groups", ()))
    return ClusterFacts(groups=groups, **base)


def config(rules: list[dict[str, t.Any]], **kw: t.Any) -> t.Any:
    problems = Problems()
    cfg = parse_config({"rules": rules, **kw}, problems, "f.yml")
    assert problems.errors == []
    return cfg


def test_precedence_is_slot_order_not_rule_order() -> None:
    cfg = config(
        [
            {"slot": "site", "match": {"site": "ber-01"}, "overlay": "site-ber"},
            {"slot": "channel", "match": {"channel": "beta"}, "overlay": "chan-beta"},
            {"slot": "model", "match": {"model": ["rpi4", "rpi5"]}, "overlay": "model-pi"},
            {"slot": "region", "match": {"region": "eu-west"}, "overlay": "region-eu"},
            {"slot": "base", "overlay": "hardening"},
        ]
    )
    result = resolve(cfg, facts())
    assert result.overlays == ["base", "hardening", "region-eu", "model-pi", "chan-beta", "site-ber"]
    assert result.conflicts == []


def test_match_is_and_of_keys_any_of_values() -> None:
    rule = {"slot": "site", "match": {"region": "eu-west", "labels": {"ring": ["pilot", "early"]}}, "overlay": "x"}
    cfg = config([rule])
    assert resolve(cfg, facts()).overlays == ["base", "x"]
    assert resolve(cfg, facts(labels={"ring": "ga"})).overlays == ["base"]
    assert resolve(cfg, facts(region="us-east")).overlays == ["base"]


def test_groups_and_distribution_match() -> None:
    cfg = config(
        [
            {"slot": "site", "match": {"groups": ["canary"]}, "overlay": "canary"},
            {"slot": "site", "match": {"groups": ["region-eu-west"]}, "overlay": "by-region-group"},
            {"slot": "base", "match": {"distribution": "k0s"}, "overlay": "k0s-extras"},
        ]
    )
    assert resolve(cfg, facts(extra_groups=["canary"])).overlays == ["base", "canary", "by-region-group"]
    assert resolve(cfg, facts(distribution="k0s")).overlays == ["base", "k0s-extras", "by-region-group"]


def test_exclusive_slot_conflict_is_reported_with_both_rules() -> None:
    cfg = config(
        [
            {"name": "eu", "slot": "region", "match": {"region": "eu-west"}, "overlay": "region-eu"},
            {"name": "pilots", "slot": "region", "match": {"labels": {"ring": "pilot"}}, "overlay": "region-pilot"},
        ]
    )
    result = resolve(cfg, facts())
    assert result.conflicts == [
        "exclusive slot 'region' gets 2 different overlays: rule 'eu' -> 'region-eu', rule 'pilots' -> 'region-pilot'"
    ]
    # the same overlay twice is no conflict
    same = config(
        [{"slot": "region", "overlay": "r"}, {"slot": "region", "match": {"region": "eu-west"}, "overlay": "r"}]
    )
    assert resolve(same, facts()).conflicts == []
    # a non-exclusive slot takes both, in rule order
    site = config([{"slot": "site", "overlay": "a"}, {"slot": "site", "overlay": "b"}])
    assert resolve(site, facts()).overlays == ["base", "a", "b"]
    # slots can be made exclusive
    excl = config([{"slot": "site", "overlay": "a"}, {"slot": "site", "overlay": "b"}], exclusive=["site"])
    assert len(resolve(excl, facts()).conflicts) == 1


def test_kustomization_paths_follow_dirs() -> None:
    cfg = config(
        [{"slot": "region", "overlay": "eu"}], base="bases/edge", components_dir="comp", clusters_dir="fleet/clusters"
    )
    result = resolve(cfg, facts())
    assert result.gitops_path == "fleet/clusters/ber-01"
    assert result.kustomization == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../../bases/edge"],
        "components": ["../../../comp/eu"],
    }


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"rules": [{"slot": "zone", "overlay": "x"}]}, "overlays.rules[0].slot"),
        ({"rules": [{"slot": "regoin", "overlay": "x"}]}, "did you mean 'region'"),
        ({"rules": [{"slot": "site", "overlay": "../escape"}]}, "overlays.rules[0].overlay"),
        ({"rules": [{"slot": "site", "overlay": "x", "match": {"zone": "a"}}]}, "overlays.rules[0].match.zone"),
        (
            {"rules": [{"slot": "site", "overlay": "x", "match": {"labels": {"a": 1}}}]},
            "overlays.rules[0].match.labels.a",
        ),
        ({"rules": [{"slot": "site", "overlay": "x", "match": {"region": []}}]}, "overlays.rules[0].match.region"),
        ({"rules": [{"slot": "site", "overlay": "x", "when": "y"}]}, "overlays.rules[0].when"),
        ({"rules": "x"}, "overlays.rules"),
        ({"exclusive": ["zone"]}, "overlays.exclusive"),
        ({"base": "/abs"}, "overlays.base"),
        ({"clusters": "x"}, "overlays.clusters"),
        ("nope", "overlays"),
    ],
)
def test_bad_rules_name_the_key(data: t.Any, key: str) -> None:
    problems = Problems()
    parse_config(data, problems, "f.yml")
    assert problems.errors, data
    assert any(key in str(p) for p in problems.errors), [str(p) for p in problems.errors]


def test_facts_from_hostvars_ignores_role_groups() -> None:
    hv = {
        "edgefleet_cluster": "ber-01",
        "edgefleet_region": "eu-west",
        "edgefleet_model": "rpi5",
        "edgefleet_channel": "beta",
        "edgefleet_distribution": "k3s",
        "edgefleet_labels": {"ring": "pilot", "node-only": "x"},
        "edgefleet_site_labels": {"ring": "pilot"},
        "group_names": ["canary", "servers", "k3s_servers"],
    }
    f = facts_from_hostvars(hv)
    assert f == facts(extra_groups=["canary"])
    with pytest.raises(ValueError, match="edgefleet_region"):
        facts_from_hostvars({"edgefleet_cluster": "x"})
