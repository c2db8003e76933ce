# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The artifact action plugin against a fake node: a bad bundle fails on the controller without any
call to the node; the first run sends every file, an identical re-run sends nothing and changes nothing.

Only the connection is faked. ``FakeNode`` is one host as a directory tree: a transfer copies the real
bytes into the node's temp dir (and records them), and a module call runs the real
``edgefleet.k8s.artifact`` module in-process on that tree. So ``changed``, the files' states and the
bytes sent are what the action plugin and the module compute, not what a mock was told to return.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import shutil
import sys
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.module_utils.testing import patch_module_args
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import init_plugin_loader

# Install Ansible's collection loader before the first ansible_collections import, as the inventory
# tests do (tests/unit/plugins/inventory/fleet_helpers.py): this file is collected before them, and a
# plain namespace import of the collection would leave it without the metadata the loader needs.
init_plugin_loader([str(_COLLECTIONS)])
from ansible_collections.edgefleet.k8s.plugins.action.artifact import ActionModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._artifacts import bundle as bundle_mod
from ansible_collections.edgefleet.k8s.plugins.module_utils._common import hash_record
from ansible_collections.edgefleet.k8s.plugins.modules import artifact as artifact_module

VERSION = "v0.0.0+fixture"
BINARY = b"#!/bin/sh\necho TEST FIXTURE, not k3s\n"
INSTALL = b"#!/bin/sh\necho TEST FIXTURE, not the k3s install script\n"
IMAGES = b"TEST FIXTURE images archive\n" * 40
CONTENT = {"k3s": BINARY, "install.sh": INSTALL, "k3s-airgap-images-amd64.tar.zst": IMAGES}
TOTAL = sum(len(data) for data in CONTENT.values())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle(root: Path, corrupt: bool = False) -> Path:
    """A k3s/amd64 bundle with the binary, the install script and an images archive."""
    directory = root / "k3s" / VERSION
    directory.mkdir(parents=True)
    for name, data in CONTENT.items():
        (directory / name).write_bytes(data + (b"X" if corrupt and name == "k3s" else b""))
    (directory / "sha256sum-amd64.txt").write_text("".join(f"{sha(d)}  {n}\n" for n, d in CONTENT.items()))
    return root


class FakeShell:
    def __init__(self) -> None:
        self.tmpdir: str | None = None

    @staticmethod
    def join_path(*parts: str) -> str:
        return posixpath.join(*parts)


