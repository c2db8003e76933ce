# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tang key rotation on the Tang server, and which LUKS slots of a node a Tang rotation must rebind.

Private to edgefleet.k8s: no stable API. The Tang way: new keys are generated (advertised at once); the old
ones are renamed to hidden files (``.<name>.jwk``: no longer advertised, still able to recover the clients
bound to them); every client is rebound (``clevis luks regen``) to the new advertisement; only then are the
hidden old keys deleted (retired), after which a disk bound to them alone can never unlock through Tang.

A rotation has an ID; its record (``<db_dir>/../edgefleet-tang-rotations/<id>.json``) holds the key file
names and times, never key material. A second run with the same ID changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import atomic_write, read_bytes

Runner = Callable[[Sequence[str]], "tuple[int, str, str]"]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
# `clevis luks list` lines: "1: tang '{"url":...}'", "2: sss '{"t":1,"pins":{"tang":[...],...}}'"
_SLOT = re.compile(r"^\s*(\d+):\s+(\S+)\s+'(.*)'\s*$")


def advertised(db_dir: str) -> list[str]:
    """The key files the server advertises (``*.jwk`` not hidden), sorted."""
    try:
        names = os.listdir(db_dir)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.endswith(".jwk") and not n.startswith("."))


def record_path(db_dir: str, rotation_id: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(db_dir)), "edgefleet-tang-rotations", rotation_id + ".json")


def _load(path: str) -> dict[str, Any] | None:
    raw = read_bytes(path)
    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _save(path: str, record: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode(), 0o600, dir_mode=0o700)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _failed(msg: str) -> dict[str, Any]:
    return {"failed": True, "changed": False, "msg": msg}


def rotate(
    db_dir: str, rotation_id: str, keygen: Sequence[str], run: Runner, check_mode: bool = False
) -> dict[str, Any]:
    """New keys generated, the old ones hidden (still able to recover); once per ``rotation_id``."""
    if not _ID.match(rotation_id or ""):
        return _failed(f"rotation_id {rotation_id!r}: use letters, digits, '.', '_' and '-'")
    path = record_path(db_dir, rotation_id)
    record = _load(path)
    if record:
        return {"changed": False, **record}
    old = advertised(db_dir)
    if not old:
        return _failed(f"{db_dir}: the Tang server advertises no key (*.jwk); is this the Tang key directory?")
    if check_mode:
        return {"changed": True, "rotation_id": rotation_id, "old_keys": old, "new_keys": [], "retired": False}
    rc, out, err = run([*keygen, db_dir])
    new = [n for n in advertised(db_dir) if n not in old]
    if rc != 0 or not new:
        return _failed(
            f"{' '.join(keygen)} {db_dir} exited {rc} and made {len(new)} new key(s): {(err or out)[-1500:]}"
        )
    for name in old:
        os.replace(os.path.join(db_dir, name), os.path.join(db_dir, "." + name))
    record = {"rotation_id": rotation_id, "rotated_at": _now(), "old_keys": old, "new_keys": new, "retired": False}
    _save(path, record)
    return {"changed": True, **record}


def retire(db_dir: str, rotation_id: str, check_mode: bool = False) -> dict[str, Any]:
    """Delete the hidden old keys of rotation ``rotation_id``: from now on only the new keys recover."""
    path = record_path(db_dir, rotation_id)
    record = _load(path)
    if not record:
        return _failed(f"no Tang rotation {rotation_id!r} recorded in {os.path.dirname(path)}; rotate first")
    hidden = [os.path.join(db_dir, "." + n) for n in record.get("old_keys", [])]
    present = [p for p in hidden if os.path.exists(p)]
    if not present:
        return {"changed": False, **record}
    if check_mode:
        return {"changed": True, **record}
    for p in present:
        os.unlink(p)
    record.update(retired=True, retired_at=_now())
    _save(path, record)
    return {"changed": True, **record}


def tang_slots(listing: str) -> list[int]:
    """The LUKS key slots a Tang rotation must rebind: those whose clevis pin is tang, or sss with a tang pin."""
    slots = []
    for line in listing.splitlines():
        found = _SLOT.match(line)
        if not found:
            continue
        slot, pin, config = int(found.group(1)), found.group(2), found.group(3)
        if pin == "tang" or (pin == "sss" and '"tang"' in config):
            slots.append(slot)
    return slots
