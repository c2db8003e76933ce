# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""K0s: the strategy. Paths, units and the ClusterConfig schema are facts of K0s
(docs.k0sproject.io); the known keys are in ``k0s_schema.py``."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.merge import merge_layers
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.text import did_you_mean
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import k0s_schema, registries, wasm
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.config import ConfigPlan, ConfigRequest
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.strategy import (
    DEFAULT_API_PORT,
    KUBELET_CIS_ARGS,
    TERMINATED_POD_GC_THRESHOLD,
    Distribution,
    JoinToken,
    NodeIdentity,
    TokenRotation,
    apiserver_cis_args,
    frozen,
    label_list,
)

# K0s gives the kubelet of a worker (or of a controller that works) no settings of the CIS profile by itself: they go
# on its command line as one --kubelet-extra-args value, which k0s splits at white space into --key=value flags. The
# same settings as K3s's kubelet-arg, and protect-kernel-defaults, which K3s sets as a key of its own.
KUBELET_CIS_FLAG = "--kubelet-extra-args=" + " ".join(
    f"--{arg}" for arg in (*KUBELET_CIS_ARGS, "protect-kernel-defaults=true")
)


class K0s(Distribution):
    name = "k0s"
    title = "K0s"
    binary = "/usr/local/bin/k0s"
    config_path = "/etc/k0s/k0s.yaml"
    data_dir = "/var/lib/k0s"
    sqlite_db = "/var/lib/k0s/db/state.db"
    etcd_dir = "/var/lib/k0s/etcd"
    manifests_dir = "/var/lib/k0s/manifests"
    images_dir = "/var/lib/k0s/images"
    kubeconfig = "/var/lib/k0s/pki/admin.conf"
    token_file = "/etc/k0s/controller-token"
    agent_token_file = "/etc/k0s/worker-token"
    units = frozen({"server": "k0scontroller.service", "agent": "k0sworker.service"})
    role_names = frozen({"server": "controller", "agent": "worker"})
    role_aliases = frozen({"server": "server", "controller": "server", "agent": "agent", "worker": "agent"})
    cis_dir = "/etc/k0s/cis"
    audit_log = "/var/lib/k0s/logs/audit.log"
    secret_keys = k0s_schema.SECRET_KEYS
    sqlite_label = "sqlite (kine)"
    version_example = "v1.31.3+k0s.0"
    version_argv = ("version",)
    cluster_cidrs = ("10.244.0.0/16", "10.96.0.0/12")
    peer_ports = frozen({"tcp": ("6443", "8132", "8133", "9443", "10250", "2379-2380", "179"), "udp": ("4789",)})
    server_group = "k0s_controllers"
    agent_group = "k0s_workers"
    # K0s (1.27.1+) merges every *.toml of this directory into the containerd configuration it writes.
    containerd_import_dir = "/etc/k0s/containerd.d"
    registry_dropin = "/etc/k0s/containerd.d/edgefleet-registries.toml"
    # The CRI runtimes of the node's WASM shims, in the same import directory. The shims are looked for in
    # the first directory K3s searches, so one shim layout serves both distributions.
    wasm_dropin = "/etc/k0s/containerd.d/edgefleet-wasm.toml"
    wasm_shim_dir = wasm.SHIM_DIR
    # containerd's per-registry hosts.toml files (one directory per registry); containerd reads them at
    # each pull, so a change there needs no restart. Kept outside the import directory.
    registry_hosts_dir = "/etc/k0s/containerd-hosts.d"
    # The controller's PKI (etcd's under it). A worker's kubelet certificates are kubelet's own, 0600.
    pki_dirs = frozen({"server": ("/var/lib/k0s/pki", "/var/lib/k0s/pki/etcd"), "agent": ()})

    def registry_files(
        self, spec: registries.RegistrySpec, header: str, redact: bool = False
    ) -> list[registries.RuntimeFile]:
        if spec.empty:
            return []
        dropin = registries.containerd_dropin(header, self.registry_hosts_dir)
        files = [registries.RuntimeFile(self.registry_dropin, dropin.encode(), dropin, restart=True)]
        for name in registries.hosts_registries(spec):
            path = os.path.join(self.registry_hosts_dir, registries.hosts_dir_name(name), "hosts.toml")
            content = registries.hosts_toml(spec, name, header)
            shown = registries.hosts_toml(spec, name, header, redact=True)
            files.append(registries.RuntimeFile(path, content.encode(), shown, restart=False))
        return files

    def registry_managed_paths(self, root: str = "/") -> list[str]:
        paths = [self.registry_dropin]
        hosts_dir = os.path.join(root, self.registry_hosts_dir.lstrip("/"))
        if os.path.isdir(hosts_dir):
            for name in sorted(os.listdir(hosts_dir)):
                paths.append(os.path.join(self.registry_hosts_dir, name, "hosts.toml"))
        return paths

    def wasm_node_files(self, runtimes: Sequence[str], header: str) -> list[registries.RuntimeFile]:
        # K0s does not look for shims: containerd is told each runtime through the import directory.
        if not runtimes:
            return []
        text = wasm.containerd_runtimes_dropin(runtimes, self.wasm_shim_dir, header)
        return [registries.RuntimeFile(self.wasm_dropin, text.encode(), text, restart=True)]

    def wasm_managed_paths(self) -> list[str]:
        return [*super().wasm_managed_paths(), self.wasm_dropin]

    def manifests_folder(self, stack: str) -> str:
        # K0s applies, and prunes, one sub-folder per stack.
        return os.path.join(self.manifests_dir, stack)

    def release_binary(self, version: str, arch: str) -> str:
        return f"k0s-{version}-{arch}"

    def image_archives(self, version: str, arch: str) -> list[str]:
        return [f"k0s-airgap-bundle-{version}-{arch}"]

    def node_settings(self, node: NodeIdentity) -> dict[str, Any]:
        if self.normalize_role(node.role) != "server":
            return {}
        spec: dict[str, Any] = {}
        if node.address_is_ip:
            spec["api"] = {"address": node.address}
            if node.datastore == "etcd":
                spec["storage"] = {"etcd": {"peerAddress": node.address}}
        if node.api_port != DEFAULT_API_PORT:
            spec.setdefault("api", {})["port"] = node.api_port
        return {"spec": spec} if spec else {}

    def cis_profile(self) -> dict[str, Any]:
        """The K0s equivalent of the K3s CIS profile, through extraArgs."""
        api_args = dict(arg.split("=", 1) for arg in apiserver_cis_args(self))
        api_args["encryption-provider-config"] = self.cis_file("encryption.yaml")
        return {
            "spec": {
                "api": {"extraArgs": api_args},
                "controllerManager": {"extraArgs": {"terminated-pod-gc-threshold": str(TERMINATED_POD_GC_THRESHOLD)}},
            }
        }

    def sqlite_datasource(self) -> str:
        # K0s's own --single default (mode=rwc, WAL) plus kine's own lock handling: a busy timeout and
        # BEGIN IMMEDIATE, so a write waits for the lock instead of failing. No shared cache: its table
        # locks fail at once ("database table is locked") without calling the busy handler, and on a slow
        # node that failed kube-apiserver's bootstrap hooks, which made it exit and restart.
        return f"sqlite://file:{self.sqlite_db}?mode=rwc&_journal=WAL&_busy_timeout=30000&_txlock=immediate"

    def check_tree(self, value: Any, path: str, name: str, host: str, user: bool, problems: list[str]) -> None:
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
            self.check_tree(item, child, name, host, user, problems)

    @staticmethod
    def stringify(config: dict[str, Any]) -> dict[str, Any]:
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

    def plan(self, req: ConfigRequest) -> ConfigPlan:
        role = self.normalize_role(req.role)
        host = req.host or "this host"
        plan = ConfigPlan(self, role, None, self.unit(role), [])
        # K0s takes node labels on the command line only (k0s.yaml is the cluster's, not a node's): the kubelet
        # of a worker, or of a controller that also works, registers with them.
        labels = ["--labels=" + ",".join(label_list(req.labels))] if req.labels else []
        kubelet = [KUBELET_CIS_FLAG] if req.cis else []
        if role == "agent":
            plan.exec_args = ["worker", f"--token-file={req.token_file or self.agent_token_file}", *labels, *kubelet]
            if req.overrides:
                plan.problems.append(
                    f"{host}: {req.overrides_name}: a K0s worker has no k0s.yaml; set config on the controller"
                )
            return plan
        self.check_tree(dict(req.settings), "", "settings", host, False, plan.problems)
        self.check_tree(dict(req.overrides), "", req.overrides_name, host, True, plan.problems)
        path = req.path or self.config_path
        plan.exec_args = ["controller", f"--config={path}"]
        if len(req.cluster_servers) <= 1 and not req.cluster_agents:
            plan.exec_args.append("--single")
        if not req.is_init_server:
            plan.exec_args.append(f"--token-file={req.token_file or self.token_file}")
        if self.registers_node(role, plan.exec_args):
            plan.exec_args += [*labels, *kubelet]

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
            storage = {"type": "kine", "kine": {"dataSource": self.sqlite_datasource()}}
        layers = [
            base,
            self.cis_profile() if req.cis else {},
            {"spec": {"storage": storage}},
            dict(req.settings),
            dict(req.overrides),
        ]
        plan.config = self.stringify(merge_layers(layers))
        return plan

    def normalized(self, config: Any) -> Any:
        return self.stringify(copy.deepcopy(config)) if isinstance(config, dict) else config

    def sqlite_to_etcd(self, host: str) -> tuple[str | None, list[str]]:
        return None, [
            f"{host}: edgefleet_datastore is 'etcd' but {self.sqlite_db} holds a kine/SQLite cluster; K0s has no "
            "in-place migration from kine to etcd (back up and rebuild the cluster)"
        ]

    def join_token(self, role: str) -> JoinToken:
        return JoinToken(
            create_argv=(self.binary, "token", "create", f"--role={self.role_name(role)}", "--expiry=1h"),
        )

    def etcd_snapshot_argv(self, directory: str, name: str) -> list[str] | None:
        # k0s backup writes k0s_backup_<timestamp>.tar.gz (etcd snapshot, PKI, k0s.yaml, manifests).
        return [self.binary, "backup", f"--save-path={directory}"]

    def etcd_restore_argv(self, snapshot: str, workdir: str) -> list[str] | None:
        # The archive's k0s.yaml goes to workdir, not over the config the collection manages.
        return [self.binary, "restore", snapshot, f"--config-out={os.path.join(workdir, 'k0s.restored.yaml')}"]

    def token_rotation(self) -> TokenRotation:
        # K0s join tokens are bootstrap tokens, one per joining node: `k0s token list --role=...` shows
        # those still valid, `k0s token invalidate <id>...` revokes them. Joined nodes keep their certs.
        return TokenRotation(
            shared=False,
            list_argvs=tuple((self.binary, "token", "list", f"--role={role}") for role in ("worker", "controller")),
            invalidate_argv=(self.binary, "token", "invalidate"),
        )

    def registers_node(self, role: str, exec_args: Sequence[str]) -> bool:
        # A controller runs no kubelet unless it also works (--single or --enable-worker).
        return self.normalize_role(role) == "agent" or "--single" in exec_args or "--enable-worker" in exec_args

    def sqlite_servers_problem(self, servers: Sequence[str]) -> str:
        return (
            f"found 'sqlite' with {len(servers)} controllers ({', '.join(servers)}): K0s controllers cannot join "
            "a SQLite (kine) cluster; use datastore 'etcd' with an odd number of controllers, or keep one"
        )


K0S = K0s()
