# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``datastore_backup`` and ``datastore_restore`` modules' work, so the module files stay thin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.result import finish
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import backup, registry


def backup_argument_spec() -> dict[str, Any]:
    return {
        "distribution": {"type": "str", "required": True, "choices": list(registry.NAMES)},
        "datastore": {"type": "str", "default": "sqlite", "choices": ["sqlite", "etcd", "external"]},
        "backup_dir": {"type": "path"},
        "db_path": {"type": "path"},
        "keep": {"type": "int", "default": backup.DEFAULT_KEEP},
        "label": {"type": "str", "default": ""},
        "timeout": {"type": "float", "default": 30.0},
    }


def restore_argument_spec() -> dict[str, Any]:
    return {
        "distribution": {"type": "str", "required": True, "choices": list(registry.NAMES)},
        "datastore": {"type": "str", "default": "sqlite", "choices": ["sqlite", "etcd"]},
        "backup": {"type": "str"},
        "backup_dir": {"type": "path"},
        "db_path": {"type": "path"},
        "units": {"type": "list", "elements": "str"},
        "manage_units": {"type": "bool", "default": True},
        "rejoin": {"type": "bool", "default": False},
    }


def _runner(module: Any) -> backup.Runner:
    """Commands through ``run_command``; ``systemctl`` resolved on the node's PATH when first needed."""

    def run(argv: Sequence[str]) -> tuple[int, str, str]:
        args = list(argv)
        if args and args[0] == "systemctl":
            args[0] = module.get_bin_path("systemctl", required=True)
        rc, out, err = module.run_command(args)
        return int(rc), str(out), str(err)

    return run


def run_module(module_class: Any, verb: str) -> None:
    """``verb`` is ``backup`` or ``restore``; ``module_class`` is ``AnsibleModule``, handed in by the
    module so that the module itself imports it (as Ansible's tooling expects of a module)."""
    spec = backup_argument_spec() if verb == "backup" else restore_argument_spec()
    module = module_class(argument_spec=spec, supports_check_mode=True)
    dist = registry.get(module.params["distribution"])
    work = backup.run_backup if verb == "backup" else backup.run_restore
    result = work(dist, module.params, module.check_mode, _runner(module))
    finish(module, result)
