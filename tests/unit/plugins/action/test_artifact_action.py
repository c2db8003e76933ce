# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The artifact action plugin: a bad bundle fails on the controller without any call to the node;
a node that already has every file gets nothing sent."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import init_plugin_loader

# Install Ansible's collection loader before the first ansible_collections import, as the inventory
# tests do (tests/unit/plugins/inventory/fleet_helpers.py): this file is collected before them, and a
# plain namespace import of the collection would leave it without the metadata the loader needs.
init_plugin_loader([str(_COLLECTIONS)])
from ansible_collections.edgefleet.k8s.plugins.action.artifact import ActionModule

VERSION = "v0.0.0+fixture"


def bundle(root: Path, corrupt: bool = False) -> Path:
    directory = root / "k3s" / VERSION
    directory.mkdir(parents=True)
    data = b"#!/bin/sh\necho TEST FIXTURE, not k3s\n"
    (directory / "k3s").write_bytes(data + (b"X" if corrupt else b""))
    (directory / "sha256sum-amd64.txt").write_text(f"{hashlib.sha256(data).hexdigest()}  k3s\n")
    return root


def action(args: dict[str, Any], check_mode: bool = False) -> tuple[ActionModule, MagicMock]:
    task = MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.diff = False
    task.async_val = 0
    task.action = "edgefleet.k8s.artifact"
    connection = MagicMock()
    connection._shell.tmpdir = None
    plugin = ActionModule(task, connection, PlayContext(), MagicMock(), MagicMock(), MagicMock())
    execute = MagicMock()
    plugin._execute_module = execute  # type: ignore[method-assign]
    plugin._transfer_file = MagicMock()  # type: ignore[method-assign]
    return plugin, execute


def args(root: Path, **over: Any) -> dict[str, Any]:
    return {"bundle": str(root), "distribution": "k3s", "version": VERSION, "arch": "amd64", **over}


def test_corrupt_bundle_never_reaches_the_node(tmp_path: Path) -> None:
    plugin, execute = action(args(bundle(tmp_path, corrupt=True)))
    result = plugin.run(task_vars={})
    assert result["failed"] is True
    assert "nothing was sent to any node" in result["msg"]
    assert "k3s: sha256 mismatch: sha256sum-amd64.txt pins" in result["msg"]
    execute.assert_not_called()
    plugin._transfer_file.assert_not_called()
    # No remote temp dir either: nothing at all ran on the node.
    assert plugin._connection._shell.tmpdir is None
    assert not plugin._connection.exec_command.called


def test_verify_only_touches_no_node(tmp_path: Path) -> None:
    plugin, execute = action(args(bundle(tmp_path), verify_only=True))
    result = plugin.run(task_vars={})
    assert not result.get("failed")
    assert result["files"][0]["verified"] is True
    execute.assert_not_called()


def test_node_with_the_right_checksum_gets_nothing(tmp_path: Path) -> None:
    root = bundle(tmp_path)
    pinned = (root / "k3s" / VERSION / "sha256sum-amd64.txt").read_text().split()[0]
    plugin, execute = action(args(root))
    execute.side_effect = [
        {"remote": {"k3s": pinned}},
        {"changed": False, "files": [{"name": "k3s", "staged": "ok", "installed": "ok"}]},
    ]
    result = plugin.run(task_vars={})
    assert result["bytes_sent"] == 0
    assert result["changed"] is False
    assert result["files"][0]["sent"] is False
    plugin._transfer_file.assert_not_called()
    assert execute.call_args_list[1].kwargs["module_args"]["_sources"] == {}


@pytest.mark.parametrize("check_mode", [False, True])
def test_missing_file_is_sent_once(tmp_path: Path, check_mode: bool) -> None:
    root = bundle(tmp_path)
    size = (root / "k3s" / VERSION / "k3s").stat().st_size
    plugin, execute = action(args(root), check_mode=check_mode)
    plugin._connection._shell.join_path = lambda *parts: "/".join(parts)
    plugin._make_tmp_path = MagicMock(  # type: ignore[method-assign]
        side_effect=lambda: setattr(plugin._connection._shell, "tmpdir", "/tmp/at")
    )
    plugin._fixup_perms2 = MagicMock()  # type: ignore[method-assign]
    plugin._remove_tmp_path = MagicMock()  # type: ignore[method-assign]
    execute.side_effect = [
        {"remote": {"k3s": None}},
        {"changed": True, "files": [{"name": "k3s", "staged": "staged", "installed": "installed"}]},
    ]
    result = plugin.run(task_vars={})
    assert result["bytes_to_send"] == size
    if check_mode:
        assert result["bytes_sent"] == 0
        plugin._transfer_file.assert_not_called()
    else:
        assert result["bytes_sent"] == size
        plugin._transfer_file.assert_called_once_with(str(root / "k3s" / VERSION / "k3s"), "/tmp/at/k3s")
        assert execute.call_args_list[1].kwargs["module_args"]["_sources"] == {"k3s": "/tmp/at/k3s"}
        assert result["files"][0]["sent"] is True
