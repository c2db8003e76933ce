# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster's SSH deploy key: ed25519, generated with ``cryptography``, kept 0600.

The private key lives in one file (OpenSSH format, no passphrase: the GitOps
agent reads it unattended), the public key beside it as ``<path>.pub``. A key
that exists is always reused, never regenerated: rotating is deleting the file.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.core import DeployKey

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover - depends on the host
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = str(exc)

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import atomic_write, read_bytes


class DeployKeyError(Exception):
    pass


def _require() -> None:
    if not HAS_CRYPTOGRAPHY:
        raise DeployKeyError(
            f"the Python library cryptography is needed for the deploy key: {CRYPTOGRAPHY_IMPORT_ERROR}"
        )


def generate(comment: str) -> DeployKey:
    _require()
    private = ed25519.Ed25519PrivateKey.generate()
    private_text = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return DeployKey(private_openssh=private_text, public_openssh=f"{public.decode()} {comment}".strip())


def load(private_text: str, comment: str = "", source: str = "deploy_key") -> DeployKey:
    """Parse an OpenSSH private key; only ed25519 is accepted."""
    _require()
    try:
        private = serialization.load_ssh_private_key(private_text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise DeployKeyError(f"{source}: not an unencrypted OpenSSH private key ({exc})") from None
    if not isinstance(private, ed25519.Ed25519PrivateKey):
        raise DeployKeyError(f"{source}: found a {type(private).__name__}, allowed: an ed25519 key")
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    text = private_text if private_text.endswith("\n") else private_text + "\n"
    return DeployKey(private_openssh=text, public_openssh=f"{public.decode()} {comment}".strip())


def trusted(private_text: str, public_text: str) -> DeployKey:
    """A key pair checked elsewhere (the controller); only its shape is checked here, without cryptography."""
    if "OPENSSH PRIVATE KEY" not in private_text:
        raise DeployKeyError("deploy_key: not an OpenSSH private key")
    if not public_text.startswith("ssh-ed25519 "):
        raise DeployKeyError("deploy_key_public: found a non-ed25519 public key, allowed: ssh-ed25519 ...")
    text = private_text if private_text.endswith("\n") else private_text + "\n"
    return DeployKey(private_openssh=text, public_openssh=public_text.strip())


def ensure(path: str, comment: str, check_mode: bool = False) -> tuple[DeployKey | None, bool]:
    """The key at ``path``, generated (0600, with ``path``.pub 0644) when missing.

    Returns (key, changed). In check mode a missing key is reported as a change
    and None is returned: nothing is generated.
    """
    existing = read_bytes(path)
    if existing is not None:
        key = load(existing.decode(errors="replace"), comment, source=path)
        changed = False
        if not check_mode:
            changed = atomic_write(path, key.private_openssh.encode(), mode=0o600)
            changed = atomic_write(path + ".pub", (key.public_openssh + "\n").encode(), mode=0o644) or changed
        else:
            changed = (os.stat(path).st_mode & 0o777) != 0o600
        return key, changed
    if check_mode:
        return None, True
    key = generate(comment)
    atomic_write(path, key.private_openssh.encode(), mode=0o600, dir_mode=0o700)
    atomic_write(path + ".pub", (key.public_openssh + "\n").encode(), mode=0o644, dir_mode=0o700)
    return key, True


ROTATIONS_SUFFIX = ".rotations.json"
_ROTATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


def _rotations(path: str) -> dict[str, Any]:
    raw = read_bytes(path + ROTATIONS_SUFFIX)
    try:
        data = json.loads(raw) if raw is not None else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def rotate(path: str, comment: str, rotation_id: str, check_mode: bool = False) -> dict[str, Any]:
    """Replace the key at ``path`` with a new one, once per ``rotation_id``.

    The record ``<path>.rotations.json`` (0600) keeps, per rotation, its time and the old and new keys'
    fingerprints (no key). A rotation already recorded changes nothing. The old private key is gone once
    the new one is written; its public half and fingerprint are returned, to remove it at the Git host.
    """
    if not _ROTATION_ID.match(rotation_id):
        raise DeployKeyError(f"rotation_id {rotation_id!r}: use letters, digits, '.', '_' and '-'")
    done = _rotations(path).get(rotation_id)
    if isinstance(done, dict):
        key, changed = ensure(path, comment, check_mode)
        return {"key": key, "changed": changed, "rotated": False, **done}
    existing = read_bytes(path)
    old = load(existing.decode(errors="replace"), comment, source=path) if existing is not None else None
    record = {
        "rotated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "old_public_key": old.public_openssh if old else "",
        "old_fingerprint": old.ssh_fingerprint if old else "",
    }
    if check_mode:
        return {"key": None, "changed": True, "rotated": True, **record, "new_fingerprint": ""}
    key = generate(comment)
    record["new_fingerprint"] = key.ssh_fingerprint
    atomic_write(path + ".pub", (key.public_openssh + "\n").encode(), mode=0o644, dir_mode=0o700)
    atomic_write(path, key.private_openssh.encode(), mode=0o600, dir_mode=0o700)
    rotations = _rotations(path)
    rotations[rotation_id] = record
    content = (json.dumps(rotations, indent=2, sort_keys=True) + "\n").encode()
    atomic_write(path + ROTATIONS_SUFFIX, content, mode=0o600, dir_mode=0o700)
    return {"key": key, "changed": True, "rotated": True, **record}