class FakeNode:
    """One node: a directory tree, the real module run on it, transfers that copy real bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging_root = root / "var/lib/edgefleet/artifacts"
        self.bin_dir = root / "usr/local/bin"
        self.images_dir = root / "images"
        self.calls: list[dict[str, Any]] = []  # module_args of every module call, as sent
        self.transfers: list[tuple[str, str, int]] = []  # (controller path, node path, bytes)
        self.tmpdirs: list[str] = []
        self.removed_tmpdirs: list[str] = []
        self.corrupt_in_transit = False

    def staged(self, name: str) -> Path:
        return self.staging_root / "k3s" / VERSION / name

    def attach(self, plugin: ActionModule) -> None:
        shell = plugin._connection._shell

        def make_tmp_path(remote_user: Any = None) -> str:
            path = self.root / f"tmp/ansible-tmp-{len(self.tmpdirs)}"
            path.mkdir(parents=True)
            self.tmpdirs.append(str(path))
            shell.tmpdir = str(path)
            return str(path)

        def remove_tmp_path(tmp_path: str, force: bool = False) -> None:
            shutil.rmtree(tmp_path, ignore_errors=True)
            self.removed_tmpdirs.append(tmp_path)
            shell.tmpdir = None

        def transfer_file(local_path: str, remote_path: str) -> str:
            data = Path(local_path).read_bytes()
            if self.corrupt_in_transit:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            Path(remote_path).write_bytes(data)
            self.transfers.append((local_path, remote_path, len(data)))
            return remote_path

        def execute_module(
            module_name: str | None = None,
            module_args: dict[str, Any] | None = None,
            task_vars: dict[str, Any] | None = None,
            **_: Any,
        ) -> dict[str, Any]:
            assert module_name == "edgefleet.k8s.artifact"
            sent = json.loads(json.dumps(module_args))
            self.calls.append(sent)
            internal = {"_ansible_check_mode": plugin._task.check_mode, "_ansible_diff": plugin._task.diff}
            out = io.StringIO()
            with patch_module_args({**sent, **internal}), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
                artifact_module.main()
            result: dict[str, Any] = json.loads(out.getvalue())
            return result

        plugin._make_tmp_path = make_tmp_path  # type: ignore[method-assign]
        plugin._remove_tmp_path = remove_tmp_path  # type: ignore[method-assign]
        plugin._transfer_file = transfer_file  # type: ignore[method-assign]
        plugin._execute_module = execute_module  # type: ignore[method-assign]
        plugin._fixup_perms2 = MagicMock()  # type: ignore[method-assign]

    def args(self, bundle_root: Path, **over: Any) -> dict[str, Any]:
        return {
            "bundle": str(bundle_root),
            "distribution": "k3s",
            "version": VERSION,
            "arch": "amd64",
            "staging_root": str(self.staging_root),
            "bin_dir": str(self.bin_dir),
            "images_dir": str(self.images_dir),
            "cache_dir": str(self.root.parent / "controller-cache"),
            **over,
        }

    def run(self, args: dict[str, Any], check_mode: bool = False) -> tuple[dict[str, Any], ActionModule]:
        """One task run: a fresh action plugin (as Ansible makes one per task and host) on this node."""
        task = MagicMock()
        task.args = args
        task.check_mode = check_mode
        task.diff = False
        task.async_val = 0
        task.action = "edgefleet.k8s.artifact"
        connection = MagicMock()
        connection._shell = FakeShell()
        plugin = ActionModule(task, connection, PlayContext(), MagicMock(), MagicMock(), MagicMock())
        self.attach(plugin)
        result: dict[str, Any] = plugin.run(task_vars={})
        return result, plugin


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    return FakeNode(tmp_path / "node")


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in result["files"]}


def test_corrupt_bundle_never_reaches_the_node(tmp_path: Path, node: FakeNode) -> None:
    result, plugin = node.run(node.args(bundle(tmp_path / "controller", corrupt=True)))
    assert result["failed"] is True
    assert "nothing was sent to any node" in result["msg"]
    mismatch = f"k3s: sha256 mismatch: sha256sum-amd64.txt pins {sha(BINARY)}, the file has {sha(BINARY + b'X')}"
    assert mismatch in result["msg"]
    assert result["changed"] is False
    assert node.calls == [] and node.transfers == [] and node.tmpdirs == []
    assert not plugin._connection.exec_command.called
    assert not node.root.exists()


def test_wrong_pin_of_the_sums_file_is_refused_on_the_controller(tmp_path: Path, node: FakeNode) -> None:
    root = bundle(tmp_path / "controller")
    sums = (root / "k3s" / VERSION / "sha256sum-amd64.txt").read_bytes()
    result, _plugin = node.run(node.args(root, bundle_sums_sha256=sha(b"another sums file")))
    assert result["failed"] is True
    assert f"bundle_sums_sha256 pins {sha(b'another sums file')}, the file has {sha(sums)}" in result["msg"]
    assert node.calls == [] and node.transfers == []

    result, _plugin = node.run(node.args(root, bundle_sums_sha256=sha(sums).upper()))
    assert not result.get("failed"), result.get("msg")
    assert result["bytes_sent"] == TOTAL


def test_verify_only_touches_no_node(tmp_path: Path, node: FakeNode) -> None:
    result, _plugin = node.run(node.args(bundle(tmp_path / "controller"), verify_only=True))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert {f["name"]: (f["sha256"], f["size"], f["verified"]) for f in result["files"]} == {
        name: (sha(data), len(data), True) for name, data in CONTENT.items()
    }
    assert node.calls == [] and node.transfers == []


def test_first_run_sends_every_file_and_an_identical_rerun_sends_nothing(tmp_path: Path, node: FakeNode) -> None:
    root = bundle(tmp_path / "controller")
    first, _plugin = node.run(node.args(root))
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] is True
    assert first["bytes_to_send"] == first["bytes_sent"] == TOTAL
    assert sorted((Path(local).name, size) for local, _remote, size in node.transfers) == sorted(
        (name, len(data)) for name, data in CONTENT.items()
    )
    probe, apply = node.calls
    assert probe["_probe"] is True and "_sources" not in probe
    assert apply["_sources"] == {Path(remote).name: remote for _local, remote, _size in node.transfers}
    assert {f["name"]: f["sha256"] for f in apply["_files"]} == {n: sha(d) for n, d in CONTENT.items()}
    files = by_name(first)
    assert all(f["sent"] is True and f["staged"] == "staged" for f in files.values())
    assert files["k3s"]["installed"] == "installed" and files["install.sh"]["installed"] == "n/a"
    for name, data in CONTENT.items():
        assert node.staged(name).read_bytes() == data
    assert (node.bin_dir / "k3s").read_bytes() == BINARY
    assert (node.bin_dir / "k3s").stat().st_mode & 0o777 == 0o755
    assert (node.images_dir / "k3s-airgap-images-amd64.tar.zst").read_bytes() == IMAGES
    assert node.removed_tmpdirs == node.tmpdirs and len(node.tmpdirs) == 1
    assert not Path(node.tmpdirs[0]).exists()

    transfers, calls = len(node.transfers), len(node.calls)
    again, _plugin = node.run(node.args(root))
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False
    assert again["bytes_sent"] == 0 and again["bytes_to_send"] == 0
    assert len(node.transfers) == transfers
    # One module run: the probe found every file staged, so it checked the installs in the same run.
    assert len(node.calls) == calls + 1 and node.calls[-1]["_probe"] is True
    assert len(node.tmpdirs) == 1  # no temp dir for a run that sends nothing
    assert all(f["sent"] is False and f["staged"] == "ok" for f in again["files"])
    assert {f["installed"] for f in again["files"]} == {"ok", "n/a"}


def test_a_settled_node_reads_no_file_again_until_one_changes_in_place(
    tmp_path: Path, node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hash_record, "RACY_NS", 0)  # the fixture's files are seconds old, not settled
    root = bundle(tmp_path / "controller")
    node.run(node.args(root))
    second, _plugin = node.run(node.args(root))
    assert second["hashed_on_node"] == len(CONTENT)  # the staged files, read once after staging
    third, _plugin = node.run(node.args(root))
    assert not third.get("failed"), third.get("msg")
    assert third["changed"] is False and third["hashed_on_node"] == 0
    record = node.staging_root / ".sha256-record.json"
    assert record.stat().st_mode & 0o777 == 0o600
    assert str(node.bin_dir / "k3s") in json.loads(record.read_text())

    # The installed binary rewritten in place with its size and mtime kept: its ctime still moves.
    installed = node.bin_dir / "k3s"
    before = installed.stat()
    installed.write_bytes(BINARY.replace(b"TEST", b"EVIL"))
    os.utime(installed, ns=(before.st_atime_ns, before.st_mtime_ns))
    fourth, _plugin = node.run(node.args(root))
    assert not fourth.get("failed"), fourth.get("msg")
    assert fourth["changed"] is True and fourth["bytes_sent"] == 0
    assert by_name(fourth)["k3s"]["installed"] == "installed"
    assert installed.read_bytes() == BINARY


def test_only_the_staged_file_that_differs_is_sent(tmp_path: Path, node: FakeNode) -> None:
    root = bundle(tmp_path / "controller")
    node.run(node.args(root))
    node.staged("install.sh").write_bytes(b"#!/bin/sh\necho an older install script\n")
    transfers = len(node.transfers)

    result, _plugin = node.run(node.args(root))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert result["bytes_to_send"] == result["bytes_sent"] == len(INSTALL)
    assert [(Path(local).name, size) for local, _remote, size in node.transfers[transfers:]] == [
        ("install.sh", len(INSTALL))
    ]
    assert {f["name"]: f["sent"] for f in result["files"]} == {n: n == "install.sh" for n in CONTENT}
    assert node.staged("install.sh").read_bytes() == INSTALL


def test_a_replaced_binary_is_reinstalled_from_staging_without_sending(tmp_path: Path, node: FakeNode) -> None:
    root = bundle(tmp_path / "controller")
    node.run(node.args(root))
    (node.bin_dir / "k3s").write_bytes(b"someone else's k3s\n")
    transfers = len(node.transfers)

    result, _plugin = node.run(node.args(root))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert result["bytes_sent"] == 0 and len(node.transfers) == transfers
    assert by_name(result)["k3s"]["installed"] == "installed"
    assert (node.bin_dir / "k3s").read_bytes() == BINARY


def test_an_install_that_fails_in_the_probe_run_keeps_its_per_file_results(
    tmp_path: Path, node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every file staged, the probe run installs too; when that install fails, the task fails with the
    node's message and still reports each file, as a separate install run would."""
    root = bundle(tmp_path / "controller")
    node.run(node.args(root))
    (node.bin_dir / "k3s").write_bytes(b"someone else's k3s\n")
    place = bundle_mod._place

    def place_wrong_bytes(src: str, dest: str, mode: int, move: bool) -> None:
        place(src, dest, mode, move=move)
        Path(dest).write_bytes(b"not what was staged\n")

    monkeypatch.setattr(bundle_mod, "_place", place_wrong_bytes)
    result, _plugin = node.run(node.args(root))
    assert result["failed"] is True
    assert result["msg"].startswith("artifact staging failed:") and str(node.bin_dir / "k3s") in result["msg"]
    assert node.calls[-1]["_probe"] is True
    assert by_name(result)["k3s"]["installed"] == "installed"
    assert by_name(result)["k3s"]["staged"] == "ok"


