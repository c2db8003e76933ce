# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Join token rotation: K3s through the lab stand-in's real `k3s token rotate` CLI (a subprocess, tokens in
its environment only), the run that died half way, the second run, check mode, K0s invalidation, and the
join_token_rotate module through AnsibleModule (no token in its output)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

_REPO = Path(__file__).resolve().parents[4]
_COLLECTIONS = _REPO / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))
_STANDIN = _REPO / "tests" / "lab" / "controlplane" / "standin"

from ansible.module_utils.testing import patch_module_args
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry, rotation
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k0s import K0S
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k3s import K3S
from ansible_collections.edgefleet.k8s.plugins.modules import join_token_rotate

OLD = "0ld" + "a" * 61
CA_HASH = "c" * 64


class StandinServer:
    """A K3s stand-in server's data dir as `k3s token rotate` reads it, and a runner for the real CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "var" / "lib" / "rancher" / "k3s"
        (self.data / "server" / "cred").mkdir(parents=True)
        (self.data / "server" / "tls").mkdir(parents=True)
        (self.data / "server" / "cred" / "admin.kubeconfig").write_text("{}\n")
        (self.data / "server" / "tls" / "server-ca.crt").write_text("lab CA\n")
        self.server_token.write_text(f"K10{CA_HASH}::server:{OLD}\n")
        self.token_file = root / "etc" / "token"
        self.token_file.parent.mkdir()
        self.token_file.write_text(OLD + "\n")
        os.chmod(self.token_file, 0o600)
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    @property
    def server_token(self) -> Path:
        return self.data / "server" / "token"

    def password(self) -> str:
        return self.server_token.read_text().strip().rsplit(":", 1)[-1]

    def run(self, argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str, str]:
        self.calls.append((list(argv), dict(env)))
        assert argv[0] == K3S.binary
        cmd = [sys.executable, "-m", "edgefleet_standin", "k3s", "k3s", *argv[1:], "--data-dir", str(self.data)]
        full_env = {**os.environ, "PYTHONPATH": str(_STANDIN), **env}
        proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, check=False, timeout=60)
        return proc.returncode, proc.stdout, proc.stderr

    def rotate(self, rotation_id: str = "decommission-a3", **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("token_file", str(self.token_file))
        kwargs.setdefault("state_dir", str(self.root / "state"))
        kwargs.setdefault("restart_marker", str(self.root / "restart" / "k3s.service"))
        kwargs.setdefault("root", str(self.root))
        kwargs.setdefault("owner", (None, None))
        return rotation.rotate(K3S, rotation_id, self.run, **kwargs)


@pytest.fixture
def server(tmp_path: Path) -> StandinServer:
    return StandinServer(tmp_path)


def test_k3s_rotation_runs_the_distributions_command_with_the_tokens_in_its_environment_only(
    server: StandinServer,
) -> None:
    result = server.rotate()
    assert result["changed"] and result["restart_required"], result
    new = server.token_file.read_text().strip()
    assert new != OLD and len(new) == 64
    # The stand-in's own server token now holds the new token: the distribution's command did the rotation.
    assert server.password() == new
    argv, env = server.calls[0]
    assert argv == [K3S.binary, "token", "rotate"]
    assert env == {"K3S_TOKEN": OLD, "K3S_NEW_TOKEN": new}
    assert not any(OLD in a or new in a for a in argv)
    assert stat.S_IMODE(server.token_file.stat().st_mode) == 0o600
    assert not Path(str(server.token_file) + rotation.PENDING_SUFFIX).exists()
    marker = server.root / "restart" / "k3s.service"
    assert marker.is_file() and stat.S_IMODE(marker.stat().st_mode) == 0o600
    assert result["old_fingerprint"] == rotation.fingerprint(OLD)
    assert result["new_fingerprint"] == rotation.fingerprint(new)
    text = json.dumps(result)
    assert OLD not in text and new not in text
    record = (server.root / "state" / "decommission-a3.json").read_text()
    assert OLD not in record and new not in record and result["new_fingerprint"] in record


def test_a_second_run_with_the_same_id_changes_nothing_and_a_new_id_rotates_again(server: StandinServer) -> None:
    first = server.rotate()
    token = server.token_file.read_text()
    again = server.rotate()
    assert not again["changed"] and not again["restart_required"], again
    assert again["rotated_at"] == first["rotated_at"] and again["new_fingerprint"] == first["new_fingerprint"]
    assert server.token_file.read_text() == token and len(server.calls) == 1
    other = server.rotate("planned-1")
    assert other["changed"] and server.token_file.read_text() != token
    assert other["old_fingerprint"] == first["new_fingerprint"]


def test_the_given_new_token_is_used(server: StandinServer) -> None:
    chosen = "n" * 64
    result = server.rotate(new_token=chosen)
    assert result["changed"] and server.token_file.read_text().strip() == chosen == server.password()


def test_check_mode_reports_and_changes_nothing(server: StandinServer) -> None:
    result = server.rotate(check_mode=True)
    assert result["changed"] and result["old_fingerprint"] == rotation.fingerprint(OLD)
    assert server.token_file.read_text().strip() == OLD and server.password() == OLD
    assert not server.calls and not (server.root / "state").exists()


def test_a_refused_rotation_leaves_the_token_file_and_names_no_token(server: StandinServer) -> None:
    server.token_file.write_text("not-the-server-token\n")
    result = server.rotate()
    assert result["failed"] and "exited 1" in result["msg"], result
    assert "not-the-server-token" not in result["msg"]
    assert server.token_file.read_text().strip() == "not-the-server-token" and server.password() == OLD
    assert not Path(str(server.token_file) + rotation.PENDING_SUFFIX).exists()
    assert not (server.root / "restart").exists()


def test_a_run_that_died_after_the_server_took_the_token_finishes_with_that_token(server: StandinServer) -> None:
    pending = Path(str(server.token_file) + rotation.PENDING_SUFFIX)
    pending.write_text("p" * 64 + "\n")
    # The server took the pending token, then the run died before the token file was written.
    server.server_token.write_text(f"K10{CA_HASH}::server:{'p' * 64}\n")
    result = server.rotate()
    assert result["changed"], result
    assert server.token_file.read_text().strip() == "p" * 64 and not server.calls
    assert not pending.exists()


def test_a_missing_token_file_or_a_bad_id_is_refused(server: StandinServer) -> None:
    missing = server.rotate(token_file=str(server.root / "nothing"))
    assert missing["failed"] and "no token to rotate" in missing["msg"]
    bad = server.rotate("../escape")
    assert bad["failed"] and "rotation_id" in bad["msg"]
    assert not server.calls


def test_every_strategy_says_how_it_rotates() -> None:
    for name in registry.NAMES:
        how = registry.get(name).token_rotation()
        if how.shared:
            assert how.rotate_argv and how.current_env and how.new_env
        else:
            assert how.list_argvs and how.invalidate_argv


K0S_LISTING = "ID      ROLE     EXPIRES AT\nabc123  worker   2026-12-06T15:00:00Z\n\n"


def test_k0s_invalidates_every_valid_join_token_and_restarts_nothing(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def run(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str, str]:
        calls.append(list(argv))
        assert not env
        if "list" in argv:
            return 0, K0S_LISTING if "--role=worker" in argv else "ID ROLE EXPIRES AT\nctl999 controller -\n", ""
        return 0, "", ""

    result = rotation.rotate(K0S, "decommission-w2", run, state_dir=str(tmp_path), owner=(None, None))
    assert result["changed"] and result["invalidated"] == ["abc123", "ctl999"] and not result["restart_required"]
    assert calls[-1] == [K0S.binary, "token", "invalidate", "abc123", "ctl999"]
    check = rotation.rotate(K0S, "decommission-w2", run, check_mode=True, state_dir=str(tmp_path), owner=(None, None))
    assert check["changed"] and calls[-1][2] == "list"

    def none_left(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str, str]:
        return 0, "ID ROLE EXPIRES AT\n", ""

    again = rotation.rotate(K0S, "decommission-w2", none_left, state_dir=str(tmp_path), owner=(None, None))
    assert not again["changed"] and again["rotated_at"] == result["rotated_at"]


def test_the_module_masks_the_tokens_and_supports_check_mode(
    server: StandinServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ansible.module_utils.basic import AnsibleModule

    def run_command(self: Any, args: list[str], environ_update: dict[str, str] | None = None, **_: Any) -> Any:
        return server.run(args, environ_update or {})

    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(rotation, "STATE_DIR", str(server.root / "state"))
    args = {
        "distribution": "k3s",
        "rotation_id": "decommission-a3",
        "token_file": str(server.token_file),
        "new_token": "m" * 64,
        "_ansible_check_mode": True,
        "_ansible_diff": True,
    }
    with patch_module_args(args), pytest.raises(SystemExit):
        join_token_rotate.main()
    check = json.loads(capsys.readouterr().out)
    assert check["changed"] and server.token_file.read_text().strip() == OLD, check
    assert check["diff"][0]["before"] == f"<token {rotation.fingerprint(OLD)}>\n"

    args["_ansible_check_mode"] = False
    with patch_module_args(args), pytest.raises(SystemExit):
        join_token_rotate.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    assert result["changed"] and server.password() == "m" * 64, result
    assert OLD not in out and "m" * 64 not in out
