# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every distribution shares: the request, topology checks, token files, atomic
writes, diffs and the ``distribution_config`` module's work.

A strategy (:mod:`.k3s`, :mod:`.k0s`) supplies the facts and the differing behaviour through
:class:`.strategy.Distribution`; nothing here asks which distribution it is.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import REDACTED, redact
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.merge import as_list, merge_layers
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.names import (
    is_dns1123_label,
    is_label_name,
    is_label_value,
)
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.text import did_you_mean, systemd_command_line
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.strategy import (
    DEFAULT_API_PORT,
    LOOSE_CERT_FIND,
    ROLES,
    Distribution,
    NodeIdentity,
    url_host,
)

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core and python3-yaml
    HAS_YAML = False

MANAGED_HEADER = "# Managed by edgefleet.k8s ({module}). Local edits are overwritten.\n"

DQLITE_MESSAGE = (
    "dqlite is not a K3s or K0s datastore: K3s dropped its experimental dqlite in v1.19.1 for embedded etcd, "
    "with no upgrade path. Use 'sqlite' for a single server or 'etcd' for HA"
)


@dataclass(frozen=True)
class ConfigRequest:
    """What a role asks of the config module for one host."""

    host: str
    role: str
    datastore: str = "sqlite"
    cluster_servers: tuple[str, ...] = ()
    cluster_agents: tuple[str, ...] = ()
    init_server: bool | None = None
    server_address: str | None = None
    api_port: int = DEFAULT_API_PORT
    datastore_endpoint: str | None = None
    cis: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    overrides_name: str = "overrides"
    path: str | None = None
    token_file: str | None = None
    agent_secret_file: str | None = None
    default_sa_namespaces: tuple[str, ...] = ()
    default_sa_namespaces_name: str = "default_sa_namespaces"
    # The node's labels, for a distribution that passes them on its command line (K0s); K3s has them in
    # ``settings`` (node-label), from the strategy's node settings. Empty with ``node_settings: false``.
    labels: Mapping[str, Any] = field(default_factory=dict)

    @property
    def server_url(self) -> str | None:
        """The URL a joining node dials: the init server's address and the API port."""
        if not self.server_address:
            return None
        return f"https://{url_host(self.server_address)}:{self.api_port}"

    @property
    def is_server(self) -> bool:
        return self.role == "server"

    @property
    def is_init_server(self) -> bool:
        if not self.is_server:
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


def check_topology(dist: Distribution, req: ConfigRequest, given_role: str) -> tuple[list[str], list[str]]:
    """Problems and warnings of the cluster shape, common to every distribution."""
    problems: list[str] = []
    warnings: list[str] = []
    host = req.host or "this host"
    role = req.role
    if role not in ROLES:
        problems.append(f"{host}: edgefleet_node_role is '{given_role}'; allowed: {dist.role_choices()}")
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
    if dist.needs_server_url(role, req.is_init_server, datastore) and not req.server_url:
        what = "an agent" if role == "agent" else "a joining etcd server"
        problems.append(f"{host}: {what} needs the address of a server to join (server_address), none was given")
    return problems, warnings


def check_namespaces(req: ConfigRequest) -> list[str]:
    """Problems of the namespaces whose ``default`` ServiceAccount the role patches (CIS 5.1.5): a name the API
    server would refuse fails here, on the controller, not at the apply on the init server."""
    host = req.host or "this host"
    return [
        f"{host}: {req.default_sa_namespaces_name}[{index}] is {name!r}; allowed: a namespace name, 1-63 of a-z, "
        "0-9 and '-', starting and ending with a letter or digit"
        for index, name in enumerate(req.default_sa_namespaces)
        if not is_dns1123_label(name)
    ]


def check_labels(req: ConfigRequest) -> list[str]:
    """Problems of the node labels: a name or value the kubelet would refuse at registration fails here, on the
    controller, before any host changes (the fleet plugin checks its own labels; a hand-written inventory's are
    checked here)."""
    host = req.host or "this host"
    problems = []
    for name, value in req.labels.items():
        if not is_label_name(name):
            problems.append(
                f"{host}: label name {name!r} is not a Kubernetes label name; allowed: an optional DNS-subdomain "
                "prefix and '/', then 1-63 of A-Z a-z 0-9 - _ ., starting and ending with a letter or digit"
            )
        elif isinstance(value, (dict, list)) or value is None or not is_label_value(str(value)):
            problems.append(
                f"{host}: label {name} has value {value!r}; allowed: 0-63 of A-Z a-z 0-9 - _ ., "
                "starting and ending with a letter or digit"
            )
    return problems


