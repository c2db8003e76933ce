# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edgefleet.k8s.fleet inventory plugin against a real InventoryData."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleParserError
from ansible.template import is_trusted_as_template
from fleet_helpers import REPO, merged_vars, run_plugin

EXAMPLE = REPO / "inventories" / "example" / "example.fleet.yml"
LAB = REPO / "inventories" / "lab" / "lab.fleet.yml"
CONTRACT_VARS = (
    "ansible_host",
    "edgefleet_cluster",
    "edgefleet_site",
    "edgefleet_region",
    "edgefleet_model",
    "edgefleet_channel",
    "edgefleet_labels",
    "edgefleet_node_role",
    "edgefleet_arch",
    "edgefleet_distribution",
    "edgefleet_version",
    "edgefleet_datastore",
    "edgefleet_cluster_servers",
    "edgefleet_cluster_agents",
    "edgefleet_cluster_init_server",
    "edgefleet_gitops_engine",
    "edgefleet_gitops_repo",
    "edgefleet_gitops_branch",
    "edgefleet_overlays",
    "edgefleet_gitops_path",
)
VERSION = "v1.31.4+k3s1"


def members(inventory: t.Any, group: str) -> set[str]:
    return {h.name for h in inventory.groups[group].get_hosts()}


def write_fleet(tmp_path: Path, body: dict[str, t.Any], name: str = "t.fleet.yml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"plugin": "edgefleet.k8s.fleet", **body}, sort_keys=False))
    return path


def small_fleet(**extra: t.Any) -> dict[str, t.Any]:
    return {
        "defaults": {
            "region": "eu-west",
            "model": "rpi5",
            "channel": "stable",
            "version": VERSION,
            "gitops": {"engine": "none"},
        },
        "sites": [
            {
                "name": "ber-01",
                "vars": {"motd": "{{ inventory_hostname }} at Berlin"},
                "nodes": [
                    {"name": "ber-01-s1", "address": "192.0.2.10", "role": "server"},
                    {"name": "ber-01-a1", "address": "192.0.2.11", "role": "agent", "vars": {"disk": "/dev/sda"}},
                ],
            }
        ],
        **extra,
    }


def test_example_fleet_groups_and_vars() -> None:
    inv = run_plugin(EXAMPLE)
    assert len(inv.hosts) == 57
    assert members(inv, "edgefleet") == set(inv.hosts)
    assert len([g for g in inv.groups if g.startswith("cluster_")]) == 20
    for group in ("region_eu_west", "region_us_east", "region_ap_south", "model_rpi5", "model_jetson_orin",
                  "channel_beta", "channel_edge", "k3s", "k0s", "servers", "agents",
                  "k3s_servers", "k3s_agents", "k0s_controllers", "k0s_workers", "canary"):  # fmt: skip
        assert members(inv, group), group
    assert members(inv, "cluster_ber_02") == {"ber-02-s1", "ber-02-s2", "ber-02-s3", "ber-02-a1"}
    assert members(inv, "k0s_controllers") <= members(inv, "k0s") and members(inv, "k0s_controllers") <= members(
        inv, "servers"
    )
    assert members(inv, "servers").isdisjoint(members(inv, "agents"))
    for host in inv.hosts.values():
        hv = merged_vars(host)
        missing = [v for v in CONTRACT_VARS if v not in hv]
        assert not missing, (host.name, missing)
        assert hv["edgefleet_cluster_init_server"] == hv["edgefleet_cluster_servers"][0]
        assert hv["edgefleet_overlays"][0] == "base"
        assert hv["edgefleet_gitops_path"] == "clusters/" + hv["edgefleet_cluster"]
    ber = merged_vars(inv.hosts["ber-01-s1"])
    assert ber["edgefleet_overlays"] == [
        "base", "cis-hardening", "region-eu-west", "model-raspberry-pi", "ring-pilot", "site-ber-01", "canary-alerts"
    ]  # fmt: skip
    assert merged_vars(inv.hosts["mad-01-s1"])["edgefleet_overlays"] == [
        "base",
        "cis-hardening",
        "region-eu-west",
        "model-jetson-gpu",
    ]
    assert merged_vars(inv.hosts["par-01-s1"])["edgefleet_gitops_engine"] == "argocd"
    assert merged_vars(inv.hosts["atl-01-a1"])["edgefleet_arch"] == "amd64"
    assert merged_vars(inv.hosts["syd-01-s1"])["edgefleet_cluster"] == "syd-01"  # read from a JSON site file


def test_lab_fleet() -> None:
    inv = run_plugin(LAB)
    assert set(inv.hosts) == {"node1", "node2", "node3", "node4"}
    assert members(inv, "k3s_servers") == {"node1"}
    assert members(inv, "k3s_agents") == {"node2", "node3"}
    assert members(inv, "k0s_controllers") == {"node4"}
    assert merged_vars(inv.hosts["node4"])["ansible_host"] == "10.231.0.14"
    assert merged_vars(inv.hosts["node4"])["edgefleet_gitops_engine"] == "argocd"
    assert merged_vars(inv.hosts["node1"])["edgefleet_cluster_agents"] == ["node2", "node3"]


def test_filter_gives_the_plugins_result_for_every_host() -> None:
    from ansible_collections.edgefleet.k8s.plugins.filter.overlays import overlays as overlays_filter

    inv = run_plugin(EXAMPLE)
    rules = yaml.safe_load(EXAMPLE.read_text())["overlays"]
    for host in inv.hosts.values():
        hv = merged_vars(host)
        hostvars = dict(hv, group_names=sorted(g.name for g in host.get_groups() if g.name != "all"))
        result = overlays_filter(hostvars, rules)
        assert result["overlays"] == hv["edgefleet_overlays"], host.name
        assert result["gitops_path"] == hv["edgefleet_gitops_path"]
        assert result["kustomization"] == hv["edgefleet_kustomization"]


def test_passthrough_vars_are_templates_fleet_facts_are_data(tmp_path: Path) -> None:
    body = small_fleet()
    body["defaults"]["gitops"] = {"engine": "flux", "repo": "https://git.example.org/{{ lookup('env', 'HOME') }}.git"}
    inv = run_plugin(write_fleet(tmp_path, body))
    hv = merged_vars(inv.hosts["ber-01-a1"])
    assert hv["motd"] == "{{ inventory_hostname }} at Berlin" and is_trusted_as_template(hv["motd"])
    assert hv["disk"] == "/dev/sda"
    # fleet facts render as plain strings but a fact holding template markers is never templated
    assert is_trusted_as_template(hv["edgefleet_cluster"])
    assert hv["edgefleet_gitops_repo"] == "https://git.example.org/{{ lookup('env', 'HOME') }}.git"
    assert not is_trusted_as_template(hv["edgefleet_gitops_repo"])
    assert hv["inventory_file"] == str(tmp_path / "t.fleet.yml")


def test_constructable_on_top(tmp_path: Path) -> None:
    body = small_fleet(
        compose={"site_upper": "edgefleet_site | upper"},
        groups={"arm_boards": "edgefleet_model.startswith('rpi')"},
        keyed_groups=[{"key": "edgefleet_node_role", "prefix": "role"}],
    )
    inv = run_plugin(write_fleet(tmp_path, body))
    assert merged_vars(inv.hosts["ber-01-s1"])["site_upper"] == "BER-01"
    assert members(inv, "arm_boards") == {"ber-01-s1", "ber-01-a1"}
    assert members(inv, "role_server") == {"ber-01-s1"}
    assert members(inv, "role_agent") == {"ber-01-a1"}


def test_sources_directory_and_registry_file(tmp_path: Path) -> None:
    (tmp_path / "reg" / "sites").mkdir(parents=True)
    fleet = small_fleet()
    (tmp_path / "reg" / "defaults.json").write_text(json.dumps({"defaults": fleet["defaults"]}))
    (tmp_path / "reg" / "sites" / "ber-01.yml").write_text(yaml.safe_dump(fleet["sites"][0]))
    path = write_fleet(tmp_path, {"sources": ["reg/"]})
    inv = run_plugin(path)
    assert set(inv.hosts) == {"ber-01-s1", "ber-01-a1"}


def write_cached_fleet(tmp_path: Path, site_file: Path, source: str) -> Path:
    """small_fleet's site in site_file, read through `source`, with the jsonfile inventory cache on."""
    site_file.write_text(yaml.safe_dump(small_fleet()["sites"][0]))
    body = {
        "defaults": small_fleet()["defaults"],
        "sources": [source],
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(tmp_path / "cache"),
    }
    return write_fleet(tmp_path, body)


def test_cache_is_used_and_invalidated_by_source_mtime(tmp_path: Path) -> None:
    site_file = tmp_path / "site.yml"
    path = write_cached_fleet(tmp_path, site_file, "site.yml")
    assert run_plugin(path, cache=True).hosts["ber-01-s1"].vars["ansible_host"] == "192.0.2.10"
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1
    outer = json.loads(entries[0].read_text())
    data = json.loads(outer["__payload__"]) if "__payload__" in outer else outer  # ansible-core 2.19 wraps it
    plan = json.loads(data["plan"])  # the plan is kept as one JSON text, in the plugin's publish form
    plan["sites"][0][3][0][1]["ansible_host"] = "192.0.2.99"  # site 0, its nodes, node 0, its vars
    data["plan"] = json.dumps(plan)
    if "__payload__" in outer:
        outer["__payload__"] = json.dumps(data)
    else:
        outer = data
    entries[0].write_text(json.dumps(outer))
    # unchanged sources: the plan comes from the cache
    assert run_plugin(path, cache=True).hosts["ber-01-s1"].vars["ansible_host"] == "192.0.2.99"
    # a refresh (cache=False) re-reads the sources
    assert run_plugin(path, cache=False).hosts["ber-01-s1"].vars["ansible_host"] == "192.0.2.10"
    entries[0].write_text(json.dumps(outer))
    st = site_file.stat()
    os.utime(site_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert run_plugin(path, cache=True).hosts["ber-01-s1"].vars["ansible_host"] == "192.0.2.10"


def test_cache_hit_reads_no_registry_file_until_one_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible.plugins.loader import inventory_loader

    module = sys.modules[type(inventory_loader.get("edgefleet.k8s.fleet")).__module__]
    real_read = module.read_sources
    reads: list[int] = []

    def counting_read(files: t.Any, *args: t.Any) -> t.Any:
        reads.append(len(files))
        return real_read(files, *args)

    monkeypatch.setattr(module, "read_sources", counting_read)
    (tmp_path / "sites").mkdir()
    site_file = tmp_path / "sites" / "ber-01.yml"
    path = write_cached_fleet(tmp_path, site_file, "sites/")
    assert set(run_plugin(path, cache=True).hosts) == {"ber-01-s1", "ber-01-a1"}
    assert reads == [1]
    inv = run_plugin(path, cache=True)  # unchanged registry: a cache hit, no registry file read or validated
    assert reads == [1]
    assert set(inv.hosts) == {"ber-01-s1", "ber-01-a1"}
    assert merged_vars(inv.hosts["ber-01-a1"])["disk"] == "/dev/sda"
    assert inv.groups["cluster_ber_01"].vars["edgefleet_cluster"] == "ber-01"
    site_file.write_text(site_file.read_text() + "# a comment changes the size\n")
    run_plugin(path, cache=True)
    assert reads == [1, 1]
    run_plugin(path, cache=True)
    assert reads == [1, 1]
    (tmp_path / "sites" / "mad-01.yml").write_text(
        yaml.safe_dump({"name": "mad-01", "nodes": [{"name": "mad-01-s1", "address": "192.0.2.30", "role": "server"}]})
    )
    assert "mad-01-s1" in run_plugin(path, cache=True).hosts  # a new source file is a change too
    assert reads == [1, 1, 2]


def test_errors_are_parser_errors_listing_everything(tmp_path: Path) -> None:
    body = small_fleet(sourcse=["x"])
    body["sites"][0]["nodes"][0]["role"] = "master"
    body["sites"][0]["datastore"] = "dqlite"
    with pytest.raises(AnsibleParserError) as info:
        run_plugin(write_fleet(tmp_path, body))
    text = str(info.value)
    assert "sourcse: unknown key in the fleet file (did you mean 'sources'?)" in text
    # config-level problems stop before the registry is read; fix that and see the registry problems
    del body["sourcse"]
    with pytest.raises(AnsibleParserError) as info:
        run_plugin(write_fleet(tmp_path, body))
    text = str(info.value)
    assert "2 problem(s)" in text
    assert "site 'ber-01', node 'ber-01-s1': sites[0].nodes[0].role: found 'master'" in text
    assert "sites[0].datastore: found 'dqlite'" in text


def test_missing_source_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(AnsibleParserError, match=r"sources\[0\]: found 'nope.yml': no such file"):
        run_plugin(write_fleet(tmp_path, {"sources": ["nope.yml"]}))
    (tmp_path / "bad.yml").write_text("name: [\n")
    with pytest.raises(AnsibleParserError, match=r"bad.yml: \(file\): is not valid YAML at line"):
        run_plugin(write_fleet(tmp_path, {"sources": ["bad.yml"]}))


def test_even_etcd_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible.utils.display import Display

    seen: list[str] = []
    monkeypatch.setattr(Display, "warning", lambda self, msg, *a, **k: seen.append(msg))
    body = small_fleet()
    body["sites"][0]["datastore"] = "etcd"
    body["sites"][0]["nodes"][1]["role"] = "server"
    run_plugin(write_fleet(tmp_path, body))
    assert len(seen) == 1 and "even number of servers (2)" in seen[0] and "site 'ber-01'" in seen[0]


def test_verify_file_only_takes_fleet_files(tmp_path: Path) -> None:
    from ansible.plugins.loader import inventory_loader

    plugin = inventory_loader.get("edgefleet.k8s.fleet")
    for name, wanted in (("a.fleet.yml", True), ("a.fleet.yaml", True), ("a.yml", False), ("fleet.json", False)):
        (tmp_path / name).write_text("plugin: edgefleet.k8s.fleet\n")
        assert plugin.verify_file(str(tmp_path / name)) is wanted, name


def test_example_directory_is_read_by_this_plugin_only() -> None:
    """`ansible-inventory -i inventories/example/` must not hand the site files to other plugins."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_INVENTORY_UNPARSED_WARNING="true")
    binary = Path(sys.executable).with_name("ansible-inventory")
    proc = subprocess.run(
        [str(binary), "-i", str(REPO / "inventories" / "example") + "/", "--graph"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    for group in ("@edgefleet:", "@cluster_ber_01:", "@region_us_east:", "@k0s_controllers:", "@k3s_agents:"):
        assert group in proc.stdout
