# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File primitives shared by every edgefleet module: hashing, atomic writes, diffs.

Pure Python, no Ansible import, so it is unit-tested directly and usable from
modules, action plugins and the inventory plugin alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from typing import Any

_CHUNK = 1024 * 1024


def sha256_file(path: str) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_CHUNK)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(path: str) -> bytes | None:
    """The file's content, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class FileState:
    """What a file looks like on disk, for idempotence checks and diffs."""

    exists: bool
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    sha256: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "exists": self.exists,
            "mode": None if self.mode is None else f"{self.mode:04o}",
            "uid": self.uid,
            "gid": self.gid,
            "sha256": self.sha256,
        }


def file_state(path: str, with_hash: bool = True) -> FileState:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return FileState(exists=False)
    digest = sha256_file(path) if with_hash and stat.S_ISREG(info.st_mode) else None
    return FileState(
        exists=True,
        mode=stat.S_IMODE(info.st_mode),
        uid=info.st_uid,
        gid=info.st_gid,
        sha256=digest,
    )


def needs_write(path: str, content: bytes, mode: int, uid: int | None = None, gid: int | None = None) -> bool:
    """True when the file's content, mode or ownership differ from what is wanted."""
    state = file_state(path)
    if not state.exists or state.sha256 != sha256_bytes(content) or state.mode != mode:
        return True
    if uid is not None and state.uid != uid:
        return True
    return gid is not None and state.gid != gid


def atomic_write(
    path: str,
    content: bytes,
    mode: int = 0o600,
    uid: int | None = None,
    gid: int | None = None,
    make_dirs: bool = True,
    dir_mode: int = 0o755,
) -> bool:
    """Write ``content`` to ``path`` atomically with the given mode and owner.

    The temp file is created in the target directory with the final mode
    already set (so a secret is never readable by others, not even for an
    instant), fsynced, then renamed over the target. Returns True when anything
    changed, False when the file already matched (nothing is written then).
    """
    if not needs_write(path, content, mode, uid, gid):
        return False
    directory = os.path.dirname(os.path.abspath(path))
    if make_dirs:
        os.makedirs(directory, mode=dir_mode, exist_ok=True)
    old_umask = os.umask(0o077)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".edgefleet-", dir=directory)
    finally:
        os.umask(old_umask)
    try:
        os.fchmod(fd, mode)
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def text_diff(path: str, before: str, after: str) -> dict[str, str]:
    """A diff dict in the shape Ansible's ``--diff`` renders."""
    return {
        "before_header": path,
        "after_header": path,
        "before": before,
        "after": after,
    }


REDACTED = "<redacted>"


def redact(value: Any, secret_keys: frozenset[str]) -> Any:
    """Copy of ``value`` with the values of ``secret_keys`` replaced, recursively."""
    if isinstance(value, dict):
        return {k: (REDACTED if k in secret_keys else redact(v, secret_keys)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item, secret_keys) for item in value]
    return value