def test_check_mode_sends_nothing_and_reports_what_would_be(tmp_path: Path, node: FakeNode) -> None:
    root = bundle(tmp_path / "controller")
    result, _plugin = node.run(node.args(root), check_mode=True)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True
    assert result["bytes_to_send"] == TOTAL and result["bytes_sent"] == 0
    assert f"would send {TOTAL} bytes" in result["msg"]
    assert node.transfers == [] and node.tmpdirs == []
    assert [call["_sources"] for call in node.calls[1:]] == [{}]
    assert {f["staged"] for f in result["files"]} == {"would_stage"}
    assert not node.staging_root.exists() and not node.bin_dir.exists()

    node.run(node.args(root))
    result, _plugin = node.run(node.args(root), check_mode=True)
    assert result["changed"] is False and result["bytes_to_send"] == 0


def test_bytes_corrupted_in_transit_are_refused_on_the_node(tmp_path: Path, node: FakeNode) -> None:
    node.corrupt_in_transit = True
    result, _plugin = node.run(node.args(bundle(tmp_path / "controller")))
    assert result["failed"] is True
    assert f"k3s (as received on the node): sha256 mismatch: bundle pins {sha(BINARY)}" in result["msg"]
    assert not (node.bin_dir / "k3s").exists() and not node.staged("k3s").exists()
    assert node.removed_tmpdirs == node.tmpdirs and len(node.tmpdirs) == 1


