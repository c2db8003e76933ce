# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence records: a new 0600 file per changing run, none for a run that changed nothing, and no write at
all when a secret would be in it."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._common import evidence

TOKEN = "t" * 64
RECORD = {"node": "a3", "join_token": {"old_fingerprint": "sha256:0123456789abcdef"}}


def test_a_record_is_written_once_per_changing_run_and_never_over_another(tmp_path: Path) -> None:
    first = evidence.write(str(tmp_path / "ev"), "decommission-a3", RECORD, "20261206T140000Z", True, [TOKEN])
    path = Path(first["path"])
    assert first["changed"] and json.loads(path.read_text()) == RECORD
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    quiet = evidence.write(str(tmp_path / "ev"), "decommission-a3", {"other": 1}, "20261206T150000Z", False)
    assert not quiet["changed"] and quiet["path"] == str(path) and len(list(path.parent.iterdir())) == 1
    second = evidence.write(str(tmp_path / "ev"), "decommission-a3", {"other": 1}, "20261206T160000Z", True)
    assert second["changed"] and second["records"] == [str(path), second["path"]]
    assert json.loads(path.read_text()) == RECORD


def test_a_record_holding_a_secret_is_not_written(tmp_path: Path) -> None:
    bad = {**RECORD, "note": f"token {TOKEN}"}
    result = evidence.write(str(tmp_path), "decommission-a3", bad, "20261206T140000Z", True, [TOKEN, "short"])
    assert result["failed"] and "1 secret value" in result["msg"] and TOKEN not in result["msg"]
    assert not list(tmp_path.iterdir())


def test_bad_names_and_check_mode(tmp_path: Path) -> None:
    bad = evidence.write(str(tmp_path), "../x", RECORD, "now", True)
    assert bad["failed"] and "name:" in bad["msg"] and "stamp:" in bad["msg"]
    check = evidence.write(str(tmp_path), "decommission-a3", RECORD, "20261206T140000Z", True, check_mode=True)
    assert check["changed"] and not list(tmp_path.iterdir())
