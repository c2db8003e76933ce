# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's distribution inputs checked on the controller, in the controller's own process.

The distribution role checks every host's inputs before it changes any host: its config, its registry mirrors
and credentials, its WASM runtimes. Each check is a module's ``validate_only`` path, which reads nothing on
any host. Run as three module tasks delegated to the controller, that cost three module runs (a fork, a Python
start, the module's payload) per host on every run. Here the same functions run in the process that
templates the task, with each module's own argument spec applied the way the module applies it (types,
defaults, choices), so the results and the problems are the module's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import (
    config,
    registries,
    registries_module,
    registry,
    wasm_module,
)
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import module as config_module

Check = Callable[[dict[str, Any]], dict[str, Any]]


def _config(params: dict[str, Any]) -> dict[str, Any]:
    dist = registry.get(params["distribution"])
    return config.apply_config(dist, params, False, config_module.MODULE_NAME)


def _registries(params: dict[str, Any]) -> dict[str, Any]:
    return registries_module.apply_registries(registry.get(params["distribution"]), params, False)


def _wasm(params: dict[str, Any]) -> dict[str, Any]:
    return wasm_module.apply_wasm(registry.get(params["distribution"]), params, False)


# name -> (the module's argument spec, its validate_only run, the secrets among its parameters)
CHECKS: dict[str, tuple[Callable[[], dict[str, Any]], Check, Callable[[dict[str, Any]], set[str]]]] = {
    "config": (
        config_module.argument_spec,
        _config,
        lambda p: config.secret_values(registry.get(p["distribution"]), p),
    ),
    "registries": (
        registries_module.argument_spec,
        _registries,
        lambda p: set(registries.secret_values(p.get("auth"))),
    ),
    "wasm": (wasm_module.argument_spec, _wasm, lambda p: set()),
}

MODULES = {
    "config": config_module.MODULE_NAME,
    "registries": registries_module.MODULE_NAME,
    "wasm": wasm_module.MODULE_NAME,
}


def plain(value: Any) -> Any:
    """``value`` as plain dicts, lists, strings and numbers. What a filter receives are the template engine's
    lazy containers, which template their items again on each copy; the argument spec validator deep-copies its
    input, so validating them as they come cost many times what the checks themselves cost."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    return value


def validate_host(inputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Check ``inputs`` (``config``, ``registries``, ``wasm``: each the parameters of that module) as their
    modules' ``validate_only`` runs would. Returns ``messages`` (one per module with problems, the module's own
    failure message, secrets masked), ``warnings``, and from the config check ``distribution``, ``node`` and
    ``token_file`` (None when it failed)."""
    out: dict[str, Any] = {"messages": [], "warnings": [], "distribution": None, "node": None, "token_file": None}
    for name, (spec, check, secrets) in CHECKS.items():
        if name not in inputs:
            continue
        params = {**plain(inputs[name]), "validate_only": True}
        checked = ArgumentSpecValidator(spec()).validate(params)
        hidden: set[str] = set(checked._no_log_values)
        if checked.error_messages:
            problems = [str(e) for e in checked.error_messages]
            out["messages"].append(remove_values(config.problems_message(MODULES[name], problems), hidden))
            continue
        values = checked.validated_parameters
        hidden |= secrets(values)
        result = check(values)
        out["warnings"] += [remove_values(str(w), hidden) for w in result.get("warnings", [])]
        if result.get("failed"):
            out["messages"].append(remove_values(str(result.get("msg", "")), hidden))
        elif name == "config":
            out["distribution"] = result["distribution"]
            out["node"] = result["node"]
            out["token_file"] = result["token_file"]
    return out
