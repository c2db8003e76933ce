# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edgefleet.k8s.gitops_gate_refs filter; documentation in gitops_gate_refs.yml beside this file. The logic
is in module_utils/_gitops/core.py, beside the objects the registration writes."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import core


def gitops_gate_refs(engine: t.Any, cluster: t.Any, overrides: t.Any = None) -> list[dict[str, str]]:
    """The registration objects whose presence the upgrade's gate checks, as namespace and kubectl reference."""
    if not isinstance(engine, str) or not isinstance(cluster, str) or not cluster:
        raise AnsibleFilterError(
            "edgefleet.k8s.gitops_gate_refs: input must be the GitOps engine (a string), then the cluster name"
        )
    if overrides is not None and not isinstance(overrides, t.Mapping):
        raise AnsibleFilterError(
            f"edgefleet.k8s.gitops_gate_refs: the engine settings must be a mapping, got {type(overrides).__name__}"
        )
    try:
        return core.gate_refs(engine, cluster, overrides)
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"edgefleet.k8s.gitops_gate_refs: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"gitops_gate_refs": gitops_gate_refs}
