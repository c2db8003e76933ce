# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed logic for LUKS2 data volumes: the safety gate and clevis bindings.

Pure Python, no Ansible import. The modules ``luks_guard`` and ``clevis_binding``
gather facts from the node (blkid, /proc, /sys, ``clevis luks list``) and hand
them to the functions here, which decide. Nothing here runs a command.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

# The LUKS2 label that marks a header as created by edgefleet. A LUKS header
# without it is "foreign" and never reformatted without the two variables.
OWNER_LABEL = "edgefleet-data"
ALLOW_VARS = ("edgefleet_disk_encryption_allow_format", "edgefleet_disk_encryption_format_device_id")
STABLE_PREFIXES = ("/dev/disk/by-id/", "/dev/disk/by-path/", "/dev/disk/by-uuid/", "/dev/disk/by-partuuid/")
PINS = ("tpm2", "tang", "sss")


# --------------------------------------------------------------------------- safety gate


@dataclass(frozen=True)
class DeviceFacts:
    """What the node says about one block device (gathered by the module)."""

    requested: str
    path: str  # the resolved /dev/<kernel name>
    is_block: bool
    stable_ids: tuple[str, ...] = ()
    probe: dict[str, str] = field(default_factory=dict)  # blkid -p -o export
    mounted_at: tuple[str, ...] = ()  # mount points of the device or its partitions
    swap: bool = False
    backs_root: bool = False
    holders: tuple[str, ...] = ()  # /sys/class/block/<dev>/holders


@dataclass(frozen=True)
class GuardDecision:
    action: str  # "format" or "reuse"
    found: str  # what the device holds, in words
    luks_uuid: str | None
    problems: tuple[str, ...]


