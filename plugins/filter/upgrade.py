# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edgefleet.k8s.upgrade_plan, upgrade_wave_verdict, upgrade_report and
upgrade_plan_line filters; documentation in the .yml files
of the same names beside this file. The logic is in plugin_utils/upgrade_plan.py."""

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
    out["bundles"] = up.upgrade_bundles(out, hostvars)
    return out


def upgrade_wave_verdict(
    wave: t.Any, plan: t.Any, node_states: t.Any, live_hosts: t.Any, settings: t.Any = None
) -> dict[str, t.Any]:
    """After a wave: the outcome of each of its clusters, its failed clusters, and whether the rollout halts."""
    if not all(isinstance(x, t.Mapping) for x in (wave, plan, node_states)) or isinstance(live_hosts, str):
        raise AnsibleFilterError(
            "edgefleet.k8s.upgrade_wave_verdict: input must be a wave of the plan (a mapping), then the plan, the "
            "node states (host name to state) and the hosts still in the play (a list)"
        )
    parsed, problems = _settings(settings, "upgrade_wave_verdict")
    if problems:
        raise AnsibleFilterError("edgefleet.k8s.upgrade_wave_verdict: " + "; ".join(problems))
    outcomes = up.wave_outcomes(
        wave, plan.get("clusters") or {}, {str(k): str(v) for k, v in node_states.items()}, [str(h) for h in live_hosts]
    )
    return {**up.wave_verdict(wave, outcomes, parsed), "outcomes": outcomes}


def upgrade_report(plan: t.Any, outcomes: t.Any, halted: t.Any = "") -> dict[str, t.Any]:
    """Per cluster: outcome, versions before and after, wave and reason."""
    if not isinstance(plan, t.Mapping) or not isinstance(outcomes, t.Mapping):
        raise AnsibleFilterError("edgefleet.k8s.upgrade_report: input must be the plan and outcomes (mappings)")
    return up.upgrade_report(plan, {str(k): str(v) for k, v in outcomes.items()}, str(halted or ""))


def upgrade_plan_line(entry: t.Any) -> str:
    """One line of the plan (a cluster or a wave) for the run's output."""
    if not isinstance(entry, t.Mapping):
        raise AnsibleFilterError("edgefleet.k8s.upgrade_plan_line: input must be a cluster or a wave of the plan")
    return up.plan_line(entry)


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {
            "upgrade_plan": upgrade_plan,
            "upgrade_wave_verdict": upgrade_wave_verdict,
            "upgrade_report": upgrade_report,
            "upgrade_plan_line": upgrade_plan_line,
        }
