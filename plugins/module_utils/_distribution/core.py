# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One model for the Kubernetes distributions we provision: K3s and K0s.

A :class:`Distribution` holds the facts (paths, units, keys, topology rules) and
:func:`plan_config` turns a :class:`ConfigRequest` (inventory contract values plus
user overrides) into the effective config file, the unit's arguments and the
full list of problems. Nothing here touches a host; :func:`inspect_host` and the
token helpers only read. Pure Python apart from PyYAML, unit-tested directly.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import REDACTED, redact
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.merge import (
    as_list,
    canonical,
    merge_layers,
)
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.text import did_you_mean
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import k0s_schema, k3s_flags

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core and python3-yaml
    HAS_YAML = False

ROLES = ("server", "agent")
DATASTORES = ("sqlite", "etcd", "external")
MANAGED_HEADER = "# Managed by edgefleet.k8s ({module}). Local edits are overwritten.\n"

DQLITE_MESSAGE = (
    "dqlite is not a K3s or K0s datastore: K3s dropped its experimental dqlite in v1.19.1 for embedded etcd, "
    "with no upgrade path. Use 'sqlite' for a single server or 'etcd' for HA"
)


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Distribution:
    """The facts of one distribution. K3s and K0s are the two instances below."""

    name: str
    title: str
    binary: str
    config_path: str
    config_dropin_dir: str | None
    data_dir: str
    sqlite_db: str
    etcd_dir: str
    manifests_dir: str
    kubeconfig: str
    server_token_path: str | None
    token_file: str
    agent_token_file: str
    units: Mapping[str, str]
    role_names: Mapping[str, str]
    cis_dir: str
    audit_log: str
    secret_keys: frozenset[str]
    config_mode: int = 0o600
    datastores: tuple[str, ...] = DATASTORES
    max_sqlite_servers: int = 1
    sqlite_label: str = "sqlite"
    extra: Mapping[str, str] = field(default_factory=lambda: _frozen({}))

    def unit(self, role: str) -> str:
        return self.units[normalize_role(role)]

    def role_name(self, role: str) -> str:
        return self.role_names[normalize_role(role)]

    def cis_file(self, name: str) -> str:
        return os.path.join(self.cis_dir, name)

    def as_dict(self) -> dict[str, Any]:
        """The facts a role needs, as plain data (returned by the modules)."""
        return {
            "name": self.name,
            "binary": self.binary,
            "config_path": self.config_path,
            "config_dropin_dir": self.config_dropin_dir,
            "data_dir": self.data_dir,
            "sqlite_db": self.sqlite_db,
            "etcd_dir": self.etcd_dir,
            "manifests_dir": self.manifests_dir,
            "kubeconfig": self.kubeconfig,
            "server_token_path": self.server_token_path,
            "token_file": self.token_file,
            "agent_token_file": self.agent_token_file,
            "units": dict(self.units),
            "cis_dir": self.cis_dir,
            "cis_files": {
                "admission": self.cis_file("psa.yaml"),
                "audit_policy": self.cis_file("audit.yaml"),
                "event_rate_limit": self.cis_file("event-rate-limit.yaml"),
                "encryption": self.cis_file("encryption.yaml"),
            },
            "audit_log": self.audit_log,
        }


K3S = Distribution(
    name="k3s",
    title="K3s",
    binary="/usr/local/bin/k3s",
    config_path="/etc/rancher/k3s/config.yaml",
    config_dropin_dir="/etc/rancher/k3s/config.yaml.d",
    data_dir="/var/lib/rancher/k3s",
    sqlite_db="/var/lib/rancher/k3s/server/db/state.db",
    etcd_dir="/var/lib/rancher/k3s/server/db/etcd",
    manifests_dir="/var/lib/rancher/k3s/server/manifests",
    kubeconfig="/etc/rancher/k3s/k3s.yaml",
    server_token_path="/var/lib/rancher/k3s/server/token",
    token_file="/etc/rancher/k3s/token",
    agent_token_file="/etc/rancher/k3s/token",
    units=_frozen({"server": "k3s.service", "agent": "k3s-agent.service"}),
    role_names=_frozen({"server": "server", "agent": "agent"}),
    cis_dir="/var/lib/rancher/k3s/server",
    audit_log="/var/lib/rancher/k3s/server/logs/audit.log",
    secret_keys=k3s_flags.SECRET_KEYS,
)

