# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real containerd runs a WASM module through a real shim: `ctr run` prints the module's output.

What is real here and what is not:
- containerd is Debian's package (1.6), run on this build host with a root, state and socket of its own under a
  temporary directory. It is not K3s's or K0s's embedded containerd, and not in a lab node.
- The shim is the lab's own, `io.containerd.edgefleet-wasmtime.v1` (tests/lab/wasm/shim): runwasi's
  containerd-shim-wasm library (container lifecycle) and wasmtime (the WASM engine), built from crates.io by
  tests/lab/wasm/build.sh. No shim binary is published as a crate; the shims K3s detects (spin, wasmtime, ...)
  come from their own projects' releases, which cannot be had here.
- The image is made here: an OCI image layout with one layer holding the module, compiled by wabt's wat2wasm
  from tests/lab/wasm/hello.wat, its entrypoint the module.

Needs root and `tests/lab/wasm/build.sh` (make test-wasm-run runs both). Not in `make test`: docs/wasm.md gives
the build's cost.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.wasm_run

WASM_DIR = Path(__file__).resolve().parents[1] / "lab" / "wasm"
RUNTIME = "io.containerd.edgefleet-wasmtime.v1"
SHIM_NAME = "containerd-shim-edgefleet-wasmtime-v1"
IMAGE = "localhost/edgefleet/hello-wasm:1"
EXPECTED = "edgefleet: hello from a WASM module\n"


@dataclass
class Containerd:
    socket: Path
    log: Path

    def ctr(self, *args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.socket), *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def oci_image(module: bytes) -> bytes:
    """An OCI image layout (a tar) of one layer holding /hello.wasm, whose entrypoint is that module."""
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w") as tar:
        info = tarfile.TarInfo("hello.wasm")
        info.size, info.mode = len(module), 0o755
        tar.addfile(info, io.BytesIO(module))
    layer_digest, layer = _blob(layer_tar.getvalue())
    config_digest, config = _blob(
        json.dumps(
            {
                "architecture": "amd64",
                "os": "wasip1",
                "config": {"Entrypoint": ["/hello.wasm"]},
                "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            }
        ).encode()
    )
    manifest_digest, manifest = _blob(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}
                ],
            }
        ).encode()
    )
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest),
                "platform": {"architecture": "amd64", "os": "wasip1"},
                "annotations": {"org.opencontainers.image.ref.name": IMAGE},
            }
        ],
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(), "index.json": json.dumps(index)}
        for digest, data in ((layer_digest, layer), (config_digest, config), (manifest_digest, manifest)):
            files[f"blobs/sha256/{digest.split(':', 1)[1]}"] = data
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    if os.geteuid() != 0:
        pytest.fail("containerd needs root: run as root (make test-wasm-run)")
    shim = Path(subprocess.run([str(WASM_DIR / "build.sh"), "--print-path"], capture_output=True, text=True,
                               check=True).stdout.strip())  # fmt: skip
    if not shim.is_file():
        pytest.fail(f"no shim at {shim}: run tests/lab/wasm/build.sh (make test-wasm-run does)")
    work = tmp_path_factory.mktemp("wasm-run")
    bindir = work / "bin"
    bindir.mkdir()
    (bindir / SHIM_NAME).symlink_to(shim)
    daemon = Containerd(work / "containerd.sock", work / "containerd.log")
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    argv = ["containerd", "--root", str(work / "root"), "--state", str(work / "state"), "--address", str(daemon.socket)]
    with daemon.log.open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while daemon.ctr("version", timeout=10).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"containerd did not start:\n{daemon.log_tail()}")
            time.sleep(0.5)
        wat = WASM_DIR / "hello.wat"
        module = work / "hello.wasm"
        subprocess.run(["wat2wasm", str(wat), "-o", str(module)], check=True)
        (work / "hello-oci.tar").write_bytes(oci_image(module.read_bytes()))
        imported = daemon.ctr("images", "import", "--all-platforms", str(work / "hello-oci.tar"))
        assert imported.returncode == 0, imported.stderr
        yield daemon
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_ctr_runs_the_wasm_module_through_the_shim(containerd: Containerd) -> None:
    run = containerd.ctr("run", "--rm", "--snapshotter", "native", "--runtime", RUNTIME, IMAGE, "hello-1")
    assert run.returncode == 0, f"{run.stdout}{run.stderr}\n{containerd.log_tail()}"
    assert run.stdout == EXPECTED, run.stdout


def test_a_runtime_without_its_shim_is_refused(containerd: Containerd) -> None:
    # The same image on a runtime whose shim is not installed: containerd cannot start it, nothing runs.
    run = containerd.ctr("run", "--rm", "--snapshotter", "native", "--runtime", "io.containerd.wasmtime.v1", IMAGE,
                         "hello-2")  # fmt: skip
    assert run.returncode != 0 and EXPECTED not in run.stdout, run.stdout
    assert 'binary not installed "containerd-shim-wasmtime-v1"' in run.stderr, run.stderr
