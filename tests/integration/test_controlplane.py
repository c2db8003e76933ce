"""The bare lab control plane (kine/SQLite + real kube-apiserver) starts, serves, stays on loopback, stops clean.

Needs the binaries from `make controlplane`. Not K3s: see docs/lab.md "Control-plane stand-ins".
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CP_DIR, ControlPlane, start_controlplane

pytestmark = pytest.mark.controlplane


def _versions() -> dict[str, str]:
    out = {}
    for line in (CP_DIR / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _sep, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _listeners(pids: list[int]) -> list[str]:
    """Local addresses of every TCP/UDP socket that one of the pids listens on (from `ss -p`)."""
    res = subprocess.run(["ss", "-H", "-l", "-n", "-t", "-u", "-p"], capture_output=True, text=True, check=True)
    found = []
    for line in res.stdout.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            found.append(line.split()[4])
    return found


def test_readyz_and_version(kube_apiserver: ControlPlane) -> None:
    code, body = kube_apiserver.api().call("GET", "/readyz")
    assert code == 200, body
    code, body = kube_apiserver.api().call("GET", "/version")
    assert code == 200
    assert body["gitVersion"] == _versions()["EDGEFLEET_CP_K8S_VERSION"]
    res = kube_apiserver.kubectl("get", "--raw", "/version")
    assert res.returncode == 0, res.stderr
    assert _versions()["EDGEFLEET_CP_K8S_VERSION"] in res.stdout


def test_listens_on_loopback_only(kube_apiserver: ControlPlane) -> None:
    addrs = _listeners(kube_apiserver.pids())
    assert f"127.0.0.1:{kube_apiserver.port}" in addrs
    assert [a for a in addrs if not (a.startswith("127.0.0.1:") or a.startswith("[::1]:"))] == []


def test_wrong_client_is_rejected(kube_apiserver: ControlPlane) -> None:
    api = kube_apiserver.api()
    api.cert = api.key = None
    api.token = "not-a-valid-token"
    code, _body = api.call("GET", "/api/v1/namespaces")
    assert code == 401


def test_objects_land_in_sqlite(kube_apiserver: ControlPlane) -> None:
    def size() -> int:
        return sum(p.stat().st_size for p in kube_apiserver.db.parent.glob("state.db*"))

    # More than SQLite's WAL (4 MiB before a checkpoint), so the files on disk must grow, not only be reused.
    before = size()
    value = "x" * 65536
    docs = "\n---\n".join(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ef-grow-{i}, namespace: default}}\ndata: {{k: '{value}'}}"
        for i in range(80)
    )
    res = kube_apiserver.kubectl("apply", "--server-side", "-f", "-", stdin=docs)
    assert res.returncode == 0, res.stderr
    with sqlite3.connect(f"file:{kube_apiserver.db}?mode=ro", uri=True) as db:
        query = "SELECT COUNT(*) FROM kine WHERE name LIKE '/registry/configmaps/default/ef-grow-%'"
        rows = db.execute(query).fetchone()
    assert rows[0] >= 80
    assert size() > before


def test_stop_leaves_no_process() -> None:
    cp = start_controlplane()
    pids = cp.pids()
    port = cp.port
    assert len(pids) == 2
    cp.stop()
    shutil.rmtree(cp.root)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} still present"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_secrets_encrypted_at_rest(controlplane_factory) -> None:  # type: ignore[no-untyped-def]
    cp = controlplane_factory(encrypt_secrets=True)
    res = cp.kubectl("create", "secret", "generic", "ef-enc", "--from-literal=password=plain-text-canary")
    assert res.returncode == 0, res.stderr
    with sqlite3.connect(f"file:{cp.db}?mode=ro", uri=True) as db:
        value = db.execute(
            "SELECT value FROM kine WHERE name = '/registry/secrets/default/ef-enc' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
    assert bytes(value).startswith(b"k8s:enc:aescbc:v1:")
    assert b"plain-text-canary" not in bytes(value)


def test_valid_audit_policy_is_used(controlplane_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "audit.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n")
    log = tmp_path / "audit.log"
    cp = controlplane_factory(f"audit-policy-file={policy}", f"audit-log-path={log}")
    assert cp.kubectl("get", "namespaces").returncode == 0
    deadline = time.monotonic() + 120  # the lanes beside this one keep the CPU busy
    while time.monotonic() < deadline and not (log.exists() and '"level":"Metadata"' in log.read_text()):
        time.sleep(0.5)
    assert '"level":"Metadata"' in log.read_text()


def test_broken_audit_policy_is_rejected(tmp_path: Path) -> None:
    policy = tmp_path / "audit.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Everything\n")
    cp = start_controlplane([f"audit-policy-file={policy}"], wait=False)
    try:
        apiserver = cp.sup.children[-1]
        assert apiserver.proc is not None
        code = apiserver.proc.wait(120)
        assert code != 0
        text = (cp.root / "kube-apiserver.log").read_text()
        assert "audit" in text.lower() and "Everything" in text, text[-2000:]
    finally:
        cp.stop()
        shutil.rmtree(cp.root, ignore_errors=True)
    assert os.path.exists(policy)
