"""Shared core of the lab K3s/K0s stand-ins (test-only; Python 3 stdlib + PyYAML).

A stand-in is NOT K3s or K0s. It runs real upstream parts built from Go modules: kine (SQLite)
or etcd, and kube-apiserver. There is no kubelet, no containerd, no pods. What it proves: the
files our roles write are accepted by a real API server, join tokens really authenticate, and
objects land in a real API.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BANNER = "edgefleet LAB STAND-IN: not K3s/K0s \u2014 a real kube-apiserver on kine/etcd, no kubelet/containerd/pods"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
AGENT_GROUP = "edgefleet:lab-agents"
BOOTSTRAP_GROUP = "system:bootstrappers:edgefleet-lab-agents"
BOOTSTRAP_SECRET = "edgefleet-lab-bootstrap"


class StandinError(Exception):
    """A failure to report in one clear line, with a non-zero exit."""


class Terminated(BaseException):
    """SIGTERM/SIGINT arrived: stop the children and exit 0."""


def banner(flavor: str, version: str) -> None:
    fault = os.environ.get("EDGEFLEET_STANDIN_FAULT", "")
    suffix = f", TEST-ONLY FAULT SWITCH: {fault}" if fault else ""
    print(f"{BANNER} ({flavor} {version}{suffix})", file=sys.stderr, flush=True)


def hold_if_never_ready(sup: Supervisor) -> None:
    """TEST-ONLY fault switch (bundle.sh builds the lab's broken version with EDGEFLEET_STANDIN_FAULT=never-ready):
    the server keeps its datastore running but never starts kube-apiserver, so it never becomes ready. Returns
    at once when the switch is off; otherwise only a stop signal (Terminated) or a dead child ends it."""
    if os.environ.get("EDGEFLEET_STANDIN_FAULT", "") != "never-ready":
        return
    log("TEST-ONLY FAULT SWITCH never-ready: this broken lab version never starts its API server")
    while True:
        sup.check()
        time.sleep(1)


MIGRATED_TABLE = "edgefleet_standin_migrated"  # TEST-ONLY: the mark of the fault switch migrates-datastore


def migrate_or_check_datastore(db: Path, version: str, sup: Supervisor) -> None:
    """TEST-ONLY, for the upgrade rollback tests. With the fault switch migrates-datastore (bundle.sh builds one
    version so) the server marks its SQLite datastore as migrated by its version, as a release that changes the
    datastore's schema would, and then never becomes ready (like never-ready). Every stand-in version checks for
    that mark before it starts: a datastore migrated by another version is one it cannot read, so it never becomes
    ready either, until the datastore is restored from a backup taken before the migration. A datastore without
    the mark (every one outside this test) is not touched."""
    fault = os.environ.get("EDGEFLEET_STANDIN_FAULT", "")
    if fault == "migrates-datastore":
        db.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(db, timeout=30) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {MIGRATED_TABLE} (version TEXT NOT NULL)")
            conn.execute(f"INSERT INTO {MIGRATED_TABLE} (version) VALUES (?)", (version,))
        conn.close()
        log(f"TEST-ONLY FAULT SWITCH migrates-datastore: marked {db} as migrated by {version}; never ready")
    elif db.exists():
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATED_TABLE,)
            ).fetchall()
            marks = [str(r[0]) for r in conn.execute(f"SELECT version FROM {MIGRATED_TABLE}")] if rows else []
        finally:
            conn.close()
        others = sorted({m for m in marks if m != version})
        if not others:
            return
        log(
            f"datastore {db} was migrated by {', '.join(others)} (TEST-ONLY fault switch migrates-datastore); "
            f"{version} cannot read it and never becomes ready until it is restored from a backup"
        )
    else:
        return
    while True:
        sup.check()
        time.sleep(1)


def log(msg: str) -> None:
    print(f"[stand-in] {msg}", file=sys.stderr, flush=True)


def bin_dir() -> Path:
    """Where the bundled binaries are: $EDGEFLEET_STANDIN_BIN, else ../bin next to this package."""
    env = os.environ.get("EDGEFLEET_STANDIN_BIN")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "bin"


def tool(name: str) -> str:
    path = bin_dir() / name
    if not path.exists():
        raise StandinError(f"bundled binary {path} is missing")
    return str(path)


# ----------------------------------------------------------------------------- files


def atomic_write(path: Path, data: str | bytes, mode: int = 0o600) -> bool:
    """Write atomically with the given mode; return True when the content changed."""
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == raw:
        os.chmod(path, mode)
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def node_ip() -> str:
    """The first global IPv4 address of this host, else 127.0.0.1."""
    try:
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        out = ""
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            return parts[parts.index("inet") + 1].split("/")[0]
    return "127.0.0.1"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- PKI (openssl CLI)

_MIN_CNF = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n"


def _openssl(*args: str) -> None:
    res = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise StandinError(f"openssl {args[0]} failed: {res.stderr.strip()}")


def _genkey(path: Path) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # SEC1 "EC PRIVATE KEY": kube-apiserver reads service-account keys only in this (or RSA/public) form
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))
        os.chmod(path, 0o600)


def ensure_ca(tls: Path, name: str, cn: str) -> None:
    key, crt = tls / f"{name}.key", tls / f"{name}.crt"
    if crt.exists() and key.exists():
        return
    _genkey(key)
    with tempfile.NamedTemporaryFile("w", suffix=".cnf") as cnf:
        cnf.write(_MIN_CNF)
        cnf.flush()
        _openssl(
            "req", "-x509", "-new", "-config", cnf.name, "-key", str(key), "-subj", f"/CN={cn}@{int(time.time())}",
            "-days", "3650", "-sha256", "-out", str(crt),
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        )  # fmt: skip
    os.chmod(crt, 0o644)


def ensure_cert(
    tls: Path,
    name: str,
    ca: str,
    subject: str,
    *,
    server: bool = False,
    client: bool = False,
    sans: Iterable[str] = (),
    chain: bool = False,
) -> None:
    """Issue <name>.crt/.key from CA <ca>; re-issue when the wanted SANs are not all present."""
    key, crt = tls / f"{name}.key", tls / f"{name}.crt"
    san_list = sorted({f"IP:{s}" if _is_ip(s) else f"DNS:{s}" for s in sans})
    marker = tls / f".{name}.spec"
    spec = json.dumps({"subject": subject, "sans": san_list, "server": server, "client": client, "chain": chain})
    if crt.exists() and key.exists() and marker.exists() and marker.read_text() == spec:
        return
    _genkey(key)
    usages = [u for u, on in (("serverAuth", server), ("clientAuth", client)) if on]
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={','.join(usages)}",
    ]
    if san_list:
        ext.append("subjectAltName=" + ",".join(san_list))
    with tempfile.TemporaryDirectory() as tmp:
        cnf, csr, extf, out = (Path(tmp) / n for n in ("req.cnf", "req.csr", "ext.cnf", "out.crt"))
        cnf.write_text(_MIN_CNF)
        extf.write_text("\n".join(ext) + "\n")
        _openssl("req", "-new", "-config", str(cnf), "-key", str(key), "-subj", subject, "-out", str(csr))
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(tls / f"{ca}.crt"), "-CAkey", str(tls / f"{ca}.key"),
            "-set_serial", str(secrets.randbits(63)), "-days", "3650", "-sha256", "-extfile", str(extf),
            "-out", str(out),
        )  # fmt: skip
        body = out.read_text()
        if chain:
            body += (tls / f"{ca}.crt").read_text()
        atomic_write(crt, body, 0o644)
    atomic_write(marker, spec, 0o600)


def _is_ip(value: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in value else socket.AF_INET, value)
    except OSError:
        return False
    return True


def ensure_sa_key(tls: Path) -> None:
    _genkey(tls / "service.key")


# ----------------------------------------------------------------------------- tokens

TOKEN_PREFIX = "K10"


@dataclass
class Token:
    """A K3s-format token: K10<sha256 of the server CA>::<user>:<password>, or a bare secret."""

    ca_hash: str
    user: str
    password: str

    @classmethod
    def parse(cls, raw: str) -> Token:
        raw = raw.strip()
        if raw.startswith(TOKEN_PREFIX) and "::" in raw:
            head, creds = raw.split("::", 1)
            ca_hash = head[len(TOKEN_PREFIX) :]
            if ":" in creds:
                user, password = creds.split(":", 1)
            else:
                user, password = "", creds  # K10<hash>::<bootstrap id.secret>
            return cls(ca_hash, user, password)
        return cls("", "", raw)

    def full(self, ca_hash: str) -> str:
        creds = f"{self.user}:{self.password}" if self.user else self.password
        return f"{TOKEN_PREFIX}{ca_hash}::{creds}"

    @property
    def bearer(self) -> str:
        return self.password


def new_password() -> str:
    return secrets.token_hex(16)


def new_bootstrap_token() -> tuple[str, str]:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return (
        "".join(secrets.choice(alphabet) for _ in range(6)),
        "".join(secrets.choice(alphabet) for _ in range(16)),
    )


def write_token_store(path: Path, server_pw: str, agent_pw: str | None) -> None:
    """The token store (server/cred/passwd, 0600, one `token,user,uid,"group,..."` line a token): the server token
    is admin, the agent token may join. The stand-in's token webhook reads it on every review."""
    lines = [f'{server_pw},server,edgefleet-lab-server,"system:masters,{AGENT_GROUP}"']
    if agent_pw and agent_pw != server_pw:
        lines.append(f'{agent_pw},node,edgefleet-lab-node,"{AGENT_GROUP}"')
    atomic_write(path, "\n".join(lines) + "\n", 0o600)


def lookup_token(store: Path, token: str) -> dict[str, Any] | None:
    """The user a token of the store stands for (username, uid, groups), else None. Every line is compared, in
    constant time, so the answer's timing does not tell how much of a token matched."""
    found: dict[str, Any] | None = None
    try:
        rows = list(csv.reader(store.read_text().splitlines()))
    except OSError:
        return None
    for row in rows:
        if len(row) < 3 or not row[0]:
            continue
        if hmac.compare_digest(row[0].encode(), token.encode()) and found is None:
            groups = [g for g in (row[3].split(",") if len(row) > 3 else []) if g]
            found = {"username": row[1], "uid": row[2], "groups": groups}
    return found


WEBHOOK_PATH = "/authenticate"


class TokenWebhook:
    """kube-apiserver's webhook token authenticator (TokenReview, authentication.k8s.io/v1), served by the stand-in
    in a thread of its own on 127.0.0.1 over TLS: it presents the API server's serving certificate (server CA) and
    takes only the API server's client certificate (client CA). Each review reads the token store afresh, so what
    authenticates is what the store holds. Real K3s checks its tokens inside its own process and passes kube-apiserver
    no token flag; the stand-in runs a stock kube-apiserver, which can only ask a webhook."""

    def __init__(self, store: Path, tls: Path) -> None:
        self.store = store
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls / "serving-kube-apiserver.crt"), str(tls / "serving-kube-apiserver.key"))
        ctx.load_verify_locations(str(tls / "client-ca.crt"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        store_path = store

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path.split("?", 1)[0] != WEBHOOK_PATH:
                    self.send_error(404)
                    return
                try:
                    review = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                    token = str((review.get("spec") or {}).get("token") or "")
                except (ValueError, AttributeError):
                    self.send_error(400)
                    return
                user = lookup_token(store_path, token) if token else None
                status: dict[str, Any] = {"authenticated": user is not None}
                if user is not None:
                    status["user"] = user
                body = json.dumps(
                    {"apiVersion": review.get("apiVersion", "authentication.k8s.io/v1"), "kind": "TokenReview",
                     "status": status}
                ).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a line a request would flood the journal; a review's outcome shows as the API's 200 or 401

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="token-webhook", daemon=True)

    def start(self) -> None:
        self.thread.start()
        log(f"token webhook serving TokenReviews on https://127.0.0.1:{self.port}{WEBHOOK_PATH} from {self.store}")

    def stop(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for serve_forever, which a webhook never started never ends
            self.httpd.shutdown()
        self.httpd.server_close()

    def write_kubeconfig(self, path: Path, tls: Path) -> None:
        """kube-apiserver's --authentication-token-webhook-config-file: where the webhook is, the CA to check it with,
        the client certificate to present (file paths; 0600)."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "token-webhook",
                    "cluster": {
                        "server": f"https://127.0.0.1:{self.port}{WEBHOOK_PATH}",
                        "certificate-authority": str(tls / "server-ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": "kube-apiserver",
                    "user": {
                        "client-certificate": str(tls / "client-kube-apiserver.crt"),
                        "client-key": str(tls / "client-kube-apiserver.key"),
                    },
                }
            ],
            "contexts": [{"name": "token-webhook", "context": {"cluster": "token-webhook", "user": "kube-apiserver"}}],
            "current-context": "token-webhook",
        }
        atomic_write(path, json.dumps(doc, indent=2) + "\n", 0o600)


# ----------------------------------------------------------------------------- processes


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        log(f"starting {self.name}: {' '.join(self.argv[:1] + [a for a in self.argv[1:] if 'token' not in a])}")
        if self.log_path is None:
            self.proc = subprocess.Popen(self.argv, env=env, start_new_session=True)
            return
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def install_signals(self) -> None:
        def _handler(signum: int, _frame: object) -> None:
            if not self.stopping:
                self.stopping = True
                raise Terminated

        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)

    def add(self, child: Child, env: dict[str, str] | None = None) -> Child:
        self.children.append(child)
        child.start(env)
        return child

    def check(self) -> None:
        for child in self.children:
            if not child.alive():
                code = child.proc.returncode if child.proc else None
                raise StandinError(f"{child.name} exited (code {code})")

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()


# ----------------------------------------------------------------------------- datastore + apiserver


def kine_args(sock: Path, db: Path) -> list[str]:
    """kine with SQLite, listening on a unix socket only (no TCP port), as K3s does."""
    # kine's own default parameters (v0.16.3 DefaultParams): WAL, a busy timeout and BEGIN IMMEDIATE.
    dsn = f"sqlite://{db}?_journal_mode=WAL&_busy_timeout=30000&_synchronous=NORMAL&_txlock=immediate&cache=shared"
    return [tool("kine"), f"--listen-address=unix://{sock}", f"--endpoint={dsn}", "--metrics-bind-address=0"]


@dataclass
class EtcdSpec:
    name: str
    data_dir: Path
    tls: Path
    ip: str
    initial_cluster: str = ""
    state: str = "new"
    extra: list[str] = field(default_factory=list)


def etcd_args(spec: EtcdSpec) -> list[str]:
    t = spec.tls
    argv = [
        tool("etcd"),
        f"--name={spec.name}",
        f"--data-dir={spec.data_dir}",
        f"--listen-client-urls=https://127.0.0.1:2379,https://{spec.ip}:2379",
        f"--advertise-client-urls=https://{spec.ip}:2379",
        f"--listen-peer-urls=https://{spec.ip}:2380",
        f"--initial-advertise-peer-urls=https://{spec.ip}:2380",
        "--listen-metrics-urls=http://127.0.0.1:2381",
        f"--cert-file={t / 'etcd-server.crt'}",
        f"--key-file={t / 'etcd-server.key'}",
        f"--trusted-ca-file={t / 'etcd-ca.crt'}",
        "--client-cert-auth=true",
        f"--peer-cert-file={t / 'etcd-peer.crt'}",
        f"--peer-key-file={t / 'etcd-peer.key'}",
        f"--peer-trusted-ca-file={t / 'etcd-ca.crt'}",
        "--peer-client-cert-auth=true",
        "--snapshot-count=10000",
        "--heartbeat-interval=500",
        "--election-timeout=5000",
    ]
    if spec.initial_cluster and not (spec.data_dir / "member").exists():
        argv += [f"--initial-cluster={spec.initial_cluster}", f"--initial-cluster-state={spec.state}"]
    return argv + spec.extra


def etcdctl(tls: Path, endpoint: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [
        tool("etcdctl"),
        f"--endpoints={endpoint}",
        f"--cacert={tls / 'etcd-ca.crt'}",
        f"--cert={tls / 'etcd-client.crt'}",
        f"--key={tls / 'etcd-client.key'}",
        "--command-timeout=20s",
        *args,
    ]
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise StandinError(f"etcdctl {' '.join(args)}: {res.stderr.strip() or res.stdout.strip()}")
    return res


def ensure_etcd_pki(tls: Path, ip: str, hostname: str) -> None:
    ensure_ca(tls, "etcd-ca", "etcd-server-ca")
    names = ["localhost", "127.0.0.1", ip, hostname]
    ensure_cert(tls, "etcd-server", "etcd-ca", f"/CN={hostname}", server=True, client=True, sans=names)
    ensure_cert(tls, "etcd-peer", "etcd-ca", f"/CN={hostname}", server=True, client=True, sans=names)
    ensure_cert(tls, "etcd-client", "etcd-ca", "/CN=etcd-client", client=True)


@dataclass
class ApiserverSpec:
    tls: Path
    bind: str
    port: int
    advertise: str
    etcd_servers: str
    token_webhook_config: Path | None = None
    encryption_config: Path | None = None
    service_cidr: str = "10.43.0.0/16"
    node_port_range: str = "30000-32767"
    etcd_tls: Path | None = None
    extra: Sequence[str] = ()


def apiserver_args(spec: ApiserverSpec) -> list[str]:
    t = spec.tls
    flags: dict[str, str] = {
        "advertise-address": spec.advertise,
        "bind-address": spec.bind,
        "secure-port": str(spec.port),
        "etcd-servers": spec.etcd_servers,
        "storage-backend": "etcd3",
        "client-ca-file": str(t / "client-ca.crt"),
        "tls-cert-file": str(t / "serving-kube-apiserver.crt"),
        "tls-private-key-file": str(t / "serving-kube-apiserver.key"),
        "service-account-key-file": str(t / "service.key"),
        "service-account-signing-key-file": str(t / "service.key"),
        "service-account-issuer": SA_ISSUER,
        "api-audiences": f"{SA_ISSUER},k3s",
        "authorization-mode": "Node,RBAC",
        "anonymous-auth": "false",
        "enable-admission-plugins": "NodeRestriction",
        "allow-privileged": "true",
        "enable-bootstrap-token-auth": "true",
        "service-cluster-ip-range": spec.service_cidr,
        "service-node-port-range": spec.node_port_range,
        "profiling": "false",
        # As K3s: the apiserver's client identity towards kubelets and the CA their serving certs chain to. No kubelet
        # runs in the lab, so nothing uses them; they are here so the flags in force are K3s's (kube-bench 1.2.4/1.2.5).
        "kubelet-certificate-authority": str(t / "server-ca.crt"),
        "kubelet-client-certificate": str(t / "client-kube-apiserver.crt"),
        "kubelet-client-key": str(t / "client-kube-apiserver.key"),
    }
    if spec.etcd_tls is not None:
        flags["etcd-cafile"] = str(spec.etcd_tls / "etcd-ca.crt")
        flags["etcd-certfile"] = str(spec.etcd_tls / "etcd-client.crt")
        flags["etcd-keyfile"] = str(spec.etcd_tls / "etcd-client.key")
    if spec.token_webhook_config is not None:
        # The stand-in's TokenReview webhook checks the K3s tokens (TokenWebhook). A TTL of 0 turns the webhook's
        # own cache off (kube-apiserver's default would keep an answer 2 minutes), so every request is reviewed
        # against the store; only kube-apiserver's built-in cache of successful reviews (no flag sets it) remains.
        # The store changes when the server starts, and kube-apiserver then starts afresh with empty caches.
        flags["authentication-token-webhook-config-file"] = str(spec.token_webhook_config)
        flags["authentication-token-webhook-version"] = "v1"
        flags["authentication-token-webhook-cache-ttl"] = "0s"
    if spec.encryption_config is not None:
        flags["encryption-provider-config"] = str(spec.encryption_config)
    for arg in spec.extra:  # user passthrough overrides our defaults, like K3s
        key, _, value = arg.lstrip("-").partition("=")
        flags[key] = value
    return [tool("kube-apiserver"), *(f"--{k}={v}" for k, v in flags.items())]


def ensure_apiserver_pki(tls: Path, sans: Iterable[str], service_ip: str) -> None:
    ensure_ca(tls, "server-ca", "k3s-server-ca")
    ensure_ca(tls, "client-ca", "k3s-client-ca")
    ensure_sa_key(tls)
    names = {
        "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
        "localhost", "127.0.0.1", service_ip, *sans,
    }  # fmt: skip
    ensure_cert(tls, "serving-kube-apiserver", "server-ca", "/CN=kube-apiserver", server=True, sans=names, chain=True)
    ensure_cert(tls, "client-admin", "client-ca", "/O=system:masters/CN=system:admin", client=True)
    ensure_cert(tls, "client-kube-apiserver", "client-ca", "/O=system:masters/CN=system:apiserver", client=True)


def write_encryption_config(path: Path) -> None:
    """An aescbc EncryptionConfiguration with one fresh key, kept across restarts."""
    if path.exists():
        return
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    doc = {
        "kind": "EncryptionConfiguration",
        "apiVersion": "apiserver.config.k8s.io/v1",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [{"aescbc": {"keys": [{"name": "aescbckey", "secret": key}]}}, {"identity": {}}],
            }
        ],
    }
    atomic_write(path, json.dumps(doc, indent=2) + "\n", 0o600)


def kubeconfig(server: str, ca_pem: str, *, cert: Path | None = None, key: Path | None = None, token: str = "") -> str:
    user: dict[str, str] = {}
    if cert is not None and key is not None:
        user["client-certificate-data"] = base64.b64encode(cert.read_bytes()).decode()
        user["client-key-data"] = base64.b64encode(key.read_bytes()).decode()
    if token:
        user["token"] = token
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default", "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": "default", "user": user}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "current-context": "default",
        "preferences": {},
    }
    return json.dumps(doc, indent=2) + "\n"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# ----------------------------------------------------------------------------- API client


@dataclass
class Api:
    """A tiny HTTPS client for the API server, verifying it against a CA."""

    server: str
    ca_pem: str
    token: str = ""
    cert: Path | None = None
    key: Path | None = None

    def _ctx(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca_pem)
        if self.cert is not None and self.key is not None:
            ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", timeout: float = 10
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, context=self._ctx(), timeout=timeout) as resp:
                raw = resp.read()
                return int(resp.status), _json_or_text(raw)
        except urllib.error.HTTPError as exc:
            return int(exc.code), _json_or_text(exc.read())


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def wait_ready(api: Api, timeout: float, procs: Supervisor | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if procs is not None:
            procs.check()
        try:
            code, body = api.call("GET", "/readyz", timeout=5)
            if code == 200:
                return
            last = f"HTTP {code}: {str(body)[:200]}"
        except (OSError, ssl.SSLError) as exc:
            last = str(exc)
        time.sleep(1)
    raise StandinError(f"kube-apiserver not ready after {timeout:.0f} s: {last}")


def fetch_ca(host: str, port: int) -> str:
    """The CA the server presents at the end of its chain (its serving cert file holds leaf + CA)."""
    res = subprocess.run(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-showcerts"],
        input="",
        capture_output=True,
        text=True,
        check=False,
        timeout=20,
    )
    pems: list[str] = []
    cur: list[str] = []
    for line in res.stdout.splitlines():
        if line.startswith("-----BEGIN CERTIFICATE-----"):
            cur = [line]
        elif cur:
            cur.append(line)
            if line.startswith("-----END CERTIFICATE-----"):
                pems.append("\n".join(cur) + "\n")
                cur = []
    if len(pems) < 2:
        raise StandinError(f"could not read the CA chain from {host}:{port}: {res.stderr.strip()[-300:]}")
    return pems[-1]


# ----------------------------------------------------------------------------- bootstrap RBAC + manifests

_RBAC = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "edgefleet-lab:agent"},
        "rules": [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "create", "patch", "update"]},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["get", "patch", "update"]},
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "verbs": ["get", "create", "update", "patch"],
            },
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"], "verbs": ["get"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "edgefleet-lab:agent"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edgefleet-lab:agent"},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": AGENT_GROUP},
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": BOOTSTRAP_GROUP},
        ],
    },
]


def kubectl(kcfg: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("kubectl"), f"--kubeconfig={kcfg}", *args], input=stdin, capture_output=True, text=True, check=False
    )


def apply_docs(kcfg: Path, docs: list[dict[str, Any]], manager: str = "edgefleet-lab") -> None:
    payload = "\n---\n".join(json.dumps(d) for d in docs)
    res = kubectl(
        kcfg, "apply", "--server-side", "--force-conflicts", f"--field-manager={manager}", "-f", "-", stdin=payload
    )
    if res.returncode != 0:
        raise StandinError(f"kubectl apply failed: {res.stderr.strip()}")


def apply_rbac(kcfg: Path) -> None:
    apply_docs(kcfg, _RBAC)


@dataclass
class ManifestWatcher:
    """Apply *.yaml/*.yml/*.json in a folder (server-side) on start and whenever a file changes, as K3s does."""

    folder: Path
    kcfg: Path
    recursive: bool = False
    seen: dict[Path, str] = field(default_factory=dict)

    def files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        pattern = "**/*" if self.recursive else "*"
        return sorted(
            p
            for p in self.folder.glob(pattern)
            if p.is_file() and p.suffix in {".yaml", ".yml", ".json"} and not p.name.startswith(".")
        )

    def poll(self) -> None:
        for path in self.files():
            digest = sha256_file(path)
            if self.seen.get(path) == digest:
                continue
            res = kubectl(
                self.kcfg, "apply", "--server-side", "--force-conflicts", "--field-manager=edgefleet-lab-deploy",
                "-f", str(path),
            )  # fmt: skip
            if res.returncode == 0:
                log(f"applied manifest {path}")
                self.seen[path] = digest
            else:
                log(f"manifest {path} not applied yet: {res.stderr.strip()[:500]}")


# ----------------------------------------------------------------------------- node (agent/worker)


def node_object(
    name: str, labels: dict[str, str], taints: list[dict[str, str]], ip: str, version: str
) -> dict[str, Any]:
    base = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
    }
    base.update(labels)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": base, "annotations": {"edgefleet.io/lab-stand-in": "true"}},
        "spec": {"taints": taints} if taints else {},
        "status": _node_status(ip, name, version),
    }


