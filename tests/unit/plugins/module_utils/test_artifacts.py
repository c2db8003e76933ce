# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Air-gap bundle logic: names, sums parsing, controller verification, mirror fetch, node staging."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._artifacts import bundle as artifacts

VERSION = "v1.30.2+k3s1"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_bundle(root: Path, dist: str = "k3s", version: str = VERSION, arch: str = "arm64", **extra: bytes) -> Path:
    """A test fixture bundle: small fake files with their real sha256 (not real K3s)."""
    directory = root / dist / version
    directory.mkdir(parents=True)
    files = {artifacts.binary_name(dist, version, arch): b"fake binary for tests\n" * 100}
    if dist == "k3s":
        files["install.sh"] = b"#!/bin/sh\necho test fixture\n"
        files[f"k3s-airgap-images-{arch}.tar.zst"] = b"fake images"
    files.update(extra)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    sums = "".join(f"{_sha(data)}  {name}\n" for name, data in files.items())
    (directory / artifacts.sums_name(arch)).write_text(sums)
    return directory


@pytest.mark.parametrize(
    ("dist", "arch", "expected"),
    [
        ("k3s", "amd64", "k3s"),
        ("k3s", "arm64", "k3s-arm64"),
        ("k3s", "armhf", "k3s-armhf"),
        ("k0s", "arm64", f"k0s-{VERSION}-arm64"),
    ],
)
def test_upstream_binary_names(dist: str, arch: str, expected: str) -> None:
    assert artifacts.binary_name(dist, VERSION, arch) == expected


def test_image_names_prefer_compressed() -> None:
    assert artifacts.image_names("k3s", VERSION, "armhf") == [
        "k3s-airgap-images-armhf.tar.zst",
        "k3s-airgap-images-armhf.tar.gz",
        "k3s-airgap-images-armhf.tar",
    ]


def test_parse_sums_binary_marker_and_bad_lines() -> None:
    digest = "a" * 64
    sums, problems = artifacts.parse_sha256sums(f"{digest} *k3s\n# comment\nnonsense\n\n", "s.txt")
    assert sums == {"k3s": digest}
    assert problems == ["s.txt:3: not a sha256sum line: 'nonsense'"]


def test_parse_sums_conflicting_duplicate() -> None:
    _sums, problems = artifacts.parse_sha256sums(f"{'a' * 64}  k3s\n{'b' * 64}  k3s\n", "s.txt")
    assert problems == ["s.txt:2: k3s is listed twice with different hashes"]


def test_verify_good_bundle(tmp_path: Path) -> None:
    directory = make_bundle(tmp_path)
    plan = artifacts.verify_local_bundle(str(directory), "k3s", VERSION, "arm64")
    by_name = {f.name: f for f in plan.files}
    assert set(by_name) == {"k3s-arm64", "k3s-airgap-images-arm64.tar.zst", "install.sh"}
    binary = by_name["k3s-arm64"]
    assert binary.install_path == "/usr/local/bin/k3s"
    assert binary.mode == 0o755
    assert binary.size == len(b"fake binary for tests\n" * 100)
    assert by_name["k3s-airgap-images-arm64.tar.zst"].install_path == (
        "/var/lib/rancher/k3s/agent/images/k3s-airgap-images-arm64.tar.zst"
    )
    assert by_name["install.sh"].install_path is None


def test_one_flipped_byte_names_the_file_and_both_hashes(tmp_path: Path) -> None:
    directory = make_bundle(tmp_path)
    binary = directory / "k3s-arm64"
    good = _sha(binary.read_bytes())
    data = bytearray(binary.read_bytes())
    data[10] ^= 0x01
    binary.write_bytes(bytes(data))
    with pytest.raises(artifacts.BundleError) as caught:
        artifacts.verify_local_bundle(str(directory), "k3s", VERSION, "arm64")
    (problem,) = caught.value.problems
    assert str(binary) in problem
    assert good in problem
    assert _sha(bytes(data)) in problem


