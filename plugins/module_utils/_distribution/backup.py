# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Datastore backups on a node, and their restore, for every distribution.

SQLite (kine) is copied online with SQLite's backup API through a read-only connection, so kine
keeps writing and the copy holds every transaction committed before the copy's read transaction
began, WAL content included. A file copy of a live database is never taken. etcd is snapshotted
by the distribution's own command (a method of the strategy).

Each backup is one data file and one JSON manifest beside it (sha256, size, kine row count and
revision, integrity check). Both are named ``edgefleet-<kind>-<UTC timestamp>[-<label>]``; only
files with that name *and* a manifest that names them are ours, and retention deletes nothing else.

Nothing here asks which distribution it is, and nothing runs a command itself: commands go
through a ``run`` callable handed in by the module (``AnsibleModule.run_command``, or a test's).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import atomic_write, sha256_file
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.strategy import Distribution

Runner = Callable[[Sequence[str]], tuple[int, str, str]]

KINDS = ("sqlite", "etcd")
KINE_TABLE = "kine"
MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = ".json"
PREFIX = "edgefleet-"
TOOL = "edgefleet.k8s.datastore_backup"
DEFAULT_KEEP = 5
DIR_MODE = 0o700
FILE_MODE = 0o600
_STAMP = "%Y%m%dT%H%M%S%fZ"
_NAME = re.compile(
    r"^edgefleet-(?P<kind>sqlite|etcd)-(?P<stamp>\d{8}T\d{12}Z)(?:-(?P<label>[a-z0-9]+(?:-[a-z0-9]+)*))?$"
)
_LABEL_JUNK = re.compile(r"[^a-z0-9]+")
_SUFFIX = re.compile(r"^(\.[A-Za-z0-9]{1,8}){0,2}$")
_STAGE_PREFIX = ".edgefleet-stage-"
_TMP_PREFIX = ".edgefleet-"


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why and what was left untouched."""


@dataclass(frozen=True)
class Backup:
    """One backup of ours, as its manifest describes it."""

    name: str
    kind: str
    file: str
    directory: str
    created: str
    sha256: str
    size: int
    distribution: str = ""
    label: str = ""
    source: str = ""
    method: str = ""
    rows: int | None = None
    revision: int | None = None
    integrity: str | None = None
    original_name: str | None = None

    @property
    def path(self) -> str:
        return os.path.join(self.directory, self.file)

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.directory, self.name + MANIFEST_SUFFIX)

    def manifest(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("directory")
        return {"format": MANIFEST_FORMAT, "tool": TOOL, **data}

    def as_dict(self) -> dict[str, Any]:
        return {**self.manifest(), "path": self.path, "manifest_path": self.manifest_path}


@dataclass
class Listing:
    """The backups of ours in a directory (oldest first), and the names that looked like ours but
    whose manifest was unreadable or named no existing file (left alone)."""

    backups: list[Backup] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Backup]:
        return [b for b in self.backups if b.kind == kind]

    def names(self) -> list[str]:
        return [b.name for b in self.backups]


# ---------------------------------------------------------------------------- names and listing


def clean_label(label: str) -> str:
    """A label as it may stand in a file name: lower case letters, digits and single dashes."""
    return _LABEL_JUNK.sub("-", (label or "").lower()).strip("-")[:48].strip("-")


# timezone.utc, not datetime.UTC: this runs on the node's Python, which may predate 3.11.
_UTC = timezone.utc  # noqa: UP017


def utc(now: datetime | None = None) -> datetime:
    """``now`` (or the current time) in UTC."""
    return (now or datetime.now(_UTC)).astimezone(_UTC)


def backup_name(kind: str, now: datetime, label: str = "") -> str:
    if kind not in KINDS:
        raise BackupError(f"unknown backup kind {kind!r}; allowed: {', '.join(KINDS)}")
    stamp = utc(now).strftime(_STAMP)
    tail = clean_label(label)
    return f"{PREFIX}{kind}-{stamp}" + (f"-{tail}" if tail else "")


def parse_name(name: str) -> tuple[str, str] | None:
    """``(kind, timestamp)`` of a name of ours, else None."""
    found = _NAME.match(name)
    return (found.group("kind"), found.group("stamp")) if found else None


def _from_manifest(directory: str, name: str, data: Any) -> Backup | None:
    if not isinstance(data, Mapping) or data.get("tool") != TOOL or data.get("name") != name:
        return None
    parsed = parse_name(name)
    file = data.get("file")
    if parsed is None or data.get("kind") != parsed[0] or not isinstance(file, str):
        return None
    if not file.startswith(name) or os.sep in file or not _SUFFIX.match(file[len(name) :]):
        return None
    fields: dict[str, Any] = {k: data[k] for k in Backup.__dataclass_fields__ if k != "directory" and k in data}
    try:
        backup = Backup(directory=directory, **fields)
    except TypeError:
        return None
    return backup if os.path.isfile(backup.path) and not os.path.islink(backup.path) else None


def list_backups(directory: str) -> Listing:
    """Our backups in ``directory``, oldest first. A missing directory holds none."""
    listing = Listing()
    try:
        entries = sorted(os.listdir(directory))
    except FileNotFoundError:
        return listing
    for entry in entries:
        if not entry.endswith(MANIFEST_SUFFIX):
            continue
        name = entry[: -len(MANIFEST_SUFFIX)]
        if parse_name(name) is None:
            continue
        try:
            with open(os.path.join(directory, entry), encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            data = None
        backup = _from_manifest(directory, name, data)
        if backup is None:
            listing.ignored.append(entry)
        else:
            listing.backups.append(backup)
    listing.backups.sort(key=lambda b: (parse_name(b.name) or ("", ""))[1] + b.name)
    return listing


def find_backup(directory: str, name: str) -> Backup:
    """The backup called ``name`` (its name, data file name or manifest file name) in ``directory``."""
    if not name or not name.strip():
        raise BackupError("no backup named: a restore needs the name of the backup to restore (see 'backups')")
    name = name.strip()
    if os.sep in name or name in (".", ".."):
        raise BackupError(f"backup {name!r}: give the name of a backup in {directory}, not a path")
    listing = list_backups(directory)
    for backup in listing.backups:
        if name in (backup.name, backup.file, backup.name + MANIFEST_SUFFIX):
            return backup
    known = ", ".join(listing.names()) or "none"
    raise BackupError(f"backup {name!r} not found in {directory} (backups there: {known})")


def verify(backup: Backup) -> None:
    """Raise unless the data file still has the size and sha256 its manifest recorded."""
    size = os.path.getsize(backup.path)
    digest = sha256_file(backup.path)
    if size != backup.size or digest != backup.sha256:
        raise BackupError(
            f"backup {backup.name}: {backup.file} does not match its manifest (sha256 {digest}, {size} bytes; "
            f"manifest {backup.sha256}, {backup.size} bytes); nothing was restored"
        )


def plan_retention(backups: Sequence[Backup], keep: int, kind: str) -> list[Backup]:
    """The backups of ``kind`` beyond the ``keep`` newest, oldest first: the ones retention deletes."""
    if keep < 1:
        raise BackupError(f"keep must be at least 1, found {keep}")
    mine = [b for b in backups if b.kind == kind]
    return mine[: max(0, len(mine) - keep)]


def delete_backup(backup: Backup) -> None:
    """Delete one of our backups: the data file first, then the manifest that makes it ours."""
    for path in (backup.path, backup.manifest_path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    _fsync(backup.directory)


# ---------------------------------------------------------------------------- file primitives


def _fsync(path: str) -> None:
    """Flush a file's data, or a directory's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: str) -> bool:
    """Create the backup directory (0700) if missing; tighten its mode if looser. True if changed."""
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        old = os.umask(0o077)
        try:
            os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
        finally:
            os.umask(old)
        os.chmod(directory, DIR_MODE)
        return True
    if not stat.S_ISDIR(info.st_mode):
        raise BackupError(f"{directory} is not a directory")
    if stat.S_IMODE(info.st_mode) != DIR_MODE:
        os.chmod(directory, DIR_MODE)
        return True
    return False


