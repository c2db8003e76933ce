# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a run did to each node of the fleet, per node and per cluster (used by the fleet_summary callback).

A ``RunRecorder`` is fed the run's events (inventory facts of the hosts in the run, the ``edgefleet_verify``
record the verify play sets, changed tasks, failures, unreachable hosts). ``outcomes()`` turns them into one
``NodeOutcome`` per node, ``summarise()`` into one ``ClusterRow`` per cluster; ``render_table()``,
``build_report()``, ``retry_hosts()`` and ``fleet_stats()`` are the table, the JSON report, the retry list and
the small data for ``set_stats``. Only the fields named here leave the run: no other host variable is read.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

SCHEMA_VERSION: Final = 1

State = Literal["ready", "not_ready", "failed", "unreachable", "skipped"]
STATES: Final[tuple[State, ...]] = ("ready", "not_ready", "failed", "unreachable", "skipped")

# Inventory variable for each field of a node; these and nothing else are read from the inventory.
INVENTORY_VARS: Final[Mapping[str, str]] = {
    "cluster": "edgefleet_cluster",
    "role": "edgefleet_node_role",
    "distribution": "edgefleet_distribution",
    "version": "edgefleet_version",
    "datastore": "edgefleet_datastore",
    "gitops_engine": "edgefleet_gitops_engine",
    "gitops_path": "edgefleet_gitops_path",
    "overlays": "edgefleet_overlays",
}

# A failed task's message is kept to this many characters: enough to act on, small enough for a fleet report.
MAX_ERROR_CHARS: Final = 500
# The table names at most this many nodes per cluster; the report and the retry file name them all.
MAX_NAMED_IN_TABLE: Final = 5


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


def _text(value: Any, default: str = "") -> str:
    if value is None:
        return default
    text = str(value)
    return text if text else default


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def node_ready(node: Mapping[str, Any]) -> bool:
    """Unit active and, when the node runs a kubelet, registered as a Node."""
    if not _truthy(node.get("unit_active")):
        return False
    return _truthy(node.get("registered")) or not _truthy(node.get("needs_node", True))


