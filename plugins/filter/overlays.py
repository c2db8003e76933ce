# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edgefleet.k8s.overlays filter; documentation in overlays.yml beside this file."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_problems import FleetError, Problems
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.overlays import facts_from_hostvars, parse_config, resolve


def overlays(hostvars: t.Any, rules: t.Any = None) -> dict[str, t.Any]:
    """Resolve a cluster's overlays from a host's vars and the fleet's overlay rules."""
    if not isinstance(hostvars, t.Mapping):
        raise AnsibleFilterError(
            f"edgefleet.k8s.overlays: input must be a host's vars (a mapping), got {type(hostvars).__name__}"
        )
    if isinstance(rules, t.Mapping) and "overlays" in rules and "rules" not in rules:
        rules = rules["overlays"]
    problems = Problems()
    config = parse_config(dict(rules) if isinstance(rules, t.Mapping) else rules, problems, "<filter rules>")
    if problems.errors:
        raise AnsibleFilterError(f"edgefleet.k8s.overlays: {FleetError(problems.errors)}")
    try:
        facts = facts_from_hostvars(hostvars)
    except ValueError as exc:
        raise AnsibleFilterError(f"edgefleet.k8s.overlays: {exc}") from None
    result = resolve(config, facts)
    if result.conflicts:
        raise AnsibleFilterError(f"edgefleet.k8s.overlays: cluster {facts.cluster!r}: " + "; ".join(result.conflicts))
    out = {"overlays": result.overlays, "gitops_path": result.gitops_path, "kustomization": result.kustomization}
    if result.helm is not None:
        out["helm"] = result.helm
    return out


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"overlays": overlays}
