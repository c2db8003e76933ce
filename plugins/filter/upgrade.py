# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edgefleet.k8s.upgrade_plan and upgrade_wave_verdict filters; documentation in upgrade_plan.yml and
upgrade_wave_verdict.yml beside this file. The logic is in plugin_utils/upgrade_plan.py."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.plugin_utils import upgrade_plan as up


def _settings(settings: t.Any, name: str) -> tuple[up.Settings, list[str]]:
    if settings is None:
        settings = {}
    if not isinstance(settings, t.Mapping):
        raise AnsibleFilterError(f"edgefleet.k8s.{name}: settings must be a mapping, got {type(settings).__name__}")
    return up.settings_from(settings)


def upgrade_plan(hostvars: t.Any, hosts: t.Any, settings: t.Any = None) -> dict[str, t.Any]:
    """The upgrade plan of the hosts named: refusals, clusters (before, target, action), waves."""
    if not isinstance(hostvars, t.Mapping):
        raise AnsibleFilterError(
            f"edgefleet.k8s.upgrade_plan: input must be hostvars (a mapping), got {type(hostvars).__name__}"
        )
    if isinstance(hosts, str) or not isinstance(hosts, t.Iterable):
        raise AnsibleFilterError(
            f"edgefleet.k8s.upgrade_plan: hosts must be a list of host names, got {type(hosts).__name__}"
        )
    parsed, problems = _settings(settings, "upgrade_plan")
    plan = up.build_plan(up.node_facts_from_hostvars(hostvars, [str(h) for h in hosts]), parsed)
    out = plan.as_dict()
    out["refusals"] = [*problems, *out["refusals"]]
    return out


def upgrade_wave_verdict(wave: t.Any, outcomes: t.Any, settings: t.Any = None) -> dict[str, t.Any]:
    """After a wave: its failed clusters and whether the rollout halts."""
    if not isinstance(wave, t.Mapping) or not isinstance(outcomes, t.Mapping):
        raise AnsibleFilterError(
            "edgefleet.k8s.upgrade_wave_verdict: input must be a wave of the plan (a mapping) and outcomes "
            "a mapping of cluster name to outcome"
        )
    parsed, problems = _settings(settings, "upgrade_wave_verdict")
    if problems:
        raise AnsibleFilterError("edgefleet.k8s.upgrade_wave_verdict: " + "; ".join(problems))
    return up.wave_verdict(wave, {str(k): str(v) for k, v in outcomes.items()}, parsed)


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"upgrade_plan": upgrade_plan, "upgrade_wave_verdict": upgrade_wave_verdict}
