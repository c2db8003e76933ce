# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Join token rotation on one running server, the distribution's own way.

Private to edgefleet.k8s: no stable API. The strategy's :class:`TokenRotation` says how; this file
does it once for every distribution:

- a shared cluster token (K3s): the new token is first written beside the token file (0600), then the
  distribution's rotate command runs with both tokens in its environment only, then the new token
  replaces the token file and a restart is recorded. Each rotation has an ID; a record of it (times and
  fingerprints, never a token) makes a second run with the same ID change nothing.
- per-node join tokens (K0s): every join token still valid is invalidated. Nothing restarts.

A fingerprint is the first 16 hex digits of the token's sha256: enough to tell tokens apart in an
evidence record, nothing that gives the token back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import atomic_write, read_bytes
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.backup import utc
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.config import (
    RESTART_MARKER_TEXT,
    generate_token,
    mask_credentials,
    token_bytes,
)
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.strategy import Distribution

STATE_DIR = "/var/lib/edgefleet/token-rotations"
PENDING_SUFFIX = ".rotating"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")

# argv, extra environment -> rc, stdout, stderr
Runner = Callable[[Sequence[str], Mapping[str, str]], "tuple[int, str, str]"]


def fingerprint(token: str) -> str:
    """A token's fingerprint for records and reports: not the token, not reversible."""
    return "sha256:" + hashlib.sha256(token.strip().encode()).hexdigest()[:16]


def _now() -> str:
    return utc().strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_text(path: str) -> str | None:
    raw = read_bytes(path)
    return raw.decode().strip() if raw is not None else None


def _server_holds(dist: Distribution, token: str, root: str) -> bool:
    """Whether the server's own token file already holds ``token`` (a rotation finished on the server
    but not on our side). Tokens in the ``K10<ca hash>::<user>:<password>`` form compare by password."""
    if not dist.server_token_path:
        return False
    stored = _read_text(os.path.join(root, dist.server_token_path.lstrip("/")))
    if not stored:
        return False
    return stored == token or stored.rsplit(":", 1)[-1] == token.rsplit(":", 1)[-1]


def _failed(msg: str, **extra: Any) -> dict[str, Any]:
    return {"failed": True, "changed": False, "msg": msg, **extra}


