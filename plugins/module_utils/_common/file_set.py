# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many files of a node kept in step in one module run.

A template task costs two module runs on the node even when nothing changes (one to read the file's
checksum, one to check its mode and owner). A role that writes several files pays that for each, on
every run. Here every file is compared in one run: its bytes, mode, owner and group; the ones that
differ are validated (when a validator is given), and only if every validator accepts them are they
written, each atomically. The content is rendered on the controller (a template lookup), as a template
task would render it.

Pure Python with no Ansible import: the module passes in how to run a command.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import atomic_write, read_bytes, text_diff

Runner = Callable[[list[str]], tuple[int, str, str]]

_HIDDEN = "<content hidden: a secret>\n"


@dataclass(frozen=True)
class WantedFile:
    path: str
    content: bytes
    mode: int
    uid: int
    gid: int
    validate: str | None = None
    secret: bool = False


@dataclass(frozen=True)
class WantedDir:
    path: str
    mode: int
    uid: int
    gid: int


@dataclass(frozen=True)
class Change:
    """A file that differs from what is wanted, and how."""

    wanted: WantedFile
    content: bool  # its bytes differ (or it does not exist)
    before: bytes | None  # its bytes now; None when it does not exist
    before_meta: str  # "mode 0644, owner root:root", or "absent"


def _user(name: str) -> int | None:
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def _group(name: str) -> int | None:
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _mode(value: Any) -> int | None:
    """An octal mode given as a string (``"0644"``); an int is refused, as YAML reads 0644 as 420."""
    if not isinstance(value, str) or not value or any(c not in "01234567" for c in value) or len(value) > 4:
        return None
    return int(value, 8)


def _common(item: Mapping[str, Any], where: str, problems: list[str]) -> tuple[int, int, int] | None:
    """Mode, uid and gid of an entry, or None with the problems added."""
    mode = _mode(item.get("mode"))
    if mode is None:
        problems.append(f"{where}: mode must be a quoted octal string like '0644', found {item.get('mode')!r}")
    owner = str(item.get("owner") or "root")
    group = str(item.get("group") or "root")
    uid, gid = _user(owner), _group(group)
    if uid is None:
        problems.append(f"{where}: owner {owner!r} is not a user on this node")
    if gid is None:
        problems.append(f"{where}: group {group!r} is not a group on this node")
    if mode is None or uid is None or gid is None:
        return None
    return mode, uid, gid


def _path(item: Mapping[str, Any], kind: str, index: int, seen: set[str], problems: list[str]) -> tuple[str, str]:
    path = str(item.get("path") or "")
    where = f"{kind}[{index}] ({path or 'no path'})"
    if not path.startswith("/") or (kind == "files" and path.endswith("/")):
        problems.append(f"{where}: path must be an absolute {'file ' if kind == 'files' else ''}path, found {path!r}")
    elif os.path.normpath(path) in seen:
        problems.append(f"{where}: the path is given twice")
    seen.add(os.path.normpath(path))
    return path, where


def parse_directories(directories: Sequence[Mapping[str, Any]]) -> tuple[list[WantedDir], list[str]]:
    """The wanted directories, or every problem with them at once."""
    wanted: list[WantedDir] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(directories):
        path, where = _path(item, "directories", index, seen, problems)
        common = _common(item, where, problems)
        if common is not None:
            wanted.append(WantedDir(os.path.normpath(path), *common))
    return wanted, problems


def parse(files: Sequence[Mapping[str, Any]]) -> tuple[list[WantedFile], list[str]]:
    """The wanted files, or every problem with them at once."""
    wanted: list[WantedFile] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(files):
        path, where = _path(item, "files", index, seen, problems)
        content = item.get("content")
        if not isinstance(content, str):
            problems.append(f"{where}: content must be a string, found {type(content).__name__}")
        common = _common(item, where, problems)
        validate = item.get("validate") or None
        if validate is not None and "%s" not in str(validate):
            problems.append(f"{where}: validate must contain %s (the file to check), found {validate!r}")
        if isinstance(content, str) and common is not None:
            mode, uid, gid = common
            wanted.append(
                WantedFile(
                    path=path,
                    content=content.encode("utf-8"),
                    mode=mode,
                    uid=uid,
                    gid=gid,
                    validate=str(validate) if validate else None,
                    secret=bool(item.get("secret")),
                )
            )
    return wanted, problems


def _meta(mode: int | None, uid: int | None, gid: int | None) -> str:
    def name(ident: int | None, lookup: Callable[[int], Any]) -> str:
        if ident is None:
            return "?"
        try:
            return str(lookup(ident)[0])
        except KeyError:
            return str(ident)

    shown = "?" if mode is None else f"{mode:04o}"
    return f"mode {shown}, owner {name(uid, pwd.getpwuid)}:{name(gid, grp.getgrgid)}"