def test_every_problem_is_listed(tmp_path: Path) -> None:
    directory = make_bundle(tmp_path)
    (directory / "install.sh").write_bytes(b"tampered")
    (directory / "k3s-airgap-images-arm64.tar.zst").unlink()
    with pytest.raises(artifacts.BundleError) as caught:
        artifacts.verify_local_bundle(str(directory), "k3s", VERSION, "arm64")
    text = "\n".join(caught.value.problems)
    assert "install.sh: sha256 mismatch" in text
    assert "k3s-airgap-images-arm64.tar.zst: listed in sha256sum-arm64.txt but missing" in text
    assert len(caught.value.problems) == 2


def test_wanted_file_missing_from_sums_is_refused(tmp_path: Path) -> None:
    directory = make_bundle(tmp_path)
    sums = directory / "sha256sum-arm64.txt"
    sums.write_text("".join(line + "\n" for line in sums.read_text().splitlines() if "k3s-arm64" not in line))
    with pytest.raises(artifacts.BundleError, match="k3s-arm64: present in the bundle but not listed"):
        artifacts.verify_local_bundle(str(directory), "k3s", VERSION, "arm64")


def test_missing_binary_and_bad_request(tmp_path: Path) -> None:
    with pytest.raises(artifacts.BundleError) as caught:
        artifacts.verify_local_bundle(str(tmp_path), "k8s", "v1 2", "riscv64", ["binary", "kernel"])
    text = "\n".join(caught.value.problems)
    for fragment in ("distribution: found 'k8s'", "arch: found 'riscv64'", "version: found 'v1 2'", "'kernel'"):
        assert fragment in text


def test_missing_sums_file(tmp_path: Path) -> None:
    directory = make_bundle(tmp_path)
    (directory / "sha256sum-arm64.txt").unlink()
    with pytest.raises(artifacts.BundleError, match=r"sha256sum-arm64\.txt: the checksum file is missing"):
        artifacts.verify_local_bundle(str(directory), "k3s", VERSION, "arm64")


def test_optional_files_may_be_absent(tmp_path: Path) -> None:
    directory = make_bundle(tmp_path, "k0s", arch="amd64")
    plan = artifacts.verify_local_bundle(str(directory), "k0s", VERSION, "amd64")
    assert [f.name for f in plan.files] == [f"k0s-{VERSION}-amd64"]
    assert plan.files[0].install_path == "/usr/local/bin/k0s"
    assert plan.skipped == [f"k0s-airgap-bundle-{VERSION}-amd64"]


def test_components_limit_the_plan(tmp_path: Path) -> None:
    directory = make_bundle(tmp_path)
    plan = artifacts.verify_local_bundle(str(directory), "k3s", VERSION, "arm64", ["binary"])
    assert [f.name for f in plan.files] == ["k3s-arm64"]


# --- mirror URL: a loopback http.server only -------------------------------------------------


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "mirror"
    make_bundle(root)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