def rotate(
    dist: Distribution,
    rotation_id: str,
    run: Runner,
    check_mode: bool = False,
    token_file: str = "",
    new_token: str = "",
    restart_marker: str = "",
    state_dir: str = "",
    root: str = "/",
    owner: tuple[int | None, int | None] = (0, 0),
) -> dict[str, Any]:
    """Rotate the join secret of the cluster whose server this runs on; the module's result."""
    if not _ID.match(rotation_id or ""):
        return _failed(
            f"rotation_id {rotation_id!r}: use letters, digits, '.', '_' and '-' (up to 128), starting with a "
            "letter or digit"
        )
    how = dist.token_rotation()
    state_path = os.path.join(state_dir or STATE_DIR, rotation_id + ".json")
    if not how.shared:
        return _invalidate(dist, rotation_id, run, check_mode, state_path, owner)

    path = token_file or dist.token_file
    current = _read_text(path)
    if not current:
        return _failed(
            f"{path}: no token to rotate; run this on a server of a converged {dist.title} cluster "
            "(the distribution role writes the token file)"
        )
    record = _load_record(state_path)
    result: dict[str, Any] = {
        "changed": False,
        "shared": True,
        "rotation_id": rotation_id,
        "token_file": path,
        "restart_required": False,
        "invalidated": [],
    }
    if record and record.get("new_fingerprint") == fingerprint(current):
        result.update({k: record.get(k) for k in ("rotated_at", "old_fingerprint", "new_fingerprint")})
        result["msg"] = f"rotation {rotation_id} already done at {record.get('rotated_at')}"
        return result
    result["diff"] = [{"before_header": path, "after_header": path, "before": f"<token {fingerprint(current)}>\n"}]
    if check_mode:
        result["diff"][0]["after"] = "<a new token>\n"
        result.update(changed=True, restart_required=True, old_fingerprint=fingerprint(current))
        result["msg"] = f"would rotate the {dist.title} token with {' '.join(how.rotate_argv)}"
        return result

    uid, gid = owner
    pending_path = path + PENDING_SUFFIX
    pending = _read_text(pending_path)
    if pending and pending != current and _server_holds(dist, pending, root):
        new = pending  # the server took this token in a run that died before it was written back
    else:
        new = (new_token or generate_token()).strip()
        if new == current:
            return _failed(f"the new token is the current token of {path}; give another or none")
        atomic_write(pending_path, token_bytes(new), 0o600, uid, gid)
        rc, out, err = run(list(how.rotate_argv), {how.current_env: current, how.new_env: new})
        if rc != 0:
            os.unlink(pending_path)
            detail = mask_credentials((err or out).strip())[-1500:]
            detail = detail.replace(current, "<redacted>").replace(new, "<redacted>")
            return _failed(f"{' '.join(how.rotate_argv)} exited {rc}: {detail}", rc=rc)
    atomic_write(path, token_bytes(new), 0o600, uid, gid, dir_mode=0o700)
    os.unlink(pending_path)
    if restart_marker:
        atomic_write(restart_marker, RESTART_MARKER_TEXT, 0o600, uid, gid, dir_mode=0o700)
    record = {
        "rotation_id": rotation_id,
        "rotated_at": _now(),
        "old_fingerprint": fingerprint(current),
        "new_fingerprint": fingerprint(new),
    }
    _write_record(state_path, record, owner)
    result["diff"][0]["after"] = f"<token {record['new_fingerprint']}>\n"
    result.update(changed=True, restart_required=True, **{k: v for k, v in record.items() if k != "rotation_id"})
    result["msg"] = f"rotated the {dist.title} token ({record['old_fingerprint']} -> {record['new_fingerprint']})"
    return result


def _invalidate(
    dist: Distribution,
    rotation_id: str,
    run: Runner,
    check_mode: bool,
    state_path: str,
    owner: tuple[int | None, int | None],
) -> dict[str, Any]:
    how = dist.token_rotation()
    ids: list[str] = []
    for argv in how.list_argvs:
        rc, out, err = run(list(argv), {})
        if rc != 0:
            return _failed(f"{' '.join(argv)} exited {rc}: {(err or out).strip()[-1500:]}", rc=rc)
        ids.extend(i for i in dist.join_token_ids(out) if i not in ids)
    result: dict[str, Any] = {
        "changed": bool(ids),
        "shared": False,
        "rotation_id": rotation_id,
        "restart_required": False,
        "invalidated": ids,
    }
    if not ids:
        record = _load_record(state_path) or {}
        result["rotated_at"] = record.get("rotated_at")
        result["msg"] = "no join token left to invalidate"
        return result
    if check_mode:
        result["msg"] = f"would invalidate {len(ids)} join token(s)"
        return result
    rc, out, err = run([*how.invalidate_argv, *ids], {})
    if rc != 0:
        return _failed(f"{' '.join(how.invalidate_argv)} exited {rc}: {(err or out).strip()[-1500:]}", rc=rc)
    record = {"rotation_id": rotation_id, "rotated_at": _now(), "invalidated": ids}
    _write_record(state_path, record, owner)
    result["rotated_at"] = record["rotated_at"]
    result["msg"] = f"invalidated {len(ids)} join token(s): {', '.join(ids)}"
    return result


def _load_record(path: str) -> dict[str, Any] | None:
    raw = read_bytes(path)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _write_record(path: str, record: Mapping[str, Any], owner: tuple[int | None, int | None]) -> None:
    uid, gid = owner
    content = (json.dumps(dict(record), indent=2, sort_keys=True) + "\n").encode()
    atomic_write(path, content, 0o600, uid, gid, dir_mode=0o700)
