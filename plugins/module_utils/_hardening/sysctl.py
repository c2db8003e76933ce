# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running kernel parameters, all of them in one module run.

The role writes the sysctl.d files (the values after a reboot); this sets the running values that differ,
reading and writing ``/proc/sys`` directly. One module run checks every parameter: a run that changes
nothing costs one round trip to the node, not one per parameter.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROC_SYS = "/proc/sys"


def key_path(root: str, key: str) -> str:
    """``net.ipv4.ip_forward`` → ``<root>/net/ipv4/ip_forward`` (a ``/`` in a key is a ``.`` in the path)."""
    return os.path.join(root, *(part.replace("/", ".") for part in key.split(".")))


def normal(value: Any) -> str:
    """The form the kernel prints: tokens separated by one space; a boolean as 1 or 0."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return " ".join(str(value).split())


def key_problems(values: Mapping[str, Any]) -> list[str]:
    """Every key or value that cannot name a running kernel parameter, all at once."""
    problems = []
    for key, value in values.items():
        parts = str(key).split(".")
        if not key or any(p in ("", "..") for p in parts) or str(key).startswith("/"):
            problems.append(f"{key!r}: not a sysctl name (dot-separated, like net.ipv4.ip_forward)")
        if value is None or isinstance(value, (dict, list)) or normal(value) == "":
            problems.append(f"{key}: the value {value!r} is not a scalar (allowed: a number or a string)")
    return problems


@dataclass
class Plan:
    before: dict[str, str] = field(default_factory=dict)  # the running value of every key the kernel has
    change: dict[str, str] = field(default_factory=dict)  # key → the value to write
    absent: list[str] = field(default_factory=list)  # keys this kernel does not have (skipped)


def read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return normal(handle.read())


def plan(root: str, values: Mapping[str, Any]) -> Plan:
    result = Plan()
    for key in sorted(values):
        path = key_path(root, key)
        if not os.path.isfile(path):
            result.absent.append(key)
            continue
        current = read(path)
        result.before[key] = current
        wanted = normal(values[key])
        if current != wanted:
            result.change[key] = wanted
    return result


def apply(root: str, change: Mapping[str, str]) -> list[str]:
    """Write each value; a value the kernel refuses or does not keep is a problem (all are tried)."""
    problems = []
    for key, value in change.items():
        path = key_path(root, key)
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(value + "\n")
            kept = read(path)
        except OSError as exc:
            reason = "read-only here (a container?)" if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else ""
            problems.append(f"{key}={value}: {exc.strerror or exc}{'; ' + reason if reason else ''}")
            continue
        if kept != value:
            problems.append(f"{key}={value}: the kernel kept {kept!r}")
    return problems


def lines(values: Mapping[str, str]) -> str:
    return "".join(f"{key} = {value}\n" for key, value in sorted(values.items()))


def run_sysctl_values(params: Mapping[str, Any], check_mode: bool) -> dict[str, Any]:
    """The module's whole behaviour; a dict for ``result.finish``."""
    root = str(params.get("root") or PROC_SYS)
    values = dict(params.get("values") or {})
    problems = key_problems(values)
    if problems:
        return {"failed": True, "changed": False, "msg": "sysctl_values: " + "; ".join(problems)}
    wanted = plan(root, values)
    after = dict(wanted.before, **wanted.change)
    result: dict[str, Any] = {
        "changed": bool(wanted.change),
        "applied": sorted(wanted.change),
        "absent": wanted.absent,
        "diff": {
            "before_header": root,
            "after_header": root,
            "before": lines({k: wanted.before[k] for k in wanted.change}),
            "after": lines(wanted.change),
        },
    }
    if wanted.change and not check_mode:
        failed = apply(root, wanted.change)
        if failed:
            result.update(failed=True, msg="sysctl_values: the kernel refused " + "; ".join(failed))
    result["values"] = after
    return result
