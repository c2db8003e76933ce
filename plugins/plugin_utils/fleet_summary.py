# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-cluster summary rows from the per-node ``edgefleet_verify`` facts (used by the fleet_summary callback)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


@dataclass
class ClusterRow:
    cluster: str
    distribution: str = "-"
    datastore: str = "-"
    servers_ready: int = 0
    servers: int = 0
    agents_ready: int = 0
    agents: int = 0
    gitops: str = "none"
    overlays: list[str] = field(default_factory=list)
    bytes_sent: int | None = None

    @property
    def ok(self) -> bool:
        return self.servers_ready == self.servers and self.agents_ready == self.agents


def node_ready(node: Mapping[str, Any]) -> bool:
    """Unit active and, when the node runs a kubelet, registered as a Node."""
    if not _truthy(node.get("unit_active")):
        return False
    return _truthy(node.get("registered")) or not _truthy(node.get("needs_node", True))


def summarise(nodes: Mapping[str, Mapping[str, Any]], failed: Iterable[str] = ()) -> list[ClusterRow]:
    failed_set = set(failed)
    rows: dict[str, ClusterRow] = {}
    for host in sorted(nodes):
        node = nodes[host]
        name = str(node.get("cluster") or "-")
        row = rows.setdefault(name, ClusterRow(cluster=name))
        version = str(node.get("version") or "")
        row.distribution = f"{node.get('distribution', '-')} {version}".strip()
        row.datastore = str(node.get("datastore") or "-")
        engine = str(node.get("gitops_engine") or "none")
        path = str(node.get("gitops_path") or "")
        row.gitops = engine if engine == "none" or not path else f"{engine} {path}"
        row.overlays = [str(o) for o in node.get("overlays") or []]
        ready = node_ready(node) and host not in failed_set
        if str(node.get("role")) == "server":
            row.servers += 1
            row.servers_ready += int(ready)
        else:
            row.agents += 1
            row.agents_ready += int(ready)
        sent = node.get("artifact_bytes_sent")
        if sent not in (None, "", "None"):
            row.bytes_sent = (row.bytes_sent or 0) + int(sent)
    return [rows[name] for name in sorted(rows)]


_HEADERS = ("cluster", "distribution", "datastore", "servers", "agents", "gitops", "overlays", "bytes sent")


def render_table(rows: Iterable[ClusterRow]) -> str:
    lines: list[tuple[str, ...]] = [_HEADERS]
    for row in rows:
        lines.append(
            (
                row.cluster,
                row.distribution,
                row.datastore,
                f"{row.servers_ready}/{row.servers} ready",
                f"{row.agents_ready}/{row.agents} ready",
                row.gitops,
                ",".join(row.overlays) or "-",
                "-" if row.bytes_sent is None else str(row.bytes_sent),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADERS))]
    out = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
