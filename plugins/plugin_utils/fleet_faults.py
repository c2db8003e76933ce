# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which nodes can go on when others of the run are lost, and when the run itself should stop.

Controller-side only. A node is *lost* when it failed or was unreachable earlier in the run (in a
play, ``ansible_play_hosts_all`` minus ``ansible_play_hosts``). Failure is per cluster: a lost node
never stops another cluster. Inside a cluster, the nodes that need a lost server are skipped with
one message that names it, instead of failing one by one against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _names(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        return []
    return [str(v) for v in value]


def cluster_lost(hostvars: Mapping[str, Any], lost: Iterable[str]) -> str:
    """Why this node cannot go on because of lost servers of its own cluster, or ``""`` when it can.

    ``hostvars`` are the node's host vars (the fleet inventory's contract: ``edgefleet_cluster``,
    ``edgefleet_cluster_servers``, ``edgefleet_cluster_init_server``, ``edgefleet_datastore``).
    The init server hands out the join tokens, so every other node of its cluster needs it. With
    embedded etcd, the servers that remain must also hold a quorum.
    """
    lost_set = set(_names(lost))
    host = str(hostvars.get("inventory_hostname", ""))
    cluster = str(hostvars.get("edgefleet_cluster", "") or "-")
    servers = _names(hostvars.get("edgefleet_cluster_servers"))
    init = str(hostvars.get("edgefleet_cluster_init_server") or (servers[0] if servers else ""))
    if not servers or host in lost_set:
        return ""
    if init and init != host and init in lost_set:
        return (
            f"{host}: skipped, because {init}, the init server of cluster {cluster}, failed or was unreachable "
            "earlier in this run; run again once it is back (the fleet report's retry file lists both)"
        )
    if str(hostvars.get("edgefleet_datastore", "")) == "etcd":
        gone = [s for s in servers if s in lost_set]
        quorum = len(servers) // 2 + 1
        if gone and len(servers) - len(gone) < quorum:
            return (
                f"{host}: skipped, because cluster {cluster} lost its etcd quorum in this run: "
                f"{', '.join(gone)} failed or were unreachable, {len(servers) - len(gone)} of {len(servers)} servers "
                f"remain and {quorum} are needed"
            )
    return ""


def unreachable_over_budget(targeted: Sequence[str], reachable: Iterable[str], percent: float) -> str:
    """The message that stops the run when more of the targeted nodes are lost than ``percent`` allows.

    Many nodes lost at once looks like a problem on the controller's side (its network, its
    credentials, a VPN) rather than at the sites, so the run stops before it changes anything.
    """
    all_hosts = _names(targeted)
    if not all_hosts:
        return ""
    up = set(_names(reachable))
    lost = [h for h in all_hosts if h not in up]
    share = 100.0 * len(lost) / len(all_hosts)
    if share <= float(percent):
        return ""
    shown = ", ".join(lost[:20]) + (f" and {len(lost) - 20} more" if len(lost) > 20 else "")
    return (
        f"{len(lost)} of {len(all_hosts)} nodes ({share:.0f}%) could not be reached: {shown}. That is over the "
        f"fleet's failure budget, edgefleet_max_unreachable_percent={percent:g}, and looks like an outage on the "
        "controller's side, so the run stops here; nothing was changed on any node. Check the controller's "
        "network and credentials, or raise the budget for this run with -e edgefleet_max_unreachable_percent=N."
    )
