# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pull-mode agent (module_utils/_pull/agent.py) against real Git repos and ssh-keygen signatures.

Git and the signature check are real (a bare repo in a temp folder is the "remote"); only ansible-playbook is
replaced, by a runner that records its argv and answers with a chosen PLAY RECAP.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._pull import agent as ag

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or shutil.which("ssh-keygen") is None, reason="needs git and ssh-keygen"
)

RECAP_OK = "PLAY RECAP ***\npull1  : ok=70   changed={changed}    unreachable=0    failed=0    skipped=3\n"
RECAP_FAILED = (
    'fatal: [pull1]: FAILED! => {"msg": "the unit did not start"}\n'
    "PLAY RECAP ***\npull1                      : ok=10   changed=1    unreachable=0    failed=1    skipped=3\n"
)


def run(*argv: str, cwd: Path | None = None) -> str:
    return subprocess.run(list(argv), cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class World:
    """A bare "remote", an author checkout that signs with ``signer``, and the node's agent configuration."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.remote = tmp / "remote.git"
        run("git", "init", "--quiet", "--bare", "-b", "main", str(self.remote))
        self.author = tmp / "author"
        run("git", "init", "--quiet", "-b", "main", str(self.author))
        self.signer = self.keygen("signer")
        for key, value in (
            ("user.name", "admin"),
            ("user.email", "admin@example.invalid"),
            ("gpg.format", "ssh"),
            ("user.signingkey", str(self.signer)),
        ):
            run("git", "-C", str(self.author), "config", key, value)
        allowed = tmp / "allowed_signers"
        pub = (self.signer.with_suffix(".pub")).read_text().split()
        allowed.write_text(f"admin@example.invalid {pub[0]} {pub[1]}\n")
        self.config = ag.Config(
            node="pull1",
            repo=str(self.remote),
            branch="main",
            inventory="inventory/site.fleet.yml",
            playbook="edgefleet.k8s.site",
            allowed_signers=str(allowed),
            checkout=str(tmp / "node" / "checkout"),
            status_file=str(tmp / "node" / "status.json"),
            venv="/opt/venv",
            extra_vars_file=str(tmp / "node" / "vars.json"),
            log_file=str(tmp / "node" / "last-run.log"),
            backoff_base=60,
            backoff_max=600,
        )
        self.playbook_out = RECAP_OK.format(changed=2)
        self.playbook_rc = 0
        self.playbook_calls: list[list[str]] = []
        self.now = 1_000_000.0
        self.offline = False

    def keygen(self, name: str) -> Path:
        key = self.tmp / name
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key))
        return key

    def commit(self, text: str, sign: bool = True, key: Path | None = None) -> str:
        (self.author / "file.txt").write_text(text)
        run("git", "-C", str(self.author), "add", "-A")
        flag = "--no-gpg-sign" if not sign else ("-S" if key is None else f"-S{key}")
        run("git", "-C", str(self.author), "commit", "--quiet", flag, "-m", text)
        run("git", "-C", str(self.author), "push", "--quiet", "--force", str(self.remote), "main")
        return run("git", "-C", str(self.author), "rev-parse", "HEAD")

    def runner(self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None, timeout: int) -> ag.Outcome:
        if argv[0] == "git":
            if self.offline and "fetch" in argv:
                return ag.Outcome(128, "fatal: unable to access the repo: Could not resolve host")
            return ag.run_command(argv, env, cwd, timeout)
        self.playbook_calls.append(list(argv))
        return ag.Outcome(self.playbook_rc, self.playbook_out)

    def agent(self) -> ag.Agent:
        return ag.Agent(self.config, runner=self.runner, clock=lambda: self.now)

    def status(self) -> dict[str, object]:
        return json.loads(Path(self.config.status_file).read_text())

    def checked_out(self) -> str:
        return run("git", "-C", self.config.checkout, "rev-parse", "HEAD")


@pytest.fixture
def world(tmp_path: Path) -> World:
    (tmp_path / "node").mkdir()
    return World(tmp_path)


def test_a_signed_commit_is_checked_out_run_and_recorded(world: World) -> None:
    head = world.commit("one")
    code, status, _line = world.agent().run()
    assert code == 0 and status is not None
    assert world.checked_out() == head
    recorded = world.status()
    assert recorded["result"] == "converged" and recorded["commit"] == head and recorded["applied_commit"] == head
    assert recorded["changed"] == 2 and recorded["failed"] is False and recorded["node"] == "pull1"
    assert {"commit", "time", "changed", "failed", "message"} <= set(recorded)
    assert oct(os.stat(world.config.status_file).st_mode & 0o777) == "0o644"
    # The node's run: this node only, a local connection, the extra vars file, on the checkout.
    argv = world.playbook_calls[0]
    assert argv[0] == "/opt/venv/bin/ansible-playbook" and argv[-1] == "edgefleet.k8s.site"
    assert argv[3:5] == ["-c", "local"] and argv[5:7] == ["--limit", "pull1"]
    assert argv[2] == os.path.join(world.config.checkout, "inventory/site.fleet.yml")
    assert oct(os.stat(world.config.log_file).st_mode & 0o777) == "0o600"
    # The run writes its one-node fleet report next to the status file, which names it.
    env = world.agent().playbook_env()
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "edgefleet.k8s.fleet_summary"
    assert env["EDGEFLEET_REPORT"] == recorded["report"] == str(Path(world.config.status_file).parent / "report.json")


@pytest.mark.parametrize("how", ["unsigned", "other key"])
def test_a_commit_without_a_valid_signature_is_refused_and_nothing_runs(world: World, how: str) -> None:
    good = world.commit("one")
    assert world.agent().run()[0] == 0
    bad = world.commit("two", sign=False) if how == "unsigned" else world.commit("two", key=world.keygen("intruder"))
    world.now += 10
    code, _status, line = world.agent().run()
    assert code == 1
    recorded = world.status()
    assert recorded["result"] == "refused" and recorded["failed"] is True
    assert recorded["commit"] == good and recorded["fetched_commit"] == bad and recorded["applied_commit"] == good
    assert bad in line and "no valid signature" in line
    assert world.checked_out() == good  # nothing from the bad commit is on disk
    assert len(world.playbook_calls) == 1  # the playbook never ran for it


def test_a_rollback_to_an_older_signed_commit_is_refused(world: World) -> None:
    old = world.commit("one")
    new = world.commit("two")
    assert world.agent().run()[0] == 0 and world.checked_out() == new
    run("git", "-C", str(world.author), "push", "--quiet", "--force", str(world.remote), f"{old}:refs/heads/main")
    world.now += 10
    code, _status, line = world.agent().run()
    assert code == 1 and "does not descend" in line and world.checked_out() == new


def test_a_failed_fetch_backs_off_exponentially_and_the_next_run_converges(world: World) -> None:
    head = world.commit("one")
    assert world.agent().run()[0] == 0
    world.offline = True
    start = world.now
    code, _status, line = world.agent().run()
    assert code == 1 and "fetch of branch main" in line
    first = world.status()
    assert first["result"] == "fetch_failed" and first["commit"] == head and first["next_attempt"] == start + 60
    # Inside the backoff window: nothing fetched, the status kept.
    world.now = start + 30
    code, status, line = world.agent().run()
    assert code == 0 and status is None and "backing off" in line and world.status() == first
    # The second failure doubles the wait.
    world.now = start + 61
    assert world.agent().run()[0] == 1
    assert world.status()["next_attempt"] == start + 61 + 120 and world.status()["consecutive_failures"] == 2
    # Back online, after the wait: converges, failures reset.
    world.offline = False
    new = world.commit("two")
    world.now = start + 200
    assert world.agent().run()[0] == 0
    back = world.status()
    assert back["commit"] == new and back["consecutive_failures"] == 0 and back["next_attempt"] == 0


def test_now_ignores_the_backoff(world: World) -> None:
    world.commit("one")
    world.offline = True
    assert world.agent().run()[0] == 1
    world.offline = False
    assert world.agent().run(now_flag=True)[0] == 0


def test_a_failed_playbook_is_recorded_with_its_first_failure(world: World) -> None:
    head = world.commit("one")
    world.playbook_rc, world.playbook_out = 2, RECAP_FAILED
    code, _status, _line = world.agent().run()
    assert code == 1
    recorded = world.status()
    assert recorded["result"] == "failed" and recorded["commit"] == head and recorded["applied_commit"] == ""
    assert "the unit did not start" in str(recorded["message"]) and recorded["failed"] is True


def test_a_run_without_a_recap_for_the_node_is_a_failure(world: World) -> None:
    world.commit("one")
    world.playbook_rc, world.playbook_out = 1, "ERROR! the inventory does not parse"
    assert world.agent().run()[0] == 1
    assert "without a recap for pull1" in str(world.status()["message"])


@pytest.mark.parametrize(
    ("failures", "expected"), [(0, 0), (1, 60), (2, 120), (3, 240), (4, 480), (5, 600), (200, 600)]
)
def test_backoff_seconds(failures: int, expected: int) -> None:
    assert ag.backoff_seconds(failures, 60, 600) == expected


def test_the_deploy_key_is_passed_as_a_path_never_as_content(world: World) -> None:
    config = ag.Config(**{**world.config.__dict__, "ssh_key": "/etc/edgefleet/pull/deploy_key", "known_hosts": "/k"})
    env = ag.Agent(config)._git_env()
    assert "-i /etc/edgefleet/pull/deploy_key" in env["GIT_SSH_COMMAND"]
    assert "StrictHostKeyChecking=yes" in env["GIT_SSH_COMMAND"]


def test_main_reports_a_bad_config_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"node": "pull1", "colour": "blue"}))
    assert ag.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown keys colour" in err and "Traceback" not in err
