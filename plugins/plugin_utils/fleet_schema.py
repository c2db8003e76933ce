# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet registry schema: validation of every site and node, and the inventory plan.

Input: registry documents (already parsed YAML/JSON, each with the file it came from).
Output: a plan (plain dicts and lists, JSON-safe, cacheable) of groups and host vars,
or FleetError listing every problem found. See docs/fleet-schema.md.
"""

from __future__ import annotations

import ipaddress
import re
import typing as t

from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import core as _gitops
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_problems import (
    Ctx,
    FleetError,
    Problem,
    Problems,
    did_you_mean,
)
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.overlays import (
    DEFAULT_CONFIG,
    ClusterFacts,
    OverlayConfig,
    derived_groups,
    group_name,
    parse_config,
    resolve,
)

__all__ = ["FleetError", "Problem", "build_plan"]

DISTRIBUTIONS: tuple[str, ...] = registry.NAMES
ARCHES: tuple[str, ...] = ("amd64", "arm64", "armhf")
DATASTORES: tuple[str, ...] = ("sqlite", "etcd", "external")
ENGINES: tuple[str, ...] = ("flux", "argocd", "none")
ROLES: tuple[str, ...] = ("server", "agent")

# Settings that may be given fleet-wide (defaults:) and overridden per site.
SETTING_KEYS: tuple[str, ...] = (
    "region",
    "model",
    "channel",
    "distribution",
    "version",
    "datastore",
    "datastore_endpoint",
    "arch",
    "gitops",
    "labels",
    "vars",
)
DEFAULTS_KEYS: tuple[str, ...] = SETTING_KEYS
SITE_KEYS: tuple[str, ...] = ("name", "nodes", "groups", *SETTING_KEYS)
NODE_KEYS: tuple[str, ...] = ("name", "address", "role", "arch", "labels", "vars")
GITOPS_KEYS: tuple[str, ...] = ("engine", "repo", "branch")
REGISTRY_KEYS: tuple[str, ...] = ("defaults", "overlays", "sites")

# Host vars the plugin publishes; vars: may not set them.
PUBLISHED_VARS = frozenset(
    (
        "ansible_host",
        "edgefleet_cluster",
        "edgefleet_site",
        "edgefleet_region",
        "edgefleet_model",
        "edgefleet_channel",
        "edgefleet_labels",
        "edgefleet_site_labels",
        "edgefleet_node_role",
        "edgefleet_arch",
        "edgefleet_distribution",
        "edgefleet_version",
        "edgefleet_datastore",
        "edgefleet_datastore_endpoint",
        "edgefleet_cluster_servers",
        "edgefleet_cluster_agents",
        "edgefleet_cluster_init_server",
        "edgefleet_gitops_engine",
        "edgefleet_gitops_repo",
        "edgefleet_gitops_branch",
        "edgefleet_overlays",
        "edgefleet_gitops_path",
        "edgefleet_kustomization",
        "edgefleet_node_labels",
    )
)

_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NUMERIC_RE = re.compile(r"^[0-9.]+$")  # looks like an IP address but is not one
_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
# Upstream tags carry the distribution in their build metadata (v1.31.4+k3s1,
# v1.31.3+k0s.0), and a version must carry build metadata: it names the build
# the bundle holds. Other build metadata (a site's own build, the lab's
# stand-in "+lab") is allowed; a tag that names the other distribution is not.
_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?\+(?P<build>[0-9A-Za-z.-]+)$")


def _version_ok(distribution: str, version: str) -> bool:
    """A release version with build metadata that does not name another distribution."""
    found = _VERSION_RE.match(version)
    if not found:
        return False
    return not any(found.group("build").startswith(other) for other in DISTRIBUTIONS if other != distribution)


_ENDPOINT_SECRET_RE = re.compile(r"://[^/@]*:[^/@]*@|password=", re.IGNORECASE)

DQLITE_MESSAGE = (
    "found 'dqlite', which no supported distribution offers: K3s's experimental dqlite HA was replaced by "
    "embedded etcd in v1.19.1 with no upgrade path, and K0s never had it. "
    "Use 'sqlite' for a single server, or 'etcd' for HA (an odd number of servers, 3 or more)"
)

Plan = dict[str, t.Any]


def _is_label(value: object) -> bool:
    return isinstance(value, str) and _LABEL_RE.match(value) is not None


def _check_name(ctx: Ctx, key: str, value: object, what: str) -> str | None:
    if _is_label(value):
        return t.cast(str, value)
    ctx.bad_value(
        key, value, f"a DNS-1123 label for the {what}: 1-63 of a-z, 0-9 and '-', starting and ending alphanumeric"
    )
    return None


def _check_node_name(ctx: Ctx, key: str, value: object) -> str | None:
    if (
        isinstance(value, str)
        and len(value) <= 253
        and _SUBDOMAIN_RE.match(value)
        and all(len(part) <= 63 for part in value.split("."))
    ):
        return value
    ctx.bad_value(key, value, "a DNS-1123 subdomain for the node name: a-z, 0-9, '-' and '.', at most 253 characters")
    return None


def _check_address(ctx: Ctx, key: str, value: object) -> str | None:
    if isinstance(value, str) and value:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            if len(value) <= 253 and _SUBDOMAIN_RE.match(value) and not _NUMERIC_RE.match(value):
                return value
    ctx.bad_value(key, value, "an IPv4/IPv6 address or a DNS-1123 host name")
    return None


def _check_choice(ctx: Ctx, key: str, value: object, allowed: tuple[str, ...]) -> str | None:
    if isinstance(value, str) and value in allowed:
        return value
    hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
    ctx.bad_value(key, value, ", ".join(allowed), hint)
    return None


def _check_labels(ctx: Ctx, key: str, value: object) -> dict[str, str] | None:
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.bad_value(key, value, "a mapping of label name to string value")
        return None
    ok = True
    for lkey, lval in value.items():
        if not isinstance(lkey, str) or not _LABEL_KEY_RE.match(lkey):
            ctx.bad_value(
                f"{key}.{lkey}", lkey, "a Kubernetes label name (optional 'prefix/' then 1-63 of A-Z a-z 0-9 - _ .)"
            )
            ok = False
        elif not isinstance(lval, str) or not _LABEL_VALUE_RE.match(lval):
            ctx.bad_value(
                f"{key}.{lkey}", lval, "a string Kubernetes label value (0-63 of A-Z a-z 0-9 - _ .); quote numbers"
            )
            ok = False
    return t.cast(dict[str, str], value) if ok else None


def _check_vars(ctx: Ctx, key: str, value: object) -> dict[str, t.Any] | None:
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.bad_value(key, value, "a mapping of variable name to value")
        return None
    ok = True
    for vkey in value:
        if not isinstance(vkey, str) or not _VAR_RE.match(vkey):
            ctx.bad_value(f"{key}.{vkey}", vkey, "a valid Ansible variable name (letters, digits, '_')")
            ok = False
        elif vkey in PUBLISHED_VARS:
            ctx.error(
                f"{key}.{vkey}", "is published by the fleet plugin and cannot be set through vars:; set the fleet key"
            )
            ok = False
    return t.cast(dict[str, t.Any], value) if ok else None


def _check_settings(ctx: Ctx, data: dict[str, t.Any]) -> dict[str, t.Any]:
    """Validate the setting keys present in `data` (defaults or a site); returns the valid ones."""
    out: dict[str, t.Any] = {}
    for key in ("region", "model", "channel"):
        if key in data:
            name = _check_name(ctx, key, data[key], key)
            if name is not None:
                out[key] = name
    if "distribution" in data:
        value = _check_choice(ctx, "distribution", data["distribution"], DISTRIBUTIONS)
        if value is not None:
            out["distribution"] = value
    if "version" in data:
        value = data["version"]
        if isinstance(value, str) and value:
            out["version"] = value
        else:
            ctx.bad_value("version", value, "a version string such as 'v1.31.4+k3s1' (quote it)")
    if "datastore" in data:
        raw = data["datastore"]
        if isinstance(raw, str) and raw.lower() == "dqlite":
            ctx.error("datastore", DQLITE_MESSAGE)
        elif raw == "kine":
            ctx.bad_value("datastore", raw, ", ".join(DATASTORES), " (K0s's kine over SQLite is written 'sqlite')")
        else:
            value = _check_choice(ctx, "datastore", raw, DATASTORES)
            if value is not None:
                out["datastore"] = value
    if "datastore_endpoint" in data:
        value = data["datastore_endpoint"]
        if not isinstance(value, str) or not value:
            ctx.bad_value("datastore_endpoint", value, "a non-empty string")
        elif _ENDPOINT_SECRET_RE.search(value):
            ctx.error(
                "datastore_endpoint",
                "contains a password; give a reference without credentials (credentials go in ansible-vault)",
            )
        else:
            out["datastore_endpoint"] = value
    if "arch" in data:
        value = _check_choice(ctx, "arch", data["arch"], ARCHES)
        if value is not None:
            out["arch"] = value
    if "gitops" in data:
        gitops = data["gitops"]
        if not isinstance(gitops, dict):
            ctx.bad_value("gitops", gitops, "a mapping with keys " + ", ".join(GITOPS_KEYS))
        else:
            gctx = ctx.sub("gitops.")
            gctx.check_keys(gitops, GITOPS_KEYS, "gitops")
            good: dict[str, str] = {}
            if "engine" in gitops:
                value = _check_choice(gctx, "engine", gitops["engine"], ENGINES)
                if value is not None:
                    good["engine"] = value
            for key in ("repo", "branch"):
                if key in gitops:
                    value = gitops[key]
                    if isinstance(value, str) and value and not _ENDPOINT_SECRET_RE.search(value):
                        good[key] = value
                    else:
                        gctx.bad_value(key, value, "a non-empty string without credentials")
            out["gitops"] = good
    if "labels" in data:
        labels = _check_labels(ctx, "labels", data["labels"])
        if labels is not None:
            out["labels"] = labels
    if "vars" in data:
        variables = _check_vars(ctx, "vars", data["vars"])
        if variables is not None:
            out["vars"] = variables
    return out


class _Registry:
    """Everything gathered from the documents before per-site validation."""

    def __init__(self) -> None:
        self.defaults: dict[str, t.Any] = {}
        self.defaults_file: str | None = None
        self.defaults_given: frozenset[str] = frozenset()
        self.overlays: OverlayConfig = DEFAULT_CONFIG
        self.overlays_file: str | None = None
        self.sites: list[tuple[str, str, t.Any]] = []  # (file, key prefix, raw site)


def _collect(documents: t.Iterable[tuple[str, t.Any]], problems: Problems) -> _Registry:
    reg = _Registry()
    for file, data in documents:
        ctx = Ctx(problems, file)
        if data is None:
            continue
        if isinstance(data, list):
            reg.sites.extend((file, f"sites[{i}].", site) for i, site in enumerate(data))
            continue
        if not isinstance(data, dict):
            ctx.bad_value(
                "(document)", data, "a registry mapping (defaults, overlays, sites), a site or a list of sites"
            )
            continue
        if "name" in data or "nodes" in data:
            reg.sites.append((file, "", data))
            continue
        ctx.check_keys(data, REGISTRY_KEYS, "a registry document")
        if "defaults" in data:
            if reg.defaults_file is not None:
                ctx.error("defaults", f"fleet-wide defaults are already set in {reg.defaults_file}; give them once")
            else:
                reg.defaults_file = file
                raw = data["defaults"]
                if isinstance(raw, dict):
                    given = {str(k) for k in raw}
                    if isinstance(raw.get("gitops"), dict) and "repo" in raw["gitops"]:
                        given.add("gitops.repo")
                    reg.defaults_given = frozenset(given)
                    dctx = ctx.sub("defaults.")
                    dctx.check_keys(raw, DEFAULTS_KEYS, "defaults")
                    reg.defaults = _check_settings(dctx, raw)
                elif raw is not None:
                    ctx.bad_value("defaults", raw, "a mapping with keys " + ", ".join(DEFAULTS_KEYS))
        if "overlays" in data:
            if reg.overlays_file is not None:
                ctx.error("overlays", f"overlay rules are already set in {reg.overlays_file}; give them once")
            else:
                reg.overlays_file = file
                reg.overlays = parse_config(data["overlays"], problems, file)
        if "sites" in data:
            raw_sites = data["sites"]
            if isinstance(raw_sites, list):
                reg.sites.extend((file, f"sites[{i}].", site) for i, site in enumerate(raw_sites))
            elif raw_sites is not None:
                ctx.bad_value("sites", raw_sites, "a list of sites")
    return reg


def build_plan(documents: t.Iterable[tuple[str, t.Any]]) -> tuple[Plan, list[Problem]]:
    """Validate the registry and return (plan, warnings), or raise FleetError with every error.

    The plan is JSON-safe: ``{"groups": [...], "sites": [{"groups", "vars", "nodes": [{"name", "groups", "vars"}]}]}``.
    Host vars of a node are the site's ``vars`` updated with the node's ``vars``; values may be shared.
    """
    problems = Problems()
    reg = _collect(documents, problems)
    seen_sites: dict[str, str] = {}
    seen_nodes: dict[str, str] = {}
    seen_addresses: dict[str, str] = {}
    plan_sites: list[dict[str, t.Any]] = []
    role_groups = [group for d in registry.DISTRIBUTIONS.values() for group in (d.server_group, d.agent_group)]
    all_groups: dict[str, None] = dict.fromkeys(["edgefleet", "servers", "agents", *DISTRIBUTIONS, *role_groups])
    defaults = reg.defaults
    base_gitops = defaults.get("gitops", {})
    base_labels = defaults.get("labels", {})
    base_vars = defaults.get("vars", {})
    for file, prefix, raw in reg.sites:
        site = _build_site(
            Ctx(problems, file, prefix=prefix),
            raw,
            defaults,
            base_gitops,
            base_labels,
            base_vars,
            reg.overlays,
            seen_sites,
            seen_nodes,
            seen_addresses,
            file,
            reg.defaults_given,
        )
        if site is not None:
            plan_sites.append(site)
            all_groups.update(dict.fromkeys(site["groups"]))
    if not reg.sites:
        problems.error(reg.defaults_file or "", None, None, "sites", "the fleet has no sites; give at least one")
    problems.raise_if_errors()
    return {"groups": list(all_groups), "sites": plan_sites}, problems.warnings


def _build_site(
    ctx: Ctx,
    raw: t.Any,
    defaults: dict[str, t.Any],
    base_gitops: dict[str, str],
    base_labels: dict[str, str],
    base_vars: dict[str, t.Any],
    overlay_config: OverlayConfig,
    seen_sites: dict[str, str],
    seen_nodes: dict[str, str],
    seen_addresses: dict[str, str],
    file: str,
    defaults_given: frozenset[str],
) -> dict[str, t.Any] | None:
    if not isinstance(raw, dict):
        ctx.bad_value("", raw, "a site mapping with keys " + ", ".join(SITE_KEYS))
        return None
    errors_before = len(ctx.problems.errors)
    raw_name = raw.get("name")
    name = _check_name(ctx, "name", raw_name, "site (cluster) name")
    if name is not None:
        ctx.site = name
        if name in seen_sites:
            ctx.error("name", f"duplicate site {name!r}; it is also defined in {seen_sites[name]}")
        else:
            seen_sites[name] = file
    elif isinstance(raw_name, str):
        ctx.site = raw_name
    ctx.check_keys(raw, SITE_KEYS, "a site")
    own = _check_settings(ctx, raw)
    settings = {**defaults, **own}
    for key in ("region", "model", "channel", "version"):
        if key not in raw and key not in defaults_given:
            ctx.error(key, "missing; set it on the site or in the fleet defaults")
    distribution = settings.get("distribution", DISTRIBUTIONS[0])
    datastore = settings.get("datastore", "sqlite")
    version = settings.get("version")
    if isinstance(version, str) and distribution in DISTRIBUTIONS and not _version_ok(distribution, version):
        example = registry.get(distribution).version_example
        ctx.bad_value("version", version, f"a {distribution} version such as {example!r}")
    endpoint = settings.get("datastore_endpoint")
    if datastore == "external" and not endpoint and "datastore_endpoint" not in raw:
        ctx.error("datastore_endpoint", "missing; datastore 'external' needs an endpoint reference (no password)")
    gitops = {**base_gitops, **own.get("gitops", {})}
    engine = gitops.get("engine", "flux")
    raw_gitops = raw.get("gitops")
    repo_given = "gitops.repo" in defaults_given or (isinstance(raw_gitops, dict) and "repo" in raw_gitops)
    if engine != "none" and not repo_given:
        ctx.error("gitops.repo", f"missing; the {engine} engine needs the fleet Git repo (or set engine: none)")
    site_arch = settings.get("arch", "amd64")
    site_labels = {**base_labels, **own["labels"]} if own.get("labels") else base_labels
    site_vars = {**base_vars, **own["vars"]} if own.get("vars") else base_vars
    extra_groups: list[str] = []
    if "groups" in raw:
        raw_groups = raw["groups"]
        if isinstance(raw_groups, list) and all(_is_label(g) for g in raw_groups):
            extra_groups = [group_name(g) for g in raw_groups]
        else:
            ctx.bad_value("groups", raw_groups, "a list of DNS-1123 labels (extra groups for the site's nodes)")

    raw_nodes = raw.get("nodes")
    nodes: list[dict[str, t.Any]] = []
    if not isinstance(raw_nodes, list) or not raw_nodes:
        ctx.bad_value("nodes", raw_nodes, "a non-empty list of nodes (name, address, role, arch, labels, vars)")
        raw_nodes = []
    servers: list[str] = []
    agents: list[str] = []
    for index, raw_node in enumerate(raw_nodes):
        node = _build_node(ctx.sub(f"nodes[{index}]."), raw_node, site_arch, file, seen_nodes, seen_addresses)
        if node is not None:
            nodes.append(node)
            (servers if node["role"] == "server" else agents).append(node["name"])

    if raw_nodes and not servers and len(nodes) == len(raw_nodes):
        ctx.error("nodes", "no server: every cluster needs at least one node with role 'server'")
    if len(servers) > 1 and datastore == "sqlite" and distribution in DISTRIBUTIONS:
        ctx.error("datastore", registry.get(distribution).sqlite_servers_problem(servers))
    if datastore == "etcd" and servers and len(servers) % 2 == 0:
        ctx.warning(
            "datastore",
            f"etcd with an even number of servers ({len(servers)}) tolerates no more failures than "
            f"{len(servers) - 1}; use an odd number",
        )

    if len(ctx.problems.errors) != errors_before or name is None:
        return None

    region, model, channel = settings["region"], settings["model"], settings["channel"]
    groups = derived_groups(name, region, model, channel, distribution)
    facts = ClusterFacts(name, region, model, channel, distribution, site_labels, frozenset(groups + extra_groups))
    resolution = resolve(overlay_config, facts)
    for conflict in resolution.conflicts:
        ctx.error("overlays", conflict)
    if resolution.conflicts:
        return None
    # The identity labels every node of the cluster carries (edgefleet.io/site, region, model,
    # channel, overlays), over the fleet's own labels: the distribution roles set them as node
    # labels, so workloads and ApplicationSets can select on them with no API call at all.
    identity = _gitops.node_labels(
        _gitops.ClusterFacts(
            cluster=name,
            path=resolution.gitops_path,
            overlays=tuple(resolution.overlays),
            site=name,
            region=region,
            model=model,
            channel=channel,
        )
    )
    site_vars_out: dict[str, t.Any] = dict(site_vars)
    site_vars_out.update(
        {
            "edgefleet_cluster": name,
            "edgefleet_site": name,
            "edgefleet_region": region,
            "edgefleet_model": model,
            "edgefleet_channel": channel,
            "edgefleet_labels": site_labels,
            "edgefleet_site_labels": site_labels,
            "edgefleet_distribution": distribution,
            "edgefleet_version": version,
            "edgefleet_datastore": datastore,
            "edgefleet_cluster_servers": servers,
            "edgefleet_cluster_agents": agents,
            "edgefleet_cluster_init_server": servers[0],
            "edgefleet_gitops_engine": engine,
            "edgefleet_gitops_repo": gitops.get("repo", ""),
            "edgefleet_gitops_branch": gitops.get("branch", "main"),
            "edgefleet_overlays": resolution.overlays,
            "edgefleet_gitops_path": resolution.gitops_path,
            "edgefleet_kustomization": resolution.kustomization,
            "edgefleet_node_labels": {**site_labels, **identity},
        }
    )
    if datastore == "external":
        site_vars_out["edgefleet_datastore_endpoint"] = endpoint
    strategy = registry.get(distribution)
    server_groups = ["servers", strategy.server_group]
    agent_groups = ["agents", strategy.agent_group]
    for node in nodes:
        node["groups"] = server_groups if node.pop("role") == "server" else agent_groups
        node_labels = node.pop("labels")
        if node_labels:
            node["vars"]["edgefleet_labels"] = {**site_labels, **node_labels}
            node["vars"]["edgefleet_node_labels"] = {**site_labels, **node_labels, **identity}
    return {"groups": groups + extra_groups, "vars": site_vars_out, "nodes": nodes}


def _build_node(
    ctx: Ctx,
    raw: t.Any,
    site_arch: str,
    file: str,
    seen_nodes: dict[str, str],
    seen_addresses: dict[str, str],
) -> dict[str, t.Any] | None:
    if not isinstance(raw, dict):
        ctx.bad_value("", raw, "a node mapping with keys " + ", ".join(NODE_KEYS))
        return None
    errors_before = len(ctx.problems.errors)
    ctx.check_keys(raw, NODE_KEYS, "a node")
    raw_name = raw.get("name")
    name = _check_node_name(ctx, "name", raw_name)
    if name is not None:
        ctx.node = name
        where = f"{file}, site {ctx.site!r}"
        if name in seen_nodes:
            ctx.error("name", f"duplicate node {name!r}; it is also in {seen_nodes[name]}")
        else:
            seen_nodes[name] = where
    elif isinstance(raw_name, str):
        ctx.node = raw_name
    address = _check_address(ctx, "address", raw.get("address"))
    if address is not None:
        if address in seen_addresses:
            ctx.error("address", f"duplicate address {address!r}; it is also used by {seen_addresses[address]}")
        else:
            seen_addresses[address] = f"node {name!r} ({file})"
    role = raw.get("role")
    if role not in ROLES:
        hint = ""
        if role == "controller":
            hint = " (a K0s controller is role 'server')"
        elif role == "worker":
            hint = " (a K0s worker is role 'agent')"
        elif isinstance(role, str):
            hint = did_you_mean(role, ROLES)
        ctx.bad_value("role", role, ", ".join(ROLES), hint)
    arch = site_arch
    if "arch" in raw:
        arch = _check_choice(ctx, "arch", raw["arch"], ARCHES) or site_arch
    labels = _check_labels(ctx, "labels", raw.get("labels"))
    variables = _check_vars(ctx, "vars", raw.get("vars"))
    if len(ctx.problems.errors) != errors_before:
        return None
    node_vars: dict[str, t.Any] = dict(variables) if variables else {}
    node_vars["ansible_host"] = address
    node_vars["edgefleet_node_role"] = role
    node_vars["edgefleet_arch"] = arch
    return {"name": name, "role": role, "labels": labels, "vars": node_vars}