K0S = Distribution(
    name="k0s",
    title="K0s",
    binary="/usr/local/bin/k0s",
    config_path="/etc/k0s/k0s.yaml",
    config_dropin_dir=None,
    data_dir="/var/lib/k0s",
    sqlite_db="/var/lib/k0s/db/state.db",
    etcd_dir="/var/lib/k0s/etcd",
    manifests_dir="/var/lib/k0s/manifests",
    kubeconfig="/var/lib/k0s/pki/admin.conf",
    server_token_path=None,
    token_file="/etc/k0s/controller-token",
    agent_token_file="/etc/k0s/worker-token",
    units=_frozen({"server": "k0scontroller.service", "agent": "k0sworker.service"}),
    role_names=_frozen({"server": "controller", "agent": "worker"}),
    cis_dir="/etc/k0s/cis",
    audit_log="/var/lib/k0s/logs/audit.log",
    secret_keys=k0s_schema.SECRET_KEYS,
    sqlite_label="sqlite (kine)",
)

DISTRIBUTIONS: Mapping[str, Distribution] = MappingProxyType({"k3s": K3S, "k0s": K0S})

_ROLE_ALIASES = {"server": "server", "controller": "server", "agent": "agent", "worker": "agent"}


def get(name: str) -> Distribution:
    return DISTRIBUTIONS[name]


def normalize_role(role: str) -> str:
    """``server``/``agent``; K0s's ``controller``/``worker`` are accepted as aliases."""
    return _ROLE_ALIASES.get(role, role)


@dataclass(frozen=True)
class ConfigRequest:
    """What a role asks of a config module for one host."""

    host: str
    role: str
    datastore: str = "sqlite"
    cluster_servers: tuple[str, ...] = ()
    cluster_agents: tuple[str, ...] = ()
    init_server: bool | None = None
    server_url: str | None = None
    datastore_endpoint: str | None = None
    cis: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    overrides_name: str = "overrides"
    path: str | None = None
    token_file: str | None = None

    @property
    def is_init_server(self) -> bool:
        if normalize_role(self.role) != "server":
            return False
        if self.init_server is not None:
            return self.init_server
        return not self.cluster_servers or self.cluster_servers[0] == self.host


@dataclass
class ConfigPlan:
    """The result of planning: the effective config (None when the role has no config
    file, e.g. a K0s worker), the unit and its arguments, and every problem found."""

    distribution: Distribution
    role: str
    config: dict[str, Any] | None
    unit: str
    exec_args: list[str]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------- topology