def _node_status(ip: str, name: str, version: str) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "EdgefleetLabStandIn",
                "message": "lab stand-in heartbeat; no kubelet, no containerd, no pods",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        ],
        "nodeInfo": {
            "kubeletVersion": version,
            "kubeProxyVersion": version,
            "containerRuntimeVersion": "none://edgefleet-lab-stand-in",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "osImage": "edgefleet lab stand-in",
            "kernelVersion": os.uname().release,
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, _, value = str(item).partition("=")
        out[key.strip()] = value.strip()
    return out


def parse_taints(items: Iterable[str]) -> list[dict[str, str]]:
    out = []
    for item in items:
        kv, _, effect = str(item).partition(":")
        key, _, value = kv.partition("=")
        taint = {"key": key, "effect": effect or "NoSchedule"}
        if value:
            taint["value"] = value
        out.append(taint)
    return out


class Unauthorized(StandinError):
    pass


def register_node(api: Api, node: dict[str, Any]) -> None:
    name = node["metadata"]["name"]
    code, body = api.call("POST", "/api/v1/nodes", {k: v for k, v in node.items() if k != "status"})
    if code == 401:
        raise Unauthorized(f"the server rejected the join token: 401 Unauthorized ({_msg(body)})")
    if code == 409:
        patch = {"metadata": {"labels": node["metadata"]["labels"], "annotations": node["metadata"]["annotations"]}}
        code, body = api.call(
            "PATCH", f"/api/v1/nodes/{name}", patch, content_type="application/strategic-merge-patch+json"
        )
    if code == 401:
        raise Unauthorized(f"the server rejected the join token: 401 Unauthorized ({_msg(body)})")
    if code not in (200, 201):
        raise StandinError(f"registering node {name} failed: HTTP {code}: {_msg(body)}")
    log(f"node {name} registered with labels {node['metadata']['labels']}")
    heartbeat(api, node)


def heartbeat(api: Api, node: dict[str, Any]) -> None:
    name = node["metadata"]["name"]
    status = _node_status(node["status"]["addresses"][0]["address"], name, node["status"]["nodeInfo"]["kubeletVersion"])
    code, body = api.call(
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        {"status": status},
        content_type="application/strategic-merge-patch+json",
    )
    if code == 401:
        raise Unauthorized(f"the server rejected the join token: 401 Unauthorized ({_msg(body)})")
    if code != 200:
        raise StandinError(f"node {name} status update failed: HTTP {code}: {_msg(body)}")


def _msg(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message", body))
    return str(body)[:300]


def run_node(api: Api, node: dict[str, Any], interval: float = 10.0) -> int:
    """Register the Node, then heartbeat until SIGTERM. 401 -> clear error, exit 1."""
    stop = {"flag": False}

    def _handler(signum: int, _frame: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    try:
        register_node(api, node)
        while not stop["flag"]:
            for _ in range(int(interval * 10)):
                if stop["flag"]:
                    break
                time.sleep(0.1)
            if not stop["flag"]:
                heartbeat(api, node)
    except Unauthorized as exc:
        log(f"ERROR: {exc}")
        return 1
    except (OSError, ssl.SSLError) as exc:
        log(f"ERROR: cannot reach the server {api.server}: {exc}")
        return 1
    return 0


# ----------------------------------------------------------------------------- misc


def copy_tree_files(src: Path, dst: Path) -> None:
    for path in src.iterdir():
        if path.is_file():
            shutil.copy2(path, dst / path.name)


def read_yaml_file(path: Path) -> Any:
    import yaml

    with path.open() as fh:
        return yaml.safe_load(fh)
