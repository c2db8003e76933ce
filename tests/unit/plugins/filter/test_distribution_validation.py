# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The distribution_validation filter gives what the three modules' validate_only runs give, for good and bad inputs:
each module is run in-process through AnsibleModule beside the filter, on the same parameters."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))
_MODULES = Path(__file__).resolve().parents[1] / "modules"
if str(_MODULES) not in sys.path:
    sys.path.insert(0, str(_MODULES))

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.filter.distribution_facts import distribution_validation
from ansible_collections.edgefleet.k8s.plugins.modules import distribution_config, registries_config, wasm_runtimes
from module_run import run_module

MODULES = {"config": distribution_config, "registries": registries_config, "wasm": wasm_runtimes}
TOKEN = "K10supersecret-token-value"


def _config(**extra: Any) -> dict[str, Any]:
    return {
        "distribution": "k3s",
        "role": "agent",
        "host": "node2",
        "address": "10.0.0.12",
        "labels": {"edgefleet.io/site": "ber-01"},
        "api_port": "6443",  # as Jinja renders it: a string the spec makes an int
        "datastore": "sqlite",
        "cluster_servers": ["node1"],
        "cluster_agents": ["node2"],
        "init_server": False,
        "server_address": "10.0.0.11",
        "datastore_endpoint": None,
        "cis": True,
        "settings": {},
        "overrides": {},
        "overrides_name": "edgefleet_distribution_config",
        "token": TOKEN,
        "default_sa_namespaces": ["default"],
        "default_sa_namespaces_name": "edgefleet_distribution_default_sa_namespaces",
        **extra,
    }


GOOD = {
    "config": _config(),
    "registries": {
        "distribution": "k3s",
        "host": "node2",
        "registries": {"mirrors": {"docker.io": {"endpoints": ["https://mirror.example.internal"]}}},
        "registries_name": "edgefleet_distribution_registries",
        "auth": {},
        "auth_name": "edgefleet_distribution_registry_auth",
    },
    "wasm": {
        "distribution": "k3s",
        "host": "node2",
        "runtimes": ["spin"],
        "runtimes_name": "edgefleet_distribution_wasm_runtimes",
    },
}

BAD = {
    "config": _config(role="controller", datastore="postgres", overrides={"token": "inline", "no-such-key": 1}),
    "registries": {**GOOD["registries"], "registries": {"mirrors": {"docker.io": {"endpoints": ["ftp://mirror"]}}}},
    "wasm": {**GOOD["wasm"], "runtimes": ["spin", "spin", "no-such-runtime"]},
}


def _module(name: str, params: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return run_module(MODULES[name], {**params, "validate_only": True}, capsys)


def test_good_inputs_give_the_config_modules_facts_and_no_message(capsys: pytest.CaptureFixture[str]) -> None:
    result = distribution_validation(GOOD)
    assert result["messages"] == []
    module = _module("config", GOOD["config"], capsys)
    assert result["node"] == module["node"] and result["distribution"] == module["distribution"]
    assert result["token_file"] == module["token_file"] == "/etc/rancher/k3s/token"
    for name in ("registries", "wasm"):
        assert not _module(name, GOOD[name], capsys).get("failed")


def test_bad_inputs_give_each_modules_own_message(capsys: pytest.CaptureFixture[str]) -> None:
    result = distribution_validation(BAD)
    expected = [_module(name, BAD[name], capsys)["msg"] for name in ("config", "registries", "wasm")]
    assert result["messages"] == expected
    assert all(msg.count("\n- ") >= 1 for msg in expected)
    assert result["node"] is None and result["distribution"] is None
    assert TOKEN not in repr(result)


def test_a_type_error_is_the_argument_specs_message(capsys: pytest.CaptureFixture[str]) -> None:
    params = {**GOOD["wasm"], "runtimes": "spin"}
    params["runtime_classes"] = "maybe"
    result = distribution_validation({"wasm": params})
    module = _module("wasm", params, capsys)
    assert module["failed"] and "runtime_classes" in module["msg"]
    assert len(result["messages"]) == 1 and "runtime_classes" in result["messages"][0]
    assert "edgefleet.k8s.wasm_runtimes" in result["messages"][0]


def test_a_secret_in_a_problem_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    # A password that is also written, by mistake, as a mirror endpoint: the endpoint's problem quotes what it found.
    secret = "ftp://hunter2-registry-password"
    registries = {
        **GOOD["registries"],
        "registries": {"mirrors": {"docker.io": {"endpoints": [secret]}}},
        "auth": {"docker.io": {"username": "fleet", "password": secret}},
    }
    result = distribution_validation({"registries": registries})
    module = _module("registries", registries, capsys)
    assert secret not in repr(result) and secret not in module["msg"]
    assert result["messages"] == [module["msg"]] and "********" in module["msg"]


def test_the_input_must_name_known_checks() -> None:
    with pytest.raises(AnsibleFilterError, match="unknown input kubelet; allowed: config, registries, wasm"):
        distribution_validation({"kubelet": {}})
    with pytest.raises(AnsibleFilterError, match="must map config, registries and wasm"):
        distribution_validation(["config"])
