# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The distribution_config module end to end through AnsibleModule (check mode, diff, failure).

No root needed: the module writes its files owned by the effective uid, so these run unprivileged too.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import module as dmodule
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry
from ansible_collections.edgefleet.k8s.plugins.modules import distribution_config
from module_run import run_module


def _owned_by_me(path: Path) -> bool:
    info = path.stat()
    return (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid())


def _k3s_init_server(tmp_path: Path) -> dict[str, Any]:
    """The arguments of a K3s init server whose files live under ``tmp_path``."""
    return {
        "distribution": "k3s",
        "role": "server",
        "host": "node1",
        "path": str(tmp_path / "config.yaml"),
        "token_file": str(tmp_path / "token"),
        "generate_token": True,
        "settings": {"node-name": "node1"},
    }


def test_k3s_module_check_then_real_then_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = {**_k3s_init_server(tmp_path), "_ansible_check_mode": True, "_ansible_diff": True}
    check = run_module(distribution_config, args, capsys)
    assert check["changed"] and check["restart_required"] and "diff" in check
    assert not (tmp_path / "config.yaml").exists()
    assert not (tmp_path / "token").exists()
    args["_ansible_check_mode"] = False
    real = run_module(distribution_config, args, capsys)
    assert real["changed"] and stat.S_IMODE((tmp_path / "config.yaml").stat().st_mode) == 0o600
    assert _owned_by_me(tmp_path / "config.yaml") and _owned_by_me(tmp_path / "token")
    token = (tmp_path / "token").read_text().strip()
    assert token and token not in json.dumps(real)
    args["_ansible_diff"] = False
    again = run_module(distribution_config, args, capsys)
    assert not again["changed"] and not again["restart_required"] and "diff" not in again


def test_k3s_module_derives_node_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_module(
        distribution_config,
        {
            "distribution": "k3s",
            "role": "server",
            "host": "node1",
            "address": "10.0.0.1",
            "labels": {"ring": "pilot"},
            "api_port": 7443,
            "path": str(tmp_path / "config.yaml"),
            "token_file": str(tmp_path / "token"),
        },
        capsys,
    )
    assert not res.get("failed"), res.get("msg")
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert written["node-name"] == "node1" and written["node-label"] == ["ring=pilot"]
    assert written["node-ip"] == "10.0.0.1" and written["tls-san"] == ["10.0.0.1"]
    assert written["https-listen-port"] == 7443
    assert res["distribution"] == registry.get("k3s").facts()
    assert res["node"]["join_token"]["read_file"] == "/etc/rancher/k3s/token"


def test_k3s_module_fails_listing_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_module(
        distribution_config,
        {
            "distribution": "k3s",
            "role": "server",
            "host": "node1",
            "path": str(tmp_path / "config.yaml"),
            "token_file": str(tmp_path / "token"),
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
    assert not (tmp_path / "config.yaml").exists() and not (tmp_path / "token").exists()


def test_validate_only_refuses_a_bad_service_account_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = {
        "distribution": "k0s",
        "role": "controller",
        "host": "c1",
        "path": str(tmp_path / "k0s.yaml"),
        "validate_only": True,
        "default_sa_namespaces_name": "edgefleet_distribution_default_sa_namespaces",
    }
    res = run_module(distribution_config, {**params, "default_sa_namespaces": ["default", "kube.public"]}, capsys)
    assert res["failed"]
    assert res["problems"] == [
        "c1: edgefleet_distribution_default_sa_namespaces[1] is 'kube.public'; allowed: a namespace name, 1-63 of "
        "a-z, 0-9 and '-', starting and ending with a letter or digit"
    ]
    assert not res.get("changed") and not (tmp_path / "k0s.yaml").exists()
    assert not run_module(distribution_config, {**params, "default_sa_namespaces": ["default"]}, capsys).get("failed")


def test_k0s_module_worker_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_module(
        distribution_config,
        {
            "distribution": "k0s",
            "role": "worker",
            "host": "w1",
            "token_file": str(tmp_path / "worker-token"),
            "join_token": "joinjoinjoin",
        },
        capsys,
    )
    assert res["changed"] and res["unit"] == "k0sworker.service"
    assert "joinjoinjoin" not in json.dumps(res)
    assert stat.S_IMODE((tmp_path / "worker-token").stat().st_mode) == 0o600
    assert _owned_by_me(tmp_path / "worker-token")
    assert (tmp_path / "worker-token").read_text() == "joinjoinjoin\n"


def test_unknown_distribution_is_refused_by_the_argument_spec(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_module(distribution_config, {"distribution": "rke2", "role": "server"}, capsys)
    assert res["failed"] and "rke2" in res["msg"] and "k3s, k0s" in res["msg"]


def test_documented_options_are_the_argument_spec() -> None:
    doc = yaml.safe_load(distribution_config.DOCUMENTATION)["options"]
    spec = dmodule.argument_spec()
    assert set(doc) == set(spec)
    for name, option in spec.items():
        assert doc[name].get("type", "str") == option["type"], name
        assert doc[name].get("choices") == option.get("choices"), name
        assert doc[name].get("default") == option.get("default"), name
        assert bool(doc[name].get("required")) == bool(option.get("required")), name


def test_a_restart_recorded_before_the_files_survives_a_run_that_died(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "restart-pending" / "k3s.service"
    args = {**_k3s_init_server(tmp_path), "restart_marker": str(marker), "_ansible_check_mode": True}
    check = run_module(distribution_config, args, capsys)
    assert check["restart_required"] and not marker.exists(), "check mode wrote the restart marker"
    args["_ansible_check_mode"] = False
    first = run_module(distribution_config, args, capsys)
    assert first["changed"] and first["restart_required"] and not first["restart_pending"]
    assert marker.is_file() and stat.S_IMODE(marker.stat().st_mode) == 0o600
    assert stat.S_IMODE(marker.parent.stat().st_mode) == 0o700
    # The run died before the restart: the files are in place, the marker still says restart.
    again = run_module(distribution_config, args, capsys)
    assert not again["changed"] and again["restart_required"] and again["restart_pending"]
    # The restart happened and the role removed the marker: nothing left to do.
    marker.unlink()
    done = run_module(distribution_config, args, capsys)
    assert not done["changed"] and not done["restart_required"] and not done["restart_pending"]
    assert not marker.exists()
