# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sysctl_values through AnsibleModule, against a /proc/sys-shaped directory of real files.

The files stand for the kernel's parameters; one of them is made unwritable to stand for a value the
kernel refuses, and one "clamps" (a test hook rewrites it) to stand for a value the kernel does not keep.
"""

from __future__ import annotations

import builtins
import errno
import sys
from pathlib import Path
from typing import Any

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._hardening import sysctl
from ansible_collections.edgefleet.k8s.plugins.modules import sysctl_values
from module_run import run_module

KERNEL = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.tcp_syncookies": "0",
    "net.ipv4.tcp_rmem": "4096\t131072\t6291456",
    "kernel.panic": "0",
    "vm.overcommit_memory": "0",
}


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    for key, value in KERNEL.items():
        path = Path(sysctl.key_path(str(root), key))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return root


def _value(root: Path, key: str) -> str:
    return Path(sysctl.key_path(str(root), key)).read_text().strip()


WANTED = {
    "net.ipv4.ip_forward": 1,  # already so
    "net.ipv4.tcp_syncookies": 1,  # differs
    "net.ipv4.tcp_rmem": "4096 131072  6291456",  # same tokens, other spacing
    "kernel.panic": 10,  # differs
    "kernel.keys.root_maxbytes": 25000000,  # this kernel has no such parameter
}


def test_writes_only_what_differs_then_a_second_run_changes_nothing(
    proc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run_module(sysctl_values, {"values": WANTED, "root": str(proc), "_ansible_diff": True}, capsys)
    assert first["changed"] is True
    assert first["applied"] == ["kernel.panic", "net.ipv4.tcp_syncookies"]
    assert first["absent"] == ["kernel.keys.root_maxbytes"]
    assert _value(proc, "net.ipv4.tcp_syncookies") == "1" and _value(proc, "kernel.panic") == "10"
    assert _value(proc, "vm.overcommit_memory") == "0", "a parameter not asked for was touched"
    assert first["diff"]["before"] == "kernel.panic = 0\nnet.ipv4.tcp_syncookies = 0\n"
    assert first["diff"]["after"] == "kernel.panic = 10\nnet.ipv4.tcp_syncookies = 1\n"
    assert first["values"]["net.ipv4.tcp_rmem"] == "4096 131072 6291456"

    second = run_module(sysctl_values, {"values": WANTED, "root": str(proc)}, capsys)
    assert second["changed"] is False and second["applied"] == []


def test_check_mode_reports_the_change_and_writes_nothing(proc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module(sysctl_values, {"values": WANTED, "root": str(proc), "_ansible_check_mode": True}, capsys)
    assert result["changed"] is True and result["applied"] == ["kernel.panic", "net.ipv4.tcp_syncookies"]
    assert _value(proc, "net.ipv4.tcp_syncookies") == "0" and _value(proc, "kernel.panic") == "0"


def test_a_changed_value_is_detected_and_repaired(proc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_module(sysctl_values, {"values": WANTED, "root": str(proc)}, capsys)
    Path(sysctl.key_path(str(proc), "net.ipv4.tcp_syncookies")).write_text("0\n")  # someone changed it
    again = run_module(sysctl_values, {"values": WANTED, "root": str(proc)}, capsys)
    assert again["changed"] is True and again["applied"] == ["net.ipv4.tcp_syncookies"]
    assert _value(proc, "net.ipv4.tcp_syncookies") == "1"


def test_every_refusal_is_named_and_the_others_are_still_written(
    proc: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = sysctl.key_path(str(proc), "kernel.panic")
    real_read = sysctl.read

    def refusing_open(path: str, mode: str = "r", **kwargs: Any) -> Any:  # a read-only /proc/sys file
        if path == refused and "w" in mode:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return builtins.open(path, mode, **kwargs)

    def clamping_read(path: str) -> str:  # the kernel keeps 0 whatever is written to overcommit_memory
        return "0" if path.endswith("overcommit_memory") else real_read(path)

    monkeypatch.setattr(sysctl, "open", refusing_open, raising=False)
    monkeypatch.setattr(sysctl, "read", clamping_read)
    wanted = {"kernel.panic": 10, "vm.overcommit_memory": 1, "net.ipv4.tcp_syncookies": 1}
    result = run_module(sysctl_values, {"values": wanted, "root": str(proc)}, capsys)
    assert result["failed"] is True
    assert "kernel.panic=10: Permission denied; read-only here (a container?)" in result["msg"]
    assert "vm.overcommit_memory=1: the kernel kept '0'" in result["msg"]
    assert _value(proc, "net.ipv4.tcp_syncookies") == "1", "one refusal stopped the other writes"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"net..ip_forward": 1}, "'net..ip_forward': not a sysctl name"),
        ({"/etc/passwd": 1}, "'/etc/passwd': not a sysctl name"),
        ({"kernel.panic": [1, 2]}, "kernel.panic: the value [1, 2] is not a scalar"),
        ({"kernel.panic": None}, "kernel.panic: the value None is not a scalar"),
    ],
)
def test_bad_input_is_refused_before_any_write(
    proc: Path, capsys: pytest.CaptureFixture[str], values: dict[str, Any], expected: str
) -> None:
    result = run_module(sysctl_values, {"values": {**values, "net.ipv4.tcp_syncookies": 1}, "root": str(proc)}, capsys)
    assert result["failed"] is True and expected in result["msg"]
    assert _value(proc, "net.ipv4.tcp_syncookies") == "0", "a write happened before the input was checked"


def test_every_bad_key_is_listed_not_just_the_first() -> None:
    problems = sysctl.key_problems({"a..b": 1, "kernel.panic": {}, "ok.key": 1})
    assert len(problems) == 2


def test_booleans_and_spacing_normalise_like_the_kernel_prints() -> None:
    assert sysctl.normal(True) == "1" and sysctl.normal(False) == "0"
    assert sysctl.normal(" 4096\t87380   6291456\n") == "4096 87380 6291456"
    assert sysctl.key_path("/proc/sys", "net.ipv4.conf.eth0/1.rp_filter") == "/proc/sys/net/ipv4/conf/eth0.1/rp_filter"
