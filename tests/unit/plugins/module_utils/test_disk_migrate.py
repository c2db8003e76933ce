# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The journalled data-dir move: fresh moves, and runs that died at each step.

Real files and a real ``cp -a``; only systemctl and mount are simulated (a
"mount" points the scratch directory at a plain directory standing for the
volume), so every digest and every deletion here is real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._disk import migrate as disk_migrate

DEVICE = "/dev/mapper/edgefleet-data"


class FakeNode:
    """systemctl units with a state, and a volume directory that `mount` exposes."""

    def __init__(self, tmp: Path, active: list[str], corrupt_copy: bool = False) -> None:
        self.active = set(active)
        self.volume = tmp / "volume"
        self.volume.mkdir()
        self.calls: list[list[str]] = []
        self.corrupt_copy = corrupt_copy

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        if argv[:2] == ["systemctl", "is-active"]:
            return (0 if argv[-1] in self.active else 3), "", ""
        if argv[:2] == ["systemctl", "stop"]:
            self.active.discard(argv[2])
            return 0, "", ""
        if argv[:2] == ["systemctl", "start"]:
            self.active.add(argv[2])
            return 0, "", ""
        if argv[0] == "mount":
            target = argv[-1]
            os.rmdir(target)
            os.symlink(self.volume, target)
            return 0, "", ""
        if argv[0] == "umount":
            os.unlink(argv[1])
            os.mkdir(argv[1])
            return 0, "", ""
        if argv[0] == "cp":
            res = subprocess.run(argv, capture_output=True, text=True, check=False)
            if self.corrupt_copy:
                victim = next(p for p in self.volume.rglob("*") if p.is_file())
                victim.write_bytes(b"bit rot")
            return res.returncode, res.stdout, res.stderr
        raise AssertionError(f"unexpected command {argv}")


def datastore(root: Path) -> None:
    (root / "k3s" / "server" / "db").mkdir(parents=True)
    (root / "k3s" / "server" / "db" / "state.db").write_bytes(os.urandom(4096))
    (root / "k3s" / "server" / "token").write_text("not-a-real-token")
    os.chmod(root / "k3s" / "server" / "token", 0o600)


