# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The k3s_config and k0s_config modules end to end through AnsibleModule (check mode, diff, failure)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.module_utils.testing import patch_module_args
from ansible_collections.edgefleet.k8s.plugins.modules import k0s_config, k3s_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the modules write root-owned files")


def _run(module: Any, args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    out = capsys.readouterr().out
    result: dict[str, Any] = json.loads(out)
    return result


def test_k3s_module_check_then_real_then_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = {
        "role": "server",
        "host": "node1",
        "path": str(tmp_path / "config.yaml"),
        "token_file": str(tmp_path / "token"),
        "generate_token": True,
        "settings": {"node-name": "node1"},
        "_ansible_check_mode": True,
        "_ansible_diff": True,
    }
    check = _run(k3s_config, args, capsys)
    assert check["changed"] and check["restart_required"] and "diff" in check
    assert not (tmp_path / "config.yaml").exists()
    args["_ansible_check_mode"] = False
    real = _run(k3s_config, args, capsys)
    assert real["changed"] and stat.S_IMODE((tmp_path / "config.yaml").stat().st_mode) == 0o600
    token = (tmp_path / "token").read_text().strip()
    assert token and token not in json.dumps(real)
    args["_ansible_diff"] = False
    again = _run(k3s_config, args, capsys)
    assert not again["changed"] and not again["restart_required"] and "diff" not in again


def test_k3s_module_fails_listing_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = _run(
        k3s_config,
        {
            "role": "server",
            "host": "node1",
            "path": str(tmp_path / "config.yaml"),
            "datastore": "sqlite",
            "cluster_servers": ["node1", "node2"],
            "overrides": {"agent-token": "topsecret", "protect-kernel-default": True},
            "overrides_name": "edgefleet_k3s_config",
        },
        capsys,
    )
    assert res["failed"] and len(res["problems"]) == 3
    assert "did you mean 'protect-kernel-defaults'?" in res["msg"]
    assert "topsecret" not in json.dumps(res)
    assert not (tmp_path / "config.yaml").exists()


def test_k0s_module_worker_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = _run(
        k0s_config,
        {"role": "worker", "host": "w1", "token_file": str(tmp_path / "worker-token"), "token": "joinjoinjoin"},
        capsys,
    )
    assert res["changed"] and res["unit"] == "k0sworker.service"
    assert "joinjoinjoin" not in json.dumps(res)
    assert stat.S_IMODE((tmp_path / "worker-token").stat().st_mode) == 0o600