def _publish(tmp: str, final: str) -> None:
    """Give a finished temp file its final name without ever replacing an existing file."""
    try:
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise BackupError(f"{final} exists already; not overwriting it") from None
        except OSError:
            # A filesystem without hard links: check, then rename (no other writer uses our names).
            if os.path.lexists(final):
                raise BackupError(f"{final} exists already; not overwriting it") from None
            os.rename(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _write_manifest(backup: Backup) -> None:
    content = (json.dumps(backup.manifest(), indent=2, sort_keys=True) + "\n").encode()
    atomic_write(backup.manifest_path, content, mode=FILE_MODE, make_dirs=False)


# ---------------------------------------------------------------------------- SQLite


def sqlite_stats(conn: sqlite3.Connection) -> tuple[int | None, int | None, str]:
    """``(rows, revision, integrity)`` of a database: the kine table's row count and highest id
    (None without a kine table) and ``PRAGMA integrity_check``'s verdict (``ok`` when sound)."""
    integrity = "; ".join(str(row[0]) for row in conn.execute("PRAGMA integrity_check").fetchall())
    has_kine = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (KINE_TABLE,)).fetchone()
    if not has_kine:
        return None, None, integrity
    rows, revision = conn.execute(f"SELECT COUNT(*), MAX(id) FROM {KINE_TABLE}").fetchone()
    return int(rows), None if revision is None else int(revision), integrity