def test_install_false_stages_only_then_the_install_sends_nothing(tmp_path: Path, node: FakeNode) -> None:
    """The upgrade prestage: the new version is staged (verified, sent) but nothing installed changes; restaging
    sends 0 bytes, and the install later in the upgrade window sends nothing either."""
    root = bundle(tmp_path / "controller")
    (node.bin_dir).mkdir(parents=True, exist_ok=True)
    (node.bin_dir / "k3s").write_bytes(b"the running older k3s\n")
    staged, _plugin = node.run(node.args(root, install=False))
    assert not staged.get("failed"), staged.get("msg")
    assert staged["changed"] is True and staged["bytes_sent"] == TOTAL
    assert {f["installed"] for f in staged["files"]} == {"n/a"}
    assert (node.bin_dir / "k3s").read_bytes() == b"the running older k3s\n"
    assert not (node.images_dir / "k3s-airgap-images-amd64.tar.zst").exists()
    for name, data in CONTENT.items():
        assert node.staged(name).read_bytes() == data

    again, _plugin = node.run(node.args(root, install=False))
    assert again["changed"] is False and again["bytes_sent"] == 0

    installed, _plugin = node.run(node.args(root))
    assert installed["changed"] is True and installed["bytes_sent"] == 0
    assert (node.bin_dir / "k3s").read_bytes() == BINARY