def parse_blkid_export(text: str) -> dict[str, str]:
    """Parse ``blkid -p -o export`` output (KEY=value lines)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def describe_probe(probe: dict[str, str]) -> str:
    """A short human description of what blkid found on a device."""
    if not probe:
        return "no signature (blank)"
    if "PTTYPE" in probe and "TYPE" not in probe:
        return f"a {probe['PTTYPE']} partition table"
    kind = probe.get("TYPE", "unknown")
    details = [f"{k}={probe[k]}" for k in ("VERSION", "UUID", "LABEL") if probe.get(k)]
    name = "a LUKS header" if kind == "crypto_LUKS" else f"a filesystem or signature of type {kind}"
    return f"{name} ({', '.join(details)})" if details else name


def is_stable_path(path: str) -> bool:
    return path.startswith(STABLE_PREFIXES) or path.startswith(("UUID=", "PARTUUID="))


def decide(
    facts: DeviceFacts,
    *,
    owner_label: str = OWNER_LABEL,
    allow_format: bool = False,
    format_device_id: str | None = None,
    require_stable: bool = True,
) -> GuardDecision:
    """Decide whether the device may be formatted, reused, or must be refused.

    Every problem found is listed (not only the first). ``problems`` empty means
    the caller may go on with ``action``.
    """
    problems: list[str] = []
    dev = f"{facts.requested} ({facts.path})" if facts.requested != facts.path else facts.path
    if not facts.is_block:
        return GuardDecision("refuse", "not a block device", None, (f"{dev}: not a block device or does not exist",))
    if require_stable and not is_stable_path(facts.requested):
        problems.append(
            f"{dev}: not a stable device path; use one of {', '.join(facts.stable_ids) or '/dev/disk/by-id/...'}"
        )
    # Always refused, whatever the variables say.
    if facts.backs_root:
        problems.append(f"{dev}: backs the root filesystem; it is never touched")
    if facts.mounted_at:
        problems.append(f"{dev}: is mounted at {', '.join(facts.mounted_at)}; a mounted device is never touched")
    if facts.swap:
        problems.append(f"{dev}: is in use as swap; it is never touched")

    probe = facts.probe
    found = describe_probe(probe)
    kind = probe.get("TYPE")
    luks_uuid = probe.get("UUID") if kind == "crypto_LUKS" else None
    ours = kind == "crypto_LUKS" and probe.get("LABEL") == owner_label
    if ours:
        return GuardDecision("reuse", found, luks_uuid, tuple(problems))
    if kind == "crypto_LUKS" and facts.holders:
        problems.append(f"{dev}: its foreign LUKS header is open ({', '.join(facts.holders)}); it is never touched")
    if probe:
        allowed = (
            allow_format and format_device_id is not None and format_device_id in (*facts.stable_ids, facts.requested)
        )
        if not allowed:
            why = ""
            if allow_format and format_device_id is not None:
                why = f" ({ALLOW_VARS[1]}={format_device_id!r} is not one of this device's ids)"
            problems.append(
                f"{dev}: holds {found}, which edgefleet did not create; refusing to format it{why}. "
                f"To destroy its contents set BOTH {ALLOW_VARS[0]}: true AND {ALLOW_VARS[1]}: "
                f"{facts.stable_ids[0] if facts.stable_ids else facts.requested!r}"
                f" (its stable ids: {', '.join(facts.stable_ids) or 'none'})"
            )
    return GuardDecision("format", found, None, tuple(problems))


# --------------------------------------------------------------------------- /proc and /sys readers


def dev_name(path: str) -> str:
    return os.path.basename(os.path.realpath(path))


def majmin(name: str, sys_block: str = "/sys/class/block") -> str | None:
    try:
        with open(os.path.join(sys_block, name, "dev"), encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def partitions(name: str, sys_block: str = "/sys/class/block") -> list[str]:
    base = os.path.join(sys_block, name)
    try:
        entries = os.listdir(base)
    except OSError:
        return []
    return sorted(e for e in entries if e.startswith(name) and os.path.exists(os.path.join(base, e, "partition")))


def list_dir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def backing_disks(name: str, sys_block: str = "/sys/class/block") -> set[str]:
    """Every block device under ``name``: its slaves (dm, md) recursively, and a partition's disk."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.add(cur)
        todo.extend(list_dir(os.path.join(sys_block, cur, "slaves")))
        real = os.path.realpath(os.path.join(sys_block, cur))
        if os.path.exists(os.path.join(real, "partition")):
            todo.append(os.path.basename(os.path.dirname(real)))
    return seen


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(major:minor, mount point) for each line of /proc/self/mountinfo."""
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 4:
            out.append((parts[2], parts[4].replace("\\040", " ")))
    return out


def root_majmin(mounts: list[tuple[str, str]]) -> str | None:
    for mm, point in mounts:
        if point == "/":
            return mm
    return None


def name_for_majmin(mm: str, sys_block: str = "/sys/class/block") -> str | None:
    for name in list_dir(sys_block):
        if majmin(name, sys_block) == mm:
            return name
    return None


def stable_ids_for(name: str, disk_dir: str = "/dev/disk") -> tuple[str, ...]:
    ids: list[str] = []
    for sub in ("by-id", "by-path", "by-uuid", "by-partuuid"):
        folder = os.path.join(disk_dir, sub)
        for link in list_dir(folder):
            full = os.path.join(folder, link)
            if os.path.basename(os.path.realpath(full)) == name:
                ids.append(full)
    return tuple(ids)


# --------------------------------------------------------------------------- clevis bindings


@dataclass(frozen=True)
class Binding:
    slot: int
    pin: str
    config: dict[str, Any]


_LIST_LINE = re.compile(r"^\s*(\d+):\s*(\S+)\s+'(.*)'\s*$")


def parse_clevis_list(text: str) -> list[Binding]:
    """Parse ``clevis luks list -d DEV`` output: ``<slot>: <pin> '<json config>'`` per line."""
    out: list[Binding] = []
    for line in text.splitlines():
        match = _LIST_LINE.match(line)
        if not match:
            continue
        try:
            config = json.loads(match.group(3))
        except ValueError:
            config = {"_unparsed": match.group(3)}
        out.append(Binding(int(match.group(1)), match.group(2), config if isinstance(config, dict) else {}))
    return out


_TPM2_DEFAULTS = {"hash": "sha256", "key": "ecc"}


def _norm_pcrs(value: Any) -> str:
    items = [str(v).strip() for v in value] if isinstance(value, list) else [v.strip() for v in str(value).split(",")]
    return ",".join(str(n) for n in sorted({int(v) for v in items if v != ""}))


def normalize(pin: str, config: dict[str, Any]) -> Any:
    """A canonical form of a pin config, so that what we ask for and what
    ``clevis luks list`` prints compare equal when they mean the same binding.

    Only the keys that decide what unlocks the volume are kept: the Tang ``url``
    (not the advertisement), the TPM2 hash/key/PCR bank/PCR ids, the sss
    threshold and its pins (as sorted lists).
    """
    if pin == "tang":
        return {"url": str(config.get("url", "")).rstrip("/")}
    if pin == "tpm2":
        out: dict[str, Any] = {k: str(config.get(k, v)) for k, v in _TPM2_DEFAULTS.items()}
        if config.get("pcr_ids") not in (None, "", []):
            out["pcr_ids"] = _norm_pcrs(config["pcr_ids"])
            out["pcr_bank"] = str(config.get("pcr_bank", "sha256"))
        return out
    if pin == "sss":
        pins: dict[str, Any] = {}
        raw = config.get("pins", {})
        if isinstance(raw, dict):
            for sub, cfgs in raw.items():
                items = cfgs if isinstance(cfgs, list) else [cfgs]
                normed = [normalize(str(sub), c if isinstance(c, dict) else {}) for c in items]
                pins[str(sub)] = sorted(normed, key=lambda c: json.dumps(c, sort_keys=True))
        return {"t": int(config.get("t", 1)), "pins": pins}
    return config


def config_problems(pin: str, config: dict[str, Any], where: str = "config") -> list[str]:
    """Every problem with a pin config, each naming the key, what was found and what is allowed."""
    problems: list[str] = []
    if pin not in PINS:
        return [f"{where}: pin {pin!r} is not supported; allowed: {', '.join(PINS)}"]
    if pin == "tang":
        url = config.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            problems.append(f"{where}.url: {url!r} is not a Tang URL (http:// or https://host[:port])")
    elif pin == "tpm2":
        unknown = sorted(set(config) - {"hash", "key", "pcr_bank", "pcr_ids", "pcr_digest"})
        if unknown:
            problems.append(f"{where}: unknown tpm2 keys {unknown}; allowed: hash, key, pcr_bank, pcr_ids, pcr_digest")
        if config.get("pcr_ids") not in (None, "", []):
            try:
                pcrs = [int(p) for p in _norm_pcrs(config["pcr_ids"]).split(",") if p]
            except ValueError:
                pcrs = [-1]
            if any(p < 0 or p > 23 for p in pcrs):
                problems.append(f"{where}.pcr_ids: {config['pcr_ids']!r} is not a list of PCR numbers 0-23")
    else:
        pins = config.get("pins")
        if not isinstance(pins, dict) or not pins:
            problems.append(f"{where}.pins: {pins!r} must be a mapping of pin name to config or list of configs")
            return problems
        count = 0
        for sub, cfgs in pins.items():
            items = cfgs if isinstance(cfgs, list) else [cfgs]
            for i, item in enumerate(items):
                count += 1
                if not isinstance(item, dict):
                    problems.append(f"{where}.pins.{sub}[{i}]: {item!r} must be a mapping")
                else:
                    problems.extend(config_problems(str(sub), item, f"{where}.pins.{sub}[{i}]"))
        t = config.get("t")
        if not isinstance(t, int) or isinstance(t, bool) or t < 1 or t > count:
            problems.append(f"{where}.t: {t!r} must be an integer from 1 to the number of pins ({count})")
    return problems


def clevis_json(pin: str, config: dict[str, Any]) -> str:
    """The JSON config passed to ``clevis luks bind`` (PCR lists joined as clevis wants)."""

    def fix(p: str, c: dict[str, Any]) -> dict[str, Any]:
        out = dict(c)
        if p == "tpm2" and out.get("pcr_ids") not in (None, "", []):
            # clevis picks a bank on its own when none is given (sha1 on some TPMs);
            # name it, so that what is stored is what normalize() expects.
            out["pcr_ids"] = _norm_pcrs(out["pcr_ids"])
            out.setdefault("pcr_bank", "sha256")
        if p == "sss":
            pins = {}
            for sub, cfgs in dict(out.get("pins", {})).items():
                items = cfgs if isinstance(cfgs, list) else [cfgs]
                pins[sub] = [fix(str(sub), i) for i in items]
            out["pins"] = pins
        return out

    return json.dumps(fix(pin, config), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class BindingPlan:
    keep: tuple[int, ...]  # slots already bound as wanted
    add: bool  # a new binding is needed
    remove: tuple[int, ...]  # slots of this pin bound differently (replaced)


def plan_binding(existing: list[Binding], pin: str, config: dict[str, Any], state: str = "present") -> BindingPlan:
    """What to do so that exactly the wanted binding of ``pin`` exists (or none, for absent)."""
    mine = [b for b in existing if b.pin == pin]
    if state == "absent":
        return BindingPlan((), False, tuple(b.slot for b in mine))
    want = normalize(pin, config)
    same = [b.slot for b in mine if normalize(pin, b.config) == want]
    if same:
        # One matching binding is enough; extra duplicates and other configs go.
        others = tuple(b.slot for b in mine if b.slot != same[0])
        return BindingPlan((same[0],), False, others)
    return BindingPlan((), True, tuple(b.slot for b in mine))


def describe_planned(pin: str, config: dict[str, Any]) -> str:
    return f"slot ?: {pin} {json.dumps(normalize(pin, config), sort_keys=True)}"


def describe_bindings(bindings: list[Binding]) -> list[str]:
    """Diff-friendly lines, one per binding (no secret: clevis configs hold none)."""
    return [f"slot {b.slot}: {b.pin} {json.dumps(normalize(b.pin, b.config), sort_keys=True)}" for b in bindings]
