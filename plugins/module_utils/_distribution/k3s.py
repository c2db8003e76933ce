# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""K3s: the strategy. Paths, units and flags are facts of K3s (docs.k3s.io); the known
config keys are the table in ``k3s_flags.py``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.merge import canonical, merge_layers
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.text import did_you_mean
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import k3s_flags, registries
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

_IMAGE_SUFFIXES = (".tar.zst", ".tar.gz", ".tar")


class K3s(Distribution):
    name = "k3s"
    title = "K3s"
    binary = "/usr/local/bin/k3s"
    config_path = "/etc/rancher/k3s/config.yaml"
    config_dropin_dir = "/etc/rancher/k3s/config.yaml.d"
    data_dir = "/var/lib/rancher/k3s"
    sqlite_db = "/var/lib/rancher/k3s/server/db/state.db"
    etcd_dir = "/var/lib/rancher/k3s/server/db/etcd"
    manifests_dir = "/var/lib/rancher/k3s/server/manifests"
    images_dir = "/var/lib/rancher/k3s/agent/images"
    # The agent looks for the known shims in /opt/kwasm/bin, /usr/bin and /usr/sbin as it starts.
    wasm_shims_found_at_start = True
    kubeconfig = "/etc/rancher/k3s/k3s.yaml"
    server_token_path = "/var/lib/rancher/k3s/server/token"
    token_file = "/etc/rancher/k3s/token"
    agent_token_file = "/etc/rancher/k3s/token"
    # Servers start with agent-token-file set to this file; K3s then writes the agent token in its secure format
    # (with the cluster CA's hash) to server/agent-token, which agents read back from the init server.
    agent_secret_file = "/etc/rancher/k3s/agent-token"
    agent_join_token_path = "/var/lib/rancher/k3s/server/agent-token"
    units = frozen({"server": "k3s.service", "agent": "k3s-agent.service"})
    cis_dir = "/var/lib/rancher/k3s/server"
    audit_log = "/var/lib/rancher/k3s/server/logs/audit.log"
    secret_keys = k3s_flags.SECRET_KEYS
    version_example = "v1.31.4+k3s1"
    version_argv = ("--version",)
    cluster_cidrs = ("10.42.0.0/16", "10.43.0.0/16")
    peer_ports = frozen({"tcp": ("6443", "10250", "2379-2380"), "udp": ("8472",)})
    writes_secrets_encryption_config = True
    server_group = "k3s_servers"
    agent_group = "k3s_agents"
    registry_rewrites = True
    # K3s reads it when it starts and writes containerd's configuration from it.
    registries_path = "/etc/rancher/k3s/registries.yaml"
    # K3s writes its certificates 0644 and rewrites them when it rotates them at start (keys are 0600).
    pki_dirs = frozen(
        {
            "server": (
                "/var/lib/rancher/k3s/server/tls",
                "/var/lib/rancher/k3s/server/tls/etcd",
                "/var/lib/rancher/k3s/agent",
            ),
            "agent": ("/var/lib/rancher/k3s/agent",),
        }
    )

    def data_root(self) -> str:
        # /etc/rancher holds only config and tokens the role rewrites; /var/lib/rancher holds the data.
        return "/var/lib/rancher"

    def release_binary(self, version: str, arch: str) -> str:
        return "k3s" if arch == "amd64" else f"k3s-{arch}"

    def image_archives(self, version: str, arch: str) -> list[str]:
        return [f"k3s-airgap-images-{arch}{suffix}" for suffix in _IMAGE_SUFFIXES]

    def has_install_script(self) -> bool:
        return True

    def node_settings(self, node: NodeIdentity) -> dict[str, Any]:
        settings: dict[str, Any] = {"node-name": node.host} if node.host else {}
        labels = label_list(node.labels)
        if labels:
            settings["node-label"] = labels
        if node.address_is_ip:
            settings["node-ip"] = node.address
        if self.normalize_role(node.role) == "server":
            if node.address:
                settings["tls-san"] = [node.address]
            if node.api_port != DEFAULT_API_PORT:
                settings["https-listen-port"] = node.api_port
        return settings

    def needs_server_url(self, role: str, is_init_server: bool, datastore: str) -> bool:
        role = self.normalize_role(role)
        return role == "agent" or (role == "server" and not is_init_server and datastore == "etcd")

    def cis_profile(self, role: str) -> dict[str, Any]:
        """The CIS settings of the K3s hardening guide (v1.29+)."""
        profile: dict[str, Any] = {
            "protect-kernel-defaults": True,
            "kubelet-arg": list(KUBELET_CIS_ARGS),
        }
        if self.normalize_role(role) == "server":
            profile["secrets-encryption"] = True
            profile["kube-apiserver-arg"] = apiserver_cis_args(self)
            profile["kube-controller-manager-arg"] = [f"terminated-pod-gc-threshold={TERMINATED_POD_GC_THRESHOLD}"]
        return profile

    def check_layer(self, layer: Mapping[str, Any], name: str, host: str, role: str, user: bool) -> list[str]:
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
                    "(set the role's token variable from ansible-vault) and the datastore endpoint in its no_log "
                    "variable"
                )
                continue
            if key in k3s_flags.MANAGED_KEYS and user:
                problems.append(
                    f"{where}: is managed by the role from the inventory (edgefleet_datastore, "
                    "edgefleet_cluster_servers, token files); remove it"
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

    def plan(self, req: ConfigRequest) -> ConfigPlan:
        role = self.normalize_role(req.role)
        host = req.host or "this host"
        path = req.path or self.config_path
        args = [role] + ([f"--config={path}"] if path != self.config_path else [])
        plan = ConfigPlan(self, role, None, self.unit(role), args)
        plan.problems.extend(self.check_layer(req.settings, "settings", host, role, user=False))
        plan.problems.extend(self.check_layer(req.overrides, req.overrides_name, host, role, user=True))

        base: dict[str, Any] = {"write-kubeconfig-mode": "0600"} if role == "server" else {}
        datastore: dict[str, Any] = {}
        if req.token_file:
            datastore["token-file"] = req.token_file
        if req.agent_secret_file:  # set for servers only
            datastore["agent-token-file"] = req.agent_secret_file
        if role == "agent":
            datastore["server"] = req.server_url
        elif req.datastore == "etcd":
            if req.is_init_server:
                datastore["cluster-init"] = True
            else:
                datastore["server"] = req.server_url
        elif req.datastore == "external":
            datastore["datastore-endpoint"] = req.datastore_endpoint
        layers = [base, self.cis_profile(role) if req.cis else {}, datastore, dict(req.settings), dict(req.overrides)]
        config = merge_layers(layers, k3s_flags.ARG_LIST_KEYS)
        plan.config = {k: v for k, v in config.items() if v is not None}
        return plan

    def normalized(self, config: Any) -> Any:
        return canonical(config, k3s_flags.LIST_KEYS)

    def sqlite_to_etcd(self, host: str) -> tuple[str | None, list[str]]:
        # Documented K3s path: restart the single server with cluster-init: true.
        return "sqlite-to-etcd", []

    def join_token(self, role: str) -> JoinToken:
        # Servers share the cluster token; agents get the agent token, which joins an agent and nothing more:
        # it cannot join a server nor decrypt the bootstrap data, as the cluster token can.
        if self.normalize_role(role) == "server":
            return JoinToken(read_file=self.token_file)
        return JoinToken(read_file=self.agent_join_token_path, cluster_secret=False)

    def etcd_snapshot_argv(self, directory: str, name: str) -> list[str] | None:
        # On-demand snapshot of the running server; the file is named <name>-<node>-<timestamp>.
        return [self.binary, "etcd-snapshot", "save", "--name", name, "--dir", directory]

    def etcd_restore_argv(self, snapshot: str, workdir: str) -> list[str] | None:
        # Resets membership to this one server with the snapshot's data, then exits; start the unit
        # again without the flags. Peers of an HA cluster must drop server/db and rejoin.
        return [self.binary, "server", "--cluster-reset", f"--cluster-reset-restore-path={snapshot}"]

    def etcd_rejoin_dir(self) -> str | None:
        # K3s: after a cluster-reset restore on one server, every other server drops server/db and
        # joins again through its `server:` URL.
        return os.path.dirname(self.etcd_dir)

    def generates_token(self) -> bool:
        return True

    def registry_files(
        self, spec: registries.RegistrySpec, header: str, redact: bool = False
    ) -> list[registries.RuntimeFile]:
        if spec.empty:
            return []
        content = registries.registries_yaml(spec, header)
        shown = registries.registries_yaml(spec, header, redact=True)
        return [registries.RuntimeFile(self.registries_path, content.encode(), shown, restart=True)]

    def registry_managed_paths(self, root: str = "/") -> list[str]:
        return [self.registries_path]

    def wasm_node_files(self, runtimes: Sequence[str], header: str) -> list[registries.RuntimeFile]:
        # K3s finds the shims itself when its agent starts and adds a containerd runtime for each.
        return []

    def node_credentials(self) -> tuple[tuple[str, str, str], ...]:
        # K3s keeps each node's password (checked when a node of that name joins again) in a Secret.
        return (("secret", "kube-system", "{node}.node-password.k3s"),)

    def removal_paths(self) -> list[str]:
        # Also the node password K3s keeps for the node, its run directory and the kubelet's root.
        return [*super().removal_paths(), "/etc/rancher/node", "/run/k3s", "/var/lib/kubelet"]

    def token_rotation(self) -> TokenRotation:
        # `k3s token rotate` takes --token/--new-token or, kept off the command line, K3S_TOKEN and
        # K3S_NEW_TOKEN; then every server restarts with the new token-file, and the agents too.
        return TokenRotation(
            shared=True,
            rotate_argv=(self.binary, "token", "rotate"),
            current_env="K3S_TOKEN",
            new_env="K3S_NEW_TOKEN",
        )


K3S = K3s()
