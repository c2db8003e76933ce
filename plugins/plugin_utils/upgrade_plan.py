# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller-side upgrade plan of ``playbooks/upgrade.yml``: per cluster, the version its nodes run now
(read from the nodes) and the fleet's target, the refusals that stop the run before any host is changed, and
the order: canary clusters first, then waves sized as cumulative percentages of the remaining clusters, each
with a failure budget. Plain data in, JSON-safe dicts out; no Ansible import, so it is unit-tested directly.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.plugin_utils.artifact_sets import artifact_sets

VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+]([0-9A-Za-z.+-]*))?$")
TRAILING_NUMBER = re.compile(r"(\d+)$")

# Outcomes a cluster can end a run with (the summary and the JSON report show them).
OUTCOMES = ("upgraded", "rolled_back", "skipped", "unreachable", "current", "failed")


@dataclass(frozen=True, order=True)
class Version:
    """A release version such as ``v1.36.4+lab``, ``v1.30.2+k3s1`` or ``v1.30.2+k0s.0``, comparable.

    The build suffix orders only by its trailing number (``+k3s1`` < ``+k3s2``); two versions with the same
    major.minor.patch and no such number compare equal unless their text differs, which ``same`` tells."""

    major: int
    minor: int
    patch: int
    build: int
    text: str = field(compare=False)

    @classmethod
    def parse(cls, text: str) -> Version | None:
        token = text.strip().split()[0] if text.strip() else ""
        match = VERSION_RE.match(token)
        if not match:
            return None
        suffix = match.group(4) or ""
        number = TRAILING_NUMBER.search(suffix)
        return cls(int(match[1]), int(match[2]), int(match[3]), int(number[1]) if number else 0, token)

    def same(self, other: Version) -> bool:
        return self.text.lstrip("v") == other.text.lstrip("v")

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class NodeFacts:
    """One node as the plan sees it."""

    name: str
    cluster: str
    role: str  # server | agent
    distribution: str
    target: str
    current: str | None  # None: not read (unreachable, or the binary is missing)
    reachable: bool = True
    groups: tuple[str, ...] = ()
    init_server: bool = False


@dataclass(frozen=True)
class Settings:
    canary_group: str = "canary"
    waves: tuple[int, ...] = (50, 100)
    canary_failure_budget: int = 0
    failure_budget_percent: int = 0
    allow_downgrade: bool = False
    halt_on_rollback: bool = True
    agent_batch: int = 1  # agents of a cluster upgraded at the same time; 0: all of them
    drain: bool = False  # cordon and drain a node that registers a Node object before its restart
    drain_timeout: int = 300


@dataclass
class ClusterPlan:
    name: str
    distribution: str
    servers: list[str]
    agents: list[str]
    before: str  # the version its servers run now (the oldest, when they differ); "" when unknown
    target: str
    action: str  # upgrade | current | skip | unreachable
    reason: str = ""
    wave: int | None = None
    nodes_to_upgrade: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "servers": list(self.servers),
            "agents": list(self.agents),
            "before": self.before,
            "target": self.target,
            "action": self.action,
            "reason": self.reason,
            "wave": self.wave,
            "nodes_to_upgrade": list(self.nodes_to_upgrade),
        }


@dataclass
class Wave:
    index: int
    name: str
    clusters: list[str]
    budget: int
    hosts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "clusters": list(self.clusters),
            "budget": self.budget,
            "hosts": list(self.hosts),
        }


@dataclass
class Plan:
    clusters: dict[str, ClusterPlan]
    waves: list[Wave]
    refusals: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "refusals": list(self.refusals),
            "clusters": {name: c.as_dict() for name, c in sorted(self.clusters.items())},
            "waves": [w.as_dict() for w in self.waves],
        }


