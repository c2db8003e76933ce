# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preflight: what a node has (arch, RAM, kernel features, cgroups, disk, clock, Raspberry Pi boot
cmdline, Secure Boot) and what K3s/K0s need, with one message per problem.

Everything is read from /proc and /sys (never modprobe), so it is safe in containers. The
readers take the file system root as an argument so the tests can point them at a fake tree.
Pure Python, no Ansible import.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

ARCH_MAP = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "armhf",
    "armv6l": "armhf",
    "armv8l": "armhf",
}
DEFAULT_CONTROLLERS = ("cpu", "cpuset", "memory", "pids")
PI_CMDLINE_TOKENS = ("cgroup_memory=1", "cgroup_enable=memory")
PI_CMDLINE_PATHS = ("/boot/firmware/cmdline.txt", "/boot/cmdline.txt")  # Bookworm first, then older
# The UEFI global variable vendor GUID (UEFI specification, "Globally Defined Variables"): SecureBoot is 1 when the
# firmware enforces Secure Boot, SetupMode is 1 while no Platform Key is enrolled (then nothing is enforced).
EFI_GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
EFIVARFS = "/sys/firmware/efi/efivars"
SECURE_BOOT_STATES = ("enabled", "disabled", "setup_mode", "not_efi", "unknown")


@dataclass
class NodeFacts:
    machine: str = ""
    arch: str | None = None
    mem_total_mb: int = 0
    kernel: str = ""
    features: dict[str, bool] = field(default_factory=dict)
    cgroup_mode: str = "unknown"  # v1 | v2 | hybrid | unknown
    cgroup_controllers: list[str] = field(default_factory=list)
    data_path: str = ""
    data_path_checked: str = ""
    free_disk_mb: int = 0
    clock_synced: bool | None = None
    clock_source: str = "unknown"
    in_container: bool = False
    pi_model: str | None = None
    pi_cmdline_path: str | None = None
    pi_cmdline_ok: bool | None = None
    secure_boot: str = "unknown"  # one of SECURE_BOOT_STATES
    secure_boot_source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Requirements:
    host: str
    distribution: str
    role: str  # server | agent
    expected_arch: str | None
    min_ram_mb: int
    min_ram_var: str
    min_free_disk_mb: int
    min_free_disk_var: str
    controllers: tuple[str, ...] = DEFAULT_CONTROLLERS
    features: tuple[str, ...] = ("overlay", "br_netfilter", "netfilter_tool", "conntrack")
    require_clock_sync: bool = True
    require_secure_boot: bool = False


