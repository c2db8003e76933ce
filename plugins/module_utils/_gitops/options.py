# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of the three GitOps modules, with their defaults, written once.

``gitops_deploy_key``, ``gitops_bundle_info`` and ``gitops_registration`` pass these
specs to ``AnsibleModule``; the runners in ``module.py`` fill the same defaults in with
:func:`complete` when they are called without Ansible (unit and integration tests).
The ``flux`` and ``argocd`` suboptions are built from the fields of
:class:`~.core.FluxSettings` and :class:`~.core.ArgoSettings`, so their defaults live
in those dataclasses only. Each module's DOCUMENTATION repeats these defaults for
``ansible-doc``; a unit test checks that it matches this file option by option.

A few defaults depend on something else, and are documented as such:

- ``""`` for ``path``, ``site``, ``key_comment`` / ``comment``: derived from the
  cluster name (``clusters/<cluster>``, the cluster, ``edgefleet-<cluster>``);
- ``""`` for ``manifests_dir``: the distribution's folder (:data:`~.core.MANIFEST_DIRS`);
- ``[]`` for ``components`` / ``engine_components``: the engine's default set
  (:data:`~.core.ENGINE_TABLE`);
- ``""`` for ``helm.chart``: no Helm layering (the Kustomize path only);
- ``""`` for any other string or path: not set.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.core import (
    AGENT_MODES,
    DEFAULT_BRANCH,
    DELIVERIES,
    DISTRIBUTIONS,
    ENGINE_TABLE,
    ENGINES,
    ArgoSettings,
    FluxSettings,
)
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.helm import DEFAULT_NAMESPACE, DEFAULT_RELEASE

# Suboptions with a fixed set of values; every other field accepts any value of its type.
_CHOICES: dict[str, dict[str, tuple[str, ...]]] = {"argocd": {"agent_mode": AGENT_MODES}}


def settings_spec(engine: str, settings: type[FluxSettings] | type[ArgoSettings]) -> dict[str, Any]:
    """The suboptions of one engine's settings: one per dataclass field, its default the field's default."""
    spec: dict[str, Any] = {}
    for item in dataclasses.fields(settings):
        # with postponed annotations the field type is its name: "str", "bool" or "int"
        entry: dict[str, Any] = {"type": str(item.type), "default": item.default}
        choices = _CHOICES.get(engine, {}).get(item.name)
        if choices:
            entry["choices"] = list(choices)
        spec[item.name] = entry
    return spec


DEPLOY_KEY: dict[str, Any] = {
    "cluster": {"type": "str", "required": True},
    "repo_url": {"type": "str", "default": ""},
    "path": {"type": "path", "default": ""},
    "private_key": {"type": "str", "default": "", "no_log": True},
    "comment": {"type": "str", "default": ""},
    "rotation_id": {"type": "str", "default": ""},
}

BUNDLE_INFO: dict[str, Any] = {
    "engine": {"type": "str", "required": True, "choices": list(ENGINES)},
    "root": {"type": "path", "default": ""},
    "version": {"type": "str", "default": ""},
    "components": {"type": "list", "elements": "str", "default": []},
}

REGISTRATION: dict[str, Any] = {
    "engine": {"type": "str", "required": True, "choices": list(ENGINES)},
    "cluster": {"type": "str", "required": True},
    "repo_url": {"type": "str", "required": True},
    "path": {"type": "str", "default": ""},
    "overlays": {"type": "list", "elements": "str", "default": []},
    "site": {"type": "str", "default": ""},
    "region": {"type": "str", "default": ""},
    "model": {"type": "str", "default": ""},
    "channel": {"type": "str", "default": ""},
    "branch": {"type": "str", "default": DEFAULT_BRANCH},
    "known_hosts": {"type": "str", "default": ""},
    "deploy_key": {"type": "str", "default": "", "no_log": True},
    "deploy_key_public": {"type": "str", "default": "", "no_log": False},  # a public key, shown on purpose
    "deploy_key_path": {"type": "path", "default": "", "no_log": False},
    "key_comment": {"type": "str", "default": ""},
    "distribution": {"type": "str", "choices": list(DISTRIBUTIONS), "default": "k3s"},
    "delivery": {"type": "str", "choices": list(DELIVERIES), "default": "manifests"},
    "manifests_dir": {"type": "path", "default": ""},
    "engine_bundle": {"type": "path", "default": ""},
    "engine_components": {"type": "list", "elements": "str", "default": []},
    "engine_files": {"type": "dict", "default": {}},
    "engine_sums": {"type": "dict", "default": {}},
    "engine_images": {"type": "list", "elements": "str", "default": []},
    **{
        name: {"type": "dict", "default": {}, "options": settings_spec(name, row.settings)}
        for name, row in ENGINE_TABLE.items()
    },
    "helm": {
        "type": "dict",
        "default": {},
        "options": {
            "chart": {"type": "str", "default": ""},
            "release": {"type": "str", "default": DEFAULT_RELEASE},
            "namespace": {"type": "str", "default": DEFAULT_NAMESPACE},
            "layers": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "name": {"type": "str", "required": True},
                    "slot": {"type": "str", "default": ""},
                    "file": {"type": "str", "required": True},
                    "values": {"type": "dict", "default": {}},
                },
            },
        },
    },
    "kubeconfig": {"type": "path", "default": ""},
    "context": {"type": "str", "default": ""},
    "nodes": {"type": "list", "elements": "str", "default": []},
    "wait": {"type": "bool", "default": False},
    "wait_timeout": {"type": "int", "default": 300},
}

SPECS: dict[str, dict[str, Any]] = {
    "gitops_deploy_key": DEPLOY_KEY,
    "gitops_bundle_info": BUNDLE_INFO,
    "gitops_registration": REGISTRATION,
}


def complete(spec: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with every option the spec defaults that is missing or None set to its default.

    What AnsibleModule does with defaults, for callers without it; dict options with
    suboptions are completed the same way, one level down.
    """
    result = dict(params)
    for name, entry in spec.items():
        if result.get(name) is None and "default" in entry:
            result[name] = copy.deepcopy(entry["default"])
        if "options" in entry and isinstance(result.get(name), dict):
            result[name] = complete(entry["options"], result[name])
    return result