def _int(value: Any, key: str, low: int, high: int, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        problems.append(f"{key}: found {value!r}, allowed an integer from {low} to {high}")
        return low
    number = int(value)
    if not low <= number <= high:
        problems.append(f"{key}: found {number}, allowed an integer from {low} to {high}")
        return max(low, min(high, number))
    return number


def _bool(value: Any, key: str, problems: list[str]) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    problems.append(f"{key}: found {value!r}, allowed true or false")
    return False


def settings_from(raw: Mapping[str, Any]) -> tuple[Settings, list[str]]:
    """Settings from the role's variables (``edgefleet_upgrade_*`` without the prefix); every problem listed."""
    problems: list[str] = []
    canary = raw.get("canary_group", "canary")
    if not isinstance(canary, str) or not re.fullmatch(r"[A-Za-z0-9_]*", canary):
        problems.append(f"edgefleet_upgrade_canary_group: found {canary!r}, allowed a group name (letters, digits, _)")
        canary = "canary"
    waves_raw = raw.get("waves", [50, 100])
    waves: list[int] = []
    if not isinstance(waves_raw, Sequence) or isinstance(waves_raw, str) or not waves_raw:
        problems.append(
            f"edgefleet_upgrade_waves: found {waves_raw!r}, allowed a non-empty list of percentages (1-100), "
            "increasing, the last 100"
        )
    else:
        for index, item in enumerate(waves_raw):
            waves.append(_int(item, f"edgefleet_upgrade_waves[{index}]", 1, 100, problems))
        if any(b <= a for a, b in itertools.pairwise(waves)):
            problems.append(
                f"edgefleet_upgrade_waves: found {list(waves_raw)!r}, allowed strictly increasing percentages"
            )
        if waves and waves[-1] != 100:
            problems.append(
                f"edgefleet_upgrade_waves: found last {waves[-1]}, "
                "allowed 100 (the last wave covers every cluster left)"
            )
    settings = Settings(
        canary_group=canary,
        waves=tuple(waves) or (100,),
        canary_failure_budget=_int(
            raw.get("canary_failure_budget", 0), "edgefleet_upgrade_canary_failure_budget", 0, 10_000, problems
        ),
        failure_budget_percent=_int(
            raw.get("failure_budget_percent", 0), "edgefleet_upgrade_failure_budget_percent", 0, 100, problems
        ),
        allow_downgrade=_bool(raw.get("allow_downgrade", False), "edgefleet_upgrade_allow_downgrade", problems),
        halt_on_rollback=_bool(raw.get("halt_on_rollback", True), "edgefleet_upgrade_halt_on_rollback", problems),
        agent_batch=_int(raw.get("agent_batch", 1), "edgefleet_upgrade_agent_batch", 0, 10_000, problems),
        drain=_bool(raw.get("drain", False), "edgefleet_upgrade_drain", problems),
        drain_timeout=_int(raw.get("drain_timeout", 300), "edgefleet_upgrade_drain_timeout", 1, 86_400, problems),
    )
    return settings, problems


def _cluster_plan(name: str, members: list[NodeFacts], settings: Settings, refusals: list[str]) -> ClusterPlan:
    servers = sorted((n for n in members if n.role == "server"), key=lambda n: (not n.init_server, n.name))
    agents = sorted((n for n in members if n.role != "server"), key=lambda n: n.name)
    targets = sorted({n.target for n in members})
    plan = ClusterPlan(
        name=name,
        distribution=members[0].distribution,
        servers=[n.name for n in servers],
        agents=[n.name for n in agents],
        before="",
        target=targets[0] if len(targets) == 1 else ", ".join(targets),
        action="upgrade",
    )
    if len(targets) > 1:
        refusals.append(f"cluster {name}: its nodes have different target versions ({', '.join(targets)})")
        plan.action = "skip"
        return plan
    target = Version.parse(plan.target)
    if target is None:
        refusals.append(f"cluster {name}: target version {plan.target!r} is not a version (vX.Y.Z[+build])")
        plan.action = "skip"
        return plan
    dark = [n.name for n in members if not n.reachable]
    if dark:
        plan.action = "unreachable"
        plan.reason = f"unreachable when versions were read: {', '.join(dark)}"
        return plan
    unknown = [n.name for n in members if n.current is None]
    if unknown:
        plan.action = "skip"
        plan.reason = f"no installed binary on {', '.join(unknown)}: install it with edgefleet.k8s.site first"
        return plan
    current: dict[str, Version] = {}
    for node in members:
        parsed = Version.parse(node.current or "")
        if parsed is None:
            refusals.append(f"cluster {name}: {node.name} reports {node.current!r}, which is not a version")
            plan.action = "skip"
            continue
        current[node.name] = parsed
    if plan.action == "skip":
        return plan
    server_versions = [current[n] for n in plan.servers]
    oldest_server = min(server_versions) if server_versions else min(current.values())
    plan.before = oldest_server.text
    problems_before = len(refusals)
    for agent in plan.agents:
        if server_versions and current[agent] > oldest_server:
            refusals.append(
                f"cluster {name}: agent {agent} runs {current[agent]}, newer than its server's {oldest_server}; "
                "agents must not be newer than their servers"
            )
    for node in members:
        now = current[node.name]
        if target < now and not settings.allow_downgrade:
            refusals.append(
                f"cluster {name}: {node.name} would go from {now} down to {target}, a downgrade; "
                "set edgefleet_upgrade_allow_downgrade=true to force it"
            )
        if target.major != now.major or abs(target.minor - now.minor) > 1:
            refusals.append(
                f"cluster {name}: {node.name} would go from {now} to {target}, a jump of more than one minor "
                "version; go through each minor version in turn"
            )
    if len(refusals) > problems_before:
        plan.action = "skip"
        plan.reason = "refused"
        return plan
    plan.nodes_to_upgrade = [n for n in [*plan.servers, *plan.agents] if not current[n].same(target)]
    if not plan.nodes_to_upgrade:
        plan.action = "current"
        plan.reason = f"every node already runs {target}"
    return plan


def build_plan(nodes: Iterable[NodeFacts], settings: Settings) -> Plan:
    """The plan: refusals (any one stops the run before a host is changed), clusters, waves."""
    by_cluster: dict[str, list[NodeFacts]] = {}
    for node in nodes:
        by_cluster.setdefault(node.cluster, []).append(node)
    refusals: list[str] = []
    clusters = {name: _cluster_plan(name, members, settings, refusals) for name, members in sorted(by_cluster.items())}
    todo = [c for c in clusters.values() if c.action == "upgrade"]
    canary_clusters = sorted(c.name for c in todo if any(settings.canary_group in n.groups for n in by_cluster[c.name]))
    rest = sorted(c.name for c in todo if c.name not in canary_clusters)
    waves: list[Wave] = []
    if canary_clusters:
        waves.append(
            Wave(len(waves), "canary", canary_clusters, min(settings.canary_failure_budget, len(canary_clusters)))
        )
    done = 0
    for number, percent in enumerate(settings.waves, start=1):
        upto = len(rest) if percent >= 100 else math.ceil(len(rest) * percent / 100)
        chunk = rest[done:upto]
        done = max(done, upto)
        if chunk:
            budget = math.floor(len(chunk) * settings.failure_budget_percent / 100)
            waves.append(Wave(len(waves), f"wave {number}", chunk, budget))
    for wave in waves:
        for name in wave.clusters:
            clusters[name].wave = wave.index
            wave.hosts.extend(clusters[name].servers + clusters[name].agents)
    return Plan(clusters, waves, refusals)


def upgrade_bundles(plan: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The bundles the clusters to upgrade need, each once, for the controller to verify before any host changes:
    the distribution and arch of every node at its cluster's target version, with the shims of the WASM runtimes
    its nodes run (``artifact_sets``), and the clusters that need it. A fleet of several arches needs a bundle
    per arch: each is checked, not only the controller's."""
    merged: dict[str, dict[str, Any]] = {}
    for cluster in plan["clusters"].values():
        if cluster["action"] != "upgrade":
            continue
        hosts = [hostvars.get(h) or {} for h in [*cluster["servers"], *cluster["agents"]]]
        for entry in artifact_sets(hosts, version=str(cluster["target"])):
            seen = merged.setdefault(entry["key"], {**entry, "wasm_runtimes": [], "clusters": []})
            seen["wasm_runtimes"] = sorted({*seen["wasm_runtimes"], *entry["wasm_runtimes"]})
            seen["clusters"].append(cluster["name"])
    return list(merged.values())


def node_facts_from_hostvars(hostvars: Mapping[str, Mapping[str, Any]], hosts: Iterable[str]) -> list[NodeFacts]:
    """NodeFacts from Ansible host vars (the fleet inventory contract plus ``edgefleet_upgrade_current``,
    the version the node's binary reports, "" without a binary; a host without it was not reached)."""
    out: list[NodeFacts] = []
    for host in hosts:
        hv = hostvars.get(host) or {}
        current = hv.get("edgefleet_upgrade_current")
        out.append(
            NodeFacts(
                name=host,
                cluster=str(hv.get("edgefleet_cluster", host)),
                role="server" if str(hv.get("edgefleet_node_role", "server")) in ("server", "controller") else "agent",
                distribution=str(hv.get("edgefleet_distribution", "k3s")),
                target=str(hv.get("edgefleet_version", "")),
                current=str(current) if current else None,
                # A host that never set edgefleet_upgrade_current was not reached when the versions were read.
                reachable="edgefleet_upgrade_current" in hv and bool(hv.get("edgefleet_upgrade_reachable", True)),
                groups=tuple(str(g) for g in hv.get("group_names") or ()),
                init_server=host == hv.get("edgefleet_cluster_init_server"),
            )
        )
    return out


def wave_verdict(wave: Mapping[str, Any], outcomes: Mapping[str, str], settings: Settings) -> dict[str, Any]:
    """After a wave: its failed clusters (rolled back, failed, unreachable), whether the rollout halts, and why."""
    clusters = [str(c) for c in wave.get("clusters") or []]
    failed = sorted(c for c in clusters if outcomes.get(c, "failed") in ("rolled_back", "failed", "unreachable"))
    rolled_back = sorted(c for c in clusters if outcomes.get(c) == "rolled_back")
    budget = int(wave.get("budget", 0))
    name = str(wave.get("name", "wave"))
    reasons = []
    if len(failed) > budget:
        reasons.append(f"{name}: {len(failed)} failed cluster(s) ({', '.join(failed)}), over its budget of {budget}")
    if rolled_back and settings.halt_on_rollback:
        reasons.append(f"{name}: rolled back {', '.join(rolled_back)}")
    return {
        "wave": name,
        "failed": failed,
        "budget": budget,
        "halt": bool(reasons),
        "msg": "; ".join(reasons)
        if reasons
        else f"{name}: {len(failed)} failed cluster(s), within its budget of {budget}",
    }


# Node states the upgrade play sets (fact __edgefleet_upgrade_node_state): pending (not touched), upgraded,
# failed (touched, then failed: restart or gate), failed_untouched (its backup failed before it was touched; it is
# not rolled back), rolled_back, rollback_failed.
def wave_outcomes(
    wave: Mapping[str, Any],
    clusters: Mapping[str, Mapping[str, Any]],
    states: Mapping[str, str],
    live: Iterable[str],
) -> dict[str, str]:
    """Each cluster of a wave: upgraded, rolled_back, failed (a rollback that did not bring it back) or unreachable
    (a node of it left the run, so it cannot be rolled back by this run)."""
    alive = set(live)
    out: dict[str, str] = {}
    for name in [str(c) for c in wave.get("clusters") or []]:
        nodes = [str(n) for n in (clusters.get(name) or {}).get("nodes_to_upgrade") or []]
        seen = [states.get(n, "pending") for n in nodes if n in alive]
        if any(n not in alive for n in nodes):
            out[name] = "unreachable"
        elif any(s in ("failed", "rollback_failed") for s in seen):
            out[name] = "failed"
        elif any(s == "rolled_back" for s in seen):
            out[name] = "rolled_back"
        elif seen and all(s == "upgraded" for s in seen):
            out[name] = "upgraded"
        else:
            out[name] = "failed"
    return out


_ACTION_OUTCOME = {"current": "current", "unreachable": "unreachable", "skip": "skipped", "upgrade": "skipped"}


def upgrade_report(plan: Mapping[str, Any], outcomes: Mapping[str, str], halted: str = "") -> dict[str, dict[str, Any]]:
    """Per cluster: outcome, the version before and after, its wave and why (for the summary and JSON report)."""
    report: dict[str, dict[str, Any]] = {}
    waves = {int(w["index"]): str(w["name"]) for w in plan.get("waves") or []}
    for name, cluster in sorted((plan.get("clusters") or {}).items()):
        before = str(cluster.get("before") or "") or None
        target = str(cluster.get("target") or "") or None
        action = str(cluster.get("action"))
        outcome = outcomes.get(name) or _ACTION_OUTCOME.get(action, "skipped")
        reason = str(cluster.get("reason") or "")
        if outcome == "skipped" and action == "upgrade":
            reason = f"not reached: {halted}" if halted else "not reached in this run (prestage only?)"
        after = {"upgraded": target, "current": target, "rolled_back": before}.get(outcome)
        wave = cluster.get("wave")
        report[name] = {
            "outcome": outcome,
            "before": before,
            "after": after,
            "target": target,
            "wave": waves.get(int(wave)) if wave is not None else None,
            "reason": reason or None,
        }
    return report


def plan_line(entry: Mapping[str, Any]) -> str:
    """One line of the plan for the run's output: a cluster or a wave."""
    if "clusters" in entry:
        clusters = ", ".join(str(c) for c in entry.get("clusters") or [])
        return f"{entry.get('name')}: {clusters} (failure budget {entry.get('budget', 0)})"
    before = entry.get("before") or "?"
    line = f"cluster {entry.get('name')}: {entry.get('distribution')} {before} -> {entry.get('target')}: "
    line += str(entry.get("action"))
    return f"{line} ({entry['reason']})" if entry.get("reason") else line
