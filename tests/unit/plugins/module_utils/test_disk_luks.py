# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The LUKS safety gate and clevis binding logic (no device needed)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._disk import escrow as _luks_escrow
from ansible_collections.edgefleet.k8s.plugins.module_utils._disk import luks as disk_luks
from ansible_collections.edgefleet.k8s.plugins.module_utils._disk import migrate as disk_migrate

STABLE = "/dev/disk/by-id/virtio-edgefleet-data"


def facts(**kw: object) -> disk_luks.DeviceFacts:
    base: dict[str, object] = {
        "requested": STABLE,
        "path": "/dev/vdb",
        "is_block": True,
        "stable_ids": (STABLE, "/dev/disk/by-path/pci-0000:00:05.0"),
    }
    base.update(kw)
    return disk_luks.DeviceFacts(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------ safety gate


def test_blank_device_is_formatted() -> None:
    d = disk_luks.decide(facts())
    assert d.action == "format" and d.problems == ()


def test_ext4_is_refused_naming_device_found_and_both_variables() -> None:
    probe = disk_luks.parse_blkid_export("DEVNAME=/dev/vdc\nUUID=1234\nLABEL=someones-data\nTYPE=ext4\n")
    d = disk_luks.decide(facts(probe=probe))
    assert len(d.problems) == 1
    msg = d.problems[0]
    assert STABLE in msg and "/dev/vdb" in msg
    assert "ext4" in msg and "someones-data" in msg
    assert "edgefleet_disk_encryption_allow_format: true AND edgefleet_disk_encryption_format_device_id" in msg


def test_foreign_luks_is_refused_and_ours_is_reused() -> None:
    foreign = {"TYPE": "crypto_LUKS", "VERSION": "2", "UUID": "u1", "LABEL": "someone-else"}
    refused = disk_luks.decide(facts(probe=foreign))
    assert refused.problems and "a LUKS header" in refused.problems[0]
    ours = disk_luks.decide(facts(probe={**foreign, "LABEL": disk_luks.OWNER_LABEL}))
    assert ours.action == "reuse" and ours.problems == () and ours.luks_uuid == "u1"


def test_allow_format_needs_both_variables_and_a_matching_id() -> None:
    probe = {"TYPE": "ext4"}
    assert disk_luks.decide(facts(probe=probe), allow_format=True).problems
    wrong = disk_luks.decide(facts(probe=probe), allow_format=True, format_device_id="/dev/disk/by-id/other")
    assert wrong.problems and "is not one of this device's ids" in wrong.problems[0]
    assert disk_luks.decide(facts(probe=probe), format_device_id=STABLE).problems  # id alone is not enough
    ok = disk_luks.decide(facts(probe=probe), allow_format=True, format_device_id=STABLE)
    assert ok.action == "format" and ok.problems == ()


def test_mounted_and_root_devices_are_always_refused_listing_every_problem() -> None:
    d = disk_luks.decide(
        facts(probe={"TYPE": "ext4"}, mounted_at=("/",), backs_root=True, swap=True),
        allow_format=True,
        format_device_id=STABLE,
    )
    joined = " | ".join(d.problems)
    assert "backs the root filesystem" in joined
    assert "is mounted at /" in joined
    assert "swap" in joined
    assert len(d.problems) == 3


def test_kernel_name_is_not_a_stable_path() -> None:
    d = disk_luks.decide(facts(requested="/dev/vdb"))
    assert d.problems and "not a stable device path" in d.problems[0] and STABLE in d.problems[0]
    assert disk_luks.decide(facts(requested="/dev/vdb"), require_stable=False).problems == ()


def test_not_a_block_device() -> None:
    d = disk_luks.decide(facts(is_block=False))
    assert d.action == "refuse" and "not a block device" in d.problems[0]


def test_mountinfo_and_root_lookup() -> None:
    text = (
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "40 22 253:0 / /var/lib/rancher rw,relatime shared:2 - ext4 /dev/mapper/edgefleet-data rw\n"
        "41 22 0:5 / /with\\040space rw - tmpfs tmpfs rw\n"
    )
    mounts = disk_luks.parse_mountinfo(text)
    assert disk_luks.root_majmin(mounts) == "254:0"
    assert ("0:5", "/with space") in mounts
    assert disk_migrate.parse_mount_source(text, "/var/lib/rancher") == "253:0"
    assert disk_migrate.parse_mount_source(text, "/var/lib/k0s") is None


def test_backing_disks_walks_slaves_and_partition_parents(tmp_path: Path) -> None:
    # /sys/class/block layout: dm-0 on vda2 (a partition of vda)
    sysb = tmp_path / "block"
    devices = tmp_path / "devices"
    (devices / "vda" / "vda2").mkdir(parents=True)
    (devices / "vda" / "vda2" / "partition").write_text("2")
    (devices / "dm-0" / "slaves").mkdir(parents=True)
    sysb.mkdir()
    for name, target in (("vda", devices / "vda"), ("vda2", devices / "vda" / "vda2"), ("dm-0", devices / "dm-0")):
        os.symlink(target, sysb / name)
    os.symlink(sysb / "vda2", devices / "dm-0" / "slaves" / "vda2")
    assert disk_luks.backing_disks("dm-0", str(sysb)) == {"dm-0", "vda2", "vda"}
    assert disk_luks.partitions("vda", str(sysb)) == ["vda2"]


# ------------------------------------------------------------------ clevis


LIST = """1: tpm2 '{"hash":"sha256","key":"ecc","pcr_bank":"sha256","pcr_ids":"7"}'
2: sss '{"t":1,"pins":{"tang":[{"url":"http://127.0.0.1"}],"tpm2":[{"hash":"sha256","key":"ecc"}]}}'
3: tang '{"url":"http://tang.lab/"}'
"""


def test_parse_clevis_list() -> None:
    got = disk_luks.parse_clevis_list(LIST + "garbage line\n")
    assert [(b.slot, b.pin) for b in got] == [(1, "tpm2"), (2, "sss"), (3, "tang")]
    assert got[1].config["t"] == 1


def test_plan_is_a_noop_when_the_listed_binding_means_the_same() -> None:
    existing = disk_luks.parse_clevis_list(LIST)
    sss = {"t": 1, "pins": {"tpm2": {}, "tang": [{"url": "http://127.0.0.1/"}]}}
    assert disk_luks.plan_binding(existing, "sss", sss) == disk_luks.BindingPlan((2,), False, ())
    assert disk_luks.plan_binding(existing, "tpm2", {"pcr_ids": [7]}).add is False
    assert disk_luks.plan_binding(existing, "tang", {"url": "http://tang.lab"}).add is False


def test_plan_replaces_a_different_config_and_removes_for_absent() -> None:
    existing = disk_luks.parse_clevis_list(LIST)
    plan = disk_luks.plan_binding(existing, "tpm2", {"pcr_ids": "0,7"})
    assert plan.add is True and plan.remove == (1,)
    threshold = disk_luks.plan_binding(
        existing, "sss", {"t": 2, "pins": {"tpm2": {}, "tang": [{"url": "http://127.0.0.1"}]}}
    )
    assert threshold.add and threshold.remove == (2,)
    assert disk_luks.plan_binding(existing, "tang", {}, "absent") == disk_luks.BindingPlan((), False, (3,))
    assert disk_luks.plan_binding([], "tpm2", {}).add is True


def test_clevis_json_names_the_pcr_bank_so_listing_matches() -> None:
    cfg = json.loads(disk_luks.clevis_json("sss", {"t": 1, "pins": {"tpm2": {"pcr_ids": [7, 0]}}}))
    assert cfg["pins"]["tpm2"] == [{"pcr_ids": "0,7", "pcr_bank": "sha256"}]
    listed = {"hash": "sha256", "key": "ecc", "pcr_bank": "sha256", "pcr_ids": "0,7"}
    assert disk_luks.normalize("tpm2", listed) == disk_luks.normalize("tpm2", {"pcr_ids": [7, 0]})


@pytest.mark.parametrize(
    ("pin", "config", "needle"),
    [
        ("tang", {"url": "ftp://x"}, "url"),
        ("tpm2", {"pcr_ids": [99]}, "pcr_ids"),
        ("tpm2", {"pcrs": "7"}, "unknown tpm2 keys"),
        ("sss", {"t": 3, "pins": {"tpm2": {}, "tang": [{"url": "http://a"}]}}, ".t"),
        ("sss", {"t": 1}, ".pins"),
        ("luks", {}, "not supported"),
    ],
)
def test_config_problems(pin: str, config: dict[str, object], needle: str) -> None:
    problems = disk_luks.config_problems(pin, config)
    assert problems and any(needle in p for p in problems)


def test_config_problems_lists_every_nested_problem() -> None:
    bad = {"t": 0, "pins": {"tang": [{"url": "x"}, {"url": "y"}], "tpm2": {"pcr_ids": "30"}}}
    assert len(disk_luks.config_problems("sss", bad)) == 4
    assert disk_luks.config_problems("sss", {"t": 2, "pins": {"tpm2": {}, "tang": [{"url": "http://t"}]}}) == []


# ------------------------------------------------------------------ migration digest


def test_tree_digest_sees_content_mode_and_names(tmp_path: Path) -> None:
    a = tmp_path / "a"
    (a / "k3s" / "server" / "db").mkdir(parents=True)
    (a / "k3s" / "server" / "db" / "state.db").write_bytes(b"rows")
    os.symlink("server/db/state.db", a / "k3s" / "link")
    (a / "lost+found").mkdir()
    first = disk_migrate.tree_digest(str(a))
    assert first.files == 1 and first.bytes == 4
    (a / "lost+found" / "x").write_text("ignored at top level")
    assert disk_migrate.tree_digest(str(a)).sha256 == first.sha256
    (a / "k3s" / "server" / "db" / "state.db").write_bytes(b"rowz")
    changed = disk_migrate.tree_digest(str(a))
    assert changed.sha256 != first.sha256
    (a / "k3s" / "server" / "db" / "state.db").write_bytes(b"rows")
    os.chmod(a / "k3s" / "server" / "db" / "state.db", 0o600)
    assert disk_migrate.tree_digest(str(a)).sha256 != first.sha256
    assert disk_migrate.has_data(str(a))
    assert not disk_migrate.has_data(str(tmp_path / "missing"))


# ------------------------------------------------------------------ escrow


def test_recovery_passphrase_shape_and_escrow_path() -> None:
    one, two = _luks_escrow.generate_passphrase(), _luks_escrow.generate_passphrase()
    assert one != two and len(one) == 8 * 6 + 7 and not _luks_escrow.passphrase_problems(one)
    assert _luks_escrow.passphrase_problems("short")
    assert _luks_escrow.escrow_path("/e", "node1", "edgefleet-data") == "/e/node1.edgefleet-data.recovery.vault"
    with pytest.raises(ValueError, match="DNS-1123"):
        _luks_escrow.escrow_path("/e", "../etc", "data")
