# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""clevis_binding through AnsibleModule, against a fake `clevis` that keeps its bindings in a JSON file.

The fake records every argv and stdin, so the tests can prove the passphrase goes to
stdin only, check mode binds nothing, and a second run changes nothing.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.modules import clevis_binding
from module_run import run_module

SECRET = "recovery-passphrase-never-on-argv"

FAKE = r"""#!{python}
import json, sys, os
state = os.environ["FAKE_CLEVIS_STATE"]
data = json.load(open(state)) if os.path.exists(state) else {{"slots": {{}}, "calls": []}}
args = sys.argv[1:]
stdin = "" if sys.stdin.isatty() else sys.stdin.read()
data["calls"].append({{"argv": args, "stdin": stdin}})
if args[:2] == ["luks", "list"]:
    for slot in sorted(data["slots"], key=int):
        pin, cfg = data["slots"][slot]
        print(f"{{slot}}: {{pin}} '{{json.dumps(cfg, separators=(',', ':'))}}'")
elif args[:2] == ["luks", "bind"]:
    if stdin != {secret!r}:
        print("wrong key", file=sys.stderr); json.dump(data, open(state, "w")); sys.exit(1)
    pin, cfg = args[-2], json.loads(args[-1])
    if pin == "tpm2":
        cfg = {{"hash": "sha256", "key": "ecc", **cfg}}
    slot = str(max([0] + [int(s) for s in data["slots"]]) + 1)
    data["slots"][slot] = [pin, cfg]
elif args[:2] == ["luks", "unbind"]:
    if stdin != {secret!r}:
        print("No key available with this passphrase", file=sys.stderr); json.dump(data, open(state, "w")); sys.exit(1)
    data["slots"].pop(args[args.index("-s") + 1])
json.dump(data, open(state, "w"))
"""


@pytest.fixture
def fake_clevis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "clevis"
    exe.write_text(FAKE.format(python=sys.executable, secret=SECRET))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    state = tmp_path / "state.json"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CLEVIS_STATE", str(state))
    return state


def _calls(state: Path) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = json.loads(state.read_text())["calls"]
    return calls


SSS = {"t": 1, "pins": {"tpm2": {"pcr_ids": [7]}, "tang": [{"url": "http://127.0.0.1"}]}}


def test_check_mode_then_bind_then_idempotent(fake_clevis: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = {"device": "/dev/fake", "pin": "sss", "config": SSS, "passphrase": SECRET}
    check = run_module(clevis_binding, {**args, "_ansible_check_mode": True, "_ansible_diff": True}, capsys)
    assert check["changed"] and check["added"]
    assert all(c["argv"][1] == "list" for c in _calls(fake_clevis))
    real = run_module(clevis_binding, args, capsys)
    assert real["changed"] and len(real["bindings"]) == 1
    again = run_module(clevis_binding, args, capsys)
    assert not again["changed"] and not again["added"] and again["removed_slots"] == []
    for call in _calls(fake_clevis):
        assert SECRET not in " ".join(call["argv"])
    assert SECRET not in json.dumps([check, real, again])
    bind = [c for c in _calls(fake_clevis) if c["argv"][1] == "bind"]
    assert len(bind) == 1 and bind[0]["stdin"] == SECRET and "-k" in bind[0]["argv"]


def test_changed_config_binds_new_before_removing_old(fake_clevis: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_module(clevis_binding, {"device": "/dev/fake", "pin": "tpm2", "config": {}, "passphrase": SECRET}, capsys)
    res = run_module(
        clevis_binding,
        {"device": "/dev/fake", "pin": "tpm2", "config": {"pcr_ids": "7"}, "passphrase": SECRET, "_ansible_diff": True},
        capsys,
    )
    assert res["changed"] and res["removed_slots"] == [1]
    assert "pcr_ids" in res["diff"]["after"] and "pcr_ids" not in res["diff"]["before"]
    ops = [c["argv"][1] for c in _calls(fake_clevis) if c["argv"][1] != "list"]
    assert ops == ["bind", "bind", "unbind"]
    slots = json.loads(fake_clevis.read_text())["slots"]
    assert list(slots) == ["2"]


def test_absent_and_bad_config(fake_clevis: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_module(
        clevis_binding,
        {"device": "/dev/fake", "pin": "tang", "config": {"url": "http://t"}, "passphrase": SECRET},
        capsys,
    )
    gone = run_module(
        clevis_binding, {"device": "/dev/fake", "pin": "tang", "state": "absent", "passphrase": SECRET}, capsys
    )
    assert gone["changed"] and json.loads(fake_clevis.read_text())["slots"] == {}
    bad = run_module(
        clevis_binding,
        {
            "device": "/dev/fake",
            "pin": "sss",
            "config": {"t": 5, "pins": {"tang": [{"url": "x"}]}},
            "passphrase": SECRET,
        },
        capsys,
    )
    assert bad["failed"] and ".t" in bad["msg"] and ".url" in bad["msg"]
