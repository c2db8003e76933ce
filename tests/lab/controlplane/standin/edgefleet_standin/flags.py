"""K3s CLI flag names (facts from the K3s docs' `k3s server --help` / `k3s agent --help`), our own list.

Config-file keys are these names without the leading dashes. A key ending in `+` appends to a list.
"""

from __future__ import annotations

COMMON = {
    "config", "debug", "v", "vmodule", "log", "alsologtostderr", "data-dir", "token", "token-file", "server",
    "node-name", "with-node-id", "node-label", "node-taint", "image-credential-provider-bin-dir",
    "image-credential-provider-config", "docker", "container-runtime-endpoint", "default-runtime",
    "image-service-endpoint", "disable-default-registry-endpoint", "nonroot-devices", "pause-image", "snapshotter",
    "private-registry", "system-default-registry", "node-ip", "node-external-ip", "node-internal-dns",
    "node-external-dns", "resolv-conf", "flannel-iface", "flannel-conf", "flannel-cni-conf", "kubelet-arg",
    "kube-proxy-arg", "protect-kernel-defaults", "rootless", "prefer-bundled-bin", "selinux", "lb-server-port",
    "vpn-auth", "vpn-auth-file", "airgap-extra-registry", "enable-pprof",
}  # fmt: skip

SERVER = COMMON | {
    "bind-address", "https-listen-port", "supervisor-port", "apiserver-port", "apiserver-bind-address",
    "advertise-address", "advertise-port", "tls-san", "tls-san-security", "cluster-cidr", "service-cidr",
    "service-node-port-range", "cluster-dns", "cluster-domain", "flannel-backend", "flannel-ipv6-masq",
    "flannel-external-ip", "egress-selector-mode", "servicelb-namespace", "write-kubeconfig", "write-kubeconfig-mode",
    "write-kubeconfig-group", "helm-job-image", "agent-token", "agent-token-file", "cluster-init", "cluster-reset",
    "cluster-reset-restore-path", "kube-apiserver-arg", "etcd-arg", "kube-controller-manager-arg",
    "kube-scheduler-arg", "kube-cloud-controller-manager-arg", "datastore-endpoint", "datastore-cafile",
    "datastore-certfile", "datastore-keyfile", "etcd-expose-metrics", "etcd-disable-snapshots", "etcd-snapshot-name",
    "etcd-snapshot-schedule-cron", "etcd-snapshot-retention", "etcd-snapshot-dir", "etcd-snapshot-compress",
    "etcd-s3", "etcd-s3-endpoint", "etcd-s3-endpoint-ca", "etcd-s3-skip-ssl-verify", "etcd-s3-access-key",
    "etcd-s3-secret-key", "etcd-s3-bucket", "etcd-s3-region", "etcd-s3-folder", "etcd-s3-proxy",
    "etcd-s3-config-secret", "etcd-s3-insecure", "etcd-s3-timeout", "default-local-storage-path", "disable",
    "disable-scheduler", "disable-cloud-controller", "disable-kube-proxy", "disable-network-policy",
    "disable-helm-controller", "disable-apiserver", "disable-controller-manager", "disable-etcd", "disable-agent",
    "embedded-registry", "supervisor-metrics", "secrets-encryption", "secrets-encryption-provider",
}  # fmt: skip

AGENT = COMMON | {"disable-apiserver-lb"}

LISTS = {
    "tls-san", "kube-apiserver-arg", "etcd-arg", "kube-controller-manager-arg", "kube-scheduler-arg",
    "kube-cloud-controller-manager-arg", "kubelet-arg", "kube-proxy-arg", "node-label", "node-taint", "disable",
    "node-ip", "node-external-ip", "node-internal-dns", "node-external-dns", "cluster-cidr", "service-cidr",
    "airgap-extra-registry",
}  # fmt: skip

BOOLS = {
    "debug", "alsologtostderr", "with-node-id", "docker", "disable-default-registry-endpoint", "nonroot-devices",
    "protect-kernel-defaults", "rootless", "prefer-bundled-bin", "selinux", "enable-pprof", "tls-san-security",
    "flannel-ipv6-masq", "flannel-external-ip", "cluster-init", "cluster-reset", "etcd-expose-metrics",
    "etcd-disable-snapshots", "etcd-snapshot-compress", "etcd-s3", "etcd-s3-skip-ssl-verify", "etcd-s3-insecure",
    "disable-scheduler", "disable-cloud-controller", "disable-kube-proxy", "disable-network-policy",
    "disable-helm-controller", "disable-apiserver", "disable-controller-manager", "disable-etcd", "disable-agent",
    "embedded-registry", "supervisor-metrics", "secrets-encryption", "disable-apiserver-lb",
}  # fmt: skip

SHORT = {"c": "config", "t": "token", "s": "server", "d": "data-dir", "o": "write-kubeconfig", "i": "node-ip",
         "l": "log"}  # fmt: skip
