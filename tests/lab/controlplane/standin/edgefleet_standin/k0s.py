"""The lab `k0s` CLI stand-in: controller, worker, token create, status, kubectl, version."""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from . import core
from .core import Api, StandinError, log

CONFIG = Path("/etc/k0s/k0s.yaml")
DATA_DIR = Path("/var/lib/k0s")
STATUS = Path("/run/k0s/status.json")
SPEC_KEYS = {
    "api", "storage", "network", "controllerManager", "scheduler", "extensions", "images", "installConfig",
    "telemetry", "konnectivity", "workerProfiles", "featureGates", "podSecurityPolicy",
}  # fmt: skip
API_KEYS = {"address", "port", "k0sApiPort", "sans", "extraArgs", "externalAddress", "tunneledNetworkingMode",
            "onlyBindToAddress", "ca"}  # fmt: skip


def _opts(argv: list[str], bools: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    pos: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-"):
            pos.append(arg)
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if not eq and name not in bools:
            if i >= len(argv):
                raise StandinError(f"flag --{name} needs a value")
            value = argv[i]
            i += 1
        out[name] = value if eq or name not in bools else "true"
    if pos:
        out["_positional"] = pos[0]
    return out


def load_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        doc = core.read_yaml_file(path) or {}
    except Exception as exc:
        raise StandinError(f"{path}: not valid YAML: {exc}") from None
    problems = []
    if not isinstance(doc, dict):
        raise StandinError(f"{path}: expected a ClusterConfig mapping")
    if doc.get("apiVersion") not in {None, "k0s.k0sproject.io/v1beta1"}:
        problems.append(f"{path}: apiVersion {doc.get('apiVersion')!r} (allowed: k0s.k0sproject.io/v1beta1)")
    if doc.get("kind") not in {None, "ClusterConfig", "Cluster"}:
        problems.append(f"{path}: kind {doc.get('kind')!r} (allowed: ClusterConfig)")
    spec = doc.get("spec") or {}
    for key in spec:
        if key not in SPEC_KEYS:
            problems.append(f'{path}: unknown key "spec.{key}"')
    for key in spec.get("api") or {}:
        if key not in API_KEYS:
            problems.append(f'{path}: unknown key "spec.api.{key}"')
    stype = (spec.get("storage") or {}).get("type", "etcd")
    if stype not in {"etcd", "kine"}:
        problems.append(f"{path}: spec.storage.type {stype!r} (allowed: etcd, kine)")
    if problems:
        raise StandinError("k0s: invalid configuration:\n  " + "\n  ".join(problems))
    return doc


def controller(argv: list[str], version: str) -> int:
    opts = _opts(argv, {"single", "enable-worker", "no-taints", "debug", "verbose"})
    if "token-file" in opts:
        raise StandinError("k0s stand-in: joining extra controllers is not implemented (single controller only)")
    doc = load_config(Path(opts.get("config", opts.get("c", str(CONFIG)))))
    spec = doc.get("spec") or {}
    api_cfg = spec.get("api") or {}
    storage = spec.get("storage") or {}
    single = opts.get("single") == "true"
    data = Path(opts.get("data-dir", str(DATA_DIR)))
    pki = data / "pki"
    ip = str(api_cfg.get("address") or core.node_ip())
    port = int(api_cfg.get("port", 6443))
    hostname = socket.gethostname()
    service_cidr = str((spec.get("network") or {}).get("serviceCIDR", "10.96.0.0/12"))
    service_ip = ".".join([*service_cidr.split("/")[0].split(".")[:3], "1"])
    for d in (pki, data / "db", data / "manifests"):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o755)
    os.chmod(data / "db", 0o700)
    os.chmod(pki, 0o700)
    core.ensure_apiserver_pki(pki, {hostname, ip, *[str(s) for s in api_cfg.get("sans", [])]}, service_ip)
    extra = [f"{k}={v}" for k, v in (api_cfg.get("extraArgs") or {}).items()]
    use_kine = single or storage.get("type") == "kine"
    sup = core.Supervisor()
    sup.install_signals()
    try:
        if use_kine:
            sock = Path("/run/k0s/kine.sock")
            sock.parent.mkdir(parents=True, exist_ok=True)
            sock.unlink(missing_ok=True)
            core.migrate_or_check_datastore(data / "db" / "state.db", version, sup)
            argv_kine = core.kine_args(sock, data / "db" / "state.db")
            dsn = (storage.get("kine") or {}).get("dataSource")
            if dsn:
                argv_kine = [a if not a.startswith("--endpoint=") else f"--endpoint={dsn}" for a in argv_kine]
            sup.add(core.Child("kine", argv_kine))
            deadline = time.monotonic() + 30
            while not sock.exists():
                sup.check()
                if time.monotonic() > deadline:
                    raise StandinError("timed out waiting for the kine socket")
                time.sleep(0.3)
            etcd_servers, etcd_tls = f"unix://{sock}", None
        else:
            etls = pki / "etcd"
            core.ensure_etcd_pki(etls, ip, hostname)
            espec = core.EtcdSpec(hostname, data / "etcd", etls, ip, f"{hostname}=https://{ip}:2380", "new")
            sup.add(core.Child("etcd", core.etcd_args(espec)))
            deadline = time.monotonic() + 120
            while core.etcdctl(etls, "https://127.0.0.1:2379", "endpoint", "health", check=False).returncode != 0:
                sup.check()
                if time.monotonic() > deadline:
                    raise StandinError("timed out waiting for etcd health")
                time.sleep(1)
            etcd_servers, etcd_tls = "https://127.0.0.1:2379", etls
        aspec = core.ApiserverSpec(
            tls=pki, bind="0.0.0.0", port=port, advertise=ip, etcd_servers=etcd_servers,
            service_cidr=service_cidr, etcd_tls=etcd_tls, extra=extra,
        )  # fmt: skip
        core.hold_if_never_ready(sup)
        sup.add(core.Child("kube-apiserver", core.apiserver_args(aspec)))
        local = f"https://127.0.0.1:{port}"
        ca_pem = (pki / "server-ca.crt").read_text()
        admin = Api(local, ca_pem, cert=pki / "client-admin.crt", key=pki / "client-admin.key")
        core.wait_ready(admin, 300, sup)
        kcfg = pki / "admin.conf"
        core.atomic_write(
            kcfg, core.kubeconfig(local, ca_pem, cert=pki / "client-admin.crt", key=pki / "client-admin.key")
        )
        core.apply_rbac(kcfg)
        info = {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"},
            "data": {"ca.crt": ca_pem},
        }  # fmt: skip
        core.apply_docs(kcfg, [info])
        node = None
        if single or opts.get("enable-worker") == "true":
            labels = {"node-role.kubernetes.io/control-plane": "true"}
            labels.update(core.parse_labels(opts.get("labels", "").split(",") if opts.get("labels") else []))
            node = core.node_object(hostname, labels, [], ip, version)
            log_kubelet_not_run(hostname, opts.get("kubelet-extra-args", ""))
            core.register_node(admin, node)
        status = {
            "Version": version, "Pid": os.getpid(), "Role": "controller" if node is None else "controller+worker",
            "SingleNode": single, "Workloads": node is not None, "DataDir": str(data),
            "Storage": "kine" if use_kine else "etcd", "StandIn": core.BANNER,
        }  # fmt: skip
        core.atomic_write(STATUS, json.dumps(status) + "\n", 0o644)
        log(f"k0s stand-in controller ready on :{port} (storage: {'kine/sqlite' if use_kine else 'etcd'})")
        watcher = core.ManifestWatcher(data / "manifests", kcfg, recursive=True)
        tick = 0
        while not sup.stopping:
            sup.check()
            if tick % 5 == 0:
                watcher.poll()
            if node is not None and tick and tick % 10 == 0:
                try:
                    core.heartbeat(admin, node)
                except (StandinError, OSError) as exc:
                    log(f"heartbeat failed: {exc}")
            tick += 1
            time.sleep(1)
        return 0
    finally:
        sup.stop_all()
        STATUS.unlink(missing_ok=True)