def _urlfetch(url: str, dest: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as response, open(dest, "wb") as handle:
        handle.write(response.read())


def test_mirror_fetch_verifies_against_pinned_sums(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, root = mirror
    pin = _sha((root / "k3s" / VERSION / "sha256sum-arm64.txt").read_bytes())
    cache = tmp_path / "cache"
    plan = artifacts.fetch_bundle(url, str(cache), "k3s", VERSION, "arm64", pin, _urlfetch)
    assert {f.name for f in plan.files} == {"k3s-arm64", "k3s-airgap-images-arm64.tar.zst", "install.sh"}
    assert (cache / "k3s" / VERSION / "k3s-arm64").read_bytes() == (root / "k3s" / VERSION / "k3s-arm64").read_bytes()
    calls: list[str] = []

    def counting(url_: str, dest: str) -> None:
        calls.append(url_)
        _urlfetch(url_, dest)

    artifacts.fetch_bundle(url, str(cache), "k3s", VERSION, "arm64", pin, counting)
    assert calls == []  # the cache already holds every pinned file


def test_mirror_needs_a_pin(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, _root = mirror
    with pytest.raises(artifacts.BundleError, match="bundle_sums_sha256: found ''"):
        artifacts.fetch_bundle(url, str(tmp_path / "c"), "k3s", VERSION, "arm64", "", _urlfetch)


def test_mirror_with_swapped_sums_file_is_refused(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, _root = mirror
    with pytest.raises(artifacts.BundleError) as caught:
        artifacts.fetch_bundle(url, str(tmp_path / "c"), "k3s", VERSION, "arm64", "0" * 64, _urlfetch)
    (problem,) = caught.value.problems
    assert "sha256sum-arm64.txt: sha256 mismatch: bundle_sums_sha256 pins " + "0" * 64 in problem
    assert not (tmp_path / "c" / "k3s" / VERSION / "sha256sum-arm64.txt").exists()


def test_mirror_with_corrupt_file_is_refused(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, root = mirror
    pin = _sha((root / "k3s" / VERSION / "sha256sum-arm64.txt").read_bytes())
    (root / "k3s" / VERSION / "install.sh").write_bytes(b"evil")
    with pytest.raises(artifacts.BundleError, match=r"install.sh: sha256 mismatch: sha256sum-arm64.txt pins"):
        artifacts.fetch_bundle(url, str(tmp_path / "c"), "k3s", VERSION, "arm64", pin, _urlfetch)
    assert not (tmp_path / "c" / "k3s" / VERSION / "install.sh").exists()


# --- node side ---------------------------------------------------------------------------------


def _module_files(plan: artifacts.BundlePlan, tmp_path: Path) -> list[dict[str, object]]:
    out = []
    for f in plan.files:
        arg = f.as_module_arg()
        if arg["install_path"]:
            arg["install_path"] = str(tmp_path / "node" / str(arg["install_path"]).lstrip("/"))
        out.append(arg)
    return out


def _sent(plan: artifacts.BundlePlan, tmp_path: Path) -> dict[str, str]:
    """What the action plugin sends: a copy of each file, where the node finds it (it is moved into place)."""
    sources = {}
    for f in plan.files:
        (tmp_path / f"sent-{f.name}").write_bytes(Path(f.local_path).read_bytes())
        sources[f.name] = str(tmp_path / f"sent-{f.name}")
    return sources


def test_stage_install_then_nothing_to_do(tmp_path: Path) -> None:
    directory = make_bundle(tmp_path / "b")
    plan = artifacts.verify_local_bundle(str(directory), "k3s", VERSION, "arm64")
    files = _module_files(plan, tmp_path)
    staging = str(tmp_path / "node" / "staging")
    assert artifacts.probe(files, staging) == {f.name: None for f in plan.files}

    # What the action plugin sends: copies in a temp dir (they are moved into place).
    sent = tmp_path / "sent"
    sent.mkdir()
    sources = {}
    for f in plan.files:
        (sent / f.name).write_bytes(Path(f.local_path).read_bytes())
        sources[f.name] = str(sent / f.name)

    results, problems = artifacts.stage_and_install(files, staging, {}, check_mode=True)
    assert problems == []
    assert all(r.changed for r in results)
    assert not os.path.exists(staging)

    results, problems = artifacts.stage_and_install(files, staging, sources, check_mode=False)
    assert problems == []
    assert {r.name: (r.staged, r.installed) for r in results} == {
        "k3s-arm64": ("staged", "installed"),
        "k3s-airgap-images-arm64.tar.zst": ("staged", "installed"),
        "install.sh": ("staged", "n/a"),
    }
    binary = tmp_path / "node" / "usr/local/bin/k3s"
    assert oct(binary.stat().st_mode & 0o777) == "0o755"
    assert _sha(binary.read_bytes()) == next(f.sha256 for f in plan.files if f.name == "k3s-arm64")
    assert artifacts.probe(files, staging) == {f.name: f.sha256 for f in plan.files}

    results, problems = artifacts.stage_and_install(files, staging, {}, check_mode=False)
    assert problems == [] and not any(r.changed for r in results)

    # A damaged installed binary is restored from the staged copy without any transfer.
    binary.write_bytes(b"broken")
    results, problems = artifacts.stage_and_install(files, staging, {}, check_mode=False)
    assert problems == []
    assert [r.name for r in results if r.changed] == ["k3s-arm64"]
    assert _sha(binary.read_bytes()) == next(f.sha256 for f in plan.files if f.name == "k3s-arm64")


def test_corrupted_transfer_is_never_put_in_place(tmp_path: Path) -> None:
    directory = make_bundle(tmp_path / "b")
    plan = artifacts.verify_local_bundle(str(directory), "k3s", VERSION, "arm64", ["binary"])
    files = _module_files(plan, tmp_path)
    bad = tmp_path / "received"
    bad.write_bytes(b"damaged in transit")
    staging = str(tmp_path / "node" / "staging")
    results, problems = artifacts.stage_and_install(files, staging, {"k3s-arm64": str(bad)}, check_mode=False)
    assert len(problems) == 1
    assert "k3s-arm64 (as received on the node): sha256 mismatch" in problems[0]
    assert _sha(b"damaged in transit") in problems[0]
    assert not os.path.exists(os.path.join(staging, "k3s-arm64"))
    assert not (tmp_path / "node" / "usr/local/bin/k3s").exists()
    assert results[0].changed is False


def test_missing_staged_file_without_transfer_fails(tmp_path: Path) -> None:
    directory = make_bundle(tmp_path / "b")
    plan = artifacts.verify_local_bundle(str(directory), "k3s", VERSION, "arm64", ["binary"])
    _results, problems = artifacts.stage_and_install(
        _module_files(plan, tmp_path), str(tmp_path / "s"), {}, check_mode=False
    )
    assert problems and "nothing was sent" in problems[0]


def test_diff_lists_paths_and_hashes(tmp_path: Path) -> None:
    result = artifacts.FileResult("k3s", "binary", "f" * 64, "/s/k3s", "/usr/local/bin/k3s", before_staged=None)
    diff = artifacts.diff_of([result])
    assert "/s/k3s (absent)" in diff["before"]
    assert f"/usr/local/bin/k3s {'f' * 64}" in diff["after"]


def test_a_replaced_binary_records_the_restart_before_the_swap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new binary over an installed one of other content: the service still runs the old one, so the
    restart is recorded first (a run killed right after the swap still restarts it next time)."""
    directory = make_bundle(tmp_path / "b")
    plan = artifacts.verify_local_bundle(str(directory), "k3s", VERSION, "arm64", ["binary", "install_script"])
    files = _module_files(plan, tmp_path)
    staging = str(tmp_path / "node" / "staging")
    marker = tmp_path / "node" / "restart-pending" / "k3s.service"
    sources = _sent(plan, tmp_path)

    # First install: nothing runs the binary yet, nothing to record.
    results, problems = artifacts.stage_and_install(files, staging, sources, False, str(marker))
    assert problems == [] and not marker.exists() and not any(r.restart_recorded for r in results)

    # The installed binary is another version's (what an upgrade replaces); check mode records nothing.
    binary = tmp_path / "node" / "usr/local/bin/k3s"
    binary.write_bytes(b"the old version")
    results, problems = artifacts.stage_and_install(files, staging, {}, True, str(marker))
    assert problems == [] and not marker.exists()

    # The marker is on disk when the binary is swapped (seen from inside the swap).
    seen: list[bool] = []
    place = artifacts._place

    def spy(src: str, dest: str, mode: int, move: bool) -> None:
        if dest == str(binary):
            seen.append(marker.exists())
        place(src, dest, mode, move)

    monkeypatch.setattr(artifacts, "_place", spy)
    results, problems = artifacts.stage_and_install(files, staging, {}, False, str(marker))
    assert problems == []
    assert seen == [True], "the restart was not recorded before the binary was replaced"
    assert oct(marker.stat().st_mode & 0o777) == "0o600"
    assert [r.name for r in results if r.restart_recorded] == ["k3s-arm64"]

    # Nothing new to install: the marker stays for the distribution role to act on and remove; no new one.
    marker.unlink()
    results, problems = artifacts.stage_and_install(files, staging, {}, False, str(marker))
    assert problems == [] and not marker.exists() and not any(r.changed for r in results)


# --- WASM shims ----------------------------------------------------------------------------------

SHIM_SPIN = b"#!/bin/sh\n# test fixture, not a spin shim\n"
SHIM_WASMTIME = b"#!/bin/sh\n# test fixture, not a wasmtime shim\n"


def shim_bundle(root: Path, dist: str = "k3s", arch: str = "arm64") -> Path:
    return make_bundle(
        root,
        dist,
        arch=arch,
        **{f"containerd-shim-spin-v1-{arch}": SHIM_SPIN, f"containerd-shim-wasmtime-v1-{arch}": SHIM_WASMTIME},
    )


def test_shim_names_follow_the_runtime_table() -> None:
    assert artifacts.shim_name("spin", "arm64") == "containerd-shim-spin-v1-arm64"
    assert artifacts.shim_name("wasmtime", "amd64") == "containerd-shim-wasmtime-v1-amd64"


@pytest.mark.parametrize("dist", ["k3s", "k0s"])
def test_the_node_runtimes_shims_are_planned_pinned_and_installed_in_the_shim_dir(tmp_path: Path, dist: str) -> None:
    directory = shim_bundle(tmp_path, dist)
    plan = artifacts.verify_local_bundle(str(directory), dist, VERSION, "arm64", wasm_runtimes=["wasmtime", "spin"])
    shims = {f.name: f for f in plan.files if f.kind == "wasm_shims"}
    assert {name: (f.install_path, f.mode, f.sha256) for name, f in shims.items()} == {
        "containerd-shim-spin-v1-arm64": ("/opt/kwasm/bin/containerd-shim-spin-v1", 0o755, _sha(SHIM_SPIN)),
        "containerd-shim-wasmtime-v1-arm64": (
            "/opt/kwasm/bin/containerd-shim-wasmtime-v1",
            0o755,
            _sha(SHIM_WASMTIME),
        ),
    }
    # Only the runtimes asked for: a node with one runtime gets one shim, a node with none gets none.
    one = artifacts.verify_local_bundle(str(directory), dist, VERSION, "arm64", wasm_runtimes=["spin"])
    assert [f.name for f in one.files if f.kind == "wasm_shims"] == ["containerd-shim-spin-v1-arm64"]
    none = artifacts.verify_local_bundle(str(directory), dist, VERSION, "arm64")
    assert [f for f in none.files if f.kind == "wasm_shims"] == []
    # Without the wasm_shims component nothing of them is planned either.
    binary_only = artifacts.verify_local_bundle(
        str(directory), dist, VERSION, "arm64", ["binary"], wasm_runtimes=["spin"]
    )
    assert [f.kind for f in binary_only.files] == ["binary"]


def test_a_missing_or_unpinned_shim_and_an_unknown_runtime_are_all_reported(tmp_path: Path) -> None:
    directory = make_bundle(tmp_path, arch="arm64", **{"containerd-shim-spin-v1-arm64": SHIM_SPIN})
    # wasmtime's shim is in the bundle but not in the sums file.
    (directory / "containerd-shim-wasmtime-v1-arm64").write_bytes(SHIM_WASMTIME)
    with pytest.raises(artifacts.BundleError) as err:
        artifacts.verify_local_bundle(
            str(directory), "k3s", VERSION, "arm64", wasm_runtimes=["spin", "wasmtime", "wasmedge"]
        )
    text = "\n".join(err.value.problems)
    assert len(err.value.problems) == 2, text
    assert "containerd-shim-wasmtime-v1-arm64: present in the bundle but not listed in sha256sum-arm64.txt" in text
    assert "the WASM shim of wasmedge containerd-shim-wasmedge-v1-arm64 is neither in the bundle nor in" in text
    with pytest.raises(artifacts.BundleError) as err:
        artifacts.verify_local_bundle(str(directory), "k3s", VERSION, "arm64", wasm_runtimes=["spinn", "wasm"])
    assert [p.split(":")[0] for p in err.value.problems] == ["wasm_runtimes[0]", "wasm_runtimes[1]"]
    assert "allowed: lunatic, slight, spin, wasmedge, wasmer, wasmtime, wws" in err.value.problems[0]


def test_a_flipped_byte_in_a_shim_names_it(tmp_path: Path) -> None:
    directory = shim_bundle(tmp_path)
    (directory / "containerd-shim-spin-v1-arm64").write_bytes(SHIM_SPIN + b"x")
    with pytest.raises(artifacts.BundleError) as err:
        artifacts.verify_local_bundle(str(directory), "k3s", VERSION, "arm64", wasm_runtimes=["spin"])
    assert len(err.value.problems) == 1
    assert (
        "containerd-shim-spin-v1-arm64: sha256 mismatch: sha256sum-arm64.txt pins " + _sha(SHIM_SPIN)
        in (err.value.problems[0])
    )


def test_a_new_shim_records_a_restart_only_where_asked_and_a_replaced_one_never(tmp_path: Path) -> None:
    """K3s looks for shims as it starts: a shim where there was none needs a restart. A shim replaced in place
    does not (containerd starts the shim anew for each container), nor does any shim for K0s."""
    directory = shim_bundle(tmp_path / "b")
    plan = artifacts.verify_local_bundle(
        str(directory), "k3s", VERSION, "arm64", ["binary", "wasm_shims"], wasm_runtimes=["spin"]
    )
    files = _module_files(plan, tmp_path)
    staging = str(tmp_path / "node" / "staging")
    marker = tmp_path / "node" / "restart-pending" / "k3s.service"
    sources = _sent(plan, tmp_path)

    # A distribution that does not look for shims at start (K0s): nothing recorded.
    results, problems = artifacts.stage_and_install(files, staging, dict(sources), False, str(marker))
    assert problems == [] and not marker.exists()
    shim = tmp_path / "node" / "opt/kwasm/bin/containerd-shim-spin-v1"
    assert _sha(shim.read_bytes()) == _sha(SHIM_SPIN) and oct(shim.stat().st_mode & 0o777) == "0o755"

    # K3s: the shim goes away and comes back - a new shim for the agent, so the restart is recorded.
    shim.unlink()
    results, problems = artifacts.stage_and_install(files, staging, {}, False, str(marker), restart_on_new_shim=True)
    assert problems == [] and marker.exists()
    assert [r.name for r in results if r.restart_recorded] == ["containerd-shim-spin-v1-arm64"]

    # A shim of other content replaced in place: no restart; then nothing to do at all.
    marker.unlink()
    shim.write_bytes(b"another build")
    results, problems = artifacts.stage_and_install(files, staging, {}, False, str(marker), restart_on_new_shim=True)
    assert problems == [] and not marker.exists()
    assert [r.name for r in results if r.changed] == ["containerd-shim-spin-v1-arm64"]
    results, problems = artifacts.stage_and_install(files, staging, {}, False, str(marker), restart_on_new_shim=True)
    assert problems == [] and not any(r.changed for r in results) and not marker.exists()
