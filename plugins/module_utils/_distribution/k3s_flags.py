# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The K3s config-file keys we know, as the sets the validation uses.

Every set is derived from the one table in ``k3s_flag_table.py`` (which the lab stand-in reads
too); add or change a flag there, never here.
"""

from __future__ import annotations

from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k3s_flag_table import (
    AGENT,
    BOOL,
    FLAGS,
    K3S_VERSION,
    LIST,
    SERVER,
)

__all__ = [
    "AGENT_KEYS",
    "AGENT_ONLY_KEYS",
    "ARG_LIST_KEYS",
    "BOOL_KEYS",
    "K3S_VERSION",
    "LIST_KEYS",
    "MANAGED_KEYS",
    "SECRET_KEYS",
    "SERVER_KEYS",
    "SERVER_ONLY_KEYS",
]

# The keys each command accepts.
SERVER_KEYS: frozenset[str] = frozenset(f.name for f in FLAGS if SERVER in f.roles)
AGENT_KEYS: frozenset[str] = frozenset(f.name for f in FLAGS if AGENT in f.roles)
SERVER_ONLY_KEYS: frozenset[str] = SERVER_KEYS - AGENT_KEYS
AGENT_ONLY_KEYS: frozenset[str] = AGENT_KEYS - SERVER_KEYS

# Flags that take no value.
BOOL_KEYS: frozenset[str] = frozenset(f.name for f in FLAGS if f.kind == BOOL)

# Flags that may be given more than once (a YAML list in the config file).
# ``*-arg`` lists hold ``name=value`` items; they are merged by name.
LIST_KEYS: frozenset[str] = frozenset(f.name for f in FLAGS if f.kind == LIST)
ARG_LIST_KEYS: frozenset[str] = frozenset(k for k in LIST_KEYS if k.endswith("-arg"))

# Values that are secrets: redacted in diffs and return values, and refused inline
# in user overrides (they belong in a 0600 file).
SECRET_KEYS: frozenset[str] = frozenset(f.name for f in FLAGS if f.secret)

# Keys the role computes from the inventory contract; a user override may not set them.
MANAGED_KEYS: frozenset[str] = frozenset(f.name for f in FLAGS if f.managed)
