# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edgefleet.k8s.fleet_stats filter; documentation in fleet_stats.yml beside this file."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_summary import stats_from_hostvars


def fleet_stats(hostvars: t.Any, hosts: t.Any) -> dict[str, t.Any]:
    """Per-cluster ready counts and the nodes to retry, small enough for set_stats."""
    if not isinstance(hostvars, t.Mapping):
        raise AnsibleFilterError(
            f"edgefleet.k8s.fleet_stats: input must be hostvars (a mapping), got {type(hostvars).__name__}"
        )
    if isinstance(hosts, str) or not isinstance(hosts, t.Iterable):
        raise AnsibleFilterError(
            f"edgefleet.k8s.fleet_stats: hosts must be a list of host names, got {type(hosts).__name__}"
        )
    return stats_from_hostvars(hostvars, [str(host) for host in hosts])


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"fleet_stats": fleet_stats}