def _encode_token(kubeconfig: str) -> str:
    return base64.b64encode(gzip.compress(kubeconfig.encode())).decode()


def _decode_token(raw: str) -> dict[str, Any]:
    try:
        doc = json.loads(gzip.decompress(base64.b64decode(raw.strip())))
    except (ValueError, OSError) as exc:
        raise StandinError(f"the join token is not a k0s token (base64 gzip kubeconfig): {exc}") from None
    if not isinstance(doc, dict):
        raise StandinError("the join token does not hold a kubeconfig")
    return doc


def token_create(argv: list[str]) -> int:
    opts = _opts(argv, set())
    role = opts.get("role", "worker")
    if role not in {"worker", "controller"}:
        raise StandinError(f"--role={role!r} (allowed: worker, controller)")
    data = Path(opts.get("data-dir", str(DATA_DIR)))
    kcfg = data / "pki" / "admin.conf"
    if not kcfg.exists():
        raise StandinError(f"{kcfg} not found: is the k0s stand-in controller running here?")
    tid, tsecret = core.new_bootstrap_token()
    expiry = opts.get("expiry", "0")
    string_data = {
        "token-id": tid, "token-secret": tsecret, "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true", "auth-extra-groups": core.BOOTSTRAP_GROUP,
        "description": f"edgefleet lab stand-in {role} join token",
    }  # fmt: skip
    if expiry not in {"0", "0s", ""}:
        from .k3s import _duration

        string_data["expiration"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + _duration(expiry)))
    secret = {
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": f"bootstrap-token-{tid}", "namespace": "kube-system"}, "stringData": string_data,
    }  # fmt: skip
    core.apply_docs(kcfg, [secret])
    ca_pem = (data / "pki" / "server-ca.crt").read_text()
    doc = load_config(CONFIG)
    api_cfg = (doc.get("spec") or {}).get("api") or {}
    address = api_cfg.get("externalAddress") or api_cfg.get("address") or core.node_ip()
    server = f"https://{address}:{api_cfg.get('port', 6443)}"
    print(_encode_token(core.kubeconfig(server, ca_pem, token=f"{tid}.{tsecret}")))
    return 0


