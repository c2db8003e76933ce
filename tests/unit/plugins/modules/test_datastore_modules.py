# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""datastore_backup and datastore_restore end to end through AnsibleModule: check mode, diff, the
round trip, refusals, and the documentation against the argument specs.

No root and no systemd needed: the database and the backups live under tmp_path, and the restore
runs with manage_units=false (the unit handling is tested in module_utils/test_datastore_backup.py).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import backup_module, registry
from ansible_collections.edgefleet.k8s.plugins.modules import datastore_backup, datastore_restore
from module_run import run_module


def _db(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, value BLOB)")
    conn.executemany("INSERT INTO kine(name, value) VALUES (?, ?)", ((f"/registry/k{i}", b"v") for i in range(rows)))
    conn.close()


def _names(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM kine")}
    finally:
        conn.close()


@pytest.mark.parametrize("distribution", list(registry.NAMES))
def test_backup_check_then_real_then_restore_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], distribution: str
) -> None:
    db = tmp_path / "db" / "state.db"
    db.parent.mkdir()
    _db(db, 4)
    backups = tmp_path / "backups"
    args: dict[str, Any] = {
        "distribution": distribution,
        "db_path": str(db),
        "backup_dir": str(backups),
        "keep": 2,
        "label": "pre-upgrade",
        "_ansible_check_mode": True,
        "_ansible_diff": True,
    }
    check = run_module(datastore_backup, args, capsys)
    assert check["changed"] and check["backup"] is None and "diff" in check and not backups.exists()
    args["_ansible_check_mode"] = False
    real = run_module(datastore_backup, args, capsys)
    assert real["changed"] and real["backup"]["rows"] == 4 and real["backup"]["integrity"] == "ok"
    assert real["diff"]["before"] == "" and real["diff"]["after"] == real["backup"]["name"] + "\n"
    assert real["units"] == [registry.get(distribution).unit("server")]
    name = real["backup"]["name"]

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("INSERT INTO kine(name, value) VALUES ('/registry/after', 'x')")
    conn.close()
    restore_args = {
        "distribution": distribution,
        "db_path": str(db),
        "backup_dir": str(backups),
        "backup": name,
        "manage_units": False,
        "_ansible_check_mode": True,
        "_ansible_diff": True,
    }
    before = {p.name: p.read_bytes() for p in db.parent.iterdir()}
    check = run_module(datastore_restore, restore_args, capsys)
    assert check["changed"] and check["moved_aside"] and check["stopped_units"] == []
    assert check["diff"]["after"].endswith(f"sha256 {real['backup']['sha256']}, {real['backup']['size']} bytes\n")
    assert {p.name: p.read_bytes() for p in db.parent.iterdir()} == before
    restore_args["_ansible_check_mode"] = False
    done = run_module(datastore_restore, restore_args, capsys)
    assert done["changed"] and not done.get("failed"), done
    assert _names(db) == {f"/registry/k{i}" for i in range(4)}
    aside = Path(done["moved_aside"][0]["to"])
    assert "/registry/after" in _names(aside)


def test_restore_without_a_backup_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "state.db"
    _db(db, 1)
    before = db.read_bytes()
    missing = run_module(datastore_restore, {"distribution": "k3s", "db_path": str(db), "manage_units": False}, capsys)
    assert missing["failed"] and "backup" in missing["msg"]
    empty = run_module(
        datastore_restore,
        {"distribution": "k3s", "db_path": str(db), "backup": "", "backup_dir": str(tmp_path), "manage_units": False},
        capsys,
    )
    assert empty["failed"] and "needs the name of the backup" in empty["msg"]
    assert db.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["state.db"]


def test_backup_of_a_missing_database_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_module(
        datastore_backup,
        {"distribution": "k0s", "db_path": str(tmp_path / "none.db"), "backup_dir": str(tmp_path / "b")},
        capsys,
    )
    assert res["failed"] and "no SQLite database" in res["msg"] and not res["changed"]


@pytest.mark.parametrize(
    ("module", "spec"),
    [
        (datastore_backup, backup_module.backup_argument_spec()),
        (datastore_restore, backup_module.restore_argument_spec()),
    ],
)
def test_documented_options_are_the_argument_spec(module: Any, spec: dict[str, Any]) -> None:
    doc = yaml.safe_load(module.DOCUMENTATION)["options"]
    assert set(doc) == set(spec)
    for name, option in spec.items():
        assert doc[name].get("type", "str") == option["type"], name
        assert doc[name].get("choices") == option.get("choices"), name
        assert doc[name].get("default") == option.get("default"), name
        assert bool(doc[name].get("required")) == bool(option.get("required")), name
        assert doc[name].get("elements") == option.get("elements"), name
    for block in ("EXAMPLES", "RETURN"):
        assert yaml.safe_load(getattr(module, block))