def check_topology(dist: Distribution, req: ConfigRequest) -> tuple[list[str], list[str]]:
    """Problems and warnings of the cluster shape, common to every distribution."""
    problems: list[str] = []
    warnings: list[str] = []
    host = req.host or "this host"
    role = normalize_role(req.role)
    if role not in ROLES:
        allowed = "server, agent" if dist.name == "k3s" else "server/controller, agent/worker"
        problems.append(f"{host}: edgefleet_node_role is '{req.role}'; allowed: {allowed}")
        return problems, warnings
    datastore = req.datastore
    if datastore.lower() == "dqlite":
        problems.append(f"{host}: edgefleet_datastore is 'dqlite'; {DQLITE_MESSAGE}")
    elif datastore not in dist.datastores:
        problems.append(
            f"{host}: edgefleet_datastore is '{datastore}'; allowed: {', '.join(dist.datastores)}"
            f"{did_you_mean(datastore, dist.datastores)}"
        )
    servers = list(req.cluster_servers)
    if role == "server" and servers and req.host and req.host not in servers:
        problems.append(
            f"{host}: edgefleet_node_role is 'server' but the host is not in edgefleet_cluster_servers "
            f"({', '.join(servers)})"
        )
    if role == "agent" and req.host and req.host in servers:
        problems.append(f"{host}: edgefleet_node_role is 'agent' but the host is listed in edgefleet_cluster_servers")
    if datastore == "sqlite" and len(servers) > dist.max_sqlite_servers:
        problems.append(
            f"{host}: edgefleet_datastore is 'sqlite' but the cluster has {len(servers)} "
            f"{dist.role_names['server']}s ({', '.join(servers)}); {dist.title} {dist.sqlite_label} serves a single "
            f"{dist.role_names['server']} only: use 'etcd' (embedded, HA) or 'external'"
        )
    if datastore == "etcd" and len(servers) > 1 and len(servers) % 2 == 0:
        warnings.append(
            f"{host}: etcd with {len(servers)} servers tolerates no more failures than {len(servers) - 1}; "
            "use an odd number of servers"
        )
    if datastore == "external" and not req.datastore_endpoint:
        problems.append(
            f"{host}: edgefleet_datastore is 'external' but no datastore endpoint is set "
            "(edgefleet_datastore_endpoint / the role's datastore_endpoint variable)"
        )
    if datastore != "external" and req.datastore_endpoint:
        warnings.append(f"{host}: a datastore endpoint is set but edgefleet_datastore is '{datastore}'; it is ignored")
    needs_url = role == "agent" or (role == "server" and not req.is_init_server and datastore == "etcd")
    if dist.name == "k3s" and needs_url and not req.server_url:
        what = "an agent" if role == "agent" else "a joining etcd server"
        problems.append(f"{host}: {what} needs the URL of a server to join (server_url), none was given")
    return problems, warnings


# --------------------------------------------------------------------------- K3s


def k3s_cis_profile(role: str) -> dict[str, Any]:
    """The CIS hardening settings from the K3s hardening guide (v1.29+)."""
    profile: dict[str, Any] = {
        "protect-kernel-defaults": True,
        "kubelet-arg": [
            "streaming-connection-idle-timeout=5m",
            "tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,"
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ],
    }
    if normalize_role(role) == "server":
        profile["secrets-encryption"] = True
        profile["kube-apiserver-arg"] = _apiserver_cis_args(K3S)
        profile["kube-controller-manager-arg"] = ["terminated-pod-gc-threshold=10"]
    return profile


def _apiserver_cis_args(dist: Distribution) -> list[str]:
    return [
        "enable-admission-plugins=NodeRestriction,EventRateLimit",
        f"admission-control-config-file={dist.cis_file('psa.yaml')}",
        f"audit-log-path={dist.audit_log}",
        f"audit-policy-file={dist.cis_file('audit.yaml')}",
        "audit-log-maxage=30",
        "audit-log-maxbackup=10",
        "audit-log-maxsize=100",
        "service-account-extend-token-expiration=false",
    ]


