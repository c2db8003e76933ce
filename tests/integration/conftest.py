"""Integration fixtures: a bare kine (SQLite) + real kube-apiserver on 127.0.0.1 only.

Not K3s: the lab control-plane parts built by `make controlplane` (tests/lab/controlplane/build.sh), for
module integration tests that need a real API but no node. Use the session fixture `kube_apiserver`
(its `.kubeconfig` is an admin kubeconfig), or `start_controlplane()` for a private instance.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CP_DIR = REPO / "tests" / "lab" / "controlplane"
sys.path.insert(0, str(CP_DIR / "standin"))

import labsite
from edgefleet_standin import core


def controlplane_bin() -> Path:
    out = subprocess.run([str(CP_DIR / "build.sh"), "--print-bindir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


@dataclass
class ControlPlane:
    """A running kine + kube-apiserver pair on loopback."""

    root: Path
    port: int
    sup: core.Supervisor = field(default_factory=core.Supervisor)

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.root / "db" / "state.db"

    def api(self) -> core.Api:
        ca = (self.tls / "server-ca.crt").read_text()
        return core.Api(self.server, ca, cert=self.tls / "client-admin.crt", key=self.tls / "client-admin.key")

    def pids(self) -> list[int]:
        return [c.proc.pid for c in self.sup.children if c.proc is not None]

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return core.kubectl(self.kubeconfig, *args, stdin=stdin)

    def stop(self) -> None:
        self.sup.stop_all()


def start_controlplane(
    apiserver_args: Sequence[str] = (),
    *,
    encrypt_secrets: bool = False,
    wait: bool = True,
    timeout: float = 240,
) -> ControlPlane:
    """Start kine (unix socket only) and kube-apiserver (127.0.0.1, a free port); wait for /readyz."""
    bindir = controlplane_bin()
    missing = [t for t in ("kine", "kube-apiserver", "kubectl") if not (bindir / t).exists()]
    if missing:
        pytest.fail(f"control-plane binaries {missing} missing in {bindir}: run `make controlplane` first")
    os.environ["EDGEFLEET_STANDIN_BIN"] = str(bindir)
    root = Path(tempfile.mkdtemp(prefix="efcp-"))  # short: the kine unix socket path must fit 108 bytes
    cp = ControlPlane(root=root, port=core.free_port())
    (root / "db").mkdir()
    core.ensure_apiserver_pki(cp.tls, [], "10.43.0.1")
    enc = None
    if encrypt_secrets:
        enc = root / "encryption-config.json"
        core.write_encryption_config(enc)
    sock = root / "kine.sock"
    try:
        cp.sup.add(core.Child("kine", core.kine_args(sock, cp.db), log_path=root / "kine.log"))
        for _attempt in range(100):
            if sock.exists():
                break
            cp.sup.check()
            core.time.sleep(0.2)
        spec = core.ApiserverSpec(
            tls=cp.tls,
            bind="127.0.0.1",
            port=cp.port,
            advertise=core.node_ip() if core.node_ip() != "127.0.0.1" else "192.0.2.10",  # never bound
            etcd_servers=f"unix://{sock}",
            encryption_config=enc,
            extra=list(apiserver_args),
        )
        cp.sup.add(core.Child("kube-apiserver", core.apiserver_args(spec), log_path=root / "kube-apiserver.log"))
        ca = (cp.tls / "server-ca.crt").read_text()
        kcfg = core.kubeconfig(cp.server, ca, cert=cp.tls / "client-admin.crt", key=cp.tls / "client-admin.key")
        core.atomic_write(cp.kubeconfig, kcfg, 0o600)
        if wait:
            core.wait_ready(cp.api(), timeout, cp.sup)
    except BaseException:
        cp.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cp


@pytest.fixture(scope="session")
def kube_apiserver() -> Iterator[ControlPlane]:
    """A session-wide bare control plane (kine/SQLite + kube-apiserver on 127.0.0.1)."""
    cp = start_controlplane()
    yield cp
    cp.stop()
    shutil.rmtree(cp.root, ignore_errors=True)


@pytest.fixture
def controlplane_factory() -> Iterator[type[ControlPlane] | object]:
    """Start private control planes inside a test; all are stopped and removed afterwards."""
    started: list[ControlPlane] = []

    def _start(*args: str, **kwargs: object) -> ControlPlane:
        cp = start_controlplane(args, **kwargs)  # type: ignore[arg-type]
        started.append(cp)
        return cp

    yield _start
    for cp in started:
        cp.stop()
        shutil.rmtree(cp.root, ignore_errors=True)


# --------------------------------------------------------------------------- the lab fleet (make lab-up)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[labsite.Site]:
    """`playbooks/site.yml` on the lab fleet (tests/integration/labsite.py); unpauses every node afterwards."""
    if not labsite.lab_is_up():
        pytest.fail(
            "the lab nodes edgefleet-node1..4 are not up (make lab-up); tests/lab/run-integration.sh brings them up"
        )
    # The lab nodes are one fleet: with `pytest -n N --dist loadfile` (tests/lab/run-integration.sh) two files that
    # use them may run at once in two workers, so each file holds the lab's lock for as long as it uses them.
    with labsite.shared_lab_lock():
        try:
            yield labsite.Site(tmp_path_factory.mktemp("lab-site"))
        finally:
            labsite.unpause(*labsite.NODES)