def plan_config(dist: Distribution, req: ConfigRequest, given_role: str | None = None) -> ConfigPlan:
    """Topology and namespace checks, then the strategy's own plan; with a bad role, no plan at all."""
    given_role = given_role or req.role
    req = replace(req, role=dist.normalize_role(req.role))  # K0s: controller/worker
    problems, warnings = check_topology(dist, req, given_role)
    problems += check_namespaces(req)
    problems += check_labels(req)
    if req.role not in ROLES:
        return ConfigPlan(dist, req.role, None, "", [], problems, warnings)
    plan = dist.plan(req)
    plan.problems[:0] = problems
    plan.warnings[:0] = warnings
    return plan


# --------------------------------------------------------------------------- files


def render(config: Mapping[str, Any], module: str) -> bytes:
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


def effective_changed(dist: Distribution, existing: Any, wanted: Mapping[str, Any] | None) -> bool:
    """True when the effective settings differ: key order, formatting and comments don't count."""
    if wanted is None:
        return False
    if existing is None:
        return True
    return bool(dist.normalized(existing) != dist.normalized(dict(wanted)))


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
    if dist.normalize_role(role) != "server" or on_disk == "none" or wanted == "external":
        return None, []
    if on_disk == "sqlite" and wanted == "etcd":
        return dist.sqlite_to_etcd(host)
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


AGENT_SECRET_CONTEXT = b"edgefleet.k8s agent join secret v1"


def agent_secret_for(cluster_token: bytes) -> bytes:
    """The secret agents join with, derived from the cluster token's secret part (HMAC-SHA256): every server
    that holds the cluster token derives the same one, it changes when the cluster token is rotated, and it
    gives no way back to the cluster token. An agent holding it can join as an agent only."""
    secret = cluster_token.decode().strip().rsplit(":", 1)[-1]
    return token_bytes(hmac.new(secret.encode(), AGENT_SECRET_CONTEXT, hashlib.sha256).hexdigest())


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


def request_from_params(dist: Distribution, params: Mapping[str, Any]) -> ConfigRequest:
    """The request, with the node settings the strategy derives from address, labels and port."""
    role = dist.normalize_role(str(params.get("role") or ""))
    host = str(params.get("host") or "")
    datastore = str(params.get("datastore") or "sqlite")
    api_port = int(params.get("api_port") or DEFAULT_API_PORT)
    settings: Mapping[str, Any] = params.get("settings") or {}
    if role in ROLES and params.get("node_settings", True):
        identity = NodeIdentity(
            host=host,
            role=role,
            address=str(params.get("address") or ""),
            labels=params.get("labels") or {},
            api_port=api_port,
            datastore=datastore,
        )
        settings = merge_layers([dist.node_settings(identity), settings])
    servers = servers_of(params.get("cluster_servers"))
    init_server = params.get("init_server")
    is_init = role == "server" and (init_server if init_server is not None else (not servers or servers[0] == host))
    token_file = params.get("token_file") or None
    if token_file is None and role in ROLES and (not is_init or dist.generates_token()):
        token_file = dist.token_path(role)
    agent_secret_file = (
        (params.get("agent_secret_file") or dist.agent_secret_file or None) if role == "server" else None
    )
    labels: Mapping[str, Any] = (params.get("labels") or {}) if params.get("node_settings", True) else {}
    return ConfigRequest(
        labels=labels,
        host=host,
        role=role,
        datastore=datastore,
        cluster_servers=servers,
        cluster_agents=servers_of(params.get("cluster_agents")),
        init_server=init_server,
        server_address=params.get("server_address") or None,
        api_port=api_port,
        datastore_endpoint=params.get("datastore_endpoint") or None,
        cis=bool(params.get("cis", True)),
        settings=settings,
        overrides=params.get("overrides") or {},
        overrides_name=str(params.get("overrides_name") or "overrides"),
        path=params.get("path") or None,
        token_file=token_file,
        agent_secret_file=agent_secret_file,
        default_sa_namespaces=tuple(str(n) for n in params.get("default_sa_namespaces") or ()),
        default_sa_namespaces_name=str(params.get("default_sa_namespaces_name") or "default_sa_namespaces"),
    )


