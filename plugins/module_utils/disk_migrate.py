# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving a data directory onto a new volume, with proof that nothing was lost.

Pure Python, no Ansible import. ``tree_digest`` walks a directory and hashes
every entry's relative path, type, mode, owner and content (symlink targets for
links), so two trees with the same digest hold the same data.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass

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
