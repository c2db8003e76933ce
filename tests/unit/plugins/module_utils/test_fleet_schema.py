# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet schema validation and the inventory plan, without Ansible running."""

from __future__ import annotations

import copy
import json
import sys
import typing as t
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.plugin_utils import fleet_sources as _fleet_sources
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_problems import Problems
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_schema import FleetError, build_plan

F = "fleet.yml"


def registry(**site_overrides: t.Any) -> dict[str, t.Any]:
    site: dict[str, t.Any] = {
        "name": "ber-01",
        "nodes": [
            {"name": "ber-01-s1", "address": "192.0.2.10", "role": "server"},
            {"name": "ber-01-a1", "address": "192.0.2.11", "role": "agent"},
        ],
    }
    site.update(site_overrides)
    return {
        "defaults": {
            "region": "eu-west",
            "model": "rpi5",
            "channel": "stable",
            "version": "v1.31.4+k3s1",
            "gitops": {"engine": "flux", "repo": "https://git.example.org/fleet.git"},
        },
        "sites": [site],
    }


def errors_of(doc: t.Any) -> list[str]:
    with pytest.raises(FleetError) as info:
        build_plan([(F, doc)])
    return [str(p) for p in info.value.problems]


def host_vars(plan: dict[str, t.Any], name: str) -> dict[str, t.Any]:
    for site in plan["sites"]:
        for node in site["nodes"]:
            if node["name"] == name:
                return {**site["vars"], **node["vars"]}
    raise AssertionError(name)


def test_valid_registry_publishes_the_contract() -> None:
    plan, warnings = build_plan([(F, registry(labels={"ring": "pilot"}, vars={"site_contact": "ops"}))])
    assert warnings == []
    hv = host_vars(plan, "ber-01-s1")
    assert hv["ansible_host"] == "192.0.2.10"
    assert hv["edgefleet_cluster"] == hv["edgefleet_site"] == "ber-01"
    assert (hv["edgefleet_region"], hv["edgefleet_model"], hv["edgefleet_channel"]) == ("eu-west", "rpi5", "stable")
    assert hv["edgefleet_node_role"] == "server"
    assert hv["edgefleet_arch"] == "amd64"
    assert hv["edgefleet_distribution"] == "k3s"
    assert hv["edgefleet_version"] == "v1.31.4+k3s1"
    assert hv["edgefleet_datastore"] == "sqlite"
    assert "edgefleet_datastore_endpoint" not in hv
    assert hv["edgefleet_cluster_servers"] == ["ber-01-s1"]
    assert hv["edgefleet_cluster_agents"] == ["ber-01-a1"]
    # The identity labels the distribution roles put on every node, over the fleet's own labels.
    labels = hv["edgefleet_node_labels"]
    assert labels["ring"] == "pilot"
    assert labels["edgefleet.io/site"] == "ber-01" and labels["edgefleet.io/region"] == "eu-west"
    assert labels["edgefleet.io/model"] == "rpi5" and labels["edgefleet.io/channel"] == "stable"
    assert labels["edgefleet.io/overlays"].startswith("base")
    assert hv["edgefleet_cluster_init_server"] == "ber-01-s1"
    assert hv["edgefleet_gitops_engine"] == "flux"
    assert hv["edgefleet_gitops_branch"] == "main"
    assert hv["edgefleet_overlays"] == ["base"]
    assert hv["edgefleet_gitops_path"] == "clusters/ber-01"
    assert hv["edgefleet_labels"] == {"ring": "pilot"}
    assert hv["site_contact"] == "ops"
    site = plan["sites"][0]
    assert site["groups"] == ["edgefleet", "cluster_ber_01", "region_eu_west", "model_rpi5", "channel_stable", "k3s"]
    assert [n["groups"] for n in site["nodes"]] == [["servers", "k3s_servers"], ["agents", "k3s_agents"]]
    json.dumps(plan)  # the plan is cacheable as JSON


