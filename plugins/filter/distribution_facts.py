# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edgefleet.k8s.distribution_facts filter; documentation in distribution_facts.yml beside this file."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import config, registry
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.strategy import reported_version as _reported
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.distribution_validation import validate_host


def distribution_facts(name: t.Any) -> dict[str, t.Any]:
    """The facts of a distribution (paths, units, ports) by its name."""
    try:
        return registry.get(str(name)).facts()
    except KeyError as exc:
        raise AnsibleFilterError(f"edgefleet.k8s.distribution_facts: {exc.args[0]}") from None


def reported_version(output: t.Any) -> str:
    """The version a distribution's binary printed, as the fleet summary shows it."""
    return _reported(str(output or ""))


def distribution_node(hostvars: t.Any) -> dict[str, t.Any]:
    """What the distribution layer decides for one node (unit, registration, token flow), from its host vars."""
    if not isinstance(hostvars, t.Mapping):
        raise AnsibleFilterError(
            f"edgefleet.k8s.distribution_node: input must be a host's vars (a mapping), got {type(hostvars).__name__}"
        )
    try:
        dist = registry.get(str(hostvars.get("edgefleet_distribution", registry.NAMES[0])))
    except KeyError as exc:
        raise AnsibleFilterError(f"edgefleet.k8s.distribution_node: {exc.args[0]}") from None
    host = str(hostvars.get("inventory_hostname", ""))
    servers = list(hostvars.get("edgefleet_cluster_servers") or [host])
    params = {
        "host": host,
        "role": str(hostvars.get("edgefleet_node_role", "server")),
        "datastore": str(hostvars.get("edgefleet_datastore", "sqlite")),
        "cluster_servers": servers,
        "cluster_agents": list(hostvars.get("edgefleet_cluster_agents") or []),
        "init_server": host == str(hostvars.get("edgefleet_cluster_init_server", servers[0])),
        "node_settings": False,
    }
    req = config.request_from_params(dist, params)
    return config.node_facts(dist, req, config.plan_config(dist, req, str(params["role"])))


def distribution_validation(inputs: t.Any) -> dict[str, t.Any]:
    """A host's distribution inputs checked as the modules' validate_only runs check them; warnings are shown."""
    if not isinstance(inputs, t.Mapping) or not all(isinstance(v, t.Mapping) for v in inputs.values()):
        raise AnsibleFilterError(
            "edgefleet.k8s.distribution_validation: input must map config, registries and wasm to the parameters of "
            f"their modules, got {type(inputs).__name__}"
        )
    unknown = sorted(set(inputs) - {"config", "registries", "wasm"})
    if unknown:
        raise AnsibleFilterError(
            f"edgefleet.k8s.distribution_validation: unknown input {', '.join(unknown)}; "
            "allowed: config, registries, wasm"
        )
    result = validate_host(inputs)
    for warning in result["warnings"]:
        Display().warning(warning)
    return result


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {
            "distribution_facts": distribution_facts,
            "distribution_node": distribution_node,
            "distribution_validation": distribution_validation,
            "reported_version": reported_version,
        }
