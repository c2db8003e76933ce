# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WASM runtimes: the fleet's `wasm` setting, the node labels of WASM-capable nodes, the RuntimeClass
objects and the containerd drop-in that names the runtimes."""

from __future__ import annotations

import sys
import tomllib
import typing as t
from pathlib import Path

import pytest
import yaml

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import wasm
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_schema import FleetError, build_plan


def fleet(runtimes: t.Any, agent_wasm: t.Any = False) -> dict[str, t.Any]:
    return {
        "defaults": {
            "region": "eu",
            "model": "rpi5",
            "channel": "stable",
            "version": "v1.31.4+k3s1",
            "gitops": {"engine": "none"},
        },
        "sites": [
            {
                "name": "ber-01",
                "wasm": runtimes,
                "nodes": [
                    {"name": "ber-01-s1", "address": "192.0.2.10", "role": "server"},
                    {"name": "ber-01-a1", "address": "192.0.2.11", "role": "agent", "wasm": agent_wasm},
                ],
            }
        ],
    }


def node_vars(plan: dict[str, t.Any], name: str) -> dict[str, t.Any]:
    site = plan["sites"][0]
    node = next(n for n in site["nodes"] if n["name"] == name)
    return {**site["vars"], **node["vars"]}


def test_only_wasm_capable_nodes_carry_the_runtime_labels() -> None:
    plan, _warnings = build_plan([("fleet.yml", fleet(["spin", "wasmtime"]))])
    server, agent = node_vars(plan, "ber-01-s1"), node_vars(plan, "ber-01-a1")
    assert server["edgefleet_wasm_runtimes"] == ["spin", "wasmtime"]
    assert server["edgefleet_node_labels"]["edgefleet.io/wasm-spin"] == "true"
    assert server["edgefleet_node_labels"]["edgefleet.io/wasm-wasmtime"] == "true"
    assert not [k for k in agent["edgefleet_node_labels"] if k.startswith("edgefleet.io/wasm-")]
    assert agent["edgefleet_node_labels"]["edgefleet.io/site"] == "ber-01"  # the identity labels stay


def test_no_wasm_no_labels() -> None:
    doc = fleet(None)
    del doc["sites"][0]["wasm"]
    plan, _warnings = build_plan([("fleet.yml", doc)])
    server = node_vars(plan, "ber-01-s1")
    assert "edgefleet_wasm_runtimes" not in server and "edgefleet_registries" not in server
    assert not [k for k in server["edgefleet_node_labels"] if k.startswith("edgefleet.io/wasm-")]


def test_unknown_runtimes_are_refused_with_the_allowed_list() -> None:
    with pytest.raises(FleetError) as info:
        build_plan([("fleet.yml", fleet(["spin", "spinn", "docker", "spin"], agent_wasm="yes"))])
    text = [str(p) for p in info.value.problems]
    assert len(text) == 4, text
    assert any("wasm[1]" in p and "'spinn'" in p and "did you mean 'spin'" in p for p in text)
    assert any("wasm[2]" in p and "allowed: lunatic, slight, spin, wasmedge, wasmer, wasmtime, wws" in p for p in text)
    assert any("wasm[3]" in p and "given twice" in p for p in text)
    assert any("ber-01-a1" in p and "wasm" in p and "true or false" in p for p in text)


def test_a_runtime_class_per_runtime_with_handler_and_node_selector() -> None:
    objects = wasm.runtime_classes(["wasmtime", "spin", "wasmtime"])
    assert [o["metadata"]["name"] for o in objects] == ["spin", "wasmtime"]
    spin = objects[0]
    assert spin["apiVersion"] == "node.k8s.io/v1" and spin["kind"] == "RuntimeClass"
    assert spin["handler"] == "spin"
    assert spin["scheduling"] == {"nodeSelector": {"edgefleet.io/wasm-spin": "true"}}
    # The selector is exactly the label the fleet puts on capable nodes.
    assert spin["scheduling"]["nodeSelector"] == wasm.node_labels(["spin"])


def test_the_manifest_parses_back_to_the_objects() -> None:
    text = wasm.runtime_classes_yaml(["spin", "wasmtime"], "# Managed by edgefleet.k8s (t).\n")
    assert list(yaml.safe_load_all(text)) == wasm.runtime_classes(["spin", "wasmtime"])


def test_containerd_dropin_names_the_runtime_handlers() -> None:
    text = wasm.containerd_runtimes_dropin(["wasmtime", "spin"], "/opt/edgefleet/wasm/bin/", "# header\n")
    runtimes = tomllib.loads(text)["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert runtimes == {
        "spin": {
            "runtime_type": "io.containerd.spin.v2",
            "runtime_path": "/opt/edgefleet/wasm/bin/containerd-shim-spin-v1",
        },
        "wasmtime": {
            "runtime_type": "io.containerd.wasmtime.v2",
            "runtime_path": "/opt/edgefleet/wasm/bin/containerd-shim-wasmtime-v1",
        },
    }
