# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The artifact_sets and wasm_node_runtimes filters: which bundles a fleet needs, with which WASM shims."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.filter import artifacts as f


def test_both_filters_are_exported() -> None:
    assert f.FilterModule().filters() == {
        "artifact_sets": f.artifact_sets,
        "wasm_node_runtimes": f.wasm_node_runtimes,
    }


def test_a_node_runs_the_runtimes_its_labels_name_unless_set() -> None:
    labels = {
        "edgefleet.io/wasm-wasmtime": "true",
        "edgefleet.io/wasm-spin": True,
        "edgefleet.io/wasm-wasmedge": "false",
        "edgefleet.io/wasm-nope": "true",
        "edgefleet.io/site": "s1",
    }
    assert f.wasm_node_runtimes({"edgefleet_node_labels": labels}) == ["spin", "wasmtime"]
    # A hand-written inventory's labels, and an explicit list, which wins.
    assert f.wasm_node_runtimes({"edgefleet_labels": {"edgefleet.io/wasm-spin": "true"}}) == ["spin"]
    assert f.wasm_node_runtimes({"edgefleet_node_labels": labels, "edgefleet_artifacts_wasm_runtimes": []}) == []
    assert f.wasm_node_runtimes({}) == []
    with pytest.raises(AnsibleFilterError, match="must be a host's vars"):
        f.wasm_node_runtimes(["not", "a", "mapping"])


def test_each_bundle_once_with_the_union_of_its_hosts_shims() -> None:
    spin = {"edgefleet.io/wasm-spin": "true"}
    hosts = [
        {
            "edgefleet_distribution": "k3s",
            "edgefleet_version": "v1",
            "edgefleet_arch": "arm64",
            "edgefleet_node_labels": spin,
        },
        {
            "edgefleet_distribution": "k3s",
            "edgefleet_version": "v1",
            "edgefleet_arch": "arm64",
            "edgefleet_node_labels": {"edgefleet.io/wasm-wasmtime": "true"},
        },
        {"edgefleet_distribution": "k3s", "edgefleet_version": "v1", "edgefleet_arch": "amd64"},
        # A host's edgefleet_artifacts_<x> wins over the fleet's edgefleet_<x>.
        {
            "edgefleet_distribution": "k3s",
            "edgefleet_artifacts_distribution": "k0s",
            "edgefleet_version": "v2",
            "edgefleet_node_labels": spin,
        },
        {},
    ]
    assert f.artifact_sets(hosts) == [
        {
            "distribution": "k3s",
            "version": "v1",
            "arch": "arm64",
            "key": "k3s/v1/arm64",
            "wasm_runtimes": ["spin", "wasmtime"],
        },
        {"distribution": "k3s", "version": "v1", "arch": "amd64", "key": "k3s/v1/amd64", "wasm_runtimes": []},
        {"distribution": "k0s", "version": "v2", "arch": "amd64", "key": "k0s/v2/amd64", "wasm_runtimes": ["spin"]},
        {
            "distribution": "k3s",
            "version": "(no edgefleet_version)",
            "arch": "amd64",
            "key": "k3s/(no edgefleet_version)/amd64",
            "wasm_runtimes": [],
        },
    ]
    with pytest.raises(AnsibleFilterError, match="list of host vars"):
        f.artifact_sets({"not": "a list"})