RESTART_MARKER_DIR = "/var/lib/edgefleet/restart-pending"


def restart_marker_for(unit: str) -> str:
    """Where a restart of ``unit`` that is still owed is recorded: by distribution_config when the files
    change, by the artifact module before a new binary replaces the installed one."""
    return f"{RESTART_MARKER_DIR}/{unit}"


def node_facts(dist: Distribution, req: ConfigRequest, plan: ConfigPlan) -> dict[str, Any]:
    """What the role needs to run this node, decided here rather than in Jinja."""
    if req.role not in ROLES:
        return {}
    join = dist.join_token(req.role)
    return {
        "is_server": req.is_server,
        "is_init_server": req.is_init_server,
        "unit": plan.unit,
        "restart_marker": restart_marker_for(plan.unit),
        "env_file": dist.env_file(req.role),
        "role_name": dist.role_name(req.role),
        "registers_node": dist.registers_node(req.role, plan.exec_args),
        "cert_dirs": dist.cert_dirs(req.role) if req.cis else [],
        "loose_cert_find": list(LOOSE_CERT_FIND),
        "server_url": req.server_url,
        "join_token": {
            "needed": not req.is_init_server,
            "read_file": join.read_file,
            "create_argv": list(join.create_argv) if join.create_argv else None,
        },
    }


def _chosen_token(dist: Distribution, req: ConfigRequest, params: Mapping[str, Any]) -> str | None:
    """The user's cluster token where the distribution shares one secret among its nodes,
    else the join token the role fetched from the init server."""
    user_token = params.get("token") or None
    join = dist.join_token(req.role)
    shared = join.read_file is not None and join.cluster_secret
    if user_token and (shared or req.is_init_server):
        return str(user_token)
    return params.get("join_token") or None


RESTART_MARKER_TEXT = b"edgefleet.k8s: the unit must restart to load a changed config; removed after the restart\n"


