#!/usr/bin/env python3
"""Set keys in a containers.conf (TOML) without clobbering anything else.

Usage: containers_conf.py FILE section.key=VALUE [section.key=VALUE ...]

VALUE is written verbatim (already TOML). Only the named keys change; every
other line, comment and section stays as it was. The file is replaced
atomically and only when something differs. Prints what changed.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

_SECTION = re.compile(r"^\s*\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$")


def _key_re(key: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(key)}\s*=")


def set_key(lines: list[str], section: str, key: str, value: str) -> bool:
    """Set section.key = value in lines (in place); return True if changed."""
    wanted = f"{key} = {value}\n"
    start = None
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m and m.group(1) == section:
            start = i
            break
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.extend([f"\n[{section}]\n", wanted])
        return True
    end = len(lines)
    for j in range(start + 1, len(lines)):
        if _SECTION.match(lines[j]):
            end = j
            break
    key_re = _key_re(key)
    for j in range(start + 1, end):
        if key_re.match(lines[j]):
            last = j
            # A multi-line array runs until its closing bracket.
            if "[" in lines[j].split("=", 1)[1] and "]" not in lines[j]:
                while last + 1 < end and "]" not in lines[last]:
                    last += 1
            if lines[j : last + 1] == [wanted]:
                return False
            lines[j : last + 1] = [wanted]
            return True
    lines.insert(start + 1, wanted)
    return True


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[1]
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        lines = []
    changed = []
    for arg in argv[2:]:
        name, sep, value = arg.partition("=")
        section, dot, key = name.rpartition(".")
        if not sep or not dot:
            print(f"{path}: bad setting {arg!r}: expected section.key=VALUE", file=sys.stderr)
            return 2
        if set_key(lines, section, key, value):
            changed.append(f"[{section}] {key} = {value}")
    if not changed:
        return 0
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".containers.conf.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    for c in changed:
        print(f"[lab] {path}: set {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