def test_network_policies_are_on_unless_a_site_turns_them_off() -> None:
    plan, _warnings = build_plan([(F, registry())])
    assert "edgefleet_gitops_network_policies" not in host_vars(plan, "ber-01-s1")  # on: the role's default
    plan, _warnings = build_plan([(F, registry(gitops={"network_policies": False}))])
    hv = host_vars(plan, "ber-01-s1")
    assert hv["edgefleet_gitops_network_policies"] is False
    assert hv["edgefleet_gitops_engine"] == "flux"  # gitops merges key by key
    doc = registry()
    doc["defaults"]["gitops"]["network_policies"] = False
    plan, _warnings = build_plan([(F, doc)])
    assert host_vars(plan, "ber-01-s1")["edgefleet_gitops_network_policies"] is False
    doc["sites"][0]["gitops"] = {"network_policies": True}
    plan, _warnings = build_plan([(F, doc)])
    assert "edgefleet_gitops_network_policies" not in host_vars(plan, "ber-01-s1")


def test_a_bad_network_policies_default_names_the_file_and_key() -> None:
    doc = registry()
    doc["defaults"]["gitops"]["network_policies"] = "off"
    errors = errors_of(doc)
    assert any("defaults.gitops.network_policies: found 'off', allowed: true or false" in e for e in errors), errors
    assert all(e.startswith(F) or F in e for e in errors), errors


def test_k0s_groups_and_node_label_merge() -> None:
    doc = registry(distribution="k0s", version="v1.31.3+k0s.0", labels={"a": "1", "b": "2"})
    doc["sites"][0]["nodes"][1]["labels"] = {"b": "3", "c": "4"}
    doc["sites"][0]["nodes"][1]["arch"] = "arm64"
    plan = build_plan([(F, doc)])[0]
    site = plan["sites"][0]
    assert site["groups"][-1] == "k0s"
    assert [n["groups"] for n in site["nodes"]] == [["servers", "k0s_controllers"], ["agents", "k0s_workers"]]
    agent = host_vars(plan, "ber-01-a1")
    assert agent["edgefleet_labels"] == {"a": "1", "b": "3", "c": "4"}
    assert agent["edgefleet_site_labels"] == {"a": "1", "b": "2"}
    assert agent["edgefleet_arch"] == "arm64"
    assert host_vars(plan, "ber-01-s1")["edgefleet_labels"] == {"a": "1", "b": "2"}


def test_every_problem_is_collected_with_file_site_node_key() -> None:
    doc = registry()
    doc["sites"][0]["nodes"][0]["role"] = "master"
    doc["sites"][0]["nodes"][1]["address"] = "999.1.1.1"
    doc["sites"][0]["colour"] = "red"
    doc["sites"].append({"name": "Bad_Name", "nodes": [{"name": "x1", "address": "192.0.2.99", "role": "server"}]})
    errors = errors_of(doc)
    assert len(errors) == 4, errors
    assert (
        "fleet.yml, site 'ber-01', node 'ber-01-s1': sites[0].nodes[0].role: found 'master', allowed: server, agent"
        in errors
    )
    assert any("node 'ber-01-a1': sites[0].nodes[1].address: found '999.1.1.1'" in e for e in errors)
    assert any("sites[0].colour: unknown key in a site" in e for e in errors)
    assert any("sites[1].name: found 'Bad_Name', allowed: a DNS-1123 label" in e for e in errors)


