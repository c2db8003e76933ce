# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving a data directory onto a new volume, with proof that nothing was lost.

Pure Python, no Ansible import. ``tree_digest`` walks a directory and hashes
every entry's relative path, type, mode, owner and content (symlink targets for
links), so two trees with the same digest hold the same data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ansible_collections.edgefleet.k8s.plugins.module_utils._common import files as _files

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class TreeDigest:
    sha256: str
    files: int
    bytes: int


def _file_sha(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(root: str, exclude: tuple[str, ...] = ("lost+found",)) -> TreeDigest:
    """A digest of everything under ``root`` (``root`` itself excluded; top-level ``exclude`` names skipped)."""
    digest = hashlib.sha256()
    files = 0
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in exclude]
            filenames = [f for f in filenames if f not in exclude]
        dirnames.sort()
        entries = sorted(dirnames + filenames)
        for name in entries:
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            info = os.lstat(full)
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                body = "link:" + os.readlink(full)
            elif stat.S_ISREG(info.st_mode):
                body = "file:" + _file_sha(full)
                files += 1
                total += info.st_size
            elif stat.S_ISDIR(info.st_mode):
                body = "dir"
            else:
                body = f"special:{stat.S_IFMT(info.st_mode)}"
            digest.update(f"{rel}\0{body}\0{mode:o}\0{info.st_uid}\0{info.st_gid}\n".encode("utf-8", "surrogateescape"))
    return TreeDigest(digest.hexdigest(), files, total)


def has_data(path: str, ignore: tuple[str, ...] = ("lost+found",)) -> bool:
    try:
        return any(name not in ignore for name in os.listdir(path))
    except FileNotFoundError:
        return False


def parse_mount_source(mountinfo: str, target: str) -> str | None:
    """The major:minor mounted exactly at ``target`` (last mount wins), from /proc/self/mountinfo."""
    found = None
    for line in mountinfo.splitlines():
        parts = line.split()
        if len(parts) > 4 and parts[4].replace("\\040", " ") == target:
            found = parts[2]
    return found


# ----------------------------------------------------------------------------- the move, resumable
#
# A move stops services, copies, verifies, then empties the source. A run can die at any step (the
# controller loses the node, a reboot). A small journal on the root disk, written atomically before
# each step, lets the next run finish the job instead of leaving services stopped or refusing a
# half-emptied source:
#   stopping  - services listed are (being) stopped; the volume may hold a partial copy of OURS
#   verified  - the volume holds a verified copy (digest recorded); the source may be half-emptied
# The journal is removed by the caller once the services run again (see ``finish``).

JOURNAL_DIR = "/var/lib/edgefleet/data-dir-migrate"


class Runner(Protocol):
    def __call__(self, argv: list[str]) -> tuple[int, str, str]: ...


class MoveError(Exception):
    """A move that stopped safely: the message says what, the source is intact."""


@dataclass
class Journal:
    path: str
    device: str
    services: list[str]
    phase: str = "stopping"
    digest: str = ""

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode("utf-8")


def journal_file(path: str, journal_dir: str = JOURNAL_DIR) -> str:
    """One journal per data directory: /var/lib/rancher -> <dir>/var-lib-rancher.json."""
    return os.path.join(journal_dir, os.path.normpath(path).strip("/").replace("/", "-") + ".json")


def load_journal(file: str) -> Journal | None:
    try:
        with open(file, encoding="utf-8") as handle:
            raw = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise MoveError(f"the move journal {file} is unreadable ({exc}); inspect it and remove it by hand") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), list):
        raise MoveError(f"the move journal {file} is not an edgefleet journal; inspect it and remove it by hand")
    return Journal(
        path=str(raw.get("path", "")),
        device=str(raw.get("device", "")),
        services=[str(s) for s in raw["services"]],
        phase=str(raw.get("phase", "stopping")),
        digest=str(raw.get("digest", "")),
    )


def save_journal(file: str, journal: Journal) -> None:
    _files.atomic_write(file, journal.to_json(), mode=0o600, dir_mode=0o700)


def empty_dir(path: str, keep: tuple[str, ...] = ()) -> None:
    for name in os.listdir(path):
        if name in keep:
            continue
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


