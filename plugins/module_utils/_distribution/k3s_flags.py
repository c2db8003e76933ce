# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The K3s config-file keys we know: the CLI flag names without dashes.

Our own list, taken as facts from the K3s CLI reference (``k3s server --help``,
``k3s agent --help``). A server also runs an agent, so every agent key is valid
on a server. Keys K3s removed (dqlite era, ``--no-flannel``...) are absent on purpose.
"""

from __future__ import annotations

AGENT_KEYS: frozenset[str] = frozenset(
    {
        # logging / config
        "config",
        "debug",
        "v",
        "vmodule",
        "log",
        "alsologtostderr",
        # cluster
        "token",
        "token-file",
        "server",
        "data-dir",
        # node
        "node-name",
        "with-node-id",
        "node-label",
        "node-taint",
        "image-credential-provider-bin-dir",
        "image-credential-provider-config",
        "selinux",
        "lb-server-port",
        "protect-kernel-defaults",
        "rootless",
        "prefer-bundled-bin",
        # runtime
        "docker",
        "container-runtime-endpoint",
        "default-runtime",
        "image-service-endpoint",
        "disable-default-registry-endpoint",
        "nonroot-devices",
        "pause-image",
        "snapshotter",
        "private-registry",
        "system-default-registry",
        "airgap-extra-registry",
        # networking
        "node-ip",
        "bind-address",
        "node-external-ip",
        "node-internal-dns",
        "node-external-dns",
        "resolv-conf",
        "flannel-iface",
        "flannel-conf",
        "flannel-cni-conf-file",
        "vpn-auth",
        "vpn-auth-file",
        # components
        "kubelet-arg",
        "kube-proxy-arg",
    }
)

SERVER_ONLY_KEYS: frozenset[str] = frozenset(
    {
        # listener
        "https-listen-port",
        "supervisor-port",
        "apiserver-port",
        "apiserver-bind-address",
        "advertise-address",
        "advertise-port",
        "tls-san",
        "tls-san-security",
        # networking
        "cluster-cidr",
        "service-cidr",
        "service-node-port-range",
        "cluster-dns",
        "cluster-domain",
        "flannel-backend",
        "flannel-ipv6-masq",
        "flannel-external-ip",
        "egress-selector-mode",
        "servicelb-namespace",
        # client
        "write-kubeconfig",
        "write-kubeconfig-mode",
        "write-kubeconfig-group",
        "helm-job-image",
        # cluster
        "agent-token",
        "agent-token-file",
        "cluster-init",
        "cluster-reset",
        "cluster-reset-restore-path",
        # components
        "etcd-arg",
        "kube-apiserver-arg",
        "kube-scheduler-arg",
        "kube-controller-manager-arg",
        "kube-cloud-controller-manager-arg",
        # database
        "datastore-endpoint",
        "datastore-cafile",
        "datastore-certfile",
        "datastore-keyfile",
        "etcd-expose-metrics",
        "etcd-disable-snapshots",
        "etcd-snapshot-name",
        "etcd-snapshot-schedule-cron",
        "etcd-snapshot-retention",
        "etcd-snapshot-dir",
        "etcd-snapshot-compress",
        "etcd-s3",
        "etcd-s3-endpoint",
        "etcd-s3-endpoint-ca",
        "etcd-s3-skip-ssl-verify",
        "etcd-s3-access-key",
        "etcd-s3-secret-key",
        "etcd-s3-bucket",
        "etcd-s3-region",
        "etcd-s3-folder",
        "etcd-s3-proxy",
        "etcd-s3-config-secret",
        "etcd-s3-insecure",
        "etcd-s3-timeout",
        "etcd-s3-bucket-lookup-type",
        # storage / components
        "default-local-storage-path",
        "disable",
        "disable-scheduler",
        "disable-cloud-controller",
        "disable-kube-proxy",
        "disable-network-policy",
        "disable-helm-controller",
        "disable-apiserver",
        "disable-controller-manager",
        "disable-etcd",
        "disable-agent",
        "embedded-registry",
        "supervisor-metrics",
        "secrets-encryption",
        "secrets-encryption-provider",
        "enable-pprof",
    }
)

SERVER_KEYS: frozenset[str] = AGENT_KEYS | SERVER_ONLY_KEYS

# Flags that take no value.
BOOL_KEYS: frozenset[str] = frozenset(
    {
        "debug",
        "alsologtostderr",
        "with-node-id",
        "selinux",
        "protect-kernel-defaults",
        "rootless",
        "prefer-bundled-bin",
        "docker",
        "disable-default-registry-endpoint",
        "flannel-ipv6-masq",
        "flannel-external-ip",
        "cluster-init",
        "cluster-reset",
        "etcd-expose-metrics",
        "etcd-disable-snapshots",
        "etcd-snapshot-compress",
        "etcd-s3",
        "etcd-s3-skip-ssl-verify",
        "etcd-s3-insecure",
        "disable-scheduler",
        "disable-cloud-controller",
        "disable-kube-proxy",
        "disable-network-policy",
        "disable-helm-controller",
        "disable-apiserver",
        "disable-controller-manager",
        "disable-etcd",
        "disable-agent",
        "embedded-registry",
        "supervisor-metrics",
        "secrets-encryption",
        "enable-pprof",
        "tls-san-security",
    }
)

# Flags that may be given more than once (a YAML list in the config file).
# ``*-arg`` lists hold ``name=value`` items; they are merged by name.
LIST_KEYS: frozenset[str] = frozenset(
    {
        "node-label",
        "node-taint",
        "node-ip",
        "node-external-ip",
        "node-internal-dns",
        "node-external-dns",
        "tls-san",
        "cluster-cidr",
        "service-cidr",
        "cluster-dns",
        "disable",
        "kubelet-arg",
        "kube-proxy-arg",
        "etcd-arg",
        "kube-apiserver-arg",
        "kube-scheduler-arg",
        "kube-controller-manager-arg",
        "kube-cloud-controller-manager-arg",
        "airgap-extra-registry",
    }
)

ARG_LIST_KEYS: frozenset[str] = frozenset(k for k in LIST_KEYS if k.endswith("-arg"))

# Values that are secrets: redacted in diffs and return values, and refused inline
# in user overrides (they belong in a 0600 file).
SECRET_KEYS: frozenset[str] = frozenset(
    {"token", "agent-token", "datastore-endpoint", "etcd-s3-access-key", "etcd-s3-secret-key", "vpn-auth"}
)

# Keys the role computes from the inventory contract; a user override may not set them.
MANAGED_KEYS: frozenset[str] = frozenset(
    {"token", "token-file", "agent-token", "server", "cluster-init", "datastore-endpoint", "cluster-reset"}
)