def _read(root: str, path: str) -> str | None:
    try:
        with open(os.path.join(root, path.lstrip("/")), encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _read_bytes(root: str, path: str) -> bytes | None:
    try:
        with open(os.path.join(root, path.lstrip("/")), "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _exists(root: str, path: str) -> bool:
    return os.path.exists(os.path.join(root, path.lstrip("/")))


def parse_meminfo(text: str) -> int:
    """MemTotal in MB (MiB), 0 when absent."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) // 1024
    return 0


def cgroup_mode(mounts: str) -> str:
    """v2 (unified at /sys/fs/cgroup), hybrid (v1 controllers + cgroup2 elsewhere), v1, or unknown."""
    v1 = False
    v2_root = False
    v2_other = False
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mountpoint, fstype = parts[1], parts[2]
        if fstype == "cgroup2":
            if mountpoint == "/sys/fs/cgroup":
                v2_root = True
            else:
                v2_other = True
        elif fstype == "cgroup":
            v1 = True
    if v2_root and not v1:
        return "v2"
    if v1 and (v2_other or v2_root):
        return "hybrid"
    if v1:
        return "v1"
    return "unknown"


def cgroup_controllers(mode: str, proc_cgroups: str | None, v2_controllers: str | None) -> list[str]:
    """Enabled controllers: from cgroup.controllers for v2, from /proc/cgroups otherwise."""
    if mode == "v2" and v2_controllers is not None:
        return sorted(v2_controllers.split())
    enabled: list[str] = []
    for line in (proc_cgroups or "").splitlines():
        if line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) >= 4 and parts[3] == "1":
            enabled.append(parts[0])
    return sorted(enabled)


def kernel_features(root: str, binaries: Mapping[str, bool]) -> dict[str, bool]:
    """Kernel prerequisites, read from /proc and /sys only (built-in or loaded both count)."""
    filesystems = _read(root, "/proc/filesystems") or ""
    modules = {line.split()[0] for line in (_read(root, "/proc/modules") or "").splitlines() if line.strip()}
    return {
        "overlay": any(line.split()[-1:] == ["overlay"] for line in filesystems.splitlines()) or "overlay" in modules,
        "br_netfilter": _exists(root, "/proc/sys/net/bridge/bridge-nf-call-iptables")
        or _exists(root, "/sys/module/br_netfilter")
        or "br_netfilter" in modules,
        "conntrack": _exists(root, "/proc/sys/net/netfilter/nf_conntrack_max")
        or _exists(root, "/sys/module/nf_conntrack")
        or "nf_conntrack" in modules,
        "netfilter_tool": any(binaries.values()),
    }


def in_container(root: str) -> bool:
    if _exists(root, "/run/.containerenv") or _exists(root, "/.dockerenv"):
        return True
    environ = _read(root, "/proc/1/environ") or ""
    return any(item.startswith("container=") for item in environ.split("\0"))


def _efi_flag(root: str, name: str) -> tuple[int | None, str]:
    """One byte-sized UEFI global variable: from efivarfs (4 attribute bytes, then the value) or from the older
    sysfs efivars interface (its data file holds the value alone). (None, "") when neither is readable."""
    path = f"{EFIVARFS}/{name}-{EFI_GLOBAL_GUID}"
    data = _read_bytes(root, path)
    if data is not None and len(data) >= 5:
        return data[4], path
    legacy = f"/sys/firmware/efi/vars/{name}-{EFI_GLOBAL_GUID}/data"
    data = _read_bytes(root, legacy)
    if data:
        return data[0], legacy
    return None, ""


def secure_boot_state(root: str) -> tuple[str, str]:
    """(state, where it was read): enabled, disabled, setup_mode (no Platform Key: nothing enforced), not_efi (the
    node booted without UEFI) or unknown (UEFI, but its variables are not readable here, e.g. in a container)."""
    if not _exists(root, "/sys/firmware/efi"):
        return "not_efi", "/sys/firmware/efi is absent"
    secure_boot, source = _efi_flag(root, "SecureBoot")
    if secure_boot is None:
        return "unknown", f"no readable SecureBoot variable under {EFIVARFS}"
    setup_mode = _efi_flag(root, "SetupMode")[0]
    if setup_mode == 1:
        return "setup_mode", source
    return ("enabled" if secure_boot == 1 else "disabled"), source


def pi_model(root: str) -> str | None:
    model = (_read(root, "/proc/device-tree/model") or "").replace("\0", "").strip()
    return model if "Raspberry Pi" in model else None


def pi_cmdline_path(root: str) -> str | None:
    for path in PI_CMDLINE_PATHS:
        if _exists(root, path):
            return path
    return None


def cmdline_with_tokens(text: str, tokens: Iterable[str] = PI_CMDLINE_TOKENS) -> str:
    """The cmdline (one line) with ``tokens`` added once each; other tokens keep their order.

    A token with the same key but another value (``cgroup_memory=0``) is replaced.
    """
    words = text.split()
    for token in tokens:
        key = token.split("=", 1)[0] + "="
        if token in words:
            continue
        if token.startswith("cgroup_enable="):
            words.append(token)
            continue
        replaced = False
        for index, word in enumerate(words):
            if word.startswith(key):
                words[index] = token
                replaced = True
        if not replaced:
            words.append(token)
    return " ".join(words) + "\n"


def cmdline_ok(text: str) -> bool:
    words = text.split()
    return all(token in words for token in PI_CMDLINE_TOKENS)


def nearest_existing(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def free_mb(path: str) -> int:
    stats = os.statvfs(path)
    return int(stats.f_bavail * stats.f_frsize // (1024 * 1024))


def gather(
    data_path: str,
    binaries: Mapping[str, bool],
    clock: tuple[bool | None, str],
    root: str = "/",
    machine: str | None = None,
) -> NodeFacts:
    """Collect the node's facts. ``clock`` comes from the caller (it runs timedatectl)."""
    facts = NodeFacts()
    facts.machine = machine or platform.machine()
    facts.arch = ARCH_MAP.get(facts.machine)
    facts.mem_total_mb = parse_meminfo(_read(root, "/proc/meminfo") or "")
    facts.kernel = (_read(root, "/proc/sys/kernel/osrelease") or "").strip()
    facts.features = kernel_features(root, binaries)
    facts.cgroup_mode = cgroup_mode(_read(root, "/proc/self/mounts") or _read(root, "/proc/mounts") or "")
    facts.cgroup_controllers = cgroup_controllers(
        facts.cgroup_mode, _read(root, "/proc/cgroups"), _read(root, "/sys/fs/cgroup/cgroup.controllers")
    )
    facts.data_path = data_path
    facts.data_path_checked = nearest_existing(os.path.join(root, data_path.lstrip("/")))
    facts.free_disk_mb = free_mb(facts.data_path_checked)
    facts.clock_synced, facts.clock_source = clock
    facts.in_container = in_container(root)
    facts.secure_boot, facts.secure_boot_source = secure_boot_state(root)
    facts.pi_model = pi_model(root)
    if facts.pi_model:
        facts.pi_cmdline_path = pi_cmdline_path(root)
        if facts.pi_cmdline_path:
            facts.pi_cmdline_ok = cmdline_ok(_read(root, facts.pi_cmdline_path) or "")
    return facts


def _gb(mb: int) -> str:
    return f"{mb / 1024:.1f} GB"


_FEATURE_TEXT = {
    "overlay": "the overlay filesystem (containerd's snapshotter)",
    "br_netfilter": "br_netfilter (bridged pod traffic through netfilter)",
    "conntrack": "netfilter conntrack (kube-proxy)",
    "netfilter_tool": "an iptables or nft binary (kube-proxy, network policy)",
}


_SECURE_BOOT_TEXT = {
    "enabled": "enabled",
    "disabled": "disabled in the firmware",
    "setup_mode": "in setup mode (no Platform Key enrolled, so nothing is enforced)",
    "not_efi": "not a UEFI boot",
    "unknown": "unknown (the UEFI variables cannot be read here)",
}


def evaluate(facts: NodeFacts, req: Requirements) -> tuple[list[str], list[str]]:
    """(problems, warnings), one sentence each, naming the host and the variable to change."""
    problems: list[str] = []
    warnings: list[str] = []
    host, what = req.host, f"{req.distribution.upper()} {req.role}"
    if facts.arch is None:
        problems.append(f"{host} runs on {facts.machine!r}, which no K3s/K0s build supports (amd64, arm64, armhf)")
    elif req.expected_arch and facts.arch != req.expected_arch:
        problems.append(
            f"{host} is {facts.arch} ({facts.machine}) but the fleet says arch {req.expected_arch} "
            "(edgefleet_arch); the wrong binary would be installed"
        )
    if facts.mem_total_mb < req.min_ram_mb:
        problems.append(
            f"{host} has {_gb(facts.mem_total_mb)} RAM; {what} needs ≥ {_gb(req.min_ram_mb)} ({req.min_ram_var})"
        )
    for feature in req.features:
        if not facts.features.get(feature, False):
            problems.append(f"{host} lacks {_FEATURE_TEXT.get(feature, feature)}; {what} needs it")
    missing = [c for c in req.controllers if c not in facts.cgroup_controllers]
    if missing:
        if facts.pi_model and "memory" in missing and facts.pi_cmdline_ok is False:
            missing = [c for c in missing if c != "memory"]
            warnings.append(
                f"{host} ({facts.pi_model}) has the memory cgroup disabled; "
                f"{facts.pi_cmdline_path} gets {' '.join(PI_CMDLINE_TOKENS)} and needs a reboot"
            )
        if missing:
            problems.append(
                f"{host} has cgroups {facts.cgroup_mode} without the controller(s) {', '.join(missing)}; "
                f"{what} needs {', '.join(req.controllers)} (edgefleet_preflight_cgroup_controllers)"
            )
    if facts.pi_model and facts.pi_cmdline_path is None:
        problems.append(
            f"{host} is a {facts.pi_model} but neither {' nor '.join(PI_CMDLINE_PATHS)} exists; "
            "cannot check the cgroup boot flags"
        )
    if facts.free_disk_mb < req.min_free_disk_mb:
        problems.append(
            f"{host} has {_gb(facts.free_disk_mb)} free at {facts.data_path} (checked {facts.data_path_checked}); "
            f"{what} needs ≥ {_gb(req.min_free_disk_mb)} ({req.min_free_disk_var})"
        )
    if req.require_secure_boot and facts.secure_boot != "enabled":
        problems.append(
            f"{host} does not boot with Secure Boot enforced: it is {_SECURE_BOOT_TEXT[facts.secure_boot]} "
            f"({facts.secure_boot_source}); the fleet requires it for this node "
            "(edgefleet_preflight_require_secure_boot)"
        )
    if facts.clock_synced is not True:
        state = "unknown" if facts.clock_synced is None else "not synchronised"
        text = f"{host} clock sync is {state} ({facts.clock_source}); TLS certificates and tokens need a correct clock"
        if facts.in_container or not req.require_clock_sync:
            warnings.append(text)
        else:
            problems.append(text + " (edgefleet_preflight_require_clock_sync)")
    return problems, warnings
