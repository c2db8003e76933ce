# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters cluster_lost and unreachable_over_budget: thin adapters over plugin_utils.fleet_faults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_faults import cluster_lost, unreachable_over_budget


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"cluster_lost": cluster_lost, "unreachable_over_budget": unreachable_over_budget}
