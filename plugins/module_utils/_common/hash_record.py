# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sha256 of large files, read again only when a file changed since it was last hashed.

Private to edgefleet.k8s: not an API, it may change in any release.

A run that changes nothing still compares every staged binary, image and shim with its pinned
sha256, on the controller and on each node. Reading a file of a hundred megabytes again on
every run costs a node's CPU and disk each time; a record of what was hashed lets a run read
only what changed.

A file's identity is its (device, inode, size, mtime, ctime). ctime cannot be set from user
space: every write, truncate, chmod, chown or rename sets it to the current time, so a file
whose identity is the one recorded holds the bytes that were hashed. A file changed within the
clock's resolution of being hashed could keep its identity (git calls such an entry "racy"),
so a file is recorded only when its mtime and ctime are at least ``RACY_NS`` older than the
end of its hashing; such a file is read again on the next run, then recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import atomic_write, sha256_file

RACY_NS = 2_000_000_000

_Identity = tuple[int, int, int, int, int]


def _identity(info: os.stat_result) -> _Identity:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _load(path: str) -> dict[str, tuple[_Identity, str]]:
    """The record's entries; an absent, unreadable or malformed record is an empty one (everything is read)."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError):
        return {}
    entries: dict[str, tuple[_Identity, str]] = {}
    if not isinstance(raw, dict):
        return entries
    for name, entry in raw.items():
        if (
            isinstance(name, str)
            and isinstance(entry, list)
            and len(entry) == 6
            and all(isinstance(n, int) for n in entry[:5])
            and isinstance(entry[5], str)
        ):
            entries[name] = ((entry[0], entry[1], entry[2], entry[3], entry[4]), entry[5])
    return entries


class HashRecord:
    """sha256 of files by path, kept in a JSON file (0600) between runs; ``None`` keeps it in memory only."""

    def __init__(self, record_path: str | None) -> None:
        self._path = record_path
        self._entries = _load(record_path) if record_path else {}
        self._dirty = False
        self.read = 0  # files read (hashed) through this record, for the callers' reports and tests

    def sha256(self, path: str) -> str:
        """The sha256 of the file at ``path``; raises OSError as reading it would."""
        path = os.path.abspath(path)
        before = _identity(os.stat(path))
        known = self._entries.get(path)
        if known is not None and known[0] == before:
            return known[1]
        digest = sha256_file(path)
        self.read += 1
        after = os.stat(path)
        settled = time.time_ns() - max(after.st_mtime_ns, after.st_ctime_ns) >= RACY_NS
        if _identity(after) == before and settled:
            self._entries[path] = (before, digest)
            self._dirty = True
        elif self._entries.pop(path, None) is not None:
            self._dirty = True
        return digest

    def save(self) -> None:
        """Write the record if it changed, atomically, owned by this process's user; entries of files gone since
        are dropped."""
        if not self._path or not self._dirty:
            return
        kept = {name: [*ident, digest] for name, (ident, digest) in self._entries.items() if os.path.exists(name)}
        with contextlib.suppress(OSError):  # a record that cannot be written costs the next run a read, no more
            atomic_write(self._path, json.dumps(kept, sort_keys=True).encode(), 0o600, dir_mode=0o700)
        self._dirty = False
