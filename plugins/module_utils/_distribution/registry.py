# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The known distributions by name: the one place a new strategy is listed.

Imports are static on purpose: Ansible ships to a node only the module_utils a module
imports, so a strategy found by name at run time would be missing there.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k0s import K0S
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k3s import K3S
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.strategy import Distribution

DISTRIBUTIONS: Mapping[str, Distribution] = MappingProxyType({d.name: d for d in (K3S, K0S)})
NAMES: tuple[str, ...] = tuple(DISTRIBUTIONS)


def get(name: str) -> Distribution:
    """The strategy of ``name``; a ``KeyError`` names the allowed ones."""
    try:
        return DISTRIBUTIONS[name]
    except KeyError:
        raise KeyError(f"distribution: found {name!r}; allowed: {', '.join(NAMES)}") from None


def all_role_names() -> list[str]:
    """Every role name any distribution accepts (server, agent, and aliases such as controller)."""
    names: list[str] = []
    for dist in DISTRIBUTIONS.values():
        names.extend(n for n in dist.role_aliases if n not in names)
    return names
