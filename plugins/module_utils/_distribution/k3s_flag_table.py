# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The K3s CLI flags: the one table both the collection and the lab stand-in read.

Follows K3s v1.36 (the release line of the Kubernetes version the lab pins), checked against
the flag definitions in k3s-io/k3s ``pkg/cli/cmds/server.go`` and ``agent.go`` and the CLI
reference in k3s-io/docs ``docs/cli/server.md`` and ``docs/cli/agent.md``. Our own table, not a
copy of either.

A config-file key is the flag's long name without the dashes. ``roles`` is what the K3s
command accepts: ``k3s server`` takes nearly every agent flag (a server runs an agent), but not
all of them, so each flag names its roles. ``kind`` is how a value is given: ``bool`` takes no
value on the command line (true/false in the config file), ``str`` takes one value (numbers and
durations too), ``list`` may be repeated (a YAML list in the config file). ``secret`` values are
redacted and refused inline in user overrides; ``managed`` keys are computed by the role from the
inventory and refused in user overrides (our policy, not a K3s fact).

Standard library only, and no import from the collection: tests/lab/controlplane/bundle.sh copies
this file into the stand-in's payload, where it is imported on its own.
"""

from __future__ import annotations

from typing import NamedTuple

K3S_VERSION = "v1.36"

SERVER = "server"
AGENT = "agent"
ROLES = (SERVER, AGENT)

BOOL = "bool"
STR = "str"
LIST = "list"
KINDS = (BOOL, STR, LIST)


class Flag(NamedTuple):
    name: str
    roles: tuple[str, ...]
    kind: str
    secret: bool = False
    managed: bool = False
    short: str = ""


_SA = (SERVER, AGENT)
_S = (SERVER,)
_A = (AGENT,)

FLAGS: tuple[Flag, ...] = (
    # config and logging
    Flag("config", _SA, STR, short="c"),
    Flag("debug", _SA, BOOL),
    Flag("v", _SA, STR),
    Flag("vmodule", _SA, STR),
    Flag("log", _SA, STR, short="l"),
    Flag("alsologtostderr", _SA, BOOL),
    # cluster membership
    Flag("token", _SA, STR, secret=True, managed=True, short="t"),
    Flag("token-file", _SA, STR, managed=True),
    Flag("server", _SA, STR, managed=True, short="s"),
    Flag("agent-token", _S, STR, secret=True, managed=True),
    Flag("agent-token-file", _S, STR, managed=True),
    Flag("cluster-init", _S, BOOL, managed=True),
    Flag("cluster-reset", _S, BOOL, managed=True),
    Flag("cluster-reset-restore-path", _S, STR),
    # data
    Flag("data-dir", _SA, STR, short="d"),
    # listener
    Flag("bind-address", _SA, STR),
    Flag("https-listen-port", _S, STR),
    Flag("supervisor-port", _S, STR),
    Flag("apiserver-port", _S, STR),
    Flag("apiserver-bind-address", _S, STR),
    Flag("advertise-address", _S, STR),
    Flag("advertise-port", _S, STR),
    Flag("tls-san", _S, LIST),
    Flag("tls-san-security", _S, BOOL),
    # cluster networking
    Flag("cluster-cidr", _S, LIST),
    Flag("service-cidr", _S, LIST),
    Flag("service-node-port-range", _S, STR),
    Flag("cluster-dns", _S, LIST),
    Flag("cluster-domain", _S, STR),
    Flag("flannel-backend", _S, STR),
    Flag("flannel-ipv6-masq", _S, BOOL),
    Flag("flannel-external-ip", _S, BOOL),
    Flag("egress-selector-mode", _S, STR),
    Flag("servicelb-namespace", _S, STR),
    # admin kubeconfig and helm
    Flag("write-kubeconfig", _S, STR, short="o"),
    Flag("write-kubeconfig-mode", _S, STR),
    Flag("write-kubeconfig-group", _S, STR),
    Flag("helm-job-image", _S, STR),
    # extra arguments of the embedded components
    Flag("kube-apiserver-arg", _S, LIST),
    Flag("etcd-arg", _S, LIST),
    Flag("kube-controller-manager-arg", _S, LIST),
    Flag("kube-scheduler-arg", _S, LIST),
    Flag("kube-cloud-controller-manager-arg", _S, LIST),
    Flag("kubelet-arg", _SA, LIST),
    Flag("kube-proxy-arg", _SA, LIST),
    # datastore
    Flag("datastore-endpoint", _S, STR, secret=True, managed=True),
    Flag("datastore-cafile", _S, STR),
    Flag("datastore-certfile", _S, STR),
    Flag("datastore-keyfile", _S, STR),
    # etcd snapshots
    Flag("etcd-expose-metrics", _S, BOOL),
    Flag("etcd-disable-snapshots", _S, BOOL),
    Flag("etcd-snapshot-name", _S, STR),
    Flag("etcd-snapshot-schedule-cron", _S, STR),
    Flag("etcd-snapshot-retention", _S, STR),
    Flag("etcd-snapshot-dir", _S, STR),
    Flag("etcd-snapshot-compress", _S, BOOL),
    Flag("etcd-s3", _S, BOOL),
    Flag("etcd-s3-endpoint", _S, STR),
    Flag("etcd-s3-endpoint-ca", _S, STR),
    Flag("etcd-s3-skip-ssl-verify", _S, BOOL),
    Flag("etcd-s3-access-key", _S, STR, secret=True),
    Flag("etcd-s3-secret-key", _S, STR, secret=True),
    Flag("etcd-s3-session-token", _S, STR, secret=True),
    Flag("etcd-s3-bucket", _S, STR),
    Flag("etcd-s3-bucket-lookup-type", _S, STR),
    Flag("etcd-s3-region", _S, STR),
    Flag("etcd-s3-folder", _S, STR),
    Flag("etcd-s3-retention", _S, STR),
    Flag("etcd-s3-proxy", _S, STR),
    Flag("etcd-s3-config-secret", _S, STR),
    Flag("etcd-s3-insecure", _S, BOOL),
    Flag("etcd-s3-timeout", _S, STR),
    # packaged and embedded components
    Flag("default-local-storage-path", _S, STR),
    Flag("disable", _S, LIST),
    Flag("disable-scheduler", _S, BOOL),
    Flag("disable-cloud-controller", _S, BOOL),
    Flag("disable-kube-proxy", _S, BOOL),
    Flag("disable-network-policy", _S, BOOL),
    Flag("disable-helm-controller", _S, BOOL),
    Flag("disable-apiserver", _S, BOOL),
    Flag("disable-controller-manager", _S, BOOL),
    Flag("disable-etcd", _S, BOOL),
    Flag("disable-agent", _S, BOOL),
    Flag("embedded-registry", _S, BOOL),
    Flag("supervisor-metrics", _S, BOOL),
    Flag("secrets-encryption", _S, BOOL),
    Flag("secrets-encryption-provider", _S, STR),
    # the node
    Flag("node-name", _SA, STR),
    Flag("with-node-id", _SA, BOOL),
    Flag("node-label", _SA, LIST),
    Flag("node-taint", _SA, LIST),
    Flag("image-credential-provider-bin-dir", _SA, STR),
    Flag("image-credential-provider-config", _SA, STR),
    Flag("selinux", _SA, BOOL),
    Flag("lb-server-port", _SA, STR),
    Flag("protect-kernel-defaults", _SA, BOOL),
    # container runtime and registries; the system default registry is a server flag only
    Flag("docker", _SA, BOOL),
    Flag("container-runtime-endpoint", _SA, STR),
    Flag("default-runtime", _SA, STR),
    Flag("image-service-endpoint", _SA, STR),
    Flag("disable-default-registry-endpoint", _SA, BOOL),
    Flag("nonroot-devices", _SA, BOOL),
    Flag("pause-image", _SA, STR),
    Flag("snapshotter", _SA, STR),
    Flag("private-registry", _SA, STR),
    Flag("system-default-registry", _S, STR),
    Flag("airgap-extra-registry", _SA, LIST),
    # node networking; the agent's own load balancer can be turned off on an agent only
    Flag("node-ip", _SA, LIST, short="i"),
    Flag("node-external-ip", _SA, LIST),
    Flag("node-internal-dns", _SA, LIST),
    Flag("node-external-dns", _SA, LIST),
    Flag("resolv-conf", _SA, STR),
    Flag("flannel-iface", _SA, STR),
    Flag("flannel-conf", _SA, STR),
    Flag("flannel-cni-conf", _SA, STR),
    Flag("vpn-auth", _SA, STR, secret=True),
    Flag("vpn-auth-file", _SA, STR),
    Flag("disable-apiserver-lb", _A, BOOL),
    # experimental
    Flag("enable-pprof", _SA, BOOL),
    Flag("rootless", _SA, BOOL),
    Flag("prefer-bundled-bin", _SA, BOOL),
)