def test_typo_gets_did_you_mean() -> None:
    errors = errors_of(registry(datastor="etcd"))
    assert "did you mean 'datastore'?" in errors[0]


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        ({"datastore": "dqlite"}, "datastore", "v1.19.1"),
        ({"datastore": "kine"}, "datastore", "written 'sqlite'"),
        ({"distribution": "rke2"}, "distribution", "allowed: k3s, k0s"),
        ({"arch": "x86_64"}, "arch", "allowed: amd64, arm64, armhf"),
        ({"datastore": "external"}, "datastore_endpoint", "missing"),
        (
            {"datastore": "external", "datastore_endpoint": "postgres://u:secret@db/k3s"},
            "datastore_endpoint",
            "password",
        ),
        ({"version": "1.31"}, "version", "v1.31.4+k3s1"),
        ({"distribution": "k0s"}, "version", "v1.31.3+k0s.0"),
        ({"gitops": {"engine": "fluxcd"}}, "gitops.engine", "did you mean 'flux'"),
        ({"gitops": {"network_policies": "no"}}, "gitops.network_policies", "allowed: true or false"),
        ({"gitops": {"network_policy": False}}, "gitops.network_policy", "did you mean 'network_policies'"),
        ({"labels": {"ring": 1}}, "labels.ring", "quote numbers"),
        ({"vars": {"edgefleet_cluster": "x"}}, "vars.edgefleet_cluster", "published by the fleet plugin"),
        ({"vars": {"bad-name": 1}}, "vars.bad-name", "Ansible variable name"),
        ({"nodes": []}, "nodes", "non-empty list"),
        ({"groups": ["Not OK"]}, "groups[0]", "DNS-1123"),
        ({"region": "EU"}, "region", "DNS-1123"),
    ],
)
def test_single_errors(overrides: dict[str, t.Any], key: str, fragment: str) -> None:
    errors = errors_of(registry(**overrides))
    assert any(f"sites[0].{key}:" in e and fragment in e for e in errors), errors


@pytest.mark.parametrize(
    ("distribution", "version", "ok"),
    [
        ("k3s", "v1.31.4+k3s1", True),
        ("k3s", "v1.36.3+lab", True),
        ("k0s", "v1.31.3+k0s.0", True),
        ("k0s", "v1.36.3+lab", True),
        ("k3s", "v1.31.4", False),
        ("k3s", "v1.31.3+k0s.0", False),
        ("k0s", "v1.31.4+k3s1", False),
    ],
)
def test_version_build_metadata(distribution: str, version: str, ok: bool) -> None:
    doc = registry(distribution=distribution, version=version)
    if ok:
        plan = build_plan([(F, doc)])[0]
        assert host_vars(plan, "ber-01-s1")["edgefleet_version"] == version
    else:
        assert any("sites[0].version:" in e for e in errors_of(doc))


def test_dqlite_message_explains_history_and_replacement() -> None:
    (error,) = errors_of(registry(datastore="dqlite"))
    assert "embedded etcd in v1.19.1" in error and "no upgrade path" in error
    assert "'sqlite' for a single server" in error and "'etcd' for HA" in error


def test_sqlite_with_two_servers_suggests_etcd() -> None:
    doc = registry()
    doc["sites"][0]["nodes"][1]["role"] = "server"
    (error,) = errors_of(doc)
    assert "found 'sqlite' with 2 servers" in error and "use datastore 'etcd'" in error


def test_k0s_controller_cannot_join_sqlite_cluster() -> None:
    doc = registry(distribution="k0s", version="v1.31.3+k0s.0")
    doc["sites"][0]["nodes"][1]["role"] = "server"
    (error,) = errors_of(doc)
    assert "K0s controllers cannot join a SQLite (kine) cluster" in error


def test_k0s_role_names_get_a_hint() -> None:
    doc = registry(distribution="k0s", version="v1.31.3+k0s.0")
    doc["sites"][0]["nodes"][0]["role"] = "controller"
    errors = errors_of(doc)
    assert any("a K0s controller is role 'server'" in e for e in errors)


def test_no_server() -> None:
    doc = registry()
    doc["sites"][0]["nodes"][0]["role"] = "agent"
    (error,) = errors_of(doc)
    assert "sites[0].nodes: no server" in error


def test_etcd_even_servers_is_a_warning_not_an_error() -> None:
    doc = registry(datastore="etcd")
    doc["sites"][0]["nodes"][1]["role"] = "server"
    plan, warnings = build_plan([(F, doc)])
    assert len(plan["sites"]) == 1
    assert len(warnings) == 1 and "even number of servers (2)" in str(warnings[0])


