# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Datastore backups: the online SQLite backup under a live writer, retention, restore and its
refusals, check mode, and the etcd path through each strategy's command.

Real files and real sqlite3 throughout. The writer is a separate process writing a kine-shaped
table in WAL mode; it logs each key only after its COMMIT returned, so the keys in the log when
the backup starts are exactly the ones acknowledged before it.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import backup as b
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k0s import K0s
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k3s import K3S, K3s
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.strategy import Distribution

KINE_SCHEMA = """
CREATE TABLE IF NOT EXISTS kine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT, created INTEGER, deleted INTEGER, create_revision INTEGER,
    prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB
)
"""
INSERT = (
    "INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value, old_value) "
    "VALUES (?, 1, 0, 0, 0, 0, ?, NULL)"
)

WRITER = textwrap.dedent(
    """
    import os, sqlite3, sys
    db, ack, stop, prefix = sys.argv[1:5]
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    payload = os.urandom(256)
    i = 0
    with open(ack, "a", buffering=1) as out:
        while not os.path.exists(stop):
            key = f"{prefix}k{i:08d}"
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT_SQL, (key, payload))
            conn.execute("COMMIT")
            out.write(key + "\\n")  # acknowledged: COMMIT has returned
            i += 1
    conn.close()
    """
).replace("INSERT_SQL", repr(INSERT))


