# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters artifact_sets and wasm_node_runtimes: thin adapters over plugin_utils.artifact_sets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.artifact_sets import artifact_sets as _artifact_sets
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.artifact_sets import host_wasm_runtimes


def artifact_sets(hosts: Any) -> list[dict[str, Any]]:
    if not isinstance(hosts, list) or not all(isinstance(h, Mapping) for h in hosts):
        raise AnsibleFilterError("edgefleet.k8s.artifact_sets: input must be a list of host vars (mappings)")
    return _artifact_sets(hosts)


def wasm_node_runtimes(hostvars: Any) -> list[str]:
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError(
            f"edgefleet.k8s.wasm_node_runtimes: input must be a host's vars (a mapping), got {type(hostvars).__name__}"
        )
    return host_wasm_runtimes(hostvars)


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"artifact_sets": artifact_sets, "wasm_node_runtimes": wasm_node_runtimes}
