# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preflight: facts from a fake /proc + /sys tree, and the problem sentences."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._preflight import checks as preflight

HYBRID_MOUNTS = """\
sysfs /sys sysfs rw 0 0
tmpfs /sys/fs/cgroup tmpfs ro 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0
"""
V2_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n"
PROC_CGROUPS = """\
#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t1\t1\t1
cpu\t2\t1\t1
memory\t0\t1\t0
pids\t3\t1\t1
"""


def fake_root(tmp_path: Path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        path = tmp_path / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


def base_files(mem_kb: int = 4_000_000) -> dict[str, str]:
    return {
        "/proc/meminfo": f"MemTotal:       {mem_kb} kB\nMemFree: 1 kB\n",
        "/proc/filesystems": "nodev\tsysfs\nnodev\toverlay\n\text4\n",
        "/proc/modules": "",
        "/proc/sys/net/bridge/bridge-nf-call-iptables": "1\n",
        "/proc/sys/net/netfilter/nf_conntrack_max": "65536\n",
        "/proc/sys/kernel/osrelease": "6.1.0-rpi7\n",
        "/proc/self/mounts": V2_MOUNTS,
        "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
        "/var/lib/.keep": "",
    }


def req(**over: object) -> preflight.Requirements:
    values: dict[str, object] = {
        "host": "node3",
        "distribution": "k3s",
        "role": "server",
        "expected_arch": "arm64",
        "min_ram_mb": 2048,
        "min_ram_var": "edgefleet_preflight_min_ram_mb.server",
        "min_free_disk_mb": 1,
        "min_free_disk_var": "edgefleet_preflight_min_free_disk_mb",
    }
    values.update(over)
    return preflight.Requirements(**values)  # type: ignore[arg-type]


def test_cgroup_modes() -> None:
    assert preflight.cgroup_mode(V2_MOUNTS) == "v2"
    assert preflight.cgroup_mode(HYBRID_MOUNTS) == "hybrid"
    assert preflight.cgroup_mode("cgroup /sys/fs/cgroup/memory cgroup rw 0 0\n") == "v1"
    assert preflight.cgroup_mode("") == "unknown"


def test_v1_controllers_from_proc_cgroups() -> None:
    assert preflight.cgroup_controllers("hybrid", PROC_CGROUPS, None) == ["cpu", "cpuset", "pids"]


def test_fit_node_has_no_problem(tmp_path: Path) -> None:
    root = fake_root(tmp_path, base_files())
    facts = preflight.gather("/var/lib/rancher", {"iptables": True, "nft": False}, (True, "test"), root, "aarch64")
    assert facts.arch == "arm64"
    assert facts.mem_total_mb == 3906
    assert facts.cgroup_mode == "v2"
    assert facts.features == {"overlay": True, "br_netfilter": True, "conntrack": True, "netfilter_tool": True}
    assert facts.data_path_checked == str(tmp_path / "var/lib")
    assert preflight.evaluate(facts, req()) == ([], [])


def test_every_problem_of_a_bad_node_is_listed(tmp_path: Path) -> None:
    files = base_files(mem_kb=1_677_722)  # 1.6 GB
    files["/proc/filesystems"] = "nodev\tsysfs\n"
    del files["/proc/sys/net/bridge/bridge-nf-call-iptables"]
    del files["/sys/fs/cgroup/cgroup.controllers"]
    files["/proc/self/mounts"] = HYBRID_MOUNTS
    files["/proc/cgroups"] = PROC_CGROUPS
    root = fake_root(tmp_path, files)
    facts = preflight.gather("/var/lib", {"iptables": False, "nft": False}, (False, "timedatectl"), root, "armv7l")
    problems, warnings = preflight.evaluate(facts, req(min_free_disk_mb=10**9))
    assert warnings == []
    assert problems[0].startswith("node3 is armhf (armv7l) but the fleet says arch arm64 (edgefleet_arch)")
    assert "node3 has 1.6 GB RAM; K3S server needs ≥ 2.0 GB (edgefleet_preflight_min_ram_mb.server)" in problems
    joined = "\n".join(problems)
    assert "lacks the overlay filesystem" in joined
    assert "lacks br_netfilter" in joined
    assert "lacks an iptables or nft binary" in joined
    assert "cgroups hybrid without the controller(s) memory" in joined
    assert "free at /var/lib" in joined and "(edgefleet_preflight_min_free_disk_mb)" in joined
    assert "clock sync is not synchronised (timedatectl)" in joined
    assert len(problems) == 8


def test_clock_is_only_a_warning_in_a_container(tmp_path: Path) -> None:
    files = base_files()
    files["/run/.containerenv"] = ""
    facts = preflight.gather("/var/lib", {"nft": True}, (None, "none"), fake_root(tmp_path, files), "x86_64")
    problems, warnings = preflight.evaluate(facts, req(expected_arch="amd64"))
    assert facts.in_container is True
    assert problems == []
    assert len(warnings) == 1 and "clock sync is unknown" in warnings[0]


def test_unknown_machine(tmp_path: Path) -> None:
    facts = preflight.gather("/var/lib", {"nft": True}, (True, "t"), fake_root(tmp_path, base_files()), "riscv64")
    problems = preflight.evaluate(facts, req())[0]
    assert problems == ["node3 runs on 'riscv64', which no K3s/K0s build supports (amd64, arm64, armhf)"]


@pytest.mark.parametrize("cmdline_path", ["/boot/firmware/cmdline.txt", "/boot/cmdline.txt"])
def test_raspberry_pi_boot_paths(tmp_path: Path, cmdline_path: str) -> None:
    files = base_files()
    files["/proc/device-tree/model"] = "Raspberry Pi 4 Model B Rev 1.4\0"
    files[cmdline_path] = "console=serial0,115200 root=PARTUUID=1234-02 rootwait\n"
    files["/sys/fs/cgroup/cgroup.controllers"] = "cpuset cpu io pids\n"
    facts = preflight.gather("/var/lib", {"nft": True}, (True, "t"), fake_root(tmp_path, files), "aarch64")
    assert facts.pi_model == "Raspberry Pi 4 Model B Rev 1.4"
    assert facts.pi_cmdline_path == cmdline_path
    assert facts.pi_cmdline_ok is False
    problems, warnings = preflight.evaluate(facts, req())
    # The memory cgroup is fixable by the boot flags: a warning (fix + reboot), not a stop.
    assert problems == []
    assert warnings == [
        f"node3 (Raspberry Pi 4 Model B Rev 1.4) has the memory cgroup disabled; {cmdline_path} gets "
        "cgroup_memory=1 cgroup_enable=memory and needs a reboot"
    ]


def test_bookworm_path_wins_when_both_exist(tmp_path: Path) -> None:
    root = fake_root(tmp_path, {"/boot/firmware/cmdline.txt": "a\n", "/boot/cmdline.txt": "b\n"})
    assert preflight.pi_cmdline_path(root) == "/boot/firmware/cmdline.txt"


def test_cmdline_tokens_added_once_and_replaced() -> None:
    line = "console=tty1 cgroup_memory=0 root=/dev/mmcblk0p2 rootwait\n"
    fixed = preflight.cmdline_with_tokens(line)
    assert fixed == "console=tty1 cgroup_memory=1 root=/dev/mmcblk0p2 rootwait cgroup_enable=memory\n"
    assert preflight.cmdline_with_tokens(fixed) == fixed
    assert preflight.cmdline_ok(fixed)
    assert not preflight.cmdline_ok(line)
    # cgroup_enable may appear several times (cgroup_enable=cpuset); it is added, not replaced.
    assert (
        preflight.cmdline_with_tokens("cgroup_enable=cpuset")
        == "cgroup_enable=cpuset cgroup_memory=1 cgroup_enable=memory\n"
    )


EFIVARS = f"sys/firmware/efi/efivars/{{}}-{preflight.EFI_GLOBAL_GUID}"
ATTRS = b"\x06\x00\x00\x00"  # efivarfs: 4 attribute bytes (boot service and runtime access), then the value


def efi_root(tmp_path: Path, variables: dict[str, bytes], legacy: bool = False) -> str:
    root = fake_root(tmp_path, base_files())
    (tmp_path / "sys/firmware/efi").mkdir(parents=True, exist_ok=True)
    for name, value in variables.items():
        if legacy:
            path = tmp_path / f"sys/firmware/efi/vars/{name}-{preflight.EFI_GLOBAL_GUID}/data"
        else:
            path = tmp_path / EFIVARS.format(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value if legacy else ATTRS + value)
    return root


@pytest.mark.parametrize(
    ("variables", "legacy", "state"),
    [
        ({"SecureBoot": b"\x01", "SetupMode": b"\x00"}, False, "enabled"),
        ({"SecureBoot": b"\x00", "SetupMode": b"\x00"}, False, "disabled"),
        ({"SecureBoot": b"\x00", "SetupMode": b"\x01"}, False, "setup_mode"),
        ({"SecureBoot": b"\x01"}, False, "enabled"),  # no SetupMode variable: not in setup mode
        ({"SecureBoot": b"\x01", "SetupMode": b"\x00"}, True, "enabled"),  # the older sysfs efivars
        ({"SecureBoot": b"\x00"}, True, "disabled"),
        ({}, False, "unknown"),  # UEFI, but no readable variable (a container without efivarfs)
    ],
)
def test_secure_boot_state_from_the_uefi_variables(
    tmp_path: Path, variables: dict[str, bytes], legacy: bool, state: str
) -> None:
    facts = preflight.gather("/var/lib", {"nft": True}, (True, "t"), efi_root(tmp_path, variables, legacy), "aarch64")
    assert facts.secure_boot == state
    assert (f"SecureBoot-{preflight.EFI_GLOBAL_GUID}" in facts.secure_boot_source) == (state != "unknown")


def test_a_node_booted_without_uefi_is_not_efi(tmp_path: Path) -> None:
    facts = preflight.gather("/var/lib", {"nft": True}, (True, "t"), fake_root(tmp_path, base_files()), "aarch64")
    assert (facts.secure_boot, facts.secure_boot_source) == ("not_efi", "/sys/firmware/efi is absent")
    assert preflight.evaluate(facts, req()) == ([], [])  # not required: no problem


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"SecureBoot": b"\x00", "SetupMode": b"\x00"}, "it is disabled in the firmware"),
        ({"SecureBoot": b"\x00", "SetupMode": b"\x01"}, "it is in setup mode (no Platform Key enrolled"),
        ({"SecureBoot": b"\x01", "SetupMode": b"\x00"}, None),
    ],
)
def test_required_secure_boot_refuses_every_other_state(
    tmp_path: Path, variables: dict[str, bytes], problem: str | None
) -> None:
    facts = preflight.gather("/var/lib", {"nft": True}, (True, "t"), efi_root(tmp_path, variables), "aarch64")
    problems = preflight.evaluate(facts, req(require_secure_boot=True))[0]
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1, problems
        assert problems[0].startswith("node3 does not boot with Secure Boot enforced: " + problem)
        assert "(edgefleet_preflight_require_secure_boot)" in problems[0]
        assert f"SecureBoot-{preflight.EFI_GLOBAL_GUID}" in problems[0]
    assert preflight.evaluate(facts, req())[0] == []  # the same node passes when it is not required