def kine_db(path: Path, rows: int, payload: int = 512) -> None:
    """A kine-shaped database in WAL mode, like kine opens it (``_journal=WAL``)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(KINE_SCHEMA)
    conn.execute("BEGIN")
    blob = os.urandom(payload)
    conn.executemany(INSERT, ((f"/registry/seed/s{i:08d}", blob) for i in range(rows)))
    conn.execute("COMMIT")
    conn.close()


def keys_in(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM kine")}
    finally:
        conn.close()


def acked(log: Path) -> list[str]:
    """Keys whose COMMIT returned; a line still being written is not counted."""
    text = log.read_text() if log.exists() else ""
    return text.split("\n")[:-1]


class Writer:
    def __init__(self, db: Path, work: Path, prefix: str) -> None:
        self.log = work / "acked.log"
        self.stop_flag = work / "stop"
        argv = [sys.executable, "-c", WRITER, str(db), str(self.log), str(self.stop_flag), prefix]
        self.proc = subprocess.Popen(argv)

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(acked(self.log)) < count:
            assert self.proc.poll() is None, "writer died"
            assert time.monotonic() < deadline, "writer too slow"
            time.sleep(0.01)

    def stop(self) -> None:
        self.stop_flag.touch()
        assert self.proc.wait(timeout=60) == 0


@pytest.fixture
def writer_factory(tmp_path: Path) -> Iterator[list[Writer]]:
    writers: list[Writer] = []
    yield writers
    for writer in writers:
        if writer.proc.poll() is None:
            writer.proc.kill()
            writer.proc.wait()


# ----------------------------------------------------------------------------- (1) backup under load


def test_sqlite_backup_under_load_loses_no_acknowledged_key(
    tmp_path: Path, writer_factory: list[Writer], capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db" / "state.db"
    db.parent.mkdir()
    kine_db(db, rows=40_000)
    seeded = 40_000
    backups = tmp_path / "backups"
    figures = []
    for round_ in range(3):
        work = tmp_path / f"round{round_}"
        work.mkdir()
        prefix = f"/registry/configmaps/load{round_}/"
        writer = Writer(db, work, prefix)
        writer_factory.append(writer)
        writer.wait_for(200)
        before = acked(writer.log)
        made = b.sqlite_backup(str(db), str(backups), distribution="k3s", label=f"round {round_}")
        during = len(acked(writer.log)) - len(before)
        writer.wait_for(len(before) + during + 50)  # the writer keeps going after the backup too
        writer.stop()
        everything = set(acked(writer.log))

        fresh = work / "restored" / "state.db"
        plan = b.plan_sqlite_restore(made, str(fresh))
        assert plan.move_aside == []
        b.sqlite_restore(plan)
        restored = keys_in(fresh)
        load = {k for k in restored if k.startswith(prefix)}
        lost = [k for k in before if k not in restored]
        assert lost == [], f"{len(lost)} acknowledged keys lost, first {lost[:3]}"
        assert load <= everything, "the restore holds a key the writer never acknowledged"
        assert made.rows == len(restored) == seeded + len(load), "rows from an earlier round went missing"
        assert made.integrity == "ok" and made.revision is not None and made.revision >= made.rows
        assert made.sha256 == b.sha256_file(str(fresh))
        seeded += len(everything)
        figures.append((len(before), during, len(load)))
    with capsys.disabled():
        for n, (before_n, during_n, kept_n) in enumerate(figures):
            print(
                f"\n[backup under load] round {n}: acknowledged before the backup {before_n}, "
                f"acknowledged while it ran {during_n}, this round's keys in the backup {kept_n}, lost 0"
            )
    # The copy really overlapped the writer in at least one round (else the test proves nothing).
    assert sum(during for _before, during, _after in figures) > 0


def test_backup_of_a_database_left_by_a_killed_kine_includes_its_wal(tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    db = live / "state.db"
    kine_db(db, rows=10)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(INSERT, ("/registry/only-in-wal", b"x"))
    # The files as they are while kine runs: the last commit is only in the -wal.
    left = tmp_path / "left"
    left.mkdir()
    for name in ("state.db", "state.db-wal"):
        (left / name).write_bytes((live / name).read_bytes())
    conn.close()
    assert (left / "state.db-wal").stat().st_size > 0
    made = b.sqlite_backup(str(left / "state.db"), str(tmp_path / "backups"))
    assert made.rows == 11
    copy = sqlite3.connect(made.path)
    assert copy.execute("SELECT COUNT(*) FROM kine WHERE name = '/registry/only-in-wal'").fetchone() == (1,)
    assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    copy.close()


def test_backup_files_are_private_and_the_manifest_describes_them(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    kine_db(db, rows=5)
    backups = tmp_path / "backups"
    made = b.sqlite_backup(str(db), str(backups), distribution="k0s", label="Before v1.36.4+lab")
    assert made.name.endswith("-before-v1-36-4-lab") and made.file == made.name + ".db"
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(made.path).stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(made.manifest_path).stat().st_mode) == 0o600
    manifest = json.loads(Path(made.manifest_path).read_text())
    assert manifest["sha256"] == b.sha256_file(made.path) and manifest["size"] == Path(made.path).stat().st_size
    assert manifest["rows"] == 5 and manifest["integrity"] == "ok" and manifest["label"] == "Before v1.36.4+lab"
    assert sorted(os.listdir(backups)) == sorted([made.file, made.name + ".json"])  # no temp file, no -wal


def test_backup_of_a_missing_database_fails_and_leaves_nothing(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    with pytest.raises(b.BackupError, match="no SQLite database"):
        b.sqlite_backup(str(tmp_path / "absent.db"), str(backups))
    assert os.listdir(backups) == []


# ----------------------------------------------------------------------------- (2) retention


def _series(db: Path, backups: Path, count: int, start: datetime, kind_label: str = "") -> list[b.Backup]:
    return [
        b.sqlite_backup(str(db), str(backups), label=kind_label, now=start + timedelta(minutes=i)) for i in range(count)
    ]


def test_retention_keeps_the_newest_and_never_touches_files_not_ours(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    kine_db(db, rows=3)
    backups = tmp_path / "backups"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made = _series(db, backups, 4, start)
    strangers = {
        "notes.txt": "mine",
        "edgefleet-sqlite-20200101T000000000000Z.db": "a file of our name but no manifest",
        "edgefleet-sqlite-20200101T000000000001Z.json": "{not json",
        "edgefleet-sqlite-20200101T000000000002Z.json": json.dumps({"tool": "someone-else"}),
        "state.db.pre-restore-20200101T000000000000Z": "moved aside by a restore",
        # Our naming, a file and a manifest that names it, but written by someone else.
        "edgefleet-sqlite-20200101T000000000003Z.db": "someone else's",
        "edgefleet-sqlite-20200101T000000000003Z.json": json.dumps(
            {
                "tool": "someone-else",
                "name": "edgefleet-sqlite-20200101T000000000003Z",
                "kind": "sqlite",
                "file": "edgefleet-sqlite-20200101T000000000003Z.db",
                "created": "2020-01-01T00:00:00+00:00",
                "sha256": "0" * 64,
                "size": 14,
            }
        ),
    }
    for name, text in strangers.items():
        (backups / name).write_text(text)
    params = {"datastore": "sqlite", "db_path": str(db), "backup_dir": str(backups), "keep": 2}
    result = b.run_backup(K3S, params, False, _no_commands, now=start + timedelta(minutes=10))
    assert result["changed"] and not result.get("failed"), result
    assert result["deleted"] == [made[0].name, made[1].name, made[2].name]
    kept = [x["name"] for x in result["backups"]]
    assert kept == [made[3].name, result["backup"]["name"]]
    for name, text in strangers.items():
        assert (backups / name).read_text() == text, f"retention touched {name}"
    assert sorted(result["ignored"]) == [
        "edgefleet-sqlite-20200101T000000000001Z.json",
        "edgefleet-sqlite-20200101T000000000002Z.json",
        "edgefleet-sqlite-20200101T000000000003Z.json",
    ]
    assert result["diff"]["before"].count("\n") == 4 and result["diff"]["after"].count("\n") == 2


def test_retention_counts_each_kind_apart(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    kine_db(db, rows=1)
    backups = tmp_path / "backups"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    sqlite_backups = _series(db, backups, 2, start)
    etcd = _fake_etcd_backup(backups, start - timedelta(days=1))
    assert b.plan_retention(b.list_backups(str(backups)).backups, 1, "sqlite") == [sqlite_backups[0]]
    assert b.plan_retention(b.list_backups(str(backups)).backups, 1, "etcd") == []
    assert etcd in b.list_backups(str(backups)).backups
    with pytest.raises(b.BackupError, match="at least 1"):
        b.plan_retention([], 0, "sqlite")


def _fake_etcd_backup(backups: Path, when: datetime) -> b.Backup:
    name = b.backup_name("etcd", when)
    (backups / (name + ".zip")).write_bytes(b"snapshot")
    made = b.Backup(
        name=name,
        kind="etcd",
        file=name + ".zip",
        directory=str(backups),
        created=when.isoformat(),
        sha256=b.sha256_file(str(backups / (name + ".zip"))),
        size=8,
    )
    Path(made.manifest_path).write_text(json.dumps(made.manifest()))
    return made


def _no_commands(argv: Sequence[str]) -> tuple[int, str, str]:
    raise AssertionError(f"no command expected, ran {argv}")


# ----------------------------------------------------------------------------- (3) restore and its refusals


def _live(db: Path, extra: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(INSERT, (extra, b"later"))
    conn.close()


def _snapshot_of(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def test_restore_moves_the_current_database_aside_then_puts_the_backup_in_place(tmp_path: Path) -> None:
    live = tmp_path / "db"
    live.mkdir()
    db = live / "state.db"
    kine_db(db, rows=7)
    made = b.sqlite_backup(str(db), str(tmp_path / "backups"))
    _live(db, "/registry/after-the-backup")
    # The files as a killed kine leaves them: a commit still only in the -wal.
    holder = sqlite3.connect(db)
    holder.execute("PRAGMA wal_autocheckpoint=0")
    holder.execute(INSERT, ("/registry/in-the-wal", b"w"))
    holder.commit()
    old_files = _snapshot_of(live)
    holder.close()
    for name, content in old_files.items():
        (live / name).write_bytes(content)
    assert old_files["state.db-wal"]
    plan = b.plan_sqlite_restore(made, str(db), now=datetime(2026, 2, 3, tzinfo=UTC))
    b.sqlite_restore(plan)
    assert keys_in(db) == {f"/registry/seed/s{i:08d}" for i in range(7)}
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    aside = live / "state.db.pre-restore-20260203T000000000000Z"
    for name, content in old_files.items():
        kept = live / name.replace("state.db", aside.name)
        assert kept.read_bytes() == content, f"{name} was not kept aside unchanged"
    assert "/registry/after-the-backup" in keys_in(aside) and "/registry/in-the-wal" in keys_in(aside)
    assert not (live / "state.db-wal").exists() and not (live / "state.db-shm").exists()


def test_restore_refuses_without_a_name_and_touches_nothing(tmp_path: Path) -> None:
    db = tmp_path / "db" / "state.db"
    db.parent.mkdir()
    kine_db(db, rows=3)
    b.sqlite_backup(str(db), str(tmp_path / "backups"))
    before = _snapshot_of(db.parent)
    for name in ("", "   ", None):
        params = {"datastore": "sqlite", "db_path": str(db), "backup_dir": str(tmp_path / "backups"), "backup": name}
        result = b.run_restore(K3S, params, False, _no_commands)
        assert result["failed"] and "needs the name of the backup" in result["msg"]
    result = b.run_restore(K3S, {**params, "backup": "../state.db"}, False, _no_commands)
    assert result["failed"] and "not a path" in result["msg"]
    result = b.run_restore(K3S, {**params, "backup": "edgefleet-sqlite-nope"}, False, _no_commands)
    assert result["failed"] and "not found" in result["msg"]
    assert _snapshot_of(db.parent) == before


def test_restore_refuses_a_backup_whose_checksum_does_not_match(tmp_path: Path) -> None:
    db = tmp_path / "db" / "state.db"
    db.parent.mkdir()
    kine_db(db, rows=3)
    made = b.sqlite_backup(str(db), str(tmp_path / "backups"))
    _live(db, "/registry/current")
    with open(made.path, "r+b") as handle:  # one flipped byte deep in the file
        handle.seek(made.size // 2)
        byte = handle.read(1)
        handle.seek(made.size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    before = _snapshot_of(db.parent)
    params = {"datastore": "sqlite", "db_path": str(db), "backup_dir": str(tmp_path / "backups"), "backup": made.name}
    for check_mode in (True, False):
        result = b.run_restore(K3S, {**params, "manage_units": False}, check_mode, _no_commands)
        assert result["failed"] and "does not match its manifest" in result["msg"], result
    assert _snapshot_of(db.parent) == before


def test_restore_refuses_while_a_process_holds_the_database(tmp_path: Path) -> None:
    db = tmp_path / "db" / "state.db"
    db.parent.mkdir()
    kine_db(db, rows=3)
    made = b.sqlite_backup(str(db), str(tmp_path / "backups"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1]); c.execute('SELECT 1'); "
            "print('open', flush=True); time.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        before = _snapshot_of(db.parent)
        with pytest.raises(b.BackupError, match=rf"open in process\(es\) {holder.pid}"):
            b.sqlite_restore(b.plan_sqlite_restore(made, str(db)))
        assert _snapshot_of(db.parent) == before
    finally:
        holder.kill()
        holder.wait()


class Systemd:
    """systemctl as the restore sees it: which units are active, what was stopped and started."""

    def __init__(self, active: set[str]) -> None:
        self.active = set(active)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> tuple[int, str, str]:
        argv = list(argv)
        self.calls.append(argv)
        assert argv[0] == "systemctl", argv
        unit = argv[-1]
        if argv[1] == "is-active":
            return (0 if unit in self.active else 3), "", ""
        if argv[1] == "stop":
            self.active.discard(unit)
        elif argv[1] == "start":
            self.active.add(unit)
        return 0, "", ""


def test_restore_stops_the_strategy_units_and_starts_them_again(tmp_path: Path) -> None:
    db = tmp_path / "db" / "state.db"
    db.parent.mkdir()
    kine_db(db, rows=3)
    made = b.sqlite_backup(str(db), str(tmp_path / "backups"))
    _live(db, "/registry/later")
    systemd = Systemd({"k3s.service"})
    params = {"datastore": "sqlite", "db_path": str(db), "backup_dir": str(tmp_path / "backups"), "backup": made.file}
    result = b.run_restore(K3S, params, False, systemd)
    assert result["changed"] and not result.get("failed"), result
    assert result["stopped_units"] == ["k3s.service"] and systemd.active == {"k3s.service"}
    verbs = [call[1] for call in systemd.calls]
    assert verbs == ["is-active", "stop", "start"]
    assert "/registry/later" not in keys_in(db) and len(result["moved_aside"]) == 1


def test_restore_follows_files_a_stopping_kine_removed(tmp_path: Path) -> None:
    """kine checkpoints its WAL and removes -wal and -shm when it stops, after the restore was planned."""
    live = tmp_path / "db"
    live.mkdir()
    db = live / "state.db"
    kine_db(db, rows=3)
    made = b.sqlite_backup(str(db), str(tmp_path / "backups"))
    kine = sqlite3.connect(db, isolation_level=None)
    kine.execute("PRAGMA wal_autocheckpoint=0")
    kine.execute(INSERT, ("/registry/written-before-the-stop", b"x"))
    assert (live / "state.db-wal").exists()

    class StoppingKine(Systemd):
        def __call__(self, argv: Sequence[str]) -> tuple[int, str, str]:
            if list(argv)[1] == "stop":
                kine.close()  # the last connection: checkpoints, removes -wal and -shm
            return super().__call__(argv)

    systemd = StoppingKine({"k3s.service"})
    params = {"datastore": "sqlite", "db_path": str(db), "backup_dir": str(tmp_path / "backups"), "backup": made.name}
    result = b.run_restore(K3S, params, False, systemd)
    assert result["changed"] and not result.get("failed"), result
    assert not (live / "state.db-wal").exists()
    aside = [p for p in live.iterdir() if ".pre-restore-" in p.name]
    assert len(aside) == 1 and "/registry/written-before-the-stop" in keys_in(aside[0])
    assert keys_in(db) == {f"/registry/seed/s{i:08d}" for i in range(3)}


# ----------------------------------------------------------------------------- (4) check mode writes nothing


def test_check_mode_backup_and_restore_write_nothing(tmp_path: Path) -> None:
    db = tmp_path / "db" / "state.db"
    db.parent.mkdir()
    kine_db(db, rows=3)
    backups = tmp_path / "backups"
    params: dict[str, Any] = {"datastore": "sqlite", "db_path": str(db), "backup_dir": str(backups), "keep": 1}
    result = b.run_backup(K3S, params, True, _no_commands)
    assert result["changed"] and result["backup"] is None and not backups.exists()
    made = b.sqlite_backup(str(db), str(backups), now=datetime(2026, 1, 1, tzinfo=UTC))
    _live(db, "/registry/later")
    everything = {**_snapshot_of(db.parent), **_snapshot_of(backups)}
    result = b.run_backup(K3S, params, True, _no_commands)
    assert result["changed"] and result["deleted"] == [made.name]
    systemd = Systemd({"k3s.service"})
    result = b.run_restore(K3S, {**params, "backup": made.name}, True, systemd)
    assert result["changed"] and result["stopped_units"] == ["k3s.service"] and len(result["moved_aside"]) == 1
    assert [call[1] for call in systemd.calls] == ["is-active"] and systemd.active == {"k3s.service"}
    assert {**_snapshot_of(db.parent), **_snapshot_of(backups)} == everything


def test_external_datastore_is_not_backed_up_here(tmp_path: Path) -> None:
    params = {"datastore": "external", "backup_dir": str(tmp_path / "b")}
    result = b.run_backup(K3S, params, False, _no_commands)
    assert not result["changed"] and result["backup"] is None and result["warnings"]
    assert not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------- etcd: the strategy's command

FAKE_K3S = """#!/bin/sh
# k3s etcd-snapshot save --name N --dir D: writes D/N-<node>-<ts>, as K3s names on-demand snapshots
[ "$1 $2" = "etcd-snapshot save" ] || { echo "unexpected: $*" >&2; exit 2; }
[ "$3" = --name ] && [ "$5" = --dir ] || { echo "unexpected: $*" >&2; exit 2; }
printf 'etcd snapshot of %s' "$4" > "$6/$4-node1-1767225600"
echo "Snapshot $4-node1-1767225600 saved."
"""
FAKE_K0S = """#!/bin/sh
# k0s backup --save-path=D: writes D/k0s_backup_<ISO time>.tar.gz
case "$1 $2" in "backup --save-path="*) ;; *) echo "unexpected: $*" >&2; exit 2;; esac
printf 'k0s backup archive' > "${2#--save-path=}/k0s_backup_2026-01-01T00_00_00Z.tar.gz"
"""


def _script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def _runner(argv: Sequence[str]) -> tuple[int, str, str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(("base", "script", "suffix"), [(K3s, FAKE_K3S, ""), (K0s, FAKE_K0S, ".tar.gz")])
def test_etcd_backup_goes_through_the_strategy_command(
    tmp_path: Path, base: type[K3s] | type[K0s], script: str, suffix: str
) -> None:
    binary = _script(tmp_path / "bin", script)
    dist = type("Standin", (base,), {"binary": binary})()
    backups = tmp_path / "backups"
    params = {"datastore": "etcd", "backup_dir": str(backups), "keep": 1}
    first = b.run_backup(dist, params, False, _runner, now=datetime(2026, 1, 1, tzinfo=UTC))
    second = b.run_backup(dist, params, False, _runner, now=datetime(2026, 1, 2, tzinfo=UTC))
    assert not first.get("failed") and not second.get("failed"), (first, second)
    made = second["backup"]
    assert made["kind"] == "etcd" and made["file"] == made["name"] + suffix and made["original_name"]
    assert second["deleted"] == [first["backup"]["name"]]
    assert sorted(os.listdir(backups)) == sorted([made["file"], made["name"] + ".json"])  # staging dir removed
    assert stat.S_IMODE((backups / made["file"]).stat().st_mode) == 0o600

    systemd_and_binary: list[list[str]] = []

    def run(argv: Sequence[str]) -> tuple[int, str, str]:
        systemd_and_binary.append(list(argv))
        return (3 if argv[1] == "is-active" else 0), "", ""

    restore = b.run_restore(dist, {**params, "backup": made["name"]}, False, run)
    assert restore["changed"] and not restore.get("failed"), restore
    assert restore["command"] == dist.etcd_restore_argv(made["path"], str(backups))
    assert systemd_and_binary[-1] == restore["command"]


def test_etcd_restore_refuses_an_sqlite_backup(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    kine_db(db, rows=1)
    made = b.sqlite_backup(str(db), str(tmp_path / "backups"))
    params = {"datastore": "etcd", "backup_dir": str(tmp_path / "backups"), "backup": made.name}
    result = b.run_restore(K3S, params, False, _no_commands)
    assert result["failed"] and "is an sqlite backup" in result["msg"]


def test_a_failed_snapshot_command_leaves_no_backup(tmp_path: Path) -> None:
    binary = _script(tmp_path / "bin", "#!/bin/sh\necho 'etcd datastore disabled' >&2\nexit 1\n")
    dist = type("Standin", (K3s,), {"binary": binary})()
    result = b.run_backup(dist, {"datastore": "etcd", "backup_dir": str(tmp_path / "b"), "keep": 2}, False, _runner)
    assert result["failed"] and "etcd datastore disabled" in result["msg"]
    assert os.listdir(tmp_path / "b") == []


def test_backup_py_never_asks_which_distribution_it_is() -> None:
    tree = ast.parse(Path(inspect.getsourcefile(b) or "").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert not imported & {"k3s", "k0s", "registry", "K3S", "K0S"}
    compares_name = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(isinstance(part, ast.Attribute) and part.attr == "name" for part in [node.left, *node.comparators])
    ]
    assert not compares_name


@pytest.mark.parametrize("dist", list(registry.DISTRIBUTIONS.values()), ids=list(registry.NAMES))
def test_every_strategy_keeps_backups_on_its_data_volume(dist: Distribution) -> None:
    # On the (possibly encrypted) data volume, so a backup is as protected as the datastore it copies.
    assert os.path.commonpath([dist.backup_dir(), dist.data_root()]) == dist.data_root()
    assert dist.datastore_units() == (dist.unit("server"),)
    assert dist.facts()["backup_dir"] == dist.backup_dir()
    snapshot = dist.etcd_snapshot_argv("/stage", "edgefleet-etcd-x")
    restore = dist.etcd_restore_argv("/b/snap", "/b")
    assert snapshot and snapshot[0] == dist.binary and any("/stage" in arg for arg in snapshot)
    assert restore and restore[0] == dist.binary and any("/b/snap" in arg for arg in restore)


def test_an_existing_backup_dir_is_made_private(tmp_path: Path) -> None:
    loose = tmp_path / "backups"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    assert b.ensure_dir(str(loose)) and stat.S_IMODE(loose.stat().st_mode) == 0o700
    assert not b.ensure_dir(str(loose))


def _rejoining(tmp_path: Path) -> tuple[Distribution, Path]:
    """A K3s strategy whose etcd lives under tmp_path, with a member directory in it."""
    etcd = tmp_path / "server" / "db" / "etcd"
    (etcd / "member" / "snap").mkdir(parents=True)
    (etcd / "member" / "snap" / "db").write_bytes(b"old cluster")
    return type("Standin", (K3s,), {"etcd_dir": str(etcd)})(), etcd.parent


def test_rejoin_moves_the_etcd_data_aside_and_starts_the_server(tmp_path: Path) -> None:
    dist, db = _rejoining(tmp_path)
    systemd = Systemd({"k3s.service"})
    params = {"datastore": "etcd", "rejoin": True, "backup": "edgefleet-etcd-20261206T100000000000Z"}
    when = datetime(2026, 12, 6, 11, tzinfo=UTC)
    result = b.run_restore(dist, params, False, systemd, now=when)
    assert result["changed"] and not result.get("failed"), result
    aside = tmp_path / "server" / "db.pre-restore-20261206T110000000000Z"
    assert not db.exists() and (aside / "etcd" / "member" / "snap" / "db").read_bytes() == b"old cluster"
    assert result["moved_aside"] == [{"from": str(db), "to": str(aside)}]
    assert [call[1] for call in systemd.calls] == ["is-active", "stop", "start"] and systemd.active == {"k3s.service"}
    assert result["stopped_units"] == ["k3s.service"] and result["started_units"] == ["k3s.service"]
    assert "edgefleet-etcd-20261206T100000000000Z" in result["msg"] and str(aside) in result["msg"]
    assert result["msg"].startswith(f"{b._node()}: moved its etcd data {db} aside")


def test_rejoin_starts_a_stopped_server_and_says_when_there_was_nothing_to_move(tmp_path: Path) -> None:
    dist, db = _rejoining(tmp_path)
    systemd = Systemd(set())
    first = b.run_restore(dist, {"datastore": "etcd", "rejoin": True}, False, systemd)
    assert first["changed"] and first["stopped_units"] == [] and systemd.active == {"k3s.service"}
    again = b.run_restore(dist, {"datastore": "etcd", "rejoin": True}, False, Systemd(set()))
    assert again["moved_aside"] == [] and f"found no etcd data at {db}" in again["msg"], again
    assert "from a backup" in again["msg"]


def test_rejoin_in_check_mode_changes_nothing(tmp_path: Path) -> None:
    dist, db = _rejoining(tmp_path)
    systemd = Systemd({"k3s.service"})
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = b.run_restore(dist, {"datastore": "etcd", "rejoin": True, "backup": "x"}, True, systemd)
    assert result["changed"] and result["msg"].startswith(f"{b._node()}: would have moved its etcd data {db} aside")
    assert result["stopped_units"] == ["k3s.service"] and "diff" in result
    assert [call[1] for call in systemd.calls] == ["is-active"] and systemd.active == {"k3s.service"}
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_rejoin_refuses_sqlite_and_a_distribution_without_one(tmp_path: Path) -> None:
    dist, db = _rejoining(tmp_path)
    sqlite = b.run_restore(dist, {"datastore": "sqlite", "rejoin": True}, False, _no_commands)
    assert sqlite["failed"] and "applies to an etcd datastore" in sqlite["msg"] and db.exists()
    k0s = b.run_restore(K0s(), {"datastore": "etcd", "rejoin": True}, False, _no_commands)
    assert k0s["failed"] and "K0s has no etcd rejoin" in k0s["msg"]


def test_a_failed_rejoin_leaves_the_server_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist, db = _rejoining(tmp_path)
    when = datetime(2026, 12, 6, 11, tzinfo=UTC)
    (tmp_path / "server" / "db.pre-restore-20261206T110000000000Z").mkdir()
    taken = b.run_restore(dist, {"datastore": "etcd", "rejoin": True}, False, Systemd({"k3s.service"}), now=when)
    assert taken["failed"] and "exists already" in taken["msg"] and db.exists()

    def refuse(src: str, dst: str) -> None:
        raise PermissionError(13, "Permission denied", src)

    monkeypatch.setattr(b.os, "rename", refuse)
    systemd = Systemd({"k3s.service"})
    result = b.run_restore(dist, {"datastore": "etcd", "rejoin": True}, False, systemd)
    assert result["failed"] and "left k3s.service stopped" in result["msg"] and systemd.active == set()
    assert db.exists()