KUBELET_NOT_RUN = "[stand-in: not run, kubelet flags K0s would pass]"


def log_kubelet_not_run(name: str, extra_args: str) -> None:
    """The lab has no kubelet: log the flags K0s would start one with, its --kubelet-extra-args split at white space
    into --key=value flags as k0s splits them (a value systemd cut at a space shows up as a missing flag here)."""
    log(f"{KUBELET_NOT_RUN} kubelet --hostname-override={name} {' '.join(extra_args.split())}".rstrip())


def worker(argv: list[str], version: str) -> int:
    opts = _opts(argv, {"debug", "verbose"})
    raw = ""
    if opts.get("token-file"):
        path = Path(opts["token-file"])
        if not path.exists():
            raise StandinError(f"token-file {path} does not exist")
        raw = path.read_text()
    elif opts.get("_positional"):
        raw = opts["_positional"]
    if not raw.strip():
        raise StandinError("k0s worker: a join token is required (--token-file or argument)")
    doc = _decode_token(raw)
    try:
        cluster = doc["clusters"][0]["cluster"]
        server = cluster["server"]
        ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        token = doc["users"][0]["user"]["token"]
    except (KeyError, IndexError, TypeError) as exc:
        raise StandinError(f"the join token kubeconfig lacks {exc}") from None
    name = socket.gethostname()
    labels = core.parse_labels(opts["labels"].split(",")) if opts.get("labels") else {}
    taints = core.parse_taints(opts["taints"].split(",")) if opts.get("taints") else []
    host = urlparse(server).hostname or ""
    ip = core.node_ip()
    log(f"k0s stand-in worker {name} joining {server} ({host})")
    log_kubelet_not_run(name, opts.get("kubelet-extra-args", ""))
    node = core.node_object(name, labels, taints, ip, version)
    return core.run_node(Api(server, ca_pem, token=token), node)


def status() -> int:
    if not STATUS.exists():
        print("Error: k0s stand-in is not running", file=sys.stderr)
        return 1
    doc = json.loads(STATUS.read_text())
    try:
        os.kill(int(doc["Pid"]), 0)
    except (OSError, ValueError, KeyError):
        print("Error: k0s stand-in is not running (stale status)", file=sys.stderr)
        return 1
    print(f"Version: {doc['Version']}")
    print(f"Process ID: {doc['Pid']}")
    print(f"Role: {doc['Role']}")
    print(f"Workloads: {str(doc['Workloads']).lower()}")
    print(f"SingleNode: {str(doc['SingleNode']).lower()}")
    print(f"Storage: {doc['Storage']}")
    print(f"Note: {doc['StandIn']}")
    return 0


def main(argv: list[str], version: str) -> int:
    args = argv[1:]
    core.banner("k0s", version)
    if not args or args[0] in {"version", "--version"}:
        print(f"{version} (stand-in)")
        return 0 if args else 1
    cmd, rest = args[0], args[1:]
    if cmd == "controller":
        return controller(rest, version)
    if cmd == "worker":
        return worker(rest, version)
    if cmd == "token" and rest[:1] == ["create"]:
        return token_create(rest[1:])
    if cmd == "status":
        return status()
    if cmd == "kubectl":
        env = dict(os.environ)
        env.setdefault("KUBECONFIG", str(DATA_DIR / "pki" / "admin.conf"))
        os.execve(core.tool("kubectl"), ["kubectl", *rest], env)
    print(f"k0s stand-in: unknown command {cmd!r} (controller, worker, token create, status, kubectl, version)",
          file=sys.stderr)  # fmt: skip
    return 1
