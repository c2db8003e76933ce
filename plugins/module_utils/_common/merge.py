# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Layered config merging shared by the K3s and K0s config modules.

Pure Python, no Ansible import. Layers are merged left to right:
dicts merge recursively, ``name=value`` argument lists merge by name (a later
layer replaces the value of the same name, new names are appended), any other
value is replaced by the later layer.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any


def as_list(value: Any) -> list[Any]:
    """A repeatable flag may be given as one scalar or as a list."""
    if value is None:
        return []
    if isinstance(value, list):
        return list(value)
    return [value]


def arg_name(item: Any) -> str:
    text = str(item)
    return text.split("=", 1)[0]


def merge_arg_lists(base: Iterable[Any], extra: Iterable[Any]) -> list[str]:
    """Merge two ``name=value`` lists by name, keeping first-seen order."""
    merged: dict[str, str] = {}
    for item in list(base) + list(extra):
        merged[arg_name(item)] = str(item)
    return list(merged.values())


def deep_merge(
    base: Mapping[str, Any],
    extra: Mapping[str, Any],
    arg_list_keys: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Return ``base`` updated by ``extra`` (both left untouched)."""
    result: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if key in arg_list_keys:
            result[key] = merge_arg_lists(as_list(result.get(key)), as_list(value))
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = deep_merge(result[key], value, arg_list_keys)
        else:
            result[key] = copy.deepcopy(value)
    return result


def merge_layers(layers: Iterable[Mapping[str, Any]], arg_list_keys: frozenset[str] = frozenset()) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for layer in layers:
        result = deep_merge(result, layer, arg_list_keys)
    return result


def canonical(value: Any, list_keys: frozenset[str] = frozenset()) -> Any:
    """A form of a parsed config in which key order and one-item-vs-list don't count."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in list_keys:
                out[str(key)] = [canonical(v) for v in as_list(item)]
            else:
                out[str(key)] = canonical(item, list_keys)
        return out
    if isinstance(value, list):
        return [canonical(v, list_keys) for v in value]
    return value