def _copy_sqlite(db_path: str, target: str, timeout: float) -> None:
    """Copy a live database into ``target`` with SQLite's backup API, in one step.

    The source is opened read-only (it cannot checkpoint or write) with a busy timeout. The copy is
    one read transaction: WAL readers do not block the writer, so kine keeps committing, and the
    copy is the database as of that transaction's start, WAL frames included. A stepwise copy
    would restart on every write of another connection and might never finish under load.
    """
    if not os.path.isfile(db_path):
        raise BackupError(f"{db_path}: no SQLite database there; nothing was backed up")
    uri = "file:" + _quote_uri_path(os.path.abspath(db_path)) + "?mode=ro"
    src = sqlite3.connect(uri, uri=True, timeout=timeout)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=-1)
            # A self-contained file: no -wal/-shm beside the backup. kine sets WAL again on open.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{db_path}: the SQLite backup failed ({exc}); nothing was kept") from exc
    finally:
        src.close()


def _quote_uri_path(path: str) -> str:
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def sqlite_backup(
    db_path: str,
    directory: str,
    *,
    distribution: str = "",
    label: str = "",
    timeout: float = 30.0,
    now: datetime | None = None,
) -> Backup:
    """Back up the SQLite database ``db_path`` into ``directory`` online; return the new backup.

    The copy is written to a temp file in ``directory`` (0600), checked (``PRAGMA integrity_check``,
    kine row count), fsynced and given its final name; the manifest is written last, so a backup
    exists (is ours) only once it is complete.
    """
    now = utc(now)
    ensure_dir(directory)
    name = backup_name("sqlite", now, label)
    old = os.umask(0o077)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".db", dir=directory)
    finally:
        os.umask(old)
    os.close(fd)
    try:
        os.chmod(tmp, FILE_MODE)
        _copy_sqlite(db_path, tmp, timeout)
        check = sqlite3.connect("file:" + _quote_uri_path(tmp) + "?mode=ro", uri=True)
        try:
            rows, revision, integrity = sqlite_stats(check)
        finally:
            check.close()
        if integrity != "ok":
            raise BackupError(f"{db_path}: the copy failed PRAGMA integrity_check ({integrity}); nothing was kept")
        os.chmod(tmp, FILE_MODE)
        _fsync(tmp)
        backup = Backup(
            name=name,
            kind="sqlite",
            file=name + ".db",
            directory=directory,
            created=now.isoformat(),
            sha256=sha256_file(tmp),
            size=os.path.getsize(tmp),
            distribution=distribution,
            label=label,
            source=db_path,
            method="sqlite3 backup API (read-only source)",
            rows=rows,
            revision=revision,
            integrity=integrity,
        )
        _publish(tmp, backup.path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _write_manifest(backup)
    _fsync(directory)
    return backup


def processes_using(paths: Iterable[str], proc_root: str = "/proc") -> list[int]:
    """The ids of processes that hold any of ``paths`` open (as far as /proc lets us see)."""
    wanted = {os.path.realpath(p) for p in paths}
    found: list[int] = []
    try:
        pids = [p for p in os.listdir(proc_root) if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        fd_dir = os.path.join(proc_root, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target in wanted:
                found.append(int(pid))
                break
    return sorted(found)


def sqlite_companions(db_path: str) -> list[str]:
    """The database and the files SQLite keeps beside it (WAL and shared memory)."""
    return [db_path, db_path + "-wal", db_path + "-shm"]


@dataclass
class RestorePlan:
    """What a restore does (or, in check mode, would do)."""

    backup: Backup
    target: str
    aside: str
    move_aside: list[tuple[str, str]] = field(default_factory=list)

    def find_current(self) -> None:
        """The current files to move aside, as they are now (a stopping kine may checkpoint and
        remove its WAL and shared memory between planning and restoring)."""
        kept_names = sqlite_companions(self.aside)
        self.move_aside = [
            (current, kept_names[index])
            for index, current in enumerate(sqlite_companions(self.target))
            if os.path.lexists(current)
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "backup": self.backup.as_dict(),
            "target": self.target,
            "moved_aside": [{"from": src, "to": dst} for src, dst in self.move_aside],
        }


def plan_sqlite_restore(backup: Backup, db_path: str, now: datetime | None = None) -> RestorePlan:
    """Verify the backup and say which current files are moved aside (``<db>.pre-restore-<ts>``,
    with ``-wal`` and ``-shm`` after it so SQLite still pairs them)."""
    if backup.kind != "sqlite":
        raise BackupError(f"backup {backup.name} is an {backup.kind} backup, not an SQLite one; nothing was restored")
    verify(backup)
    plan = RestorePlan(backup, db_path, f"{db_path}.pre-restore-{utc(now).strftime(_STAMP)}")
    plan.find_current()
    return plan


def sqlite_restore(plan: RestorePlan, proc_root: str = "/proc") -> None:
    """Put the backup in place of the database. The datastore's units must be stopped.

    The backup is copied into a temp file beside the database and checked against the manifest
    again; only then are the current database, WAL and shared memory moved aside (renamed, never
    deleted: an unrestored commit stays recoverable), and the copy renamed into place.
    """
    db_path = plan.target
    users = processes_using(sqlite_companions(db_path), proc_root)
    if users:
        raise BackupError(
            f"{db_path} is open in process(es) {', '.join(map(str, users))}: stop the datastore's units before a "
            "restore; nothing was restored"
        )
    directory = os.path.dirname(os.path.abspath(db_path))
    old = os.umask(0o077)
    try:
        os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX + "restore-", dir=directory)
    finally:
        os.umask(old)
    try:
        with os.fdopen(fd, "wb") as out, open(plan.backup.path, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, FILE_MODE)
        if os.path.exists(db_path):
            info = os.stat(db_path)
            with contextlib.suppress(PermissionError):
                os.chown(tmp, info.st_uid, info.st_gid)
        if sha256_file(tmp) != plan.backup.sha256:
            raise BackupError(
                f"{db_path}: the copy of {plan.backup.file} does not match its manifest; nothing restored"
            )
        plan.find_current()
        # WAL and shared memory first, so the live path never holds a WAL without its database.
        for current, kept in sorted(plan.move_aside, key=lambda pair: pair[0] == db_path):
            os.rename(current, kept)
        os.rename(tmp, db_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync(directory)


# ---------------------------------------------------------------------------- etcd (the distribution's command)


def _suffix_of(filename: str) -> str:
    for double in (".tar.gz", ".tar.zst"):
        if filename.endswith(double):
            return double
    suffix = os.path.splitext(filename)[1]
    return suffix if _SUFFIX.match(suffix) else ""


def snapshot_backup(
    dist: Distribution,
    directory: str,
    run: Runner,
    *,
    label: str = "",
    now: datetime | None = None,
) -> Backup:
    """Take an etcd snapshot with the distribution's own command and keep it as a backup of ours.

    The command writes into a fresh staging directory of ours, so the one file that appears there is
    the snapshot whatever the distribution calls it; it is renamed to our name, hashed and given a
    manifest, and the staging directory removed.
    """
    now = utc(now)
    name = backup_name("etcd", now, label)
    if dist.etcd_snapshot_argv(directory, name) is None:
        raise BackupError(f"{dist.title} has no etcd snapshot command known to this collection")
    ensure_dir(directory)
    stage = tempfile.mkdtemp(prefix=_STAGE_PREFIX, dir=directory)
    try:
        argv = dist.etcd_snapshot_argv(stage, name) or []
        rc, out, err = run(argv)
        if rc != 0:
            raise BackupError(f"{' '.join(argv)} failed (rc={rc}): {(err or out).strip()}")
        produced = [
            e for e in sorted(os.listdir(stage)) if not e.startswith(".") and os.path.isfile(os.path.join(stage, e))
        ]
        if len(produced) != 1:
            raise BackupError(
                f"{' '.join(argv)} left {len(produced)} files in {stage} ({', '.join(produced) or 'none'}); "
                "expected one"
            )
        source = os.path.join(stage, produced[0])
        os.chmod(source, FILE_MODE)
        _fsync(source)
        backup = Backup(
            name=name,
            kind="etcd",
            file=name + _suffix_of(produced[0]),
            directory=directory,
            created=now.isoformat(),
            sha256=sha256_file(source),
            size=os.path.getsize(source),
            distribution=dist.name,
            label=label,
            source=dist.etcd_dir,
            method=" ".join([os.path.basename(argv[0]), *argv[1:2]]),
            original_name=produced[0],
        )
        _publish(source, backup.path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _write_manifest(backup)
    _fsync(directory)
    return backup


def snapshot_restore_argv(dist: Distribution, backup: Backup) -> list[str]:
    """The distribution's restore command for a verified etcd backup of ours."""
    if backup.kind != "etcd":
        raise BackupError(f"backup {backup.name} is an {backup.kind} backup, not an etcd one; nothing was restored")
    argv = dist.etcd_restore_argv(backup.path, backup.directory)
    if argv is None:
        raise BackupError(f"{dist.title} has no etcd restore command known to this collection")
    return argv


# ---------------------------------------------------------------------------- the modules' work


def _names_text(names: Iterable[str]) -> str:
    return "".join(f"{n}\n" for n in names)


def _failed(msg: str, **extra: Any) -> dict[str, Any]:
    return {"failed": True, "changed": False, "msg": msg, **extra}


def run_backup(
    dist: Distribution,
    params: Mapping[str, Any],
    check_mode: bool,
    run: Runner,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The ``datastore_backup`` module: take one backup of the node's datastore, apply retention.

    ``changed`` is true only when a backup was (or in check mode would be) written.
    """
    datastore = params["datastore"]
    directory = params.get("backup_dir") or dist.backup_dir()
    db_path = params.get("db_path") or dist.sqlite_db
    keep = int(params.get("keep") or DEFAULT_KEEP)
    label = params.get("label") or ""
    base: dict[str, Any] = {"changed": False, "backup_dir": directory, "units": list(dist.datastore_units())}
    if keep < 1:
        return _failed(f"keep must be at least 1, found {keep}", **base)
    before = list_backups(directory)
    base.update(backups=[b.as_dict() for b in before.backups], ignored=before.ignored, deleted=[], backup=None)
    if datastore not in KINDS:
        base["warnings"] = [f"datastore {datastore!r}: its own operator backs it up; nothing was backed up here"]
        return base
    kind = datastore
    mine = before.of_kind(kind)
    doomed = mine[: max(0, len(mine) + 1 - keep)]
    placeholder = backup_name(kind, utc(now), label)
    after_names = [b.name for b in before.backups if b not in doomed] + [placeholder]
    if check_mode:
        if kind == "sqlite" and not os.path.isfile(db_path):
            return _failed(f"{db_path}: no SQLite database there; nothing would be backed up", **base)
        if kind == "etcd" and dist.etcd_snapshot_argv(directory, placeholder) is None:
            return _failed(f"{dist.title} has no etcd snapshot command known to this collection", **base)
        base.update(
            changed=True,
            deleted=[b.name for b in doomed],
            diff={"before": _names_text(before.names()), "after": _names_text(after_names)},
        )
        return base
    try:
        if kind == "sqlite":
            made = sqlite_backup(
                db_path,
                directory,
                distribution=dist.name,
                label=label,
                now=now,
                timeout=float(params.get("timeout") or 30),
            )
        else:
            made = snapshot_backup(dist, directory, run, label=label, now=now)
    except (BackupError, OSError) as exc:
        return _failed(str(exc), **base)
    current = list_backups(directory)
    doomed = [b for b in plan_retention(current.backups, keep, kind) if b.file != made.file]
    for old in doomed:
        delete_backup(old)
    final = list_backups(directory)
    base.update(
        changed=True,
        backup=made.as_dict(),
        backups=[b.as_dict() for b in final.backups],
        ignored=final.ignored,
        deleted=[b.name for b in doomed],
        diff={"before": _names_text(before.names()), "after": _names_text(final.names())},
    )
    return base


def _is_active(run: Runner, unit: str) -> bool:
    return run(["systemctl", "is-active", "--quiet", unit])[0] == 0


def _systemctl(run: Runner, verb: str, unit: str) -> None:
    rc, out, err = run(["systemctl", verb, unit])
    if rc != 0:
        raise BackupError(f"systemctl {verb} {unit} failed (rc={rc}): {(err or out).strip()}")


def _stop_active(run: Runner, units: Sequence[str], stopped: list[str]) -> None:
    """Stop the active units among ``units``, appending each to ``stopped`` once it is stopped."""
    for unit in units:
        if _is_active(run, unit):
            _systemctl(run, "stop", unit)
            stopped.append(unit)


def _file_summary(path: str) -> str:
    if not os.path.isfile(path):
        return f"{path}: absent\n"
    return f"{path}: sha256 {sha256_file(path)}, {os.path.getsize(path)} bytes\n"


def _node() -> str:
    return socket.gethostname() or "this node"


def _restored_text(backup: Backup) -> str:
    return f"{backup.kind} backup {backup.name} ({backup.file}, sha256 {backup.sha256[:12]}..., {backup.size} bytes)"


def run_restore(
    dist: Distribution,
    params: Mapping[str, Any],
    check_mode: bool,
    run: Runner,
    now: datetime | None = None,
    proc_root: str = "/proc",
) -> dict[str, Any]:
    """The ``datastore_restore`` module: restore a named, verified backup of ours (or, with
    ``rejoin``, drop this server's etcd data so it rejoins a cluster restored on another server).

    Refuses without a name and on a checksum mismatch, before touching anything. With
    ``manage_units``, the active units among ``units`` are stopped first and started again after
    (also after a failed restore, which leaves the current datastore in place).
    """
    if params.get("rejoin"):
        return run_rejoin(dist, params, check_mode, run, now)
    node = _node()
    datastore = params["datastore"]
    directory = params.get("backup_dir") or dist.backup_dir()
    db_path = params.get("db_path") or dist.sqlite_db
    units = list(params.get("units") or dist.datastore_units())
    manage = bool(params.get("manage_units", True))
    base: dict[str, Any] = {"changed": False, "backup_dir": directory, "units": units, "stopped_units": []}
    if datastore not in KINDS:
        return _failed(f"{node}: datastore {datastore!r}: restore it with its own operator's tools", **base)
    try:
        backup = find_backup(directory, params.get("backup") or "")
        if backup.kind != datastore:
            raise BackupError(f"backup {backup.name} is an {backup.kind} backup; the datastore is {datastore}")
        plan: RestorePlan | None = None
        argv: list[str] = []
        if datastore == "sqlite":
            plan = plan_sqlite_restore(backup, db_path, now)
            before, after = _file_summary(db_path), f"{db_path}: sha256 {backup.sha256}, {backup.size} bytes\n"
        else:
            verify(backup)
            argv = snapshot_restore_argv(dist, backup)
            before, after = f"{dist.etcd_dir}: current etcd data\n", f"{dist.etcd_dir}: restored from {backup.file}\n"
    except (BackupError, OSError) as exc:
        return _failed(f"{node}: {exc}", **base)
    base.update(
        backup=backup.as_dict(),
        moved_aside=plan.as_dict()["moved_aside"] if plan else [],
        command=argv,
        diff={"before": before, "after": after},
    )
    how = f"with {' '.join(argv)}" if argv else f"into {db_path}"
    if check_mode:
        if manage:
            base["stopped_units"] = [u for u in units if _is_active(run, u)]
        base["changed"] = True
        base["msg"] = f"{node}: would restore {_restored_text(backup)} {how}"
        return base
    stopped: list[str] = []
    try:
        if manage:
            _stop_active(run, units, stopped)
        if plan is not None:
            sqlite_restore(plan, proc_root)
        else:
            rc, out, err = run(argv)
            if rc != 0:
                raise BackupError(f"{' '.join(argv)} failed (rc={rc}): {(err or out).strip()}")
    except (BackupError, OSError) as exc:
        problems = [str(exc)]
        for unit in stopped:
            try:
                _systemctl(run, "start", unit)
            except BackupError as again:
                problems.append(str(again))
        return _failed(f"{node}: " + "; ".join(problems), **{**base, "stopped_units": stopped})
    base.update(changed=True, stopped_units=stopped)
    for unit in stopped:
        try:
            _systemctl(run, "start", unit)
        except BackupError as exc:
            return _failed(f"{node}: restored {backup.name}, but {exc}", **base)
    aside = "".join(f"; moved {m['from']} aside to {m['to']}" for m in base["moved_aside"])
    units_text = f"; stopped and started {', '.join(stopped)}" if stopped else ""
    base["msg"] = f"{node}: restored {_restored_text(backup)} {how}{aside}{units_text}"
    return base


def run_rejoin(
    dist: Distribution,
    params: Mapping[str, Any],
    check_mode: bool,
    run: Runner,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``datastore_restore`` with ``rejoin``, on the other servers of an etcd cluster after the restore on one:
    stop the server (``manage_units``), move its etcd data aside (renamed, never deleted), start it again so it
    joins the restored cluster. ``backup``, when given, only names the restore in the messages (the backup
    itself is on the server that restored it). A failure after the stop leaves the server stopped: started
    on its old data, it would serve the cluster as it was before the restore."""
    node = _node()
    datastore = params["datastore"]
    directory = params.get("backup_dir") or dist.backup_dir()
    units = list(params.get("units") or dist.datastore_units())
    manage = bool(params.get("manage_units", True))
    named = str(params.get("backup") or "").strip()
    source = f"backup {named}" if named else "a backup"
    base: dict[str, Any] = {
        "changed": False,
        "backup_dir": directory,
        "units": units,
        "stopped_units": [],
        "started_units": [],
        "backup": None,
        "command": [],
        "moved_aside": [],
    }
    if datastore != "etcd":
        return _failed(f"{node}: rejoin applies to an etcd datastore, found {datastore!r}; nothing was changed", **base)
    data = dist.etcd_rejoin_dir()
    if data is None:
        return _failed(f"{node}: {dist.title} has no etcd rejoin known to this collection; nothing was changed", **base)
    aside = f"{data}.pre-restore-{utc(now).strftime(_STAMP)}"
    found = os.path.isdir(data)
    if os.path.lexists(aside):
        return _failed(f"{node}: {aside} exists already; nothing was changed", **base)
    what = f"moved its etcd data {data} aside to {aside}" if found else f"found no etcd data at {data} to move aside"
    started = units if manage else []
    base.update(
        moved_aside=[{"from": data, "to": aside}] if found else [],
        diff={
            "before": f"{data}: {'present' if found else 'absent'}\n",
            "after": f"{data}: absent" + (f" (moved aside to {aside})" if found else "") + "\n",
        },
    )
    then = f" and started {', '.join(started)}" if started else " (start the server to rejoin)"
    if check_mode:
        base.update(
            changed=True,
            stopped_units=[u for u in units if _is_active(run, u)] if manage else [],
            started_units=started,
            msg=f"{node}: would have {what}{then}, to rejoin the cluster restored from {source}",
        )
        return base
    stopped: list[str] = []
    try:
        if manage:
            _stop_active(run, units, stopped)
        if found:
            os.rename(data, aside)
            _fsync(os.path.dirname(data))
    except (BackupError, OSError) as exc:
        left = f"; left {', '.join(stopped)} stopped" if stopped else ""
        return _failed(f"{node}: rejoin after {source}: {exc}{left}", **{**base, "stopped_units": stopped})
    base.update(changed=True, stopped_units=stopped)
    try:
        for unit in started:
            _systemctl(run, "start", unit)
    except BackupError as exc:
        return _failed(f"{node}: {what}, but {exc}", **base)
    base.update(started_units=started, msg=f"{node}: {what}{then}, to rejoin the cluster restored from {source}")
    return base
