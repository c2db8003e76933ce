# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole of the ``join_token_rotate`` module, so the module file stays thin."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.result import finish
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry, rotation


def argument_spec() -> dict[str, Any]:
    return {
        "distribution": {"type": "str", "required": True, "choices": list(registry.NAMES)},
        "rotation_id": {"type": "str", "required": True},
        "token_file": {"type": "path", "default": ""},
        "new_token": {"type": "str", "default": "", "no_log": True},
        "restart_marker": {"type": "path", "default": ""},
    }


def run_module(module_class: Any) -> None:
    """``module_class`` is ``AnsibleModule``, handed in by the module so that the module itself imports it."""
    module = module_class(argument_spec=argument_spec(), supports_check_mode=True)
    dist = registry.get(module.params["distribution"])
    secrets: set[str] = set()

    def run(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str, str]:
        # The tokens travel in the environment only; they are masked in anything the module returns.
        secrets.update(v for v in env.values() if v)
        module.no_log_values.update(secrets)
        rc, out, err = module.run_command(list(argv), environ_update=dict(env))
        return int(rc), str(out), str(err)

    params = module.params
    result = rotation.rotate(
        dist,
        params["rotation_id"],
        run,
        check_mode=module.check_mode,
        token_file=params["token_file"],
        new_token=params["new_token"],
        restart_marker=params["restart_marker"],
        owner=(os.geteuid(), os.getegid()),
    )
    finish(module, result)
