# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole of the ``registries_config`` module: validate, write the runtime's registry files, say
whether the unit must restart. The module file stays thin."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.result import finish
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import config, registries, registry
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.strategy import Distribution

MODULE_NAME = "edgefleet.k8s.registries_config"


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


def _ours(content: bytes | None) -> bool:
    return content is not None and registries.MANAGED_MARK.encode() in content[:200]


def apply_registries(
    dist: Distribution,
    params: Mapping[str, Any],
    check_mode: bool,
    root: str = "/",
    owner: tuple[int | None, int | None] = (0, 0),
) -> dict[str, Any]:
    """Validate, then write (0600, atomically) each file whose bytes differ and remove the files of ours that
    are no longer wanted. ``restart_required`` only when a file that the runtime reads at start changed."""
    from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import (
        atomic_write,
        needs_write,
        read_bytes,
    )

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

    def at(path: str) -> str:
        return os.path.join(root, path.lstrip("/"))

    uid, gid = owner
    diff: list[dict[str, str]] = []
    restart = False
    changed_paths: list[str] = []
    for item in wanted:
        target = at(item.path)
        if not needs_write(target, item.content, 0o600, uid, gid):
            continue
        before = read_bytes(target)
        changed_paths.append(item.path)
        restart = restart or (item.restart and before != item.content)
        diff.append(
            {
                "before_header": item.path,
                "after_header": item.path,
                "before": "<the file before, not shown: it may hold credentials>\n" if before else "",
                "after": item.shown,
            }
        )
        if not check_mode:
            atomic_write(target, item.content, 0o600, uid, gid, dir_mode=0o700)
    keep = {f.path for f in wanted}
    restart_paths = {p for p in dist.registry_managed_paths(root) if p not in keep}
    for path in sorted(restart_paths):
        target = at(path)
        if not _ours(read_bytes(target)):
            continue
        result["removed"].append(path)
        restart = restart or not path.endswith("/hosts.toml")
        diff.append({"before_header": path, "after_header": path, "before": "<removed>\n", "after": ""})
        if not check_mode:
            os.unlink(target)
            directory = os.path.dirname(target)
            if path.endswith("/hosts.toml") and not os.listdir(directory):
                os.rmdir(directory)
    marker = str(params.get("restart_marker") or "")
    if marker and restart and not check_mode:
        atomic_write(at(marker), config.RESTART_MARKER_TEXT, 0o600, uid, gid, dir_mode=0o700)
    result["changed"] = bool(changed_paths or result["removed"])
    result["written"] = changed_paths
    result["restart_required"] = restart or (bool(marker) and os.path.exists(at(marker)))
    result["diff"] = diff
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
