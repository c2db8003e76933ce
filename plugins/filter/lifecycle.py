# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edgefleet.k8s.lifecycle_plan and clevis_tang_slots filters; documentation in the .yml files of the same
names beside this file.
The logic is in plugin_utils/lifecycle.py."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.module_utils._disk.tang import tang_slots
from ansible_collections.edgefleet.k8s.plugins.plugin_utils import lifecycle


def lifecycle_plan(
    hostvars: t.Any, node: t.Any, confirm: t.Any = "", action: str = "decommission", revoke_deploy_key: t.Any = "auto"
) -> dict[str, t.Any]:
    """The plan of a decommission or reset of one named node: problems, cluster, what remains."""
    if not isinstance(hostvars, t.Mapping):
        raise AnsibleFilterError(
            f"edgefleet.k8s.lifecycle_plan: input must be hostvars (a mapping), got {type(hostvars).__name__}"
        )
    return lifecycle.plan(hostvars, node, confirm, str(action), revoke_deploy_key)


def clevis_tang_slots(listing: t.Any) -> list[int]:
    """The LUKS slots bound through Tang (directly or inside sss), from `clevis luks list` output."""
    return tang_slots(str(listing or ""))


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"lifecycle_plan": lifecycle_plan, "clevis_tang_slots": clevis_tang_slots}
