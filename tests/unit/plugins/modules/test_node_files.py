# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_files through AnsibleModule, on real files under a temporary root, with real validator commands."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.modules import node_files
from module_run import run_module

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
# A validator that accepts a file holding the word "valid" and refuses any other, saying so on stderr.
CHECK = "/bin/sh -c 'grep -q valid \"$1\" || { echo no valid line >&2; exit 3; }' check %s"


def _file(path: str, content: str, mode: str = "0644", **extra: Any) -> dict[str, Any]:
    return {"path": path, "content": content, "mode": mode, "owner": USER, "group": GROUP, **extra}


def _run(root: Path, files: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], **args: Any) -> dict[str, Any]:
    return run_module(node_files, {"files": files, "root": str(root), **args}, capsys)


def _mode(path: Path) -> str:
    return f"{stat.S_IMODE(path.stat().st_mode):04o}"


def test_writes_what_differs_creates_parents_and_a_second_run_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "same.conf").write_text("unchanged\n")
    os.chmod(tmp_path / "etc" / "same.conf", 0o644)
    files = [
        _file("/etc/same.conf", "unchanged\n"),
        _file("/etc/new.d/policy.nft", "valid policy\n", "0600", validate=CHECK),
        _file("/etc/unit.service", "[Unit]\n"),
    ]
    first = _run(tmp_path, files, capsys, _ansible_diff=True)
    assert first["changed"] is True
    assert first["changed_paths"] == ["/etc/new.d/policy.nft", "/etc/unit.service"]
    assert first["content_changed_paths"] == first["changed_paths"]
    assert (tmp_path / "etc/new.d/policy.nft").read_text() == "valid policy\n"
    assert _mode(tmp_path / "etc/new.d/policy.nft") == "0600"
    assert _mode(tmp_path / "etc/new.d") == "0755"
    assert [d["after"] for d in first["diff"]] == ["valid policy\n", "[Unit]\n"]
    assert first["diff"][0]["before_header"] == "/etc/new.d/policy.nft (absent)"
    again = _run(tmp_path, files, capsys)
    assert again["changed"] is False and again["changed_paths"] == []


def test_a_mode_change_alone_is_a_change_without_content(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "etc" / "sshd.conf"
    target.parent.mkdir()
    target.write_text("PermitRootLogin no\n")
    os.chmod(target, 0o644)
    result = _run(tmp_path, [_file("/etc/sshd.conf", "PermitRootLogin no\n", "0600")], capsys, _ansible_diff=True)
    assert result["changed_paths"] == ["/etc/sshd.conf"] and result["content_changed_paths"] == []
    assert _mode(target) == "0600"
    assert result["diff"][0]["before"].startswith("mode 0644") and result["diff"][0]["after"].startswith("mode 0600")


def test_check_mode_reports_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = _run(tmp_path, [_file("/etc/a.conf", "a\n")], capsys, _ansible_check_mode=True)
    assert result["changed"] is True and result["changed_paths"] == ["/etc/a.conf"]
    assert not (tmp_path / "etc").exists()


def test_one_refusal_writes_nothing_and_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [
        _file("/etc/ok.conf", "valid\n", validate=CHECK),
        _file("/etc/plain.conf", "no check here\n"),
        _file("/etc/bad.conf", "broken\n", validate=CHECK),
    ]
    result = _run(tmp_path, files, capsys)
    assert result["failed"] is True and result["changed"] is False
    assert "nothing was written" in result["msg"]
    assert "/etc/bad.conf" in result["msg"] and "rc 3" in result["msg"] and "no valid line" in result["msg"]
    assert "/etc/ok.conf" not in result["msg"]
    assert not (tmp_path / "etc" / "ok.conf").exists() and not (tmp_path / "etc" / "plain.conf").exists()


def test_every_bad_entry_is_named_before_any_file_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [
        _file("etc/relative.conf", "x\n"),
        _file("/etc/twice.conf", "x\n"),
        _file("/etc/twice.conf", "y\n"),
        _file("/etc/mode.conf", "x\n", "644x"),
        {"path": "/etc/owner.conf", "content": "x\n", "mode": "0644", "owner": "no-such-user-here", "group": GROUP},
        _file("/etc/validate.conf", "x\n", validate="/usr/sbin/sshd -t"),
    ]
    result = _run(tmp_path, files, capsys)
    assert result["failed"] is True and result["changed"] is False
    msg = result["msg"]
    for expected in (
        "files[0] (etc/relative.conf): path must be an absolute file path",
        "files[2] (/etc/twice.conf): the path is given twice",
        "files[3] (/etc/mode.conf): mode must be a quoted octal string like '0644', found '644x'",
        "files[4] (/etc/owner.conf): owner 'no-such-user-here' is not a user on this node",
        "files[5] (/etc/validate.conf): validate must contain %s",
    ):
        assert expected in msg, msg
    assert not (tmp_path / "etc").exists()


def test_a_secret_file_never_shows_its_content(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "etc" / "token"
    target.parent.mkdir()
    target.write_text("old-secret\n")
    os.chmod(target, 0o600)
    result = _run(tmp_path, [_file("/etc/token", "new-secret\n", "0600", secret=True)], capsys, _ansible_diff=True)
    shown = repr(result["diff"])
    assert "old-secret" not in shown and "new-secret" not in shown and "content hidden" in shown
    assert target.read_text() == "new-secret\n"


def test_directories_come_first_with_their_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "var" / "cis").mkdir(parents=True)
    os.chmod(tmp_path / "var" / "cis", 0o755)
    dirs = [
        {"path": "/var/cis", "mode": "0700", "owner": USER, "group": GROUP},
        {"path": "/var/log/audit", "mode": "0700", "owner": USER, "group": GROUP},
    ]
    files = [_file("/var/cis/psa.yaml", "kind: AdmissionConfiguration\n", "0600")]
    first = _run(tmp_path, files, capsys, directories=dirs, _ansible_diff=True)
    assert first["changed_paths"] == ["/var/cis", "/var/log/audit", "/var/cis/psa.yaml"]
    assert _mode(tmp_path / "var/cis") == "0700" and _mode(tmp_path / "var/log/audit") == "0700"
    assert first["diff"][1]["before"] == "directory: absent\n"
    assert _run(tmp_path, files, capsys, directories=dirs)["changed"] is False


def test_a_file_where_a_directory_is_wanted_stops_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "cis").write_text("not a directory\n")
    dirs = [{"path": "/var/cis", "mode": "0700", "owner": USER, "group": GROUP}]
    result = _run(tmp_path, [_file("/etc/a.conf", "a\n")], capsys, directories=dirs)
    assert result["failed"] is True and "/var/cis: exists and is not a directory" in result["msg"]
    assert not (tmp_path / "etc").exists()
