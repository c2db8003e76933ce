# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The distribution_facts and reported_version filters."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.filter import distribution_facts as f
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry


def test_every_filter_is_exported() -> None:
    filters = f.FilterModule().filters()
    assert filters == {
        "distribution_facts": f.distribution_facts,
        "distribution_node": f.distribution_node,
        "distribution_validation": f.distribution_validation,
        "reported_version": f.reported_version,
    }


@pytest.mark.parametrize("name", registry.NAMES)
def test_facts_by_name(name: str) -> None:
    facts = f.distribution_facts(name)
    assert facts == registry.get(name).facts()
    assert facts["name"] == name


def test_facts_of_each_distribution() -> None:
    k3s = f.distribution_facts("k3s")
    assert k3s["config_path"] == "/etc/rancher/k3s/config.yaml" and k3s["data_root"] == "/var/lib/rancher"
    assert k3s["units"] == {"server": "k3s.service", "agent": "k3s-agent.service"}
    assert k3s["version_argv"] == ["/usr/local/bin/k3s", "--version"]
    k0s = f.distribution_facts("k0s")
    assert k0s["config_path"] == "/etc/k0s/k0s.yaml" and k0s["data_root"] == "/var/lib/k0s"
    assert k0s["services"] == ["k0scontroller", "k0sworker"]
    assert k0s["version_argv"] == ["/usr/local/bin/k0s", "version"]
    assert set(k3s) == set(k0s)


def test_facts_are_a_fresh_copy() -> None:
    f.distribution_facts("k3s")["units"]["server"] = "changed.service"
    assert f.distribution_facts("k3s")["units"]["server"] == "k3s.service"


@pytest.mark.parametrize("name", ["rke2", "K3s", "", None])
def test_unknown_name_names_the_allowed_ones(name: object) -> None:
    with pytest.raises(AnsibleFilterError) as err:
        f.distribution_facts(name)
    message = str(err.value)
    assert message.startswith("edgefleet.k8s.distribution_facts: distribution: found ")
    assert f"found {str(name)!r}" in message
    assert message.endswith("allowed: k3s, k0s")


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("k3s version v1.30.2+k3s1 (aa4794b3)\ngo version go1.22.4\n", "v1.30.2+k3s1 (aa4794b3)"),
        ("k3s version v1.30.2+k3s1 (aa4794b3)", "v1.30.2+k3s1 (aa4794b3)"),
        ("v1.36.3+lab (stand-in)", "v1.36.3+lab (stand-in)"),
        ("v1.31.3+k0s.0\n", "v1.31.3+k0s.0"),
        ("banner line\nk3s version v1.29.0+k3s1\n", "v1.29.0+k3s1"),
        ("", ""),
        ("command not found", ""),
        ("version unknown (dirty)\n", ""),
        (None, ""),
    ],
)
def test_reported_version(output: object, version: str) -> None:
    assert f.reported_version(output) == version


def _hostvars(distribution: str, host: str, role: str, servers: list[str], agents: list[str]) -> dict[str, object]:
    return {
        "inventory_hostname": host,
        "edgefleet_distribution": distribution,
        "edgefleet_node_role": role,
        "edgefleet_datastore": "sqlite",
        "edgefleet_cluster_servers": servers,
        "edgefleet_cluster_agents": agents,
        "edgefleet_cluster_init_server": servers[0],
    }


@pytest.mark.parametrize(
    ("distribution", "host", "role", "agents", "unit", "registers"),
    [
        ("k3s", "s1", "server", ["a1"], "k3s.service", True),
        ("k3s", "a1", "agent", ["a1"], "k3s-agent.service", True),
        # A K0s controller with workers runs no kubelet; alone, it runs with --single and does.
        ("k0s", "s1", "server", ["a1"], "k0scontroller.service", False),
        ("k0s", "s1", "server", [], "k0scontroller.service", True),
        ("k0s", "a1", "agent", ["a1"], "k0sworker.service", True),
    ],
)
def test_distribution_node_from_host_vars(
    distribution: str, host: str, role: str, agents: list[str], unit: str, registers: bool
) -> None:
    node = f.distribution_node(_hostvars(distribution, host, role, ["s1"], agents))
    assert node["unit"] == unit
    # One record of an owed restart per unit: the artifacts role writes it, the distribution role reads it.
    assert node["restart_marker"] == f"/var/lib/edgefleet/restart-pending/{unit}"
    assert node["registers_node"] is registers
    assert node["is_init_server"] is (host == "s1")


def test_distribution_node_refuses_bad_input() -> None:
    with pytest.raises(AnsibleFilterError, match="allowed: k3s, k0s"):
        f.distribution_node({"edgefleet_distribution": "rke2"})
    with pytest.raises(AnsibleFilterError, match="a mapping"):
        f.distribution_node(["not", "hostvars"])
