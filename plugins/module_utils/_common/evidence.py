# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence records: what a decommission or a rotation revoked and rotated, as JSON, never a secret.

Private to edgefleet.k8s: no stable API. A record is written once per run that changed something, to a
new file (``<name>-<UTC time>.json``, 0600), never over an earlier one; a run that changed nothing writes
none when a record of the same name exists. Before anything is written the record is searched for every
secret value given; one found refuses the write.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import atomic_write

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_STAMP = re.compile(r"^[0-9]{8}T[0-9]{6}Z\Z")
MIN_SECRET = 8


def render(record: Mapping[str, Any]) -> str:
    return json.dumps(dict(record), indent=2, sort_keys=True, default=str) + "\n"


def leaked(text: str, secrets: Iterable[str]) -> int:
    """How many of ``secrets`` (those of at least MIN_SECRET characters) appear in ``text``."""
    return sum(1 for s in {str(s).strip() for s in secrets} if len(s) >= MIN_SECRET and s in text)


def existing(directory: str, name: str) -> list[str]:
    return sorted(glob.glob(os.path.join(glob.escape(directory), glob.escape(name) + "-*.json")))


def write(
    directory: str,
    name: str,
    record: Mapping[str, Any],
    stamp: str,
    changed: bool,
    secrets: Iterable[str] = (),
    check_mode: bool = False,
) -> dict[str, Any]:
    """The module's result; writes ``<directory>/<name>-<stamp>.json`` when due."""
    problems = []
    if not _NAME.match(name or ""):
        problems.append(f"name: found {name!r}; letters, digits, '.', '_' and '-'")
    if not _STAMP.match(stamp or ""):
        problems.append(f"stamp: found {stamp!r}; a UTC time as 20261206T143000Z")
    if problems:
        return {"failed": True, "changed": False, "msg": "; ".join(problems)}
    text = render(record)
    count = leaked(text, secrets)
    if count:
        return {
            "failed": True,
            "changed": False,
            "msg": f"refusing to write the evidence record {name}: it holds {count} secret value(s); nothing written",
        }
    before = existing(directory, name)
    path = os.path.join(directory, f"{name}-{stamp}.json")
    if not changed and before:
        return {"changed": False, "path": before[-1], "records": before, "msg": "nothing changed; no new record"}
    if not check_mode:
        atomic_write(path, text.encode(), 0o600, dir_mode=0o700)
    return {"changed": True, "path": path, "records": [*before, path], "msg": f"evidence record {path}"}
