# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recovery passphrases for LUKS data volumes: generation and escrow file names.

Pure Python, no Ansible import. The encryption itself (ansible-vault) happens in
the action plugin ``recovery_escrow``, which has the controller's vault secrets.
"""

from __future__ import annotations

import os
import re
import secrets

# 8 groups of 6 characters from an alphabet without look-alikes: easy to read
# out over a phone to someone at the site, ~246 bits of entropy.
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
GROUPS = 8
GROUP_LEN = 6
_HOST = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")


def generate_passphrase(groups: int = GROUPS, group_len: int = GROUP_LEN) -> str:
    return "-".join("".join(secrets.choice(_ALPHABET) for _char in range(group_len)) for _group in range(groups))


def passphrase_problems(value: str) -> list[str]:
    """Why a stored passphrase cannot be used (never echoes the value)."""
    problems = []
    if len(value) < 20:
        problems.append(f"it is {len(value)} characters long; at least 20 are required")
    if value != value.strip() or "\n" in value:
        problems.append("it has leading/trailing whitespace or a newline")
    return problems


def escrow_path(escrow_dir: str, host: str, volume: str) -> str:
    """The controller file holding one node's recovery passphrase for one volume."""
    for what, value in (("host", host), ("volume", volume)):
        if not _HOST.match(value):
            raise ValueError(f"escrow {what} name {value!r} is not a DNS-1123 name")
    return os.path.join(os.path.expanduser(escrow_dir), f"{host}.{volume}.recovery.vault")
