# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes object names the collection checks before it writes or applies anything."""

from __future__ import annotations

import re

# An RFC 1123 label, as Kubernetes requires of a namespace and of most object names: 1-63 of a-z, 0-9 and '-',
# starting and ending with a letter or digit.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")


def is_dns1123_label(value: object) -> bool:
    """Whether ``value`` is a string that is an RFC 1123 label."""
    return isinstance(value, str) and _DNS1123_LABEL.match(value) is not None
