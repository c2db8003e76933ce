# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edgefleet.k8s.distribution_facts filter; documentation in distribution_facts.yml beside this file."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.strategy import reported_version as _reported


def distribution_facts(name: t.Any) -> dict[str, t.Any]:
    """The facts of a distribution (paths, units, ports) by its name."""
    try:
        return registry.get(str(name)).facts()
    except KeyError as exc:
        raise AnsibleFilterError(f"edgefleet.k8s.distribution_facts: {exc.args[0]}") from None


def reported_version(output: t.Any) -> str:
    """The version a distribution's binary printed, as the fleet summary shows it."""
    return _reported(str(output or ""))


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"distribution_facts": distribution_facts, "reported_version": reported_version}
