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


# A label name: an optional DNS-subdomain prefix and '/', then 1-63 of A-Z, a-z, 0-9, '-', '_' and '.', starting and
# ending with a letter or digit. A label value: empty, or the same 1-63 characters.
_LABEL_NAME = re.compile(r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?\Z")


def is_label_name(value: object) -> bool:
    """Whether ``value`` is a string Kubernetes accepts as a label name (key)."""
    return isinstance(value, str) and _LABEL_NAME.match(value) is not None


def is_label_value(value: object) -> bool:
    """Whether ``value`` is a string Kubernetes accepts as a label value."""
    return isinstance(value, str) and _LABEL_VALUE.match(value) is not None
