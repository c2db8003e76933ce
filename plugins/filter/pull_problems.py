# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter pull_problems: a thin adapter over plugin_utils.pull_settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.plugin_utils.pull_settings import pull_problems


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"pull_problems": pull_problems}
