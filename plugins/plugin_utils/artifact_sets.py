# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which air-gap bundles a group of hosts needs, worked out on the controller from their host vars.

One entry per distinct (distribution, version, arch), with the WASM runtimes whose shims any of those hosts runs,
so that the controller verifies each bundle once, with every shim it must hold, before any node is touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry, wasm


def host_wasm_runtimes(hostvars: Mapping[str, Any]) -> list[str]:
    """The WASM runtimes of a host: its ``edgefleet_artifacts_wasm_runtimes`` when set, else those its node
    labels name (the fleet's ``edgefleet_node_labels``, or a hand-written inventory's ``edgefleet_labels``)."""
    given = hostvars.get("edgefleet_artifacts_wasm_runtimes")
    if isinstance(given, list):
        return sorted({str(name) for name in given})
    labels = hostvars.get("edgefleet_node_labels") or hostvars.get("edgefleet_labels") or {}
    return wasm.node_runtimes(labels) if isinstance(labels, Mapping) else []


def artifact_sets(hosts: Iterable[Mapping[str, Any]], version: str | None = None) -> list[dict[str, Any]]:
    """The bundles ``hosts`` (their host vars) need, in the order first seen.

    Each host's ``edgefleet_artifacts_<x>`` wins when set (group or host vars), else the fleet's
    ``edgefleet_<x>``; ``version``, when given, is the version of every entry (an upgrade's target). Each entry:
    ``distribution``, ``version``, ``arch``, ``key`` (``<d>/<v>/<a>``, as ``edgefleet_artifacts_bundle_sums_sha256``
    is keyed) and ``wasm_runtimes`` (the union over its hosts, sorted).
    """
    found: dict[tuple[str, str, str], set[str]] = {}
    for hostvars in hosts:
        key = (
            str(hostvars.get("edgefleet_artifacts_distribution") or hostvars.get("edgefleet_distribution") or "")
            or registry.NAMES[0],
            version
            or str(hostvars.get("edgefleet_artifacts_version") or hostvars.get("edgefleet_version") or "")
            or "(no edgefleet_version)",
            str(hostvars.get("edgefleet_artifacts_arch") or hostvars.get("edgefleet_arch") or "") or "amd64",
        )
        found.setdefault(key, set()).update(host_wasm_runtimes(hostvars))
    return [
        {
            "distribution": dist,
            "version": version,
            "arch": arch,
            "key": f"{dist}/{version}/{arch}",
            "wasm_runtimes": sorted(runtimes),
        }
        for (dist, version, arch), runtimes in found.items()
    ]