def _secret_file(
    path: str,
    content: bytes | None,
    pending: bool,
    value_changed: bool,
    existed: bool,
    check_mode: bool,
    owner: tuple[int | None, int | None],
    diff: list[dict[str, str]],
) -> bool:
    """Write one 0600 secret file (not in check mode, nor while its content is still pending); its diff says only
    that it is written or changed, never the secret. Returns whether the file is (or would be) written."""
    from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import atomic_write, needs_write

    uid, gid = owner
    if not pending and not needs_write(path, content or b"", 0o600, uid, gid):
        return False
    diff.append(
        {
            "before_header": path,
            "after_header": path,
            "before": f"{REDACTED}\n" if existed else "",
            "after": f"{REDACTED} (changed)\n" if value_changed and existed else f"{REDACTED}\n",
        }
    )
    if not check_mode and content is not None:
        atomic_write(path, content, 0o600, uid, gid, dir_mode=0o700)
    return True


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

    req = request_from_params(dist, params)
    plan = plan_config(dist, req, str(params.get("role") or ""))
    host = req.host or "this host"
    path = req.path or dist.config_path
    result: dict[str, Any] = {
        "changed": False,
        "restart_required": False,
        "path": path if plan.config is not None else None,
        "config": redacted(dist, plan.config),
        "unit": plan.unit,
        "exec_args": plan.exec_args,
        "exec_start": systemd_command_line([dist.binary, *plan.exec_args]),
        "token_file": req.token_file,
        "agent_secret_file": req.agent_secret_file,
        "token_changed": False,
        "files_changed": False,
        "datastore_on_disk": None,
        "migration": None,
        "warnings": list(plan.warnings),
        "problems": list(plan.problems),
        "node": node_facts(dist, req, plan),
        "distribution": dist.facts(),
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
    token_existing: bytes | None = None
    token_changed = False
    token_pending = False
    if req.token_file:
        token_existing = read_bytes(req.token_file)
        token = _chosen_token(dist, req, params)
        generate = bool(params.get("generate_token", True)) and req.is_init_server and dist.generates_token()
        if token is None and token_existing is None and generate and dist.server_token_path:
            adopted = read_bytes(os.path.join(root, dist.server_token_path.lstrip("/")))
            token = adopted.decode().strip() if adopted else None
        token_content, token_changed = plan_token(token_existing, token, generate)
        if token_content is None and not req.is_init_server:
            if check_mode:
                # The init server makes the token in this same run; in check mode it cannot exist yet.
                token_pending = True
            else:
                problems.append(
                    f"{host}: token file {req.token_file} does not exist and no token was given; a joining "
                    f"{dist.role_name(req.role)} needs the cluster's token (read back from the init server)"
                )
    # A server also keeps the secret agents join with, derived from the cluster token it holds.
    agent_content: bytes | None = None
    agent_existing: bytes | None = None
    if req.agent_secret_file and token_content:
        agent_content = agent_secret_for(token_content)
        agent_existing = read_bytes(req.agent_secret_file)
    agent_changed = agent_content is not None and (agent_existing or b"").strip() != agent_content.strip()
    if problems:
        return _failed(module_name, problems, result["warnings"])

    uid, gid = owner
    diff: list[dict[str, str]] = []
    changed = False
    restart = False
    # A restart the files need is first recorded on disk, so a run that dies between writing the files
    # and restarting the unit still restarts it next time (the role removes the marker after the restart).
    marker = str(params.get("restart_marker") or "")
    pending = bool(marker) and os.path.exists(marker)
    needs_restart = (
        (plan.config is not None and effective_changed(dist, existing, plan.config))
        or (bool(req.token_file) and (token_changed or token_pending))
        or agent_changed
    )
    if marker and needs_restart and not pending and not check_mode:
        atomic_write(marker, RESTART_MARKER_TEXT, 0o600, uid, gid, dir_mode=0o700)
    if plan.config is not None:
        content = render(plan.config, module_name)
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
    if req.token_file and (token_content is not None or token_pending):
        existed = token_existing is not None
        if _secret_file(req.token_file, token_content, token_pending, token_changed, existed, check_mode, owner, diff):
            changed = True
        restart = restart or token_changed or token_pending
    if req.agent_secret_file and (agent_content is not None or token_pending):
        existed = agent_existing is not None
        if _secret_file(
            req.agent_secret_file, agent_content, token_pending, agent_changed, existed, check_mode, owner, diff
        ):
            changed = True
        restart = restart or agent_changed
    result["changed"] = changed
    result["files_changed"] = changed  # kept when a task's changed_when overrides changed (the plan step's)
    result["restart_required"] = restart or pending
    result["restart_pending"] = pending
    result["token_changed"] = token_changed
    result["diff"] = diff
    return result


def argument_spec(names: Sequence[str], role_names: Sequence[str]) -> dict[str, Any]:
    """The argument spec of ``distribution_config``; the choices come from the registry."""
    return {
        "distribution": {"type": "str", "required": True, "choices": list(names)},
        "role": {"type": "str", "required": True, "choices": list(role_names)},
        "path": {"type": "path"},
        "host": {"type": "str", "default": ""},
        "address": {"type": "str", "default": ""},
        "labels": {"type": "dict", "default": {}},
        "api_port": {"type": "int", "default": DEFAULT_API_PORT},
        "node_settings": {"type": "bool", "default": True},
        "datastore": {"type": "str", "default": "sqlite"},
        "cluster_servers": {"type": "list", "elements": "str", "default": []},
        "cluster_agents": {"type": "list", "elements": "str", "default": []},
        "init_server": {"type": "bool"},
        "server_address": {"type": "str"},
        "datastore_endpoint": {"type": "str", "no_log": True},
        "cis": {"type": "bool", "default": True},
        "settings": {"type": "dict", "default": {}},
        "overrides": {"type": "dict", "default": {}},
        "overrides_name": {"type": "str", "default": "overrides"},
        "token_file": {"type": "path"},
        "agent_secret_file": {"type": "path"},
        "token": {"type": "str", "no_log": True},
        "join_token": {"type": "str", "no_log": True},
        "generate_token": {"type": "bool", "default": True},
        "validate_only": {"type": "bool", "default": False},
        "restart_marker": {"type": "path"},
        "default_sa_namespaces": {"type": "list", "elements": "str", "default": []},
        "default_sa_namespaces_name": {"type": "str", "default": "default_sa_namespaces"},
    }


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
