# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one interface every distribution implements.

A :class:`Distribution` is a binary, a config file with a schema, a data directory, a
datastore, a join-token flow, a systemd unit per role and a manifests folder. The facts are
fields; the behaviour that differs between distributions is a method that a strategy
(``k3s.py``, ``k0s.py``) overrides. Everything else (topology checks, token files, atomic
writes, diffs, the module) is written once in ``config.py`` against this interface.

Adding a distribution is one new strategy file (plus its flag or schema data) and one line in
``registry.py``; no role, task or other strategy changes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import wasm

if TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.config import ConfigPlan, ConfigRequest
    from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.registries import (
        RegistrySpec,
        RuntimeFile,
    )

_V = TypeVar("_V")

ROLES = ("server", "agent")
DATASTORES = ("sqlite", "etcd", "external")
DEFAULT_API_PORT = 6443

_IP = re.compile(r"^[0-9.]+\Z|^[0-9a-fA-F:]+:[0-9a-fA-F:]*\Z")
_VERSION = re.compile(r"\bv[0-9][^\s()]*")
_REMARK = re.compile(r"\(([^()]+)\)")


def frozen(mapping: Mapping[str, _V]) -> Mapping[str, _V]:
    """A read-only mapping, for the facts a strategy declares."""
    return MappingProxyType(dict(mapping))


def is_ip(address: str) -> bool:
    """True for an IPv4 or IPv6 literal (node-ip and advertise addresses take only those)."""
    return bool(_IP.match(address or ""))


