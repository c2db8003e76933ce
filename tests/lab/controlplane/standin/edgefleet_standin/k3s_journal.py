"""The `Running <component> --flag=value ...` journal lines of the `k3s` stand-in, for kube-bench.

Real K3s logs one such line per component it starts (kube-apiserver, kube-controller-manager, kube-scheduler,
kubelet, kube-proxy), its arguments as `--key=value` sorted by key, and kube-bench's K3s benchmarks read the flags
back from the journal (`journalctl -m -u k3s | grep 'Running kube-apiserver'`).

- kube-apiserver: the stand-in really runs it; its line is built from the very argv the stand-in starts it with.
- kube-controller-manager, kube-scheduler, kubelet, kube-proxy: the stand-in does NOT run them. Their lines carry
  the arguments K3s would pass, derived here from the same config (cluster/service CIDRs, node name and IP, and the
  user's `*-arg` passthrough, which overrides the defaults as in K3s). Each such line starts with
  `[stand-in: not run, args K3s would pass]` so no reader takes it for a running process.

The defaults below follow K3s's documented and logged defaults for these components; they are written here from
those facts, not copied from K3s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .core import atomic_write, kubeconfig, log

NOT_RUN = "[stand-in: not run, args K3s would pass]"


def running_line(component: str, argv: list[str]) -> str:
    """`Running <component> --k=v ...` of an argv (binary first), flags sorted by name as K3s prints them."""
    return f"Running {component} " + " ".join(sorted(argv[1:], key=lambda a: a.lstrip("-").partition("=")[0]))


def _merge(defaults: dict[str, str], passthrough: Any) -> list[str]:
    flags = dict(defaults)
    for arg in passthrough or []:  # `key=value`, overriding a default (K3s's *-arg semantics)
        key, _, value = str(arg).lstrip("-").partition("=")
        flags[key] = value
    return [f"--{k}={v}" for k, v in flags.items()]


def _first(cfg: dict[str, Any], key: str, default: str) -> str:
    return str((cfg.get(key) or [default])[0])


def controller_manager_argv(cfg: dict[str, Any], data: Path) -> list[str]:
    """What K3s would start kube-controller-manager with (not run by the stand-in)."""
    cred, tls = data / "server" / "cred", data / "server" / "tls"
    kcfg = str(cred / "controller.kubeconfig")
    defaults = {
        "allocate-node-cidrs": "true",
        "authentication-kubeconfig": kcfg,
        "authorization-kubeconfig": kcfg,
        "bind-address": "127.0.0.1",
        "cluster-cidr": _first(cfg, "cluster-cidr", "10.42.0.0/16"),
        "cluster-signing-kube-apiserver-client-cert-file": str(tls / "client-ca.crt"),
        "cluster-signing-kubelet-client-cert-file": str(tls / "client-ca.crt"),
        "cluster-signing-kubelet-serving-cert-file": str(tls / "server-ca.crt"),
        "configure-cloud-routes": "false",
        "controllers": "*,tokencleaner,-service,-route,-cloud-node-lifecycle",
        "kubeconfig": kcfg,
        "profiling": "false",
        "root-ca-file": str(tls / "server-ca.crt"),
        "secure-port": "10257",
        "service-account-private-key-file": str(tls / "service.key"),
        "service-cluster-ip-range": _first(cfg, "service-cidr", "10.43.0.0/16"),
        "use-service-account-credentials": "true",
    }
    return ["kube-controller-manager", *_merge(defaults, cfg.get("kube-controller-manager-arg"))]


def scheduler_argv(cfg: dict[str, Any], data: Path) -> list[str]:
    """What K3s would start kube-scheduler with (not run by the stand-in)."""
    kcfg = str(data / "server" / "cred" / "scheduler.kubeconfig")
    defaults = {
        "authentication-kubeconfig": kcfg,
        "authorization-kubeconfig": kcfg,
        "bind-address": "127.0.0.1",
        "kubeconfig": kcfg,
        "profiling": "false",
        "secure-port": "10259",
    }
    return ["kube-scheduler", *_merge(defaults, cfg.get("kube-scheduler-arg"))]


def kubelet_argv(cfg: dict[str, Any], data: Path, name: str, ip: str) -> list[str]:
    """What K3s would start the kubelet with (not run by the stand-in: there is no kubelet in the lab)."""
    agent = data / "agent"
    defaults = {
        "address": "0.0.0.0",
        "anonymous-auth": "false",
        "authentication-token-webhook": "true",
        "authorization-mode": "Webhook",
        "cgroup-driver": "systemd",
        "client-ca-file": str(agent / "client-ca.crt"),
        "cloud-provider": "external",
        "cluster-dns": _first(cfg, "cluster-dns", "10.43.0.10"),
        "cluster-domain": str(cfg.get("cluster-domain") or "cluster.local"),
        "container-runtime-endpoint": "unix:///run/k3s/containerd/containerd.sock",
        "eviction-hard": "imagefs.available<5%,nodefs.available<5%",
        "eviction-minimum-reclaim": "imagefs.available=10%,nodefs.available=10%",
        "fail-swap-on": "false",
        "healthz-bind-address": "127.0.0.1",
        "hostname-override": name,
        "kubeconfig": str(agent / "kubelet.kubeconfig"),
        "node-ip": ip,
        "pod-manifest-path": str(agent / "pod-manifests"),
        "read-only-port": "0",
        "resolv-conf": str(cfg.get("resolv-conf") or "/etc/resolv.conf"),
        "serialize-image-pulls": "false",
        "tls-cert-file": str(agent / "serving-kubelet.crt"),
        "tls-private-key-file": str(agent / "serving-kubelet.key"),
    }
    if str(cfg.get("protect-kernel-defaults", "")).lower() in {"true", "1", "yes"}:
        defaults["protect-kernel-defaults"] = "true"
    return ["kubelet", *_merge(defaults, cfg.get("kubelet-arg"))]


def kube_proxy_argv(cfg: dict[str, Any], data: Path, name: str) -> list[str]:
    """What K3s would start kube-proxy with (not run by the stand-in: there is no kube-proxy in the lab)."""
    defaults = {
        "cluster-cidr": _first(cfg, "cluster-cidr", "10.42.0.0/16"),
        "conntrack-max-per-core": "0",
        "conntrack-tcp-timeout-close-wait": "0s",
        "conntrack-tcp-timeout-established": "0s",
        "healthz-bind-address": "127.0.0.1",
        "hostname-override": name,
        "kubeconfig": str(data / "agent" / "kubeproxy.kubeconfig"),
        "proxy-mode": "iptables",
    }
    return ["kube-proxy", *_merge(defaults, cfg.get("kube-proxy-arg"))]


def log_not_run(argv: list[str]) -> None:
    log(f"{NOT_RUN} {running_line(argv[0], argv)}")


def write_agent_layout(data: Path, server_url: str, ca_pem: str, client_ca_pem: str) -> None:
    """K3s's agent files that kube-bench checks (modes 0600, root-owned): the kubelet and kube-proxy kubeconfigs
    and the kubelet's client CA. No kubelet or kube-proxy reads them here; the kubeconfigs carry no credentials."""
    agent = data / "agent"
    agent.mkdir(parents=True, exist_ok=True)
    for name in ("kubelet.kubeconfig", "kubeproxy.kubeconfig"):
        atomic_write(agent / name, kubeconfig(server_url, ca_pem), 0o600)
    atomic_write(agent / "client-ca.crt", client_ca_pem, 0o600)


def write_server_layout(data: Path, server_url: str, ca_pem: str) -> None:
    """K3s's kube-controller-manager and kube-scheduler kubeconfigs (0600; no credentials: neither runs here)."""
    cred = data / "server" / "cred"
    for name in ("controller.kubeconfig", "scheduler.kubeconfig"):
        atomic_write(cred / name, kubeconfig(server_url, ca_pem), 0o600)