def mover(tmp: Path, node: FakeNode, services: list[str]) -> disk_migrate.Mover:
    scratch = tmp / "run"
    scratch.mkdir(exist_ok=True)
    return disk_migrate.Mover(
        path=str(tmp / "data"),
        device=DEVICE,
        fstype="ext4",
        services=services,
        run=node,
        journal=disk_migrate.journal_file(str(tmp / "data"), str(tmp / "journal")),
        scratch_dir=str(scratch),
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    datastore(tmp_path / "data")
    return tmp_path / "data"


def test_fresh_move_stops_only_active_units_and_journals_until_restart(tmp_path: Path, data: Path) -> None:
    before = disk_migrate.tree_digest(str(data))
    node = FakeNode(tmp_path, active=["k3s"])
    m = mover(tmp_path, node, ["k3s", "k3s-agent"])
    res = m.move(None)
    assert res.migrated and not res.resumed and res.stopped_services == ["k3s"]
    assert ["systemctl", "stop", "k3s-agent"] not in node.calls
    assert res.digest is not None and res.digest.sha256 == before.sha256
    assert disk_migrate.tree_digest(str(node.volume)).sha256 == before.sha256
    assert os.listdir(data) == []
    journal = json.loads(Path(m.journal).read_text())
    assert journal["phase"] == "verified" and journal["services"] == ["k3s"] and journal["digest"] == before.sha256
    assert oct(os.stat(m.journal).st_mode & 0o777) == "0o600"
    m.restart(res.stopped_services or [])
    assert "k3s" in node.active and not os.path.exists(m.journal)


def test_run_that_died_while_copying_copies_again(tmp_path: Path, data: Path) -> None:
    before = disk_migrate.tree_digest(str(data))
    node = FakeNode(tmp_path, active=[])  # the dead run had stopped k3s already
    (node.volume / "k3s").mkdir()
    (node.volume / "k3s" / "half-copied").write_bytes(b"partial")
    m = mover(tmp_path, node, ["k3s"])
    pending = disk_migrate.Journal(str(data), DEVICE, ["k3s"], "stopping")
    disk_migrate.save_journal(m.journal, pending)
    res = m.move(disk_migrate.load_journal(m.journal))
    assert res.migrated and res.resumed and res.stopped_services == ["k3s"]
    assert disk_migrate.tree_digest(str(node.volume)).sha256 == before.sha256


def test_run_that_died_while_emptying_the_source_finishes_it(tmp_path: Path, data: Path) -> None:
    before = disk_migrate.tree_digest(str(data))
    node = FakeNode(tmp_path, active=[])
    subprocess.run(["cp", "-a", "--", f"{data}/.", f"{node.volume}/"], check=True)
    (data / "k3s" / "server" / "token").unlink()  # half-emptied
    m = mover(tmp_path, node, ["k3s"])
    disk_migrate.save_journal(m.journal, disk_migrate.Journal(str(data), DEVICE, ["k3s"], "verified", before.sha256))
    res = m.move(disk_migrate.load_journal(m.journal))
    assert res.resumed and res.stopped_services == ["k3s"] and os.listdir(data) == []
    assert disk_migrate.tree_digest(str(node.volume)).sha256 == before.sha256


def test_foreign_data_on_the_volume_is_never_overwritten(tmp_path: Path, data: Path) -> None:
    before = disk_migrate.tree_digest(str(data))
    node = FakeNode(tmp_path, active=["k3s"])
    (node.volume / "someone-else").write_bytes(b"theirs")
    m = mover(tmp_path, node, ["k3s"])
    with pytest.raises(disk_migrate.MoveError, match="already holds other data"):
        m.move(None)
    assert (node.volume / "someone-else").read_bytes() == b"theirs"
    assert disk_migrate.tree_digest(str(data)).sha256 == before.sha256
    assert "k3s" in node.active and not os.path.exists(m.journal)


def test_a_bad_copy_leaves_the_source_and_restarts_the_services(tmp_path: Path, data: Path) -> None:
    before = disk_migrate.tree_digest(str(data))
    node = FakeNode(tmp_path, active=["k3s"], corrupt_copy=True)
    m = mover(tmp_path, node, ["k3s"])
    with pytest.raises(disk_migrate.MoveError, match="differs from the source"):
        m.move(None)
    assert disk_migrate.tree_digest(str(data)).sha256 == before.sha256
    assert "k3s" in node.active and not os.path.exists(m.journal)


def test_a_verified_move_whose_copy_changed_stops_with_services_down(tmp_path: Path, data: Path) -> None:
    node = FakeNode(tmp_path, active=[])
    (node.volume / "changed-since").write_bytes(b"x")
    m = mover(tmp_path, node, ["k3s"])
    disk_migrate.save_journal(m.journal, disk_migrate.Journal(str(data), DEVICE, ["k3s"], "verified", "0" * 64))
    with pytest.raises(disk_migrate.MoveError, match="already holds other data"):
        m.move(disk_migrate.load_journal(m.journal))
    # The source may be half-emptied: do not start K3s on it, keep the journal for a person.
    assert "k3s" not in node.active and os.path.exists(m.journal)


def test_an_unreadable_journal_is_named(tmp_path: Path) -> None:
    file = tmp_path / "j.json"
    file.write_text("{not json")
    with pytest.raises(disk_migrate.MoveError, match=str(file)):
        disk_migrate.load_journal(str(file))
    assert disk_migrate.load_journal(str(tmp_path / "missing.json")) is None
    assert disk_migrate.journal_file("/var/lib/rancher/", "/j") == "/j/var-lib-rancher.json"