def _k3s_check_layer(layer: Mapping[str, Any], name: str, host: str, role: str, user: bool) -> list[str]:
    problems: list[str] = []
    allowed = k3s_flags.SERVER_KEYS if role == "server" else k3s_flags.AGENT_KEYS
    for key, value in layer.items():
        where = f"{host}: {name} key '{key}'"
        if not isinstance(key, str):
            problems.append(f"{where}: keys must be strings")
            continue
        if key.startswith("-"):
            problems.append(f"{where}: write config keys without dashes ('{key.lstrip('-')}')")
            continue
        if key in k3s_flags.SECRET_KEYS and user:
            problems.append(
                f"{where}: a secret must not be given inline; the role keeps tokens in a 0600 token-file "
                "(set the role's token variable from ansible-vault) and the datastore endpoint in its no_log variable"
            )
            continue
        if key in k3s_flags.MANAGED_KEYS and user:
            problems.append(
                f"{where}: is managed by the role from the inventory (edgefleet_datastore, edgefleet_cluster_servers, "
                "token files); remove it"
            )
            continue
        if key not in allowed:
            if role == "agent" and key in k3s_flags.SERVER_KEYS:
                problems.append(f"{where}: is a K3s server option, not valid on an agent")
            else:
                problems.append(f"{where}: is not a known K3s {role} option{did_you_mean(key, allowed)}")
            continue
        if key in k3s_flags.BOOL_KEYS and not isinstance(value, bool):
            problems.append(f"{where}: must be true or false, found {value!r}")
        elif isinstance(value, Mapping):
            problems.append(f"{where}: must be a string or a list of strings, found a mapping")
        elif isinstance(value, list) and key not in k3s_flags.LIST_KEYS:
            problems.append(f"{where}: takes one value, found a list")
    return problems


def plan_k3s(req: ConfigRequest) -> ConfigPlan:
    dist = K3S
    role = normalize_role(req.role)
    problems, warnings = check_topology(dist, req)
    host = req.host or "this host"
    args = [role]
    path = req.path or dist.config_path
    if path != dist.config_path:
        args.append(f"--config={path}")
    plan = ConfigPlan(dist, role, None, dist.unit(role) if role in ROLES else "", args, problems, warnings)
    if role not in ROLES:
        return plan
    problems.extend(_k3s_check_layer(req.settings, "settings", host, role, user=False))
    problems.extend(_k3s_check_layer(req.overrides, req.overrides_name, host, role, user=True))

    base: dict[str, Any] = {}
    if role == "server":
        base["write-kubeconfig-mode"] = "0600"
    datastore: dict[str, Any] = {}
    if req.token_file:
        datastore["token-file"] = req.token_file
    if role == "agent":
        datastore["server"] = req.server_url
    elif req.datastore == "etcd":
        if req.is_init_server:
            datastore["cluster-init"] = True
        else:
            datastore["server"] = req.server_url
    elif req.datastore == "external":
        datastore["datastore-endpoint"] = req.datastore_endpoint
    layers = [base, k3s_cis_profile(role) if req.cis else {}, datastore, dict(req.settings), dict(req.overrides)]
    config = merge_layers(layers, k3s_flags.ARG_LIST_KEYS)
    plan.config = {k: v for k, v in config.items() if v is not None}
    return plan


# --------------------------------------------------------------------------- K0s


def k0s_cis_profile(dist: Distribution = K0S) -> dict[str, Any]:
    """The K0s equivalent of the K3s CIS profile, through extraArgs."""
    api_args = dict(arg.split("=", 1) for arg in _apiserver_cis_args(dist))
    api_args["encryption-provider-config"] = dist.cis_file("encryption.yaml")
    return {
        "spec": {
            "api": {"extraArgs": api_args},
            "controllerManager": {"extraArgs": {"terminated-pod-gc-threshold": "10"}},
        }
    }


def k0s_sqlite_datasource(dist: Distribution = K0S) -> str:
    return f"sqlite://file:{dist.sqlite_db}?mode=rwc&_journal=WAL&cache=shared"


def _k0s_check_tree(value: Any, path: str, name: str, host: str, user: bool, problems: list[str]) -> None:
    if path not in k0s_schema.SCHEMA:
        return
    known = k0s_schema.SCHEMA[path]
    if not isinstance(value, Mapping):
        problems.append(f"{host}: {name} key '{path or '(top)'}': must be a mapping, found {type(value).__name__}")
        return
    for key, item in value.items():
        child = f"{path}.{key}" if path else str(key)
        where = f"{host}: {name} key '{child}'"
        if user and child in k0s_schema.MANAGED_PATHS:
            problems.append(
                f"{where}: is managed by the role from edgefleet_datastore (and the no_log datastore endpoint); "
                "remove it"
            )
            continue
        if known is not None and key not in known:
            problems.append(f"{where}: is not a known K0s ClusterConfig key{did_you_mean(str(key), known)}")
            continue
        if path in k0s_schema.STRING_MAPS and isinstance(item, (Mapping, list)):
            problems.append(f"{where}: extraArgs values must be strings, found {type(item).__name__}")
        _k0s_check_tree(item, child, name, host, user, problems)


