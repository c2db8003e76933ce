# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deploy key rotation (gitops_deploy_key with rotation_id): a new key once per rotation, the old key's
fingerprint as ssh-keygen shows it, a record without any key, check mode, and the vault refusal."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import keys
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.core import ssh_fingerprint
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.module import GitopsError, run_deploy_key

REPO = "ssh://git@git.example.internal/fleet.git"


def _params(path: Path, **extra: str) -> dict[str, str]:
    return {"cluster": "site-a", "repo_url": REPO, "path": str(path), **extra}


def test_a_rotation_replaces_the_key_once_and_reports_the_old_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "site-a"
    first = run_deploy_key(_params(path), check_mode=False)
    old_private = path.read_text()

    rotated = run_deploy_key(_params(path, rotation_id="decommission-a3"), check_mode=False)
    assert rotated["changed"] and rotated["rotated"], rotated
    assert rotated["old_public_key"] == first["public_key"]
    assert rotated["old_fingerprint"] == first["ssh_fingerprint"] != rotated["new_fingerprint"]
    assert rotated["ssh_fingerprint"] == rotated["new_fingerprint"]
    assert path.read_text() != old_private and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "keys" / "site-a.pub").read_text().strip() == rotated["public_key"]
    record = Path(str(path) + keys.ROTATIONS_SUFFIX)
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    text = record.read_text()
    assert "PRIVATE KEY" not in text and json.loads(text)["decommission-a3"]["old_fingerprint"]

    again = run_deploy_key(_params(path, rotation_id="decommission-a3"), check_mode=False)
    assert not again["changed"] and not again["rotated"], again
    assert again["public_key"] == rotated["public_key"] and again["rotated_at"] == rotated["rotated_at"]


def test_check_mode_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "site-a"
    run_deploy_key(_params(path), check_mode=False)
    before = path.read_text()
    check = run_deploy_key(_params(path, rotation_id="r1"), check_mode=True)
    assert check["changed"] and check["old_fingerprint"] and path.read_text() == before
    assert not Path(str(path) + keys.ROTATIONS_SUFFIX).exists()


def test_a_key_kept_in_vault_is_not_rotated_here(tmp_path: Path) -> None:
    vault_key = keys.generate("site-a").private_openssh
    with pytest.raises(GitopsError, match="ansible-vault"):
        run_deploy_key(_params(tmp_path / "k", private_key=vault_key, rotation_id="r1"), check_mode=False)


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_the_fingerprint_is_the_one_ssh_keygen_shows(tmp_path: Path) -> None:
    key = keys.generate("site-a")
    (tmp_path / "k.pub").write_text(key.public_openssh + "\n")
    out = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True, check=True)
    assert out.stdout.split()[1] == key.ssh_fingerprint == ssh_fingerprint(key.public_openssh)
    assert ssh_fingerprint("not a key") == ""
