# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole of the ``wasm_runtimes`` module: the ``RuntimeClass`` objects of a site's WASM runtimes in the
init server's manifests folder, and the container runtime's files of a WASM-capable node, as the distribution
strategy names them. The module file stays thin."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.result import finish
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import config, registry, runtime_files, wasm
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.strategy import Distribution

MODULE_NAME = "edgefleet.k8s.wasm_runtimes"


def argument_spec() -> dict[str, Any]:
    return {
        "distribution": {"type": "str", "required": True, "choices": list(registry.NAMES)},
        "host": {"type": "str", "default": ""},
        "runtimes": {"type": "list", "elements": "raw", "default": []},
        "runtimes_name": {"type": "str", "default": "edgefleet_wasm_runtimes"},
        "labels": {"type": "dict", "default": {}},
        "runtime_classes": {"type": "bool", "default": False},
        "validate_only": {"type": "bool", "default": False},
        "restart_marker": {"type": "path"},
    }


def plan(params: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """The runtimes whose RuntimeClass objects this node writes (the site's, when ``runtime_classes``), the
    runtimes the node is labelled for, and every problem (each naming the host and the entry)."""
    host = str(params.get("host") or "this host")
    name = str(params.get("runtimes_name") or "edgefleet_wasm_runtimes")
    names, found = wasm.check_runtimes(list(params.get("runtimes") or []))
    problems = [f"{host}: {name}{where}: {message}" for where, message in found]
    classes = names if params.get("runtime_classes") else []
    return classes, wasm.node_runtimes(params.get("labels") or {}), problems


def apply_wasm(
    dist: Distribution,
    params: Mapping[str, Any],
    check_mode: bool,
    root: str = "/",
    owner: tuple[int | None, int | None] = (0, 0),
) -> dict[str, Any]:
    """Write (0600, atomically) each file whose bytes, mode or owner differ, and remove the files of ours no longer
    wanted (a file without our header is never touched). ``restart_required`` only when a file the runtime reads
    at start was written or removed."""
    classes, node_runtimes, problems = plan(params)
    if problems:
        return {
            "failed": True,
            "changed": False,
            "msg": config.problems_message(MODULE_NAME, problems),
            "problems": problems,
        }

    if params.get("validate_only"):
        return {"changed": False, "problems": []}

    header = config.MANAGED_HEADER.format(module=MODULE_NAME)
    wanted = dist.wasm_files(classes, node_runtimes, header)
    manifest = dist.wasm_manifest_path()
    done = runtime_files.sync(
        wanted,
        dist.wasm_managed_paths(),
        lambda before, removed: (before or b"").decode(errors="replace"),
        # The manifest is the deploy controller's; any other file of ours is read by the runtime at start.
        lambda path: path != manifest,
        check_mode,
        root,
        owner,
    )
    restart = runtime_files.restart_required(
        str(params.get("restart_marker") or ""), done.restart, check_mode, root, owner
    )
    return {
        "changed": bool(done.written or done.removed),
        "runtime_classes": [wasm.RUNTIMES[n].class_name for n in classes],
        "node_runtimes": node_runtimes,
        "files": [f.path for f in wanted],
        "written": done.written,
        "removed": done.removed,
        "restart_required": restart,
        "problems": [],
        "diff": done.diff,
    }


def run_module(module_class: Any) -> None:
    """``module_class`` is ``AnsibleModule``, handed in by the module (Ansible's tooling expects the import there)."""
    module = module_class(argument_spec=argument_spec(), supports_check_mode=True)
    dist = registry.get(module.params["distribution"])
    owner = (os.geteuid(), os.getegid())
    finish(module, apply_wasm(dist, module.params, module.check_mode, owner=owner))
