"""The lab `k3s` CLI stand-in: server, agent, token, etcd-snapshot, kubectl, --version."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from . import core, flags, k3s_journal
from .core import Api, StandinError, log

CONFIG = Path(os.environ.get("K3S_CONFIG_FILE", "/etc/rancher/k3s/config.yaml"))
KUBECONFIG = Path("/etc/rancher/k3s/k3s.yaml")
DATA_DIR = Path("/var/lib/rancher/k3s")
ENV_FLAGS = {
    "K3S_TOKEN": "token", "K3S_TOKEN_FILE": "token-file", "K3S_URL": "server", "K3S_AGENT_TOKEN": "agent-token",
    "K3S_AGENT_TOKEN_FILE": "agent-token-file", "K3S_NODE_NAME": "node-name", "K3S_DATA_DIR": "data-dir",
    "K3S_KUBECONFIG_OUTPUT": "write-kubeconfig", "K3S_KUBECONFIG_MODE": "write-kubeconfig-mode",
    "K3S_CLUSTER_INIT": "cluster-init", "K3S_DATASTORE_ENDPOINT": "datastore-endpoint",
}  # fmt: skip


# ----------------------------------------------------------------------------- config


def load_config(role: str, argv: list[str]) -> dict[str, Any]:
    """Merge config.yaml, config.yaml.d/*.yaml (sorted), env and CLI; reject unknown keys, listing every one."""
    allowed = flags.SERVER if role == "server" else flags.AGENT
    cli = parse_cli(argv, allowed)
    path = Path(str(cli.get("config", CONFIG)))
    files = ([path] if path.exists() else []) + sorted(Path(str(path) + ".d").glob("*.yaml"))
    merged: dict[str, Any] = {}
    problems: list[str] = []
    for file in files:
        try:
            doc = core.read_yaml_file(file)
        except Exception as exc:
            problems.append(f"{file}: not valid YAML: {exc}")
            continue
        if doc is None:
            continue
        if not isinstance(doc, dict):
            problems.append(f"{file}: expected a mapping of flag names, found {type(doc).__name__}")
            continue
        for raw_key, value in doc.items():
            key = str(raw_key)
            append = key.endswith("+")
            key = key.rstrip("+")
            if key not in allowed:
                problems.append(f'{file}: unknown key "{key}" (not a k3s {role} flag)')
                continue
            if key in flags.LISTS:
                items = value if isinstance(value, list) else [value]
                merged[key] = (merged.get(key, []) if append else []) + [str(i) for i in items]
            else:
                merged[key] = value
    if problems:
        raise StandinError(f"k3s {role}: invalid configuration:\n  " + "\n  ".join(problems))
    for env, key in ENV_FLAGS.items():
        if env in os.environ and key in allowed and key not in cli:
            merged[key] = os.environ[env]
    for key, value in cli.items():
        if key in flags.LISTS:
            merged[key] = merged.get(key, []) + list(value)
        else:
            merged[key] = value
    return merged


def parse_cli(argv: list[str], allowed: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    unknown: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-"):
            unknown.append(arg)
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        name = flags.SHORT.get(name, name)
        if name not in allowed:
            unknown.append(arg)
            continue
        if name in flags.BOOLS:
            out[name] = (value.lower() not in {"false", "0"}) if eq else True
            continue
        if not eq:
            if i >= len(argv):
                raise StandinError(f"flag --{name} needs a value")
            value = argv[i]
            i += 1
        if name in flags.LISTS:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    if unknown:
        raise StandinError("unknown flag(s): " + " ".join(unknown))
    return out


def truthy(value: Any) -> bool:
    return value is True or str(value).lower() in {"true", "1", "yes"}


def read_token(cfg: dict[str, Any], key: str) -> str | None:
    if cfg.get(f"{key}-file"):
        path = Path(str(cfg[f"{key}-file"]))
        if not path.exists():
            raise StandinError(f"{key}-file {path} does not exist")
        return path.read_text().strip()
    if cfg.get(key):
        return str(cfg[key]).strip()
    return None


# ----------------------------------------------------------------------------- server


@dataclass
class Paths:
    data: Path

    @property
    def server(self) -> Path:
        return self.data / "server"

    @property
    def tls(self) -> Path:
        return self.server / "tls"

    @property
    def db(self) -> Path:
        return self.server / "db"


def server(argv: list[str], version: str) -> int:
    cfg = load_config("server", argv)
    paths = Paths(Path(str(cfg.get("data-dir", DATA_DIR))))
    hostname = str(cfg.get("node-name") or socket.gethostname())
    ip = str((cfg.get("node-ip") or [core.node_ip()])[0])
    advertise = str(cfg.get("advertise-address") or ip)
    port = int(cfg.get("https-listen-port", 6443))
    bind = str(cfg.get("bind-address", "0.0.0.0"))
    join = str(cfg.get("server") or "")
    endpoint = str(cfg.get("datastore-endpoint") or "")
    use_etcd = (truthy(cfg.get("cluster-init")) or bool(join)) and not endpoint
    service_cidr = str((cfg.get("service-cidr") or ["10.43.0.0/16"])[0])
    service_ip = _first_ip(service_cidr)
    if truthy(cfg.get("cluster-reset")):
        return cluster_reset(paths, hostname, ip, str(cfg.get("cluster-reset-restore-path") or ""))
    for d in (paths.tls, paths.db, paths.server / "manifests", paths.server / "cred"):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.server, 0o700)

    token_raw = read_token(cfg, "token")
    agent_raw = read_token(cfg, "agent-token")
    if join:
        if not token_raw:
            raise StandinError("joining a server (server: set) needs token or token-file")
        _join_bootstrap(paths, join, core.Token.parse(token_raw))
    sans = {hostname, ip, advertise, *[str(s) for s in cfg.get("tls-san", [])]}
    core.ensure_apiserver_pki(paths.tls, sans, service_ip)
    ca_hash = core.sha256_file(paths.tls / "server-ca.crt")

    # Tokens: server token (admin + join) and optional agent token, K3s format.
    stored = paths.server / "token"
    if token_raw:
        server_pw = core.Token.parse(token_raw).password
    elif stored.exists():
        server_pw = core.Token.parse(stored.read_text()).password
    else:
        server_pw = core.new_password()
    server_token = core.Token(ca_hash, "server", server_pw).full(ca_hash)
    core.atomic_write(stored, server_token + "\n", 0o600)
    core.atomic_write(paths.server / "node-token", server_token + "\n", 0o600)
    agent_pw = core.Token.parse(agent_raw).password if agent_raw else None
    if agent_pw:
        core.atomic_write(paths.server / "agent-token", core.Token(ca_hash, "node", agent_pw).full(ca_hash) + "\n")
    core.write_token_store(paths.server / "cred" / "passwd", server_pw, agent_pw)

    enc = None
    if truthy(cfg.get("secrets-encryption")):
        enc = paths.server / "cred" / "encryption-config.json"
        core.write_encryption_config(enc)

    sup = core.Supervisor()
    sup.install_signals()
    webhook = core.TokenWebhook(paths.server / "cred" / "passwd", paths.tls)
    try:
        webhook.start()
        webhook_kcfg = paths.server / "cred" / "token-webhook.kubeconfig"
        webhook.write_kubeconfig(webhook_kcfg, paths.tls)
        if use_etcd:
            etcd_servers = _start_etcd(sup, cfg, paths, hostname, ip, join)
            etcd_tls: Path | None = paths.tls / "etcd"
        else:
            sock = paths.server / "kine.sock"
            sock.unlink(missing_ok=True)
            db_endpoint = endpoint or ""
            core.migrate_or_check_datastore(paths.db / "state.db", version, sup)
            argv_kine = core.kine_args(sock, paths.db / "state.db")
            if db_endpoint:
                argv_kine = [a if not a.startswith("--endpoint=") else f"--endpoint={db_endpoint}" for a in argv_kine]
            sup.add(core.Child("kine", argv_kine))
            _wait_for(lambda: sock.exists(), 30, sup, "kine socket")
            etcd_servers, etcd_tls = f"unix://{sock}", None
        spec = core.ApiserverSpec(
            tls=paths.tls,
            bind=bind,
            port=port,
            advertise=advertise,
            etcd_servers=etcd_servers,
            token_webhook_config=webhook_kcfg,
            encryption_config=enc,
            service_cidr=service_cidr,
            node_port_range=str(cfg.get("service-node-port-range", "30000-32767")),
            etcd_tls=etcd_tls,
            extra=[str(a) for a in cfg.get("kube-apiserver-arg", [])],
        )
        core.hold_if_never_ready(sup)
        apiserver_argv = core.apiserver_args(spec)
        sup.add(core.Child("kube-apiserver", apiserver_argv))
        # The argv the real kube-apiserver just got, as K3s logs it (kube-bench reads its flags from the journal).
        log(k3s_journal.running_line("kube-apiserver", apiserver_argv))
        local = f"https://{bind if bind not in {'0.0.0.0', '::', ''} else '127.0.0.1'}:{port}"
        ca_pem = (paths.tls / "server-ca.crt").read_text()
        admin = Api(local, ca_pem, cert=paths.tls / "client-admin.crt", key=paths.tls / "client-admin.key")
        core.wait_ready(admin, 300, sup)
        kcfg_path = Path(str(cfg.get("write-kubeconfig", KUBECONFIG)))
        mode = int(str(cfg.get("write-kubeconfig-mode", "0600")), 8)
        kcfg = core.kubeconfig(local, ca_pem, cert=paths.tls / "client-admin.crt", key=paths.tls / "client-admin.key")
        core.atomic_write(kcfg_path, kcfg, mode)
        admin_kcfg = paths.server / "cred" / "admin.kubeconfig"
        core.atomic_write(admin_kcfg, kcfg, 0o600)
        core.apply_rbac(admin_kcfg)
        # Components the stand-in does not run: K3s's file layout and the journal lines K3s would write for them.
        k3s_journal.write_server_layout(paths.data, local, ca_pem)
        k3s_journal.log_not_run(k3s_journal.controller_manager_argv(cfg, paths.data))
        k3s_journal.log_not_run(k3s_journal.scheduler_argv(cfg, paths.data))
        if not truthy(cfg.get("disable-agent")):  # K3s's server runs its own kubelet and kube-proxy
            client_ca = (paths.tls / "client-ca.crt").read_text()
            k3s_journal.write_agent_layout(paths.data, local, ca_pem, client_ca)
            k3s_journal.log_not_run(k3s_journal.kubelet_argv(cfg, paths.data, hostname, ip))
            k3s_journal.log_not_run(k3s_journal.kube_proxy_argv(cfg, paths.data, hostname))
        _publish_bootstrap(admin_kcfg, paths, server_pw, agent_pw, ca_pem)
        node = None
        if not truthy(cfg.get("disable-agent")):
            labels = {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"}
            if use_etcd:
                labels["node-role.kubernetes.io/etcd"] = "true"
            labels.update(core.parse_labels(cfg.get("node-label", [])))
            node = core.node_object(hostname, labels, core.parse_taints(cfg.get("node-taint", [])), ip, version)
            core.register_node(admin, node)
        log(f"k3s stand-in server ready on {bind}:{port} (datastore: {'etcd' if use_etcd else 'kine/sqlite'})")
        watcher = core.ManifestWatcher(paths.server / "manifests", admin_kcfg)
        tick = 0
        while not sup.stopping:
            sup.check()
            if tick % 5 == 0:
                watcher.poll()
            if node is not None and tick % 10 == 0 and tick:
                try:
                    core.heartbeat(admin, node)
                except (StandinError, OSError) as exc:
                    log(f"heartbeat failed: {exc}")
            tick += 1
            time.sleep(1)
        return 0
    finally:
        sup.stop_all()
        webhook.stop()


def _first_ip(cidr: str) -> str:
    base = cidr.split("/")[0]
    parts = base.split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    return ".".join(parts)


def _wait_for(cond: Any, timeout: float, sup: core.Supervisor, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sup.check()
        if cond():
            return
        time.sleep(0.3)
    raise StandinError(f"timed out waiting for {what}")


def _start_etcd(sup: core.Supervisor, cfg: dict[str, Any], paths: Paths, name: str, ip: str, join: str) -> str:
    etls = paths.tls / "etcd"
    core.ensure_etcd_pki(etls, ip, name)
    data = paths.db / "etcd"
    spec = core.EtcdSpec(name, data, etls, ip, extra=[f"--{a.lstrip('-')}" for a in cfg.get("etcd-arg", [])])
    remote = f"https://{urlparse(join).hostname}:2379" if join else ""
    peer = f"https://{ip}:2380"
    if not (data / "member").exists():
        if join:
            # Join as a learner (as K3s does), so an unstarted member never costs the cluster its quorum;
            # serializable reads work while a member is missing.
            listing = json.loads(core.etcdctl(etls, remote, "member", "list", "--consistency=s", "-w", "json").stdout)
            members = listing.get("members", [])
            if not any(peer in m.get("peerURLs", []) for m in members):
                log(f"adding etcd learner {name} ({peer}) through {remote}")
                added = core.etcdctl(
                    etls, remote, "member", "add", name, f"--peer-urls={peer}", "--learner", "-w", "json"
                )
                members = json.loads(added.stdout).get("members", [])
            cluster = []
            for m in members:
                mname = m.get("name") or name
                cluster += [f"{mname}={u}" for u in m.get("peerURLs", [])]
            spec.initial_cluster, spec.state = ",".join(cluster), "existing"
        else:
            spec.initial_cluster, spec.state = f"{name}={peer}", "new"
    sup.add(core.Child("etcd", core.etcd_args(spec)))
    if join:  # the local endpoint answers too when the init server is down at a restart
        _promote_learner(sup, etls, f"{remote},https://127.0.0.1:2379", peer)
    _wait_for(
        lambda: core.etcdctl(etls, "https://127.0.0.1:2379", "endpoint", "health", check=False).returncode == 0,
        180,
        sup,
        "etcd health",
    )
    return "https://127.0.0.1:2379"


def _promote_learner(sup: core.Supervisor, etls: Path, remote: str, peer: str, timeout: float = 300) -> None:
    """Promote this member to a voter once it has caught up with the leader."""
    deadline = time.monotonic() + timeout
    while True:
        sup.check()
        res = core.etcdctl(etls, remote, "member", "list", "--consistency=s", "-w", "json", check=False)
        me = [m for m in json.loads(res.stdout or "{}").get("members", []) if peer in m.get("peerURLs", [])]
        if me and not me[0].get("isLearner"):
            return
        if me:
            mid = format(int(me[0]["ID"]), "x")
            if core.etcdctl(etls, remote, "member", "promote", mid, check=False).returncode == 0:
                log(f"etcd member {mid} ({peer}) promoted to voter")
                return
        if time.monotonic() > deadline:
            raise StandinError(f"etcd learner {peer} was not promoted within {timeout:.0f} s")
        time.sleep(2)


def cluster_reset(paths: Paths, name: str, ip: str, restore_path: str) -> int:
    """TEST-ONLY stand-in of `k3s server --cluster-reset [--cluster-reset-restore-path=<snapshot>]`.

    As K3s does: with a snapshot, the current etcd data directory is moved aside to server/db/etcd-old-<unix
    time> and the snapshot is restored into a fresh one as a new cluster whose only member is this server;
    without one, this server's etcd forgets its peers and keeps its data. etcd then runs once in this process
    (--force-new-cluster) until it is healthy, is stopped, and the command exits, so the unit can be started
    again without the flags. The other servers of the cluster must drop their server/db and rejoin.
    """
    etls = paths.tls / "etcd"
    data = paths.db / "etcd"
    if not (etls / "etcd-ca.crt").exists():
        raise StandinError(f"cluster-reset: {etls} holds no etcd PKI: this server never ran the embedded etcd")
    if restore_path:
        snapshot = Path(restore_path)
        if not snapshot.is_file():
            raise StandinError(f"cluster-reset: snapshot path does not exist: {restore_path}")
        stamp = int(time.time())
        fresh = paths.db / f".etcd-restore-{stamp}"
        peer = f"https://{ip}:2380"
        res = subprocess.run(
            [
                core.tool("etcdutl"), "snapshot", "restore", str(snapshot), f"--data-dir={fresh}", f"--name={name}",
                f"--initial-cluster={name}={peer}", f"--initial-advertise-peer-urls={peer}",
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if res.returncode != 0:
            shutil.rmtree(fresh, ignore_errors=True)
            raise StandinError(f"cluster-reset: etcdutl snapshot restore {snapshot}: {res.stderr.strip()[-2000:]}")
        os.chmod(fresh, 0o700)
        if data.exists():
            old = paths.db / f"etcd-old-{stamp}"
            data.rename(old)
            log(f"cluster-reset: moved the current etcd data aside to {old}")
        fresh.rename(data)
        log(f"cluster-reset: restored {snapshot} into {data} as a new one-member cluster ({name} {peer})")
    elif not (data / "member").exists():
        raise StandinError(f"cluster-reset: {data} holds no etcd data to reset")
    spec = core.EtcdSpec(name, data, etls, ip, extra=["--force-new-cluster"])
    sup = core.Supervisor()
    sup.install_signals()
    try:
        sup.add(core.Child("etcd", core.etcd_args(spec)))
        _wait_for(
            lambda: core.etcdctl(etls, "https://127.0.0.1:2379", "endpoint", "health", check=False).returncode == 0,
            180,
            sup,
            "etcd health after the reset",
        )
        members = json.loads(core.etcdctl(etls, "https://127.0.0.1:2379", "member", "list", "-w", "json").stdout)
        count = len(members.get("members", []))
    finally:
        sup.stop_all()
    log(
        f"Managed etcd cluster membership has been reset ({count} member), restart without --cluster-reset flag "
        f"now. Back up and delete {paths.db} on each peer etcd server and rejoin the nodes"
    )
    return 0


_BOOT_FILES = ["server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key", "service.key"]
_BOOT_ETCD = ["etcd-ca.crt", "etcd-ca.key"]


def _publish_bootstrap(kcfg: Path, paths: Paths, server_pw: str, agent_pw: str | None, ca_pem: str) -> None:
    """Share the cluster CAs with joining servers (a Secret readable with the server token), and the CA."""
    data = {f: base64.b64encode((paths.tls / f).read_bytes()).decode() for f in _BOOT_FILES}
    for f in _BOOT_ETCD:
        if (paths.tls / "etcd" / f).exists():
            data[f"etcd-{f}"] = base64.b64encode((paths.tls / "etcd" / f).read_bytes()).decode()
    enc = paths.server / "cred" / "encryption-config.json"
    if enc.exists():
        data["encryption-config.json"] = base64.b64encode(enc.read_bytes()).decode()
    if agent_pw:
        data["agent-token"] = base64.b64encode(agent_pw.encode()).decode()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": core.BOOTSTRAP_SECRET, "namespace": "kube-system"},
        "type": "Opaque",
        "data": data,
    }
    info = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"ca.crt": ca_pem},
    }
    core.apply_docs(kcfg, [secret, info])


def _join_bootstrap(paths: Paths, join: str, token: core.Token) -> None:
    """Fetch the cluster CAs from the init server, checking the token's CA hash first."""
    if (paths.tls / "server-ca.key").exists():
        return
    url = urlparse(join)
    host, port = url.hostname or "", url.port or 6443
    ca_pem = core.fetch_ca(host, port)
    got = __import__("hashlib").sha256(ca_pem.encode()).hexdigest()
    if token.ca_hash and token.ca_hash != got:
        raise StandinError(f"token CA hash {token.ca_hash[:12]}... does not match the server CA ({got[:12]}...)")
    api = Api(f"https://{host}:{port}", ca_pem, token=token.bearer)
    code, body = api.call("GET", f"/api/v1/namespaces/kube-system/secrets/{core.BOOTSTRAP_SECRET}")
    if code == 401:
        raise StandinError(f"the server {join} rejected the token: 401 Unauthorized")
    if code != 200:
        raise StandinError(f"cannot read bootstrap data from {join}: HTTP {code}: {body}")
    data = body.get("data", {})
    for f in _BOOT_FILES:
        core.atomic_write(paths.tls / f, base64.b64decode(data[f]), 0o600 if f.endswith(".key") else 0o644)
    for f in _BOOT_ETCD:
        if f"etcd-{f}" in data:
            mode = 0o600 if f.endswith(".key") else 0o644
            core.atomic_write(paths.tls / "etcd" / f, base64.b64decode(data[f"etcd-{f}"]), mode)
    if "encryption-config.json" in data:
        enc = paths.server / "cred" / "encryption-config.json"
        core.atomic_write(enc, base64.b64decode(data["encryption-config.json"]), 0o600)
    log(f"joined: cluster CAs fetched from {join}")


# ----------------------------------------------------------------------------- agent


def agent(argv: list[str], version: str) -> int:
    cfg = load_config("agent", argv)
    url = str(cfg.get("server") or "")
    raw = read_token(cfg, "token")
    problems = [
        m for m, bad in (("server (K3S_URL) is required", not url), ("token or token-file is required", not raw)) if bad
    ]
    if problems:
        raise StandinError("k3s agent: " + "; ".join(problems))
    token = core.Token.parse(str(raw))
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or 6443
    try:
        ca_pem = core.fetch_ca(host, port)
    except (StandinError, subprocess.TimeoutExpired) as exc:
        log(f"ERROR: cannot reach the server {url}: {exc}")
        return 1
    got = __import__("hashlib").sha256(ca_pem.encode()).hexdigest()
    if token.ca_hash and token.ca_hash != got:
        log(f"ERROR: token CA hash does not match the server CA certificate hash ({got[:12]}...)")
        return 1
    data = Path(str(cfg.get("data-dir", DATA_DIR))) / "agent"
    data.mkdir(parents=True, exist_ok=True)
    core.atomic_write(data / "server-ca.crt", ca_pem, 0o644)
    name = str(cfg.get("node-name") or socket.gethostname())
    ip = str((cfg.get("node-ip") or [core.node_ip()])[0])
    node = core.node_object(
        name, core.parse_labels(cfg.get("node-label", [])), core.parse_taints(cfg.get("node-taint", [])), ip, version
    )
    api = Api(f"https://{host}:{port}", ca_pem, token=token.bearer)
    log(f"k3s stand-in agent {name} joining {url}")
    # No kubelet or kube-proxy runs here: K3s's agent files and the journal lines K3s would write for them. The
    # stand-in has no supervisor port to fetch the cluster's client CA from, so the agent's client-ca.crt holds the
    # server CA it read from the TLS chain (kube-bench checks that file's mode and owner, not its content).
    data_root = data.parent
    k3s_journal.write_agent_layout(data_root, url, ca_pem, ca_pem)
    k3s_journal.log_not_run(k3s_journal.kubelet_argv(cfg, data_root, name, ip))
    k3s_journal.log_not_run(k3s_journal.kube_proxy_argv(cfg, data_root, name))
    return core.run_node(api, node)


# ----------------------------------------------------------------------------- token / etcd-snapshot / kubectl


def _admin_kcfg(data_dir: Path) -> Path:
    path = data_dir / "server" / "cred" / "admin.kubeconfig"
    if not path.exists():
        raise StandinError(f"{path} not found: is the k3s stand-in server running on this node?")
    return path


def token_cmd(argv: list[str]) -> int:
    sub = argv[0] if argv else "help"
    opts = _simple_opts(argv[1:])
    data_dir = Path(opts.get("data-dir", str(DATA_DIR)))
    kcfg = _admin_kcfg(data_dir)
    ca_hash = core.sha256_file(data_dir / "server" / "tls" / "server-ca.crt")
    if sub == "create":
        tid, tsecret = core.new_bootstrap_token()
        ttl = opts.get("ttl", "24h")
        secret: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{tid}", "namespace": "kube-system"},
            "stringData": {
                "token-id": tid,
                "token-secret": tsecret,
                "usage-bootstrap-authentication": "true",
                "usage-bootstrap-signing": "true",
                "auth-extra-groups": core.BOOTSTRAP_GROUP,
                "description": opts.get("description", "edgefleet lab stand-in join token"),
            },
        }
        seconds = _duration(ttl)
        if seconds:
            exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))
            secret["stringData"]["expiration"] = exp
        core.apply_docs(kcfg, [secret])
        print(f"K10{ca_hash}::{tid}.{tsecret}")
        return 0
    if sub == "list":
        res = core.kubectl(
            kcfg,
            *("-n", "kube-system", "get", "secrets", "--field-selector=type=bootstrap.kubernetes.io/token"),
            *("-o", "custom-columns=TOKEN:.data.token-id,EXPIRES:.data.expiration"),
        )
        print(res.stdout, end="")
        return res.returncode
    if sub == "rotate":
        old = opts.get("token") or os.environ.get("K3S_TOKEN", "")
        new = opts.get("new-token") or os.environ.get("K3S_NEW_TOKEN", "") or core.new_password()
        stored = data_dir / "server" / "token"
        current = core.Token.parse(stored.read_text()).password
        if not old or core.Token.parse(old).password != current:
            raise StandinError("token rotate: --token does not match the current server token")
        full = core.Token(ca_hash, "server", core.Token.parse(new).password).full(ca_hash)
        core.atomic_write(stored, full + "\n", 0o600)
        core.atomic_write(data_dir / "server" / "node-token", full + "\n", 0o600)
        print("Token rotated, restart k3s nodes with new token (update token/token-file in the config first)")
        return 0
    raise StandinError(f"k3s token: unknown subcommand {sub!r} (create, list, rotate)")


def _duration(text: str) -> int:
    m = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not m:
        raise StandinError(f"invalid duration {text!r}")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _simple_opts(argv: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].lstrip("-").partition("=")
        i += 1
        if not eq and i < len(argv) and not argv[i].startswith("-"):
            value = argv[i]
            i += 1
        out[name] = value if (eq or value) else "true"
    return out


def etcd_snapshot(argv: list[str]) -> int:
    sub = argv[0] if argv and not argv[0].startswith("-") else "save"
    opts = _simple_opts(argv[1:] if argv and not argv[0].startswith("-") else argv)
    data_dir = Path(opts.get("data-dir", str(DATA_DIR)))
    etls = data_dir / "server" / "tls" / "etcd"
    if not (data_dir / "server" / "db" / "etcd").exists():
        raise StandinError("etcd datastore disabled: etcd-snapshot needs a server with cluster-init or server set")
    snapdir = Path(opts.get("etcd-snapshot-dir", opts.get("dir", str(data_dir / "server" / "db" / "snapshots"))))
    snapdir.mkdir(parents=True, exist_ok=True)
    if sub in {"ls", "list"}:
        for p in sorted(snapdir.iterdir()):
            print(f"{p.name}\t{p}\t{p.stat().st_size}")
        return 0
    if sub != "save":
        raise StandinError(f"k3s etcd-snapshot: unknown subcommand {sub!r} (save, ls)")
    name = f"{opts.get('name', 'on-demand')}-{socket.gethostname()}-{int(time.time())}"
    target = snapdir / name
    core.etcdctl(etls, "https://127.0.0.1:2379", "snapshot", "save", str(target))
    os.chmod(target, 0o600)
    print(f"Snapshot {name} saved to {target}")
    return 0


def kubectl_cmd(argv: list[str]) -> int:
    env = dict(os.environ)
    if "KUBECONFIG" not in env and not any(a.startswith("--kubeconfig") for a in argv):
        env["KUBECONFIG"] = str(KUBECONFIG)
    os.execve(core.tool("kubectl"), ["kubectl", *argv], env)
    return 0  # pragma: no cover


def main(argv: list[str], version: str) -> int:
    prog = Path(argv[0]).name if argv else "k3s"
    args = argv[1:]
    core.banner("k3s", version)  # stderr, so kubectl's stdout stays parseable
    if prog in {"kubectl"}:
        return kubectl_cmd(args)
    if not args or args[0] in {"--version", "-v", "version"}:
        print(f"k3s version {version} (stand-in)")
        print(f"go version {_go_version()}")
        return 0 if args else 1
    cmd, rest = args[0], args[1:]
    if cmd == "server":
        return server(rest, version)
    if cmd == "agent":
        return agent(rest, version)
    if cmd == "token":
        return token_cmd(rest)
    if cmd == "etcd-snapshot":
        return etcd_snapshot(rest)
    if cmd == "kubectl":
        return kubectl_cmd(rest)
    print(f"k3s stand-in: unknown command {cmd!r} (server, agent, token, etcd-snapshot, kubectl)", file=sys.stderr)
    return 1


def _go_version() -> str:
    stamp = core.bin_dir() / ".goversion"
    return stamp.read_text().strip() if stamp.exists() else "unknown"