def inventory_record(variables: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a node the inventory knows before any task ran, as plain strings and lists."""
    record: dict[str, Any] = {}
    for key, var in INVENTORY_VARS.items():
        if var not in variables:
            continue
        value = variables[var]
        if key == "overlays":
            record[key] = [str(o) for o in value] if isinstance(value, list | tuple) else []
        elif value is not None:
            record[key] = str(value)
    return record


def error_message(result: Mapping[str, Any]) -> str:
    """One line that says why a task failed or a host was unreachable, from the task's result."""
    msg = _text(result.get("msg")).strip()
    items = result.get("results")
    if isinstance(items, list):
        # A loop fails with a generic message; the first failed item says why.
        for item in items:
            if isinstance(item, Mapping) and item.get("failed"):
                inner = error_message(item)
                if inner:
                    msg = f"{msg}: {inner}" if msg else inner
                break
    stderr = _text(result.get("stderr")).strip()
    if stderr and (not msg or msg == "non-zero return code"):
        last = stderr.splitlines()[-1].strip()
        msg = f"{msg}: {last}" if msg else last
    if not msg and result.get("rc") is not None:
        msg = f"rc={result.get('rc')}"
    msg = " ".join(msg.split())
    if len(msg) > MAX_ERROR_CHARS:
        msg = msg[: MAX_ERROR_CHARS - 3] + "..."
    return msg


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: Literal["failed", "unreachable"]
    task: str
    message: str


@dataclass
class NodeOutcome:
    name: str
    state: State
    cluster: str = "-"
    role: str = "agent"
    distribution: str = "-"
    version: str = ""
    datastore: str = "-"
    gitops_engine: str = "none"
    gitops_path: str = ""
    overlays: list[str] = field(default_factory=list)
    changed_count: int = 0
    changed_tasks: list[str] = field(default_factory=list)
    bytes_sent: int | None = None
    error_task: str | None = None
    error: str | None = None
    # True when the node sent its edgefleet_verify record in this run.
    verified: bool = False

    @property
    def is_server(self) -> bool:
        return self.role == "server"


class RunRecorder:
    """Collects the events of one run, per host, in the order they arrived."""

    def __init__(self) -> None:
        self._seq = 0
        self._inventory: dict[str, dict[str, Any]] = {}
        self._verify: dict[str, tuple[int, dict[str, Any]]] = {}
        self._failed: dict[str, Problem] = {}
        self._unreachable: dict[str, Problem] = {}
        self._changed_count: dict[str, int] = {}
        self._changed_tasks: dict[str, list[str]] = {}
        self._skipped: dict[str, str] = {}
        self._upgrade: dict[str, dict[str, Any]] = {}

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def hosts(self) -> list[str]:
        """The fleet's hosts in this run: from the inventory, plus any host that sent a verify record."""
        return sorted(set(self._inventory) | set(self._verify))

    def has_host(self, host: str) -> bool:
        return host in self._inventory

    def add_host(self, host: str, variables: Mapping[str, Any]) -> None:
        """A fleet host that takes part in the run, with its inventory variables (only INVENTORY_VARS are kept)."""
        self._inventory[host] = inventory_record(variables)

    def verified(self, host: str, record: Mapping[str, Any]) -> None:
        self._verify[host] = (self._next(), dict(record))

    def changed(self, host: str, task: str) -> None:
        self._changed_count[host] = self._changed_count.get(host, 0) + 1
        tasks = self._changed_tasks.setdefault(host, [])
        if task not in tasks:
            tasks.append(task)

    def failed(self, host: str, task: str, message: str) -> None:
        self._failed[host] = Problem(self._next(), "failed", task, message)

    def skipped(self, host: str, reason: str) -> None:
        """The run skipped this node on purpose (its cluster lost a server), with the reason it gave."""
        self._skipped[host] = reason

    def upgrade_report(self, report: Mapping[str, Any]) -> None:
        """The per-cluster result of edgefleet.k8s.upgrade (its fact edgefleet_upgrade_report)."""
        for cluster, record in report.items():
            if isinstance(record, Mapping):
                self._upgrade[str(cluster)] = upgrade_record(record)

    @property
    def upgrade(self) -> dict[str, dict[str, Any]]:
        return dict(self._upgrade)

    def unreachable(self, host: str, task: str, message: str) -> None:
        self._unreachable[host] = Problem(self._next(), "unreachable", task, message)

    def outcomes(
        self, failures: Mapping[str, int] | None = None, dark: Mapping[str, int] | None = None
    ) -> list[NodeOutcome]:
        """One outcome per host. ``failures`` and ``dark`` are Ansible's final per-host counts: a failure
        that a rescue block handled, or an ignored unreachable host, is not counted there and so does not
        make the node failed. Without them, every failure and unreachable event counts."""
        return [self._outcome(host, failures, dark) for host in self.hosts]

    def _outcome(self, host: str, failures: Mapping[str, int] | None, dark: Mapping[str, int] | None) -> NodeOutcome:
        facts: dict[str, Any] = dict(self._inventory.get(host, {}))
        verify = self._verify.get(host)
        if verify is not None:
            facts.update({k: v for k, v in verify[1].items() if v not in (None, "")})
        counted: list[Problem] = []
        fail = self._failed.get(host)
        if fail is not None and (failures is None or failures.get(host, 0) > 0):
            counted.append(fail)
        unreach = self._unreachable.get(host)
        if unreach is not None and (dark is None or dark.get(host, 0) > 0):
            counted.append(unreach)
        problem = max(counted, key=lambda p: p.seq) if counted else None
        # A problem the run recovered from still explains a node that ends not ready.
        latest = max((p for p in (fail, unreach) if p is not None), key=lambda p: p.seq, default=None)

        state: State
        if verify is not None:
            ready = node_ready(verify[1])
            after = problem is not None and problem.seq > verify[0]
            if not ready:
                state = "not_ready"
            elif after and problem is not None:
                state = problem.kind
            else:
                state = "ready"
        elif problem is not None:
            state = problem.kind
        else:
            state = "skipped"

        shown: Problem | None = None
        if state in ("failed", "unreachable"):
            shown = problem
        elif state != "ready" and latest is not None and (verify is None or latest.seq > verify[0]):
            shown = latest
        overlays = facts.get("overlays")
        return NodeOutcome(
            name=host,
            state=state,
            cluster=_text(facts.get("cluster"), "-"),
            role=_text(facts.get("role"), "agent"),
            distribution=_text(facts.get("distribution"), "-"),
            version=_text(facts.get("version")),
            datastore=_text(facts.get("datastore"), "-"),
            gitops_engine=_text(facts.get("gitops_engine"), "none"),
            gitops_path=_text(facts.get("gitops_path")),
            overlays=[str(o) for o in overlays] if isinstance(overlays, list | tuple) else [],
            changed_count=self._changed_count.get(host, 0),
            changed_tasks=list(self._changed_tasks.get(host, [])),
            bytes_sent=_int_or_none(verify[1].get("artifact_bytes_sent")) if verify is not None else None,
            error_task=shown.task if shown is not None else None,
            error=shown.message if shown is not None else self._skipped.get(host) if state == "skipped" else None,
            verified=verify is not None,
        )


@dataclass
class ClusterRow:
    cluster: str
    distribution: str = "-"
    version: str = ""
    datastore: str = "-"
    servers_ready: int = 0
    servers: int = 0
    agents_ready: int = 0
    agents: int = 0
    gitops: str = "none"
    overlays: list[str] = field(default_factory=list)
    bytes_sent: int | None = None
    # Nodes that did not end ready, with their state, in name order.
    not_ready: list[tuple[str, State]] = field(default_factory=list)
    # The result of an upgrade run (edgefleet.k8s.upgrade) for this cluster, else None.
    upgrade: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.servers_ready == self.servers and self.agents_ready == self.agents


UPGRADE_OUTCOMES = ("upgraded", "rolled_back", "failed", "skipped", "unreachable", "current")


def upgrade_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The report's fields of one cluster's upgrade result, and only those."""
    outcome = _text(record.get("outcome"), "skipped")
    return {
        "outcome": outcome if outcome in UPGRADE_OUTCOMES else "failed",
        "before": _text(record.get("before")) or None,
        "after": _text(record.get("after")) or None,
        "target": _text(record.get("target")) or None,
        "wave": _text(record.get("wave")) or None,
        "reason": _text(record.get("reason")) or None,
    }


def summarise(nodes: Iterable[NodeOutcome], upgrade: Mapping[str, Mapping[str, Any]] | None = None) -> list[ClusterRow]:
    """One row per cluster, in cluster name order. Distribution, version, datastore, GitOps and overlays
    come from the last node in name order that reached verify (it reports the installed version), else
    from the last node in name order (the inventory's values)."""
    rows: dict[str, ClusterRow] = {}
    for node in sorted(nodes, key=lambda n: (n.verified, n.name)):
        row = rows.setdefault(node.cluster, ClusterRow(cluster=node.cluster))
        row.distribution = node.distribution
        row.version = node.version
        row.datastore = node.datastore
        engine, path = node.gitops_engine, node.gitops_path
        row.gitops = engine if engine == "none" or not path else f"{engine} {path}"
        row.overlays = list(node.overlays)
        ready = node.state == "ready"
        if node.is_server:
            row.servers += 1
            row.servers_ready += int(ready)
        else:
            row.agents += 1
            row.agents_ready += int(ready)
        if not ready:
            row.not_ready.append((node.name, node.state))
        if node.bytes_sent is not None:
            row.bytes_sent = (row.bytes_sent or 0) + node.bytes_sent
    for row in rows.values():
        row.not_ready.sort()
        if upgrade and row.cluster in upgrade:
            row.upgrade = dict(upgrade[row.cluster])
    return [rows[name] for name in sorted(rows)]


_HEADERS = ("cluster", "distribution", "datastore", "servers", "agents", "gitops", "overlays", "bytes sent")
_NOT_READY_HEADER = "not ready"
_UPGRADE_HEADER = "upgrade"


def upgrade_cell(upgrade: Mapping[str, Any] | None) -> str:
    """The table's upgrade cell: outcome, then the versions before and after."""
    if not upgrade:
        return "-"
    outcome = str(upgrade.get("outcome", "")).replace("_", " ")
    before, after = upgrade.get("before") or "?", upgrade.get("after") or "?"
    if outcome in ("upgraded", "rolled back"):
        return f"{outcome} {before} -> {upgrade.get('target') or '?'}" + (
            " -> " + after if outcome == "rolled back" else ""
        )
    if outcome == "current":
        return f"current {after}"
    return f"{outcome} {before}"


def _named(not_ready: list[tuple[str, State]]) -> str:
    if not not_ready:
        return "-"
    shown = [f"{name} ({state.replace('_', ' ')})" for name, state in not_ready[:MAX_NAMED_IN_TABLE]]
    more = len(not_ready) - MAX_NAMED_IN_TABLE
    if more > 0:
        shown.append(f"+{more} more")
    return ", ".join(shown)


def render_table(rows: Iterable[ClusterRow]) -> str:
    """The summary table; a last column names the nodes that are not ready, only when there are any."""
    rows = list(rows)
    named = any(row.not_ready for row in rows)
    upgraded = any(row.upgrade for row in rows)
    headers = (*_HEADERS, *([_UPGRADE_HEADER] if upgraded else []), *([_NOT_READY_HEADER] if named else []))
    lines: list[tuple[str, ...]] = [headers]
    for row in rows:
        cells: tuple[str, ...] = (
            row.cluster,
            f"{row.distribution} {row.version}".strip(),
            row.datastore,
            f"{row.servers_ready}/{row.servers} ready",
            f"{row.agents_ready}/{row.agents} ready",
            row.gitops,
            ",".join(row.overlays) or "-",
            "-" if row.bytes_sent is None else str(row.bytes_sent),
        )
        if upgraded:
            cells = (*cells, upgrade_cell(row.upgrade))
        lines.append((*cells, _named(row.not_ready)) if named else cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    out = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def retry_hosts(nodes: Iterable[NodeOutcome]) -> list[str]:
    """Every node that did not end ready (failed, unreachable, not ready, skipped), in name order."""
    return sorted(node.name for node in nodes if node.state != "ready")


def _counts(nodes: list[NodeOutcome]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(STATES, 0)
    for node in nodes:
        counts[node.state] += 1
    return {"nodes": len(nodes), **counts}


@dataclass(frozen=True)
class RunInfo:
    playbooks: list[str]
    started: str
    finished: str
    ansible_version: str
    check_mode: bool = False


def build_report(
    nodes: Iterable[NodeOutcome], run: RunInfo, upgrade: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON report (docs/fleet-report.md describes every field). ``upgrade``: the per-cluster result of an
    upgrade run, which adds ``upgrade`` to each cluster (null for a cluster it does not name)."""
    nodes = sorted(nodes, key=lambda n: n.name)
    clusters = []
    for row in summarise(nodes, upgrade):
        members = [n for n in nodes if n.cluster == row.cluster]
        clusters.append(
            {
                "name": row.cluster,
                "ok": row.ok,
                "distribution": row.distribution,
                "version": row.version or None,
                "datastore": row.datastore,
                "gitops": row.gitops,
                "overlays": row.overlays,
                "servers": {"ready": row.servers_ready, "total": row.servers},
                "agents": {"ready": row.agents_ready, "total": row.agents},
                "bytes_sent": row.bytes_sent,
                "states": {k: v for k, v in _counts(members).items() if k != "nodes"},
                "nodes": [n.name for n in members],
                "not_ready": [entry[0] for entry in row.not_ready],
                **({"upgrade": row.upgrade} if upgrade else {}),
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "playbooks": list(run.playbooks),
            "started": run.started,
            "finished": run.finished,
            "ansible_version": run.ansible_version,
            "check_mode": run.check_mode,
        },
        "totals": {"clusters": len(clusters), **_counts(nodes)},
        "retry": retry_hosts(nodes),
        "clusters": clusters,
        "nodes": [
            {
                "name": n.name,
                "cluster": n.cluster,
                "role": n.role,
                "state": n.state,
                "distribution": n.distribution,
                "version": n.version or None,
                "changed": {"count": n.changed_count, "tasks": list(n.changed_tasks)},
                "bytes_sent": n.bytes_sent,
                "error": None if n.error is None else {"task": n.error_task, "message": n.error},
            }
            for n in nodes
        ],
    }


def fleet_stats(nodes: Iterable[NodeOutcome]) -> dict[str, Any]:
    """The small summary for ``set_stats`` (AWX/AAP job artifacts): counts per cluster and the nodes to retry."""
    nodes = list(nodes)
    return {
        "schema_version": SCHEMA_VERSION,
        "ok": all(node.state == "ready" for node in nodes),
        "clusters": {
            row.cluster: {
                "servers_ready": row.servers_ready,
                "servers": row.servers,
                "agents_ready": row.agents_ready,
                "agents": row.agents,
            }
            for row in summarise(nodes)
        },
        "retry": retry_hosts(nodes),
    }


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename, so a reader
    sees the old file or the new one, never a part."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".edgefleet-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def retry_file_text(hosts: Iterable[str]) -> str:
    """Ansible's ``--limit @file`` format: one host name a line."""
    return "".join(f"{host}\n" for host in hosts)


def stats_from_hostvars(hostvars: Mapping[str, Mapping[str, Any]], hosts: Iterable[str]) -> dict[str, Any]:
    """``fleet_stats()`` from inside a play, where only host vars are known: a node that set its
    ``edgefleet_verify`` record is ready or not ready by it; one that did not (it failed, was unreachable or
    never reached verify) is to retry."""
    run = RunRecorder()
    for host in hosts:
        variables = hostvars[host]
        run.add_host(host, {var: variables[var] for var in INVENTORY_VARS.values() if var in variables})
        record = variables.get("edgefleet_verify")
        if isinstance(record, Mapping):
            run.verified(host, record)
    return fleet_stats(run.outcomes())
