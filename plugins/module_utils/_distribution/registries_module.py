# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole of the ``registries_config`` module: validate, write the runtime's registry files, say
whether the unit must restart. The module file stays thin."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.result import finish
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import (
    config,
    registries,
    registry,
    runtime_files,
)
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.strategy import Distribution

MODULE_NAME = "edgefleet.k8s.registries_config"
_HIDDEN = "<the file before, not shown: it may hold credentials>\n"


def argument_spec() -> dict[str, Any]:
    return {
        "distribution": {"type": "str", "required": True, "choices": list(registry.NAMES)},
        "host": {"type": "str", "default": ""},
        "registries": {"type": "dict", "default": {}},
        "registries_name": {"type": "str", "default": "edgefleet_registries"},
        "auth": {"type": "dict", "default": {}, "no_log": True},
        "auth_name": {"type": "str", "default": "edgefleet_registry_auth"},
        "validate_only": {"type": "bool", "default": False},
        "restart_marker": {"type": "path"},
    }


def plan(dist: Distribution, params: Mapping[str, Any]) -> tuple[registries.RegistrySpec, list[str]]:
    """The validated settings and every problem, each naming the host, the registry and the key."""
    host = str(params.get("host") or "")
    spec, problems = registries.check_settings(
        params.get("registries"),
        str(params.get("registries_name") or "edgefleet_registries"),
        rewrites=dist.registry_rewrites,
        context=host,
        runtime=f"{dist.title}'s containerd",
    )
    problems += registries.check_auth(
        spec, params.get("auth"), str(params.get("auth_name") or "edgefleet_registry_auth"), context=host
    )
    return spec, problems


def apply_registries(
    dist: Distribution,
    params: Mapping[str, Any],
    check_mode: bool,
    root: str = "/",
    owner: tuple[int | None, int | None] = (0, 0),
) -> dict[str, Any]:
    """Validate, then write (0600, atomically) each file whose bytes differ and remove the files of ours that
    are no longer wanted. ``restart_required`` only when a file that the runtime reads at start changed."""
    spec, problems = plan(dist, params)
    result: dict[str, Any] = {"changed": False, "restart_required": False, "files": [], "removed": [], "problems": []}
    if problems:
        return {
            "failed": True,
            "changed": False,
            "msg": config.problems_message(MODULE_NAME, problems),
            "problems": problems,
        }
    header = config.MANAGED_HEADER.format(module=MODULE_NAME)
    wanted = dist.registry_files(spec, header)
    result["files"] = [f.path for f in wanted]
    if params.get("validate_only"):
        return result

    def remove_empty_dir(path: str, target: str) -> None:
        directory = os.path.dirname(target)
        if path.endswith("/hosts.toml") and not os.listdir(directory):
            os.rmdir(directory)

    done = runtime_files.sync(
        wanted,
        dist.registry_managed_paths(root),
        # a registry file may hold credentials: the diff never shows what was there
        lambda before, removed: "<removed>\n" if removed else (_HIDDEN if before else ""),
        # containerd reads a host's hosts.toml on each pull; every other file only at start
        lambda path: not path.endswith("/hosts.toml"),
        check_mode,
        root,
        owner,
        after_removal=remove_empty_dir,
    )
    marker = str(params.get("restart_marker") or "")
    result["changed"] = bool(done.written or done.removed)
    result["written"] = done.written
    result["removed"] = done.removed
    result["restart_required"] = runtime_files.restart_required(marker, done.restart, check_mode, root, owner)
    result["diff"] = done.diff
    return result


def run_module(module_class: Any) -> None:
    """``module_class`` is ``AnsibleModule``, handed in by the module (Ansible's tooling expects the import there)."""
    module = module_class(argument_spec=argument_spec(), supports_check_mode=True)
    if not registries.HAS_YAML:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("PyYAML"))
    dist = registry.get(module.params["distribution"])
    module.no_log_values.update(registries.secret_values(module.params.get("auth")))
    owner = (os.geteuid(), os.getegid())
    finish(module, apply_registries(dist, module.params, module.check_mode, owner=owner))