def _k0s_stringify(config: dict[str, Any]) -> dict[str, Any]:
    """k0s reads extraArgs as map[string]string: render every value as a string."""
    for path in k0s_schema.STRING_MAPS:
        node: Any = config
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            for key, value in list(node.items()):
                if isinstance(value, bool):
                    node[key] = "true" if value else "false"
                elif value is not None and not isinstance(value, (dict, list)):
                    node[key] = str(value)
    return config


def plan_k0s(req: ConfigRequest) -> ConfigPlan:
    dist = K0S
    role = normalize_role(req.role)
    problems, warnings = check_topology(dist, req)
    host = req.host or "this host"
    plan = ConfigPlan(dist, role, None, dist.unit(role) if role in ROLES else "", [], problems, warnings)
    if role not in ROLES:
        return plan
    if role == "agent":
        plan.exec_args = ["worker", f"--token-file={req.token_file or dist.agent_token_file}"]
        if req.overrides:
            problems.append(f"{host}: {req.overrides_name}: a K0s worker has no k0s.yaml; set config on the controller")
        return plan
    _k0s_check_tree(dict(req.settings), "", "settings", host, False, problems)
    _k0s_check_tree(dict(req.overrides), "", req.overrides_name, host, True, problems)
    path = req.path or dist.config_path
    single = len(req.cluster_servers) <= 1 and not req.cluster_agents
    plan.exec_args = ["controller", f"--config={path}"]
    if single:
        plan.exec_args.append("--single")
    if not req.is_init_server:
        plan.exec_args.append(f"--token-file={req.token_file or dist.token_file}")

    base: dict[str, Any] = {
        "apiVersion": k0s_schema.API_VERSION,
        "kind": k0s_schema.KIND,
        "metadata": {"name": "k0s"},
        "spec": {"telemetry": {"enabled": False}},
    }
    storage: dict[str, Any]
    if req.datastore == "etcd":
        storage = {"type": "etcd"}
    elif req.datastore == "external":
        storage = {"type": "kine", "kine": {"dataSource": req.datastore_endpoint}}
    else:
        storage = {"type": "kine", "kine": {"dataSource": k0s_sqlite_datasource(dist)}}
    layers = [
        base,
        k0s_cis_profile(dist) if req.cis else {},
        {"spec": {"storage": storage}},
        dict(req.settings),
        dict(req.overrides),
    ]
    plan.config = _k0s_stringify(merge_layers(layers))
    return plan


def plan_config(dist: Distribution, req: ConfigRequest) -> ConfigPlan:
    return plan_k3s(req) if dist.name == "k3s" else plan_k0s(req)


# --------------------------------------------------------------------------- files


def render(dist: Distribution, config: Mapping[str, Any], module: str) -> bytes:
    """The config file's bytes: a header, then YAML with sorted keys (stable output)."""
    body = yaml.safe_dump(dict(config), default_flow_style=False, sort_keys=True)
    return (MANAGED_HEADER.format(module=module) + body).encode()