@dataclass
class MoveResult:
    migrated: bool = False
    resumed: bool = False
    stopped_services: list[str] | None = None
    digest: TreeDigest | None = None


@dataclass
class Mover:
    """Moves ``path`` onto ``device``, journalled in ``journal``. ``run`` runs a command (argv) on the node."""

    path: str
    device: str
    fstype: str
    services: list[str]
    run: Runner
    journal: str
    remove_source: bool = True
    scratch_dir: str = "/run"
    mkdtemp: Callable[..., str] = tempfile.mkdtemp

    def _stop_services(self, already: list[str]) -> list[str]:
        active = [
            u for u in self.services if u not in already and self.run(["systemctl", "is-active", "--quiet", u])[0] == 0
        ]
        # Journal first: if this run dies from here on, the next one knows what to start again.
        save_journal(self.journal, Journal(self.path, self.device, already + active))
        stopped = list(already)
        for unit in active:
            rc, _o, err = self.run(["systemctl", "stop", unit])
            if rc != 0:
                self.restart(stopped)
                raise MoveError(f"cannot stop {unit} before moving {self.path}: {err.strip()}")
            stopped.append(unit)
        return stopped

    def restart(self, units: list[str]) -> None:
        for unit in units:
            self.run(["systemctl", "start", unit])
        if os.path.exists(self.journal):
            os.unlink(self.journal)

    def move(self, pending: Journal | None) -> MoveResult:
        """Copy, verify, empty the source. The caller has checked that ``path`` holds data and is no mount point."""
        stopped = self._stop_services(pending.services if pending else [])
        try:
            return self._move(pending, stopped)
        except MoveError:
            # Services start again on the untouched source, unless an earlier run had already begun
            # emptying it: then they stay stopped and the journal stays, for a person to look at.
            if not (pending is not None and pending.phase == "verified"):
                self.restart(stopped)
            raise

    def _move(self, pending: Journal | None, stopped: list[str]) -> MoveResult:
        tmp = self.mkdtemp(prefix="edgefleet-migrate-", dir=self.scratch_dir)
        rc, _o, err = self.run(["mount", "-t", self.fstype, self.device, tmp])
        if rc != 0:
            os.rmdir(tmp)
            raise MoveError(f"cannot mount {self.device} to move {self.path}: {err.strip()}")
        try:
            source = tree_digest(self.path)
            if has_data(tmp):
                present = tree_digest(tmp)
                ours = pending if pending is not None and pending.device == self.device else None
                if present.sha256 == source.sha256:
                    pass
                elif ours is not None and ours.phase == "verified" and present.sha256 == ours.digest:
                    # An earlier run verified this copy and died while emptying the source: finish that.
                    empty_dir(self.path)
                    return MoveResult(True, True, stopped, present)
                elif ours is not None and ours.phase == "stopping":
                    # An earlier run died while copying: the volume holds a partial copy of ours, the
                    # source was never touched (it is emptied only after a verified copy). Copy again.
                    empty_dir(tmp, keep=("lost+found",))
                    self._copy(tmp)
                else:
                    raise MoveError(
                        f"{self.device} already holds other data than {self.path} (digest {present.sha256[:16]} vs "
                        f"{source.sha256[:16]}); not overwriting it. Inspect both and empty one of them."
                    )
            else:
                self._copy(tmp)
            copied = tree_digest(tmp)
            if copied.sha256 != source.sha256:
                raise MoveError(
                    f"the copy of {self.path} on {self.device} differs from the source (digest "
                    f"{copied.sha256[:16]} vs {source.sha256[:16]}); the source is untouched"
                )
        finally:
            self.run(["umount", tmp])
            os.rmdir(tmp)
        save_journal(self.journal, Journal(self.path, self.device, stopped, "verified", source.sha256))
        if self.remove_source:
            empty_dir(self.path)
        return MoveResult(True, pending is not None, stopped, source)

    def _copy(self, tmp: str) -> None:
        rc, _o, err = self.run(["cp", "-a", "--", f"{self.path}/.", f"{tmp}/"])
        if rc != 0:
            raise MoveError(f"copying {self.path} onto {self.device} failed: {err.strip()}")
        os.sync()
