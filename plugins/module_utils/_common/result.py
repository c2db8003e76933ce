# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a module built on a ``run_*`` function hands its result to Ansible, written once."""

from __future__ import annotations

from typing import Any


def finish(module: Any, result: dict[str, Any]) -> None:
    """Warnings as Ansible warnings, the diff only in diff mode, then fail or exit with the result."""
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)
