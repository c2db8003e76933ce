# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The disk_encryption role's settings check, in a real ansible-playbook run on this machine over the local
connection: bad settings stop the role at its first task, every problem named at once, before the disk is looked at."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PLAYBOOK = """\
- name: Disk encryption with the settings under test
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: edgefleet.k8s.disk_encryption
"""


def run(tmp_path: Path, **settings: object) -> tuple[int, str]:
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    extra = {"edgefleet_disk_encryption_enabled": True, **settings}
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-e", f"@{tmp_path / 'vars.json'}", str(tmp_path / "play.yml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_every_bad_setting_is_named_at_once_before_the_disk_is_looked_at(tmp_path: Path) -> None:
    rc, out = run(
        tmp_path,
        edgefleet_disk_encryption_device="/dev/sdb",
        edgefleet_disk_encryption_unlock="tang",
        edgefleet_disk_encryption_tang_servers=[],
        edgefleet_disk_encryption_unlock_timeout=-5,
        edgefleet_disk_encryption_tpm2_pcr_ids=[7, 24],
    )
    assert rc != 0, out
    for problem in (
        "edgefleet_disk_encryption_device: /dev/sdb is not a stable path",
        "edgefleet_disk_encryption_tang_servers is empty, but unlock tang needs at least one Tang URL",
        "edgefleet_disk_encryption_unlock_timeout: -5 is not a whole number of seconds >= 0",
        "edgefleet_disk_encryption_tpm2_pcr_ids[1]: 24 is not a PCR number 0-23",
    ):
        assert problem in out, out
    assert "Look for the cryptsetup and clevis packages" not in out  # stopped at the check, first task
    assert "Traceback" not in out


def test_a_zero_or_positive_unlock_timeout_passes_the_check(tmp_path: Path) -> None:
    for timeout in (0, 120):
        rc, out = run(
            tmp_path,
            edgefleet_disk_encryption_device="/dev/sdb",
            edgefleet_disk_encryption_unlock_timeout=timeout,
        )
        assert rc != 0, out  # the device is still not a stable path
        assert "edgefleet_disk_encryption_device: /dev/sdb is not a stable path" in out, out
        assert "unlock_timeout" not in out.split("disk encryption settings:", 1)[1].split("\n", 1)[0], out