def test_duplicates_across_files() -> None:
    first = registry()
    second = {
        "name": "ber-02",
        "region": "eu-west",
        "nodes": [
            {"name": "ber-01-s1", "address": "192.0.2.20", "role": "server"},
            {"name": "ber-02-a1", "address": "192.0.2.11", "role": "agent"},
        ],
    }
    third = copy.deepcopy(second)
    third["nodes"] = [{"name": "ber-03-s1", "address": "192.0.2.30", "role": "server"}]
    with pytest.raises(FleetError) as info:
        build_plan([("a.yml", first), ("sites/ber-02.yml", second), ("sites/ber-02b.yml", third)])
    text = str(info.value)
    assert "sites/ber-02.yml, site 'ber-02', node 'ber-01-s1': nodes[0].name: duplicate node 'ber-01-s1'" in text
    assert "it is also in a.yml, site 'ber-01'" in text
    assert "nodes[1].address: duplicate address '192.0.2.11'" in text
    assert "sites/ber-02b.yml, site 'ber-02': name: duplicate site 'ber-02'" in text


def test_missing_required_settings() -> None:
    doc = registry()
    del doc["defaults"]["region"]
    del doc["defaults"]["gitops"]
    errors = errors_of(doc)
    assert any("sites[0].region: missing" in e for e in errors)
    assert any("sites[0].gitops.repo: missing" in e for e in errors)


def test_defaults_and_overlays_only_once() -> None:
    with pytest.raises(FleetError) as info:
        build_plan([("a.yml", registry()), ("b.yml", {"defaults": {"arch": "arm64"}, "overlays": None})])
    assert "b.yml: defaults: fleet-wide defaults are already set in a.yml" in str(info.value)


def test_document_shapes() -> None:
    site = registry()["sites"][0]
    defaults = {"defaults": registry()["defaults"]}
    plan = build_plan([("d.yml", defaults), ("list.yml", [site])])[0]
    assert plan["sites"][0]["vars"]["edgefleet_cluster"] == "ber-01"
    with pytest.raises(FleetError, match=r"x.yml: \(document\): found 'oops'"):
        build_plan([("d.yml", defaults), ("x.yml", "oops")])
    with pytest.raises(FleetError, match="the fleet has no sites"):
        build_plan([("d.yml", defaults)])


def test_sources_expand_and_parse_errors(tmp_path: Path) -> None:
    (tmp_path / "sites" / "eu").mkdir(parents=True)
    (tmp_path / "sites" / "eu" / "b.yml").write_text("name: b\n")
    (tmp_path / "sites" / "a.json").write_text("{}")
    (tmp_path / "sites" / ".hidden.yml").write_text("x")
    (tmp_path / "sites" / "notes.md").write_text("x")
    problems = Problems()
    files = _fleet_sources.expand_sources(str(tmp_path), ["sites", "missing.yml", 3], problems, "f.fleet.yml")
    assert [Path(f.path).relative_to(tmp_path).as_posix() for f in files] == ["sites/a.json", "sites/eu/b.yml"]
    assert [p.key for p in problems.errors] == ["sources[1]", "sources[2]"]
    bad = tmp_path / "bad.yml"
    bad.write_text("a: [1,\n")
    assert _fleet_sources.load_file(str(bad), problems) is None
    assert "is not valid YAML at line" in str(problems.errors[-1])
    badj = tmp_path / "bad.json"
    badj.write_text("{")
    assert _fleet_sources.load_file(str(badj), problems) is None
    assert "is not valid JSON" in str(problems.errors[-1])
    stamp1 = _fleet_sources.stamp(f.path for f in files)
    (tmp_path / "sites" / "a.json").write_text('{"x": 1}')
    assert _fleet_sources.stamp(f.path for f in files) != stamp1