def parse(content: bytes | None) -> tuple[Any, str | None]:
    """Parse an existing config file: (data, None) or (None, reason)."""
    if content is None:
        return None, None
    try:
        data = yaml.safe_load(content.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return None, f"cannot parse: {exc}"
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return None, f"expected a mapping, found {type(data).__name__}"
    return data, None


def normalized(dist: Distribution, config: Any) -> Any:
    """The form in which two configs with the same effective settings are equal."""
    if dist.name == "k3s":
        return canonical(config, k3s_flags.LIST_KEYS)
    if isinstance(config, dict):
        return _k0s_stringify(copy.deepcopy(config))
    return config


def effective_changed(dist: Distribution, existing: Any, wanted: Mapping[str, Any] | None) -> bool:
    """True when the effective settings differ: key order, formatting and comments don't count."""
    if wanted is None:
        return False
    if existing is None:
        return True
    return bool(normalized(dist, existing) != normalized(dist, dict(wanted)))


def redacted(dist: Distribution, config: Any) -> Any:
    """A copy safe to log and diff: the values of the distribution's secret keys replaced."""
    if config is None:
        return None
    return redact(config, dist.secret_keys)


def redacted_text(dist: Distribution, config: Any) -> str:
    if config is None:
        return ""
    return str(yaml.safe_dump(redacted(dist, config), default_flow_style=False, sort_keys=True))


_CREDENTIALS = re.compile(r"(?P<scheme>[a-z0-9+.-]+://)(?P<cred>[^@/\s]+)@", re.IGNORECASE)


def mask_credentials(text: str) -> str:
    """Hide ``user:password@`` in any URL in ``text`` (for messages)."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)


# --------------------------------------------------------------------------- host state


def datastore_on_disk(dist: Distribution, root: str = "/") -> str:
    """``etcd``, ``sqlite`` or ``none``: what the node's data dir already holds."""

    def there(path: str) -> bool:
        return os.path.exists(os.path.join(root, path.lstrip("/")))

    if there(dist.etcd_dir):
        return "etcd"
    if there(dist.sqlite_db):
        return "sqlite"
    return "none"


def migration(dist: Distribution, on_disk: str, wanted: str, role: str, host: str) -> tuple[str | None, list[str]]:
    """The datastore migration a change implies, or a problem when there is no safe path."""
    if normalize_role(role) != "server" or on_disk == "none" or wanted == "external":
        return None, []
    if on_disk == "sqlite" and wanted == "etcd":
        if dist.name == "k3s":
            return "sqlite-to-etcd", []
        return None, [
            f"{host}: edgefleet_datastore is 'etcd' but {dist.sqlite_db} holds a kine/SQLite cluster; K0s has no "
            "in-place migration from kine to etcd (back up and rebuild the cluster)"
        ]
    if on_disk == "etcd" and wanted == "sqlite":
        return None, [
            f"{host}: edgefleet_datastore is 'sqlite' but {dist.etcd_dir} holds an etcd cluster; there is no supported "
            "way back from etcd to SQLite (keep 'etcd')"
        ]
    return None, []


# --------------------------------------------------------------------------- tokens


def generate_token() -> str:
    """A random cluster token (256 bits, hex)."""
    return secrets.token_hex(32)


def token_bytes(token: str) -> bytes:
    return (token.strip() + "\n").encode()


def plan_token(existing: bytes | None, token: str | None, generate: bool) -> tuple[bytes | None, bool]:
    """The token file content to write (None: leave the file as it is) and whether the
    token value changes (which needs a restart). A token is never compared or logged
    other than here."""
    if token:
        wanted = token_bytes(token)
        if existing is not None and existing.strip() == wanted.strip():
            return wanted, False
        return wanted, existing is not None
    if existing is None and generate:
        return token_bytes(generate_token()), False
    return existing, False


def servers_of(value: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(str(v) for v in (value or ()))


# --------------------------------------------------------------------------- the module's work


def request_from_params(params: Mapping[str, Any]) -> ConfigRequest:
    return ConfigRequest(
        host=str(params.get("host") or ""),
        role=str(params.get("role") or ""),
        datastore=str(params.get("datastore") or "sqlite"),
        cluster_servers=servers_of(params.get("cluster_servers")),
        cluster_agents=servers_of(params.get("cluster_agents")),
        init_server=params.get("init_server"),
        server_url=params.get("server_url") or None,
        datastore_endpoint=params.get("datastore_endpoint") or None,
        cis=bool(params.get("cis", True)),
        settings=params.get("settings") or {},
        overrides=params.get("overrides") or {},
        overrides_name=str(params.get("overrides_name") or "overrides"),
        path=params.get("path") or None,
        token_file=params.get("token_file") or None,
    )


def _needs_token(dist: Distribution, req: ConfigRequest) -> bool:
    """Joining nodes cannot start without a token; the init server can make one."""
    return normalize_role(req.role) == "agent" or not req.is_init_server


def apply_config(
    dist: Distribution,
    params: Mapping[str, Any],
    check_mode: bool,
    module_name: str,
    root: str = "/",
    owner: tuple[int | None, int | None] = (0, 0),
) -> dict[str, Any]:
    """Plan, validate, then (unless check mode) write the config and token files.

    Returns the module result. Every problem is collected before anything is
    written; with problems the result has ``failed`` and nothing was touched.
    """
    from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import (
        atomic_write,
        needs_write,
        read_bytes,
    )

    req = request_from_params(params)
    plan = plan_config(dist, req)
    host = req.host or "this host"
    path = req.path or dist.config_path
    result: dict[str, Any] = {
        "changed": False,
        "restart_required": False,
        "path": path if plan.config is not None else None,
        "config": redacted(dist, plan.config),
        "unit": plan.unit,
        "exec_args": plan.exec_args,
        "token_file": req.token_file,
        "token_changed": False,
        "datastore_on_disk": None,
        "migration": None,
        "warnings": list(plan.warnings),
        "problems": list(plan.problems),
        "distribution": dist.as_dict(),
    }
    if params.get("validate_only"):
        return _failed(module_name, plan.problems, plan.warnings) if plan.problems else result

    problems = list(plan.problems)
    existing_raw = read_bytes(path) if plan.config is not None else None
    existing, parse_error = parse(existing_raw)
    if parse_error:
        result["warnings"].append(f"{host}: {path}: {parse_error}; it is replaced (a copy is kept as {path}.unparsed)")

    on_disk = datastore_on_disk(dist, root)
    result["datastore_on_disk"] = on_disk
    move, move_problems = migration(dist, on_disk, req.datastore, req.role, host)
    result["migration"] = move
    problems.extend(move_problems)

    token_content: bytes | None = None
    token_changed = False
    if req.token_file:
        token_existing = read_bytes(req.token_file)
        token = params.get("token") or None
        generate = bool(params.get("generate_token")) and req.is_init_server
        if token is None and token_existing is None and generate and dist.server_token_path:
            adopted = read_bytes(os.path.join(root, dist.server_token_path.lstrip("/")))
            token = adopted.decode().strip() if adopted else None
        token_content, token_changed = plan_token(token_existing, token, generate)
        if token_content is None and _needs_token(dist, req):
            problems.append(
                f"{host}: token file {req.token_file} does not exist and no token was given; a joining "
                f"{dist.role_name(req.role)} needs the cluster's token (read back from the init server)"
            )
    if problems:
        return _failed(module_name, problems, result["warnings"])

    uid, gid = owner
    diff: list[dict[str, str]] = []
    changed = False
    restart = False
    if plan.config is not None:
        content = render(dist, plan.config, module_name)
        if needs_write(path, content, dist.config_mode, uid, gid):
            changed = True
            diff.append(
                {
                    "before_header": path,
                    "after_header": path,
                    "before": redacted_text(dist, existing) if existing is not None else "",
                    "after": redacted_text(dist, plan.config),
                }
            )
            if not check_mode:
                if parse_error and existing_raw is not None:
                    atomic_write(path + ".unparsed", existing_raw, 0o600, uid, gid)
                atomic_write(path, content, dist.config_mode, uid, gid)
        restart = effective_changed(dist, existing, plan.config)
    if req.token_file and token_content is not None:
        if needs_write(req.token_file, token_content, 0o600, uid, gid):
            changed = True
            diff.append(
                {
                    "before_header": req.token_file,
                    "after_header": req.token_file,
                    "before": f"{REDACTED}\n" if os.path.exists(req.token_file) else "",
                    "after": f"{REDACTED} (changed)\n" if token_changed else f"{REDACTED}\n",
                }
            )
            if not check_mode:
                atomic_write(req.token_file, token_content, 0o600, uid, gid, dir_mode=0o700)
        restart = restart or token_changed
    result["changed"] = changed
    result["restart_required"] = restart
    result["token_changed"] = token_changed
    result["diff"] = diff
    return result


def argument_spec(dist: Distribution) -> dict[str, Any]:
    """The module argument spec, shared by k3s_config and k0s_config."""
    roles = ["server", "agent"] if dist.name == "k3s" else ["server", "agent", "controller", "worker"]
    spec: dict[str, Any] = {
        "role": {"type": "str", "required": True, "choices": roles},
        "path": {"type": "path", "default": dist.config_path},
        "host": {"type": "str", "default": ""},
        "datastore": {"type": "str", "default": "sqlite"},
        "cluster_servers": {"type": "list", "elements": "str", "default": []},
        "cluster_agents": {"type": "list", "elements": "str", "default": []},
        "init_server": {"type": "bool"},
        "server_url": {"type": "str"},
        "datastore_endpoint": {"type": "str", "no_log": True},
        "cis": {"type": "bool", "default": True},
        "settings": {"type": "dict", "default": {}},
        "overrides": {"type": "dict", "default": {}},
        "overrides_name": {"type": "str", "default": "overrides"},
        "token_file": {"type": "path"},
        "token": {"type": "str", "no_log": True},
        "validate_only": {"type": "bool", "default": False},
    }
    if dist.name == "k3s":
        spec["generate_token"] = {"type": "bool", "default": False}
    return spec


def secret_values(dist: Distribution, params: Mapping[str, Any]) -> set[str]:
    """Values of secret keys found in ``settings``/``overrides`` (refused there, but they must
    still be masked wherever Ansible echoes the module's arguments)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key in dist.secret_keys and item not in (None, "", True, False):
                    found.update(str(v) for v in as_list(item))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(params.get("settings"))
    walk(params.get("overrides"))
    return found


def _failed(module_name: str, problems: Sequence[str], warnings: Sequence[str]) -> dict[str, Any]:
    """A lean failure result: the message lists every problem; nothing else to wade through."""
    return {
        "failed": True,
        "changed": False,
        "msg": problems_message(module_name, problems),
        "problems": list(problems),
        "warnings": list(warnings),
    }


def problems_message(module_name: str, problems: Sequence[str]) -> str:
    count = len(problems)
    lines = "\n".join(f"- {p}" for p in problems)
    return f"{module_name}: {count} problem{'s' if count != 1 else ''}, nothing was changed:\n{lines}"


__all__ = [
    "DISTRIBUTIONS",
    "K0S",
    "K3S",
    "ConfigPlan",
    "ConfigRequest",
    "Distribution",
    "apply_config",
    "argument_spec",
    "as_list",
    "check_topology",
    "datastore_on_disk",
    "effective_changed",
    "get",
    "mask_credentials",
    "migration",
    "normalize_role",
    "parse",
    "plan_config",
    "plan_token",
    "redacted",
    "redacted_text",
    "render",
    "secret_values",
]


def run_module(module_class: Any, dist: Distribution, module_name: str) -> None:
    """The whole of ``edgefleet.k8s.<dist>_config``: both modules are this call.

    ``module_class`` is ``AnsibleModule``, handed in by the module so that the
    module itself imports it (as Ansible's tooling expects of a module).
    """
    from ansible.module_utils.basic import missing_required_lib

    module = module_class(argument_spec=argument_spec(dist), supports_check_mode=True)
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    module.no_log_values.update(secret_values(dist, module.params))
    result = apply_config(dist, module.params, module.check_mode, module_name)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)