def url_host(address: str) -> str:
    """``address`` as it stands in a URL: IPv6 literals in brackets."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def label_list(labels: Mapping[str, Any]) -> list[str]:
    """``key=value`` strings, in the order given (the fleet's labels, then its identity labels)."""
    return [f"{key}={value}" for key, value in labels.items()]


def reported_version(output: str) -> str:
    """The version a binary prints (``vX.Y.Z...``), with the remark in parentheses after it, if any."""
    for line in output.splitlines():
        found = _VERSION.search(line)
        if found:
            remark = _REMARK.search(line, found.end())
            return found.group(0) + (f" ({remark.group(1)})" if remark else "")
    return ""


@dataclass(frozen=True)
class NodeIdentity:
    """What the inventory says about one node, in the form every strategy takes."""

    host: str
    role: str
    address: str = ""
    labels: Mapping[str, Any] = field(default_factory=dict)
    api_port: int = DEFAULT_API_PORT
    datastore: str = "sqlite"

    @property
    def address_is_ip(self) -> bool:
        return is_ip(self.address)


@dataclass(frozen=True)
class JoinToken:
    """How a joining node gets its token from the init server.

    ``read_file``: the token is read back from this file on the init server (the same secret
    for every node of the role). ``create_argv``: a fresh token is made on the init server by this
    command, once per node that has no token file yet (its stdout is the token). ``cluster_secret``:
    the token read is the cluster's own secret (the user's token, when one is given), not one that
    only lets the node join as what it is.
    """

    read_file: str | None = None
    create_argv: tuple[str, ...] | None = None
    cluster_secret: bool = True


@dataclass(frozen=True)
class TokenRotation:
    """How a cluster's join secret is rotated the distribution's own way, on one running server.

    ``shared``: every node holds one cluster token (K3s). ``rotate_argv`` changes it on the server;
    the current and the new token reach the command only through the environment variables
    ``current_env`` and ``new_env``, never its argv. The new token is then written to every node's
    token file and each unit restarts in turn.

    Not ``shared``: each node joined with a token of its own (K0s). ``list_argvs`` print the join
    tokens still valid (one command per role), ``invalidate_argv`` followed by their IDs revokes
    them; a node already joined keeps its own credentials, so no node restarts.
    """

    shared: bool
    rotate_argv: tuple[str, ...] = ()
    current_env: str = ""
    new_env: str = ""
    list_argvs: tuple[tuple[str, ...], ...] = ()
    invalidate_argv: tuple[str, ...] = ()


class Distribution:
    """Base of every strategy: facts as class attributes, behaviour as overridable methods."""

    name: str = ""
    title: str = ""
    binary: str = ""
    config_path: str = ""
    config_dropin_dir: str | None = None
    data_dir: str = ""
    sqlite_db: str = ""
    etcd_dir: str = ""
    manifests_dir: str = ""
    images_dir: str = ""
    # Whether the distribution looks for WASM shims only when it starts (a new shim then needs a restart).
    wasm_shims_found_at_start: bool = False
    kubeconfig: str = ""
    server_token_path: str | None = None
    token_file: str = ""
    agent_token_file: str = ""
    # Where each server keeps the secret agents join with, when the distribution lets agents join with a secret
    # other than the cluster token (K3s's agent-token-file); empty: agents get the cluster token or their own.
    agent_secret_file: str = ""
    units: Mapping[str, str] = frozen({})
    role_names: Mapping[str, str] = frozen({"server": "server", "agent": "agent"})
    role_aliases: Mapping[str, str] = frozen({"server": "server", "agent": "agent"})
    cis_dir: str = ""
    audit_log: str = ""
    secret_keys: frozenset[str] = frozenset()
    config_mode: int = 0o600
    datastores: tuple[str, ...] = DATASTORES
    max_sqlite_servers: int = 1
    sqlite_label: str = "sqlite"
    version_example: str = ""
    version_argv: tuple[str, ...] = ("--version",)
    # The K8s CIDRs (pods, services) and the ports a cluster's nodes open to each other.
    cluster_cidrs: tuple[str, ...] = ()
    peer_ports: Mapping[str, tuple[str, ...]] = frozen({"tcp": (), "udp": ()})
    # Whether the distribution writes its own EncryptionConfiguration for Secrets (else the role does).
    writes_secrets_encryption_config: bool = False
    # The fleet inventory's groups of this distribution's servers and agents.
    server_group: str = ""
    agent_group: str = ""
    # Whether the runtime's registry settings can rewrite image names on a mirror (K3s's registries.yaml can,
    # containerd's hosts.toml cannot).
    registry_rewrites: bool = False
    # The directories whose certificates and keys the distribution writes world-readable (or may, when it
    # rewrites them), per role: kept at 0600 (CIS 1.1.20 and 1.1.21) by the role and a systemd path unit.
    pki_dirs: Mapping[str, tuple[str, ...]] = frozen({"server": (), "agent": ()})

    # ------------------------------------------------------------------ names and paths

    def normalize_role(self, role: str) -> str:
        """``server``/``agent`` from any of the distribution's role names (K0s: controller/worker)."""
        return self.role_aliases.get(role, role)

    def role_choices(self) -> str:
        """The allowed role names, for messages: ``server, agent`` or ``server/controller, agent/worker``."""
        parts = []
        for role in ROLES:
            aliases = [alias for alias, canonical in self.role_aliases.items() if canonical == role and alias != role]
            parts.append("/".join([role, *aliases]))
        return ", ".join(parts)

    def unit(self, role: str) -> str:
        return self.units[self.normalize_role(role)]

    def role_name(self, role: str) -> str:
        return self.role_names[self.normalize_role(role)]

    def token_path(self, role: str) -> str:
        return self.token_file if self.normalize_role(role) == "server" else self.agent_token_file

    def env_file(self, role: str) -> str:
        return "/etc/default/" + self.unit(role).removesuffix(".service")

    def cis_file(self, name: str) -> str:
        return os.path.join(self.cis_dir, name)

    def cert_dirs(self, role: str) -> list[str]:
        """The certificate directories of a node of ``role``, each watched and swept on its own (not recursively)."""
        return list(self.pki_dirs[self.normalize_role(role)])

    def kubectl_argv(self) -> list[str]:
        return [self.binary, "kubectl", "--kubeconfig", self.kubeconfig]

    def manifests_folder(self, stack: str) -> str:
        """The folder a stack of manifests goes in to be applied by the distribution itself."""
        return self.manifests_dir

    def data_root(self) -> str:
        """The directory a data volume is mounted on: everything the distribution keeps."""
        return self.data_dir

    # ------------------------------------------------------------------ air-gap bundle

    def release_binary(self, version: str, arch: str) -> str:
        raise NotImplementedError

    def image_archives(self, version: str, arch: str) -> list[str]:
        raise NotImplementedError

    def has_install_script(self) -> bool:
        return False

    # ------------------------------------------------------------------ behaviour

    def node_settings(self, node: NodeIdentity) -> dict[str, Any]:
        """The settings the inventory implies for one node (name, labels, addresses, port)."""
        raise NotImplementedError

    def needs_server_url(self, role: str, is_init_server: bool, datastore: str) -> bool:
        """Whether a node of this role must be told a running server's URL to join."""
        return False

    def plan(self, req: ConfigRequest) -> ConfigPlan:
        """A ``config.ConfigPlan`` for a ``config.ConfigRequest``: the config, unit and arguments."""
        raise NotImplementedError

    def normalized(self, config: Any) -> Any:
        """The form in which two configs with the same effective settings compare equal."""
        return config

    def sqlite_to_etcd(self, host: str) -> tuple[str | None, list[str]]:
        """The datastore move from SQLite to etcd: its name, or the problem that there is none."""
        return None, [
            f"{host}: edgefleet_datastore is 'etcd' but {self.sqlite_db} holds a SQLite cluster; {self.title} has no "
            "in-place migration from SQLite to etcd (back up and rebuild the cluster)"
        ]

    def join_token(self, role: str) -> JoinToken:
        raise NotImplementedError

    def token_rotation(self) -> TokenRotation:
        """How this distribution rotates its join secret (see :class:`TokenRotation`)."""
        raise NotImplementedError

    def join_token_ids(self, listing: str) -> list[str]:
        """The IDs in the output of one of ``token_rotation().list_argvs`` (header and blank lines skipped)."""
        ids = []
        for line in listing.splitlines():
            fields = line.split()
            if fields and fields[0].upper() not in {"ID", "TOKEN"}:
                ids.append(fields[0])
        return ids

    def node_credentials(self) -> tuple[tuple[str, str, str], ...]:
        """API objects that hold one node's own credentials, as (kind, namespace, name) with ``{node}`` in the
        name; deleted with the node when it is decommissioned."""
        return ()

    def removal_paths(self) -> list[str]:
        """Everything a reset removes from a node so no trace of the distribution is left: its data directory,
        its config directory (config, tokens, kubeconfig), the binary, each unit's file and environment file.
        Datastore backups (``backup_dir``) are kept: they are the user's data."""
        paths = [
            self.data_dir,
            os.path.dirname(self.config_path),
            self.token_file,
            self.agent_token_file,
            self.kubeconfig,
            self.binary,
        ]
        for unit in self.units.values():
            paths += [f"/etc/systemd/system/{unit}", "/etc/default/" + unit.removesuffix(".service")]
        return list(dict.fromkeys(p for p in paths if p))

    def generates_token(self) -> bool:
        """Whether the init server's token file can be made here (generated or adopted)."""
        return False

    def registers_node(self, role: str, exec_args: Sequence[str]) -> bool:
        """Whether a node of this role, started with these arguments, appears as a Node object."""
        return True

    # ------------------------------------------------------------------ container runtime: registries

    def registry_files(self, spec: RegistrySpec, header: str, redact: bool = False) -> list[RuntimeFile]:
        """The files that give the node's containerd these mirrors, TLS and auth settings (none when
        ``spec`` is empty). ``redact`` hides credentials, for diffs."""
        raise NotImplementedError

    def registry_managed_paths(self, root: str = "/") -> list[str]:
        """The registry files of ours that may exist on the node (to remove the ones no longer wanted)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ container runtime: WASM runtimes

    def wasm_manifest_path(self) -> str:
        """The file of our ``RuntimeClass`` objects, in the folder the distribution applies by itself."""
        return os.path.join(self.manifests_folder(wasm.MANIFEST_STACK), wasm.MANIFEST_FILE)

    def wasm_files(self, class_runtimes: Sequence[str], node_runtimes: Sequence[str], header: str) -> list[RuntimeFile]:
        """The files of the WASM runtimes on one node: the ``RuntimeClass`` objects of ``class_runtimes`` (the
        site's runtimes, given on the init server only) in the manifests folder, then what the node's container
        runtime must be told of ``node_runtimes`` (the runtimes it is labelled for). None when both are empty."""
        from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.registries import RuntimeFile

        files = []
        if class_runtimes:
            text = wasm.runtime_classes_yaml(class_runtimes, header)
            # The deploy controller applies a changed file by itself: no restart.
            files.append(RuntimeFile(self.wasm_manifest_path(), text.encode(), text, restart=False))
        return files + self.wasm_node_files(node_runtimes, header)

    def wasm_node_files(self, runtimes: Sequence[str], header: str) -> list[RuntimeFile]:
        """The container runtime's files for the WASM runtimes of a node; none where the distribution finds
        the shims by itself."""
        return []

    def wasm_managed_paths(self) -> list[str]:
        """Every WASM file of ours that may be on a node (to remove those no longer wanted)."""
        return [self.wasm_manifest_path()]

    # ------------------------------------------------------------------ datastore backup and restore

    def backup_dir(self) -> str:
        """Where datastore backups are kept on the node: on the data volume, so a backup is as
        protected (encrypted) as the datastore it copies."""
        return os.path.join(self.data_root(), "edgefleet-backups")

    def datastore_units(self) -> tuple[str, ...]:
        """The units that hold the datastore open; stopped before a restore, started after it."""
        server = self.units.get("server")
        return (server,) if server else ()

    def etcd_snapshot_argv(self, directory: str, name: str) -> list[str] | None:
        """The distribution's own command that writes an etcd snapshot file into ``directory``
        (an empty directory of ours); None when the distribution has none."""
        return None

    def etcd_restore_argv(self, snapshot: str, workdir: str) -> list[str] | None:
        """The distribution's own command that restores the etcd snapshot file ``snapshot`` with the
        server stopped; it runs to completion and exits. ``workdir`` is a directory of ours for any
        file the command writes on the side. None when the distribution has none."""
        return None

    def etcd_rejoin_dir(self) -> str | None:
        """The directory a server of an etcd cluster drops (moved aside, never deleted) to rejoin a
        cluster that was restored on another server; None when the distribution has no such path."""
        return None

    def sqlite_servers_problem(self, servers: Sequence[str]) -> str:
        """The fleet's message for SQLite with several servers."""
        return (
            f"found 'sqlite' with {len(servers)} servers ({', '.join(servers)}): embedded SQLite serves a "
            "single server; use datastore 'etcd' (embedded etcd HA, an odd number of servers) or keep one server"
        )

    def facts(self) -> dict[str, Any]:
        """The facts a role or playbook needs, as plain data."""
        return {
            "name": self.name,
            "title": self.title,
            "binary": self.binary,
            "config_path": self.config_path,
            "config_dropin_dir": self.config_dropin_dir,
            "data_dir": self.data_dir,
            "data_root": self.data_root(),
            "sqlite_db": self.sqlite_db,
            "etcd_dir": self.etcd_dir,
            "manifests_dir": self.manifests_dir,
            "images_dir": self.images_dir,
            "kubeconfig": self.kubeconfig,
            "kubectl": self.kubectl_argv(),
            "server_token_path": self.server_token_path,
            "token_file": self.token_file,
            "agent_token_file": self.agent_token_file,
            "units": dict(self.units),
            "services": [u.removesuffix(".service") for u in self.units.values()],
            "version_argv": [self.binary, *self.version_argv],
            "cis_dir": self.cis_dir,
            "cis_files": {
                "admission": self.cis_file("psa.yaml"),
                "audit_policy": self.cis_file("audit.yaml"),
                "event_rate_limit": self.cis_file("event-rate-limit.yaml"),
                "encryption": self.cis_file("encryption.yaml"),
            },
            "audit_log": self.audit_log,
            "writes_secrets_encryption_config": self.writes_secrets_encryption_config,
            "cluster_cidrs": list(self.cluster_cidrs),
            "peer_ports": {proto: list(ports) for proto, ports in self.peer_ports.items()},
            "backup_dir": self.backup_dir(),
            "datastore_units": list(self.datastore_units()),
            "node_credentials": [
                {"kind": kind, "namespace": namespace, "name": name}
                for kind, namespace, name in self.node_credentials()
            ],
            "removal_paths": self.removal_paths(),
        }


# find(1) arguments, after the certificate directories, that select the certificates and keys looser than 0600
# in them (not in their subdirectories): what edgefleet-cert-modes.service and the role's sweep both set to 0600.
LOOSE_CERT_FIND = (
    *("-maxdepth", "1", "-type", "f"),
    *("(", "-name", "*.crt", "-o", "-name", "*.key", "-o", "-name", "*.pem", ")"),
    *("-perm", "/0177"),
)

# The kubelet's limit of processes per pod (CIS 4.2.13), so that a fork bomb in one pod cannot use up the node's
# process IDs. 4096 is far above what an edge workload runs in one pod.
POD_MAX_PIDS = 4096

# The TLS 1.2 cipher suites of the K3s hardening guide's kubelet settings (ECDHE with AES-GCM or ChaCha20), used for
# the API server too (CIS 1.2.29): every one is on kube-bench's list of strong ciphers.
TLS12_CIPHER_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,"
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
)

# The kubelet settings of the K3s hardening guide (v1.29+) and of CIS 4.2.12 and 4.2.13, as kubelet flags without
# their dashes: K3s passes them as kubelet-arg, K0s in --kubelet-extra-args.
KUBELET_CIS_ARGS: tuple[str, ...] = (
    "streaming-connection-idle-timeout=5m",
    f"tls-cipher-suites={TLS12_CIPHER_SUITES}",
    "tls-min-version=VersionTLS12",
    f"pod-max-pids={POD_MAX_PIDS}",
)

# kube-controller-manager's threshold of terminated pods kept before they are deleted: the K3s hardening guide's
# value since k3s-io/docs#497 (October 2025), which raised its example of 10 as too low for real clusters.
TERMINATED_POD_GC_THRESHOLD = 100


def apiserver_cis_args(dist: Distribution) -> list[str]:
    """The kube-apiserver settings of the K3s CIS hardening guide (v1.29+), for any distribution, plus
    DenyServiceExternalIPs (CIS 1.2.3): no Service of the fleet's own uses externalIPs, and a Service that sets
    them can take over another's traffic; and TLS 1.2 or newer with strong cipher suites only (CIS 1.2.29)."""
    return [
        "enable-admission-plugins=NodeRestriction,EventRateLimit,DenyServiceExternalIPs",
        f"admission-control-config-file={dist.cis_file('psa.yaml')}",
        f"audit-log-path={dist.audit_log}",
        f"audit-policy-file={dist.cis_file('audit.yaml')}",
        "audit-log-maxage=30",
        "audit-log-maxbackup=10",
        "audit-log-maxsize=100",
        "service-account-extend-token-expiration=false",
        f"tls-cipher-suites={TLS12_CIPHER_SUITES}",
        "tls-min-version=VersionTLS12",
    ]
