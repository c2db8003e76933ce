# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole of the ``distribution_config`` module, so the module file stays thin."""

from __future__ import annotations

import os
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.result import finish
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import config, registry

MODULE_NAME = "edgefleet.k8s.distribution_config"


def argument_spec() -> dict[str, Any]:
    return config.argument_spec(registry.NAMES, registry.all_role_names())


def run_module(module_class: Any) -> None:
    """``module_class`` is ``AnsibleModule``, handed in by the module so that the module
    itself imports it (as Ansible's tooling expects of a module)."""
    from ansible.module_utils.basic import missing_required_lib

    module = module_class(argument_spec=argument_spec(), supports_check_mode=True)
    if not config.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    dist = registry.get(module.params["distribution"])
    module.no_log_values.update(config.secret_values(dist, module.params))
    # Root-owned when run as root (the normal case); an unprivileged run owns what it writes.
    owner = (os.geteuid(), os.getegid())
    result = config.apply_config(dist, module.params, module.check_mode, MODULE_NAME, owner=owner)
    finish(module, result)
