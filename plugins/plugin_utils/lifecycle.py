# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a decommission or a reset of one named node touches, decided on the controller before any host.

Private to edgefleet.k8s: no stable API. Every problem is listed at once, naming the variable, what was
found and what is allowed; with any problem no host may be touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ACTIONS = ("decommission", "reset")


def _names(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def plan(
    hostvars: Mapping[str, Any], node: Any, confirm: Any, action: str = "decommission", revoke_deploy_key: Any = "auto"
) -> dict[str, Any]:
    """The plan for ``action`` on ``node``: ``problems`` (empty to go on), the node's cluster, the cluster's
    remaining servers, agents and init server once the node is gone, and whether the node held the cluster's
    GitOps deploy key (``auto``: every server does, the Secret being in its datastore)."""
    node = "" if node is None else str(node).strip()
    confirm = "" if confirm is None else str(confirm).strip()
    problems: list[str] = []
    out: dict[str, Any] = {
        "action": action,
        "node": node,
        "cluster": "",
        "role": "",
        "init_server": "",
        "servers": [],
        "agents": [],
        "remaining": [],
        "revoke_deploy_key": False,
        "problems": problems,
    }
    if action not in ACTIONS:
        problems.append(f"action: found {action!r}, allowed: {', '.join(ACTIONS)}")
        return out
    if not node:
        problems.append(
            f"edgefleet_lifecycle_node: empty; name the one node to {action} (its inventory name), e.g. "
            f"-e edgefleet_lifecycle_node=<node> -e edgefleet_lifecycle_confirm=<node>"
        )
        return out
    if confirm != node:
        problems.append(
            f"edgefleet_lifecycle_confirm: found {confirm!r}; set it to {node!r} (the node's name again) to confirm "
            f"the {action}, which cannot be undone"
        )
    hv = hostvars.get(node)
    if not isinstance(hv, Mapping):
        problems.append(f"edgefleet_lifecycle_node: {node!r} is not a host of the inventory")
        return out
    out["role"] = str(hv.get("edgefleet_node_role") or "")
    choice = str(revoke_deploy_key).strip().lower()
    if choice not in {"auto", "true", "false", "yes", "no"}:
        problems.append(
            f"edgefleet_lifecycle_revoke_deploy_key: found {revoke_deploy_key!r}, allowed: auto, true, false"
        )
    out["revoke_deploy_key"] = choice in {"true", "yes"} or (choice == "auto" and out["role"] == "server")
    if action == "reset":
        return out
    cluster = str(hv.get("edgefleet_cluster") or "")
    servers = _names(hv.get("edgefleet_cluster_servers"))
    agents = _names(hv.get("edgefleet_cluster_agents"))
    init = str(hv.get("edgefleet_cluster_init_server") or (servers[0] if servers else ""))
    out["cluster"] = cluster
    if not cluster or not servers:
        problems.append(
            f"{node}: no edgefleet_cluster or edgefleet_cluster_servers in its host vars; decommission takes a node "
            "of a fleet inventory (edgefleet.k8s.fleet)"
        )
        return out
    if node == init:
        problems.append(
            f"{node}: is the init server of cluster {cluster}; first make another server the init server "
            "(edgefleet_cluster_init_server in the fleet file) and run edgefleet.k8s.site, then decommission it"
        )
    remaining_servers = [s for s in servers if s != node]
    if not remaining_servers:
        problems.append(
            f"{node}: is the last server of cluster {cluster}; nothing would remain to remove it from (use "
            "edgefleet.k8s.reset for the node, and retire the cluster)"
        )
    out.update(
        init_server=init,
        servers=remaining_servers,
        agents=[a for a in agents if a != node],
        remaining=remaining_servers + [a for a in agents if a != node],
    )
    return out