def changes(wanted: Sequence[WantedFile], root: str = "/") -> list[Change]:
    """The wanted files that differ from the node's, in the order given. Each file is stat'ed and read once."""
    found: list[Change] = []
    for item in wanted:
        target = at(root, item.path)
        try:
            info = os.stat(target)
        except FileNotFoundError:
            found.append(Change(item, True, None, "absent"))
            continue
        if not stat.S_ISREG(info.st_mode):
            # Not a regular file: always a change, and the write (os.replace) will refuse a directory.
            found.append(Change(item, True, None, "not a regular file"))
            continue
        before = read_bytes(target)
        same_bytes = before == item.content
        same_meta = (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (item.mode, item.uid, item.gid)
        if same_bytes and same_meta:
            continue
        meta = _meta(stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
        found.append(Change(item, not same_bytes, None if same_bytes else before, meta))
    return found


def directory_changes(wanted: Sequence[WantedDir], root: str = "/") -> tuple[list[tuple[WantedDir, str]], list[str]]:
    """The wanted directories that are missing or have another mode or owner (with what they are now), and the
    problems: a path that exists and is not a directory."""
    found: list[tuple[WantedDir, str]] = []
    problems: list[str] = []
    for item in wanted:
        target = at(root, item.path)
        try:
            info = os.stat(target)
        except FileNotFoundError:
            found.append((item, "absent"))
            continue
        if not stat.S_ISDIR(info.st_mode):
            problems.append(f"{item.path}: exists and is not a directory")
        elif (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) != (item.mode, item.uid, item.gid):
            found.append((item, _meta(stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)))
    return found, problems


def make_directory(target: str, item: WantedDir) -> None:
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    if not os.path.isdir(target):
        os.mkdir(target, 0o700)
    os.chown(target, item.uid, item.gid)
    os.chmod(target, item.mode)


def at(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def diff(change: Change) -> dict[str, str]:
    item = change.wanted
    after_meta = _meta(item.mode, item.uid, item.gid)
    if change.content:
        if item.secret:
            before_text = "" if change.before is None else _HIDDEN
            after_text = _HIDDEN
        else:
            before_text = "" if change.before is None else change.before.decode("utf-8", "replace")
            after_text = item.content.decode("utf-8")
    else:
        before_text, after_text = change.before_meta + "\n", after_meta + "\n"
    return {
        "before_header": f"{item.path} ({change.before_meta})",
        "after_header": f"{item.path} ({after_meta})",
        "before": before_text,
        "after": after_text,
    }


def validate(change: Change, run: Runner, tmpdir: str) -> str | None:
    """Run the file's validator on its new content, in a temporary file; the problem, or None."""
    item = change.wanted
    if item.validate is None or not change.content:
        return None
    fd, tmp = tempfile.mkstemp(prefix=".edgefleet-validate-", dir=tmpdir)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(item.content)
        argv = [token.replace("%s", tmp) for token in shlex.split(item.validate)]
        rc, out, err = run(argv)
    finally:
        os.unlink(tmp)
    if rc == 0:
        return None
    said = (err or out).strip().replace(tmp, "<new file>")
    return f"{item.path}: {item.validate} refused the new content (rc {rc}): {said or 'no output'}"


def run_node_files(
    params: Mapping[str, Any], check_mode: bool, run: Runner, tmpdir: str | None = None
) -> dict[str, Any]:
    """The module's whole behaviour; a dict for ``result.finish``."""
    root = str(params.get("root") or "/")
    dirs, problems = parse_directories(params.get("directories") or [])
    wanted, file_problems = parse(params.get("files") or [])
    problems += file_problems
    unchanged: dict[str, Any] = {"changed": False, "changed_paths": [], "content_changed_paths": []}
    if problems:
        return {"failed": True, **unchanged, "msg": "node_files: " + "; ".join(problems)}
    dir_found, dir_problems = directory_changes(dirs, root)
    if dir_problems:
        return {"failed": True, **unchanged, "msg": "node_files: nothing was written; " + "; ".join(dir_problems)}
    found = changes(wanted, root)
    result: dict[str, Any] = {
        "changed": bool(found or dir_found),
        "changed_paths": [entry[0].path for entry in dir_found] + [c.wanted.path for c in found],
        "content_changed_paths": [c.wanted.path for c in found if c.content],
        "diff": [
            text_diff(d.path, f"directory: {before}\n", f"directory: {_meta(d.mode, d.uid, d.gid)}\n")
            for d, before in dir_found
        ]
        + [diff(c) for c in found],
    }
    if not result["changed"] or check_mode:
        return result
    refused = [p for p in (validate(c, run, tmpdir or tempfile.gettempdir()) for c in found) if p]
    if refused:
        return {**result, "failed": True, **unchanged, "msg": "node_files: nothing was written; " + "; ".join(refused)}
    for entry in dir_found:
        make_directory(at(root, entry[0].path), entry[0])
    for change in found:
        item = change.wanted
        atomic_write(at(root, item.path), item.content, item.mode, item.uid, item.gid, dir_mode=0o755)
    return result
