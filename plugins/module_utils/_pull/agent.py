# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pull-mode agent: fetch, verify the commit's signature, run the site playbook for this node, record.

Installed on the node as ``/usr/local/libexec/edgefleet-pull`` by the ``edgefleet.k8s.pull`` role and started by
``edgefleet-pull.service`` (from ``edgefleet-pull.timer``). One run:

1. backoff: after failures, runs that come before ``next_attempt`` do nothing (the timer keeps firing);
2. ``git fetch`` of one branch over an outbound connection (the node opens no port);
3. ``git verify-commit`` of the fetched tip with ``gpg.format=ssh`` and the allowed signers given at bootstrap;
   an unsigned or wrongly signed commit, or one that does not descend from the last applied commit, is refused
   and nothing is checked out;
4. ``ansible-playbook -c local --limit <node>`` of the site playbook on the verified checkout;
5. the result (commit, time, changed, failed, message) written atomically to the status file (0644, no secret).

Standard library only: it runs before any commit is verified, so nothing from a checkout is imported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

STATUS_SCHEMA = 1
DEFAULT_CONFIG = "/etc/edgefleet/pull/config.json"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
#: The lines of a run's output kept in the status message when the playbook fails.
FAILED_LINE = re.compile(r"^(fatal|failed): \[[^\]]+\].*$", re.M)


@dataclass(frozen=True)
class Config:
    """What the bootstrap wrote to ``config.json`` (no secret: key material lives in 0600 files)."""

    node: str
    repo: str
    branch: str
    inventory: str
    playbook: str
    allowed_signers: str
    checkout: str
    status_file: str
    venv: str
    extra_vars_file: str
    log_file: str
    ssh_key: str = ""
    known_hosts: str = ""
    backoff_base: int = 900
    backoff_max: int = 14400
    git_timeout: int = 120
    run_timeout: int = 3600

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Config:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown keys {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**{key: data[key] for key in data})


@dataclass
class Status:
    """The status file's record. ``commit`` is the commit this run applied (or tried to)."""

    node: str
    result: str
    commit: str
    time: str
    changed: int
    failed: bool
    message: str
    applied_commit: str = ""
    fetched_commit: str = ""
    consecutive_failures: int = 0
    next_attempt: float = 0.0
    schema: int = STATUS_SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "extra"}
        data.update(self.extra)
        return data


@dataclass(frozen=True)
class Outcome:
    rc: int
    out: str


#: How the agent runs a command: (argv, env, cwd, timeout) -> Outcome. Tests replace it.
#: Optional, not `str | None`: this alias is evaluated at run time, where the sanity test's pylint refuses `|`.
Runner = Callable[[Sequence[str], Mapping[str, str], Optional[str], int], Outcome]  # noqa: UP045


def run_command(argv: Sequence[str], env: Mapping[str, str], cwd: str | None, timeout: int) -> Outcome:
    """Run ``argv``; a timeout or a missing program is an outcome (rc 124 / 127), never an exception."""
    try:
        proc = subprocess.run(
            list(argv),
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else ""
        return Outcome(124, f"{out}\ntimed out after {timeout} s")
    except OSError as exc:
        return Outcome(127, f"{argv[0]}: {exc.strerror}")
    return Outcome(proc.returncode, (proc.stdout or "") + (proc.stderr or ""))


def write_json_atomic(path: str, data: Mapping[str, Any], mode: int = 0o644) -> None:
    """Write ``data`` as JSON via a temp file in the same folder, fsync, rename: never a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".edgefleet-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_status(path: str) -> dict[str, Any]:
    """The last status, or an empty mapping when there is none or it does not parse."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def backoff_seconds(failures: int, base: int, cap: int) -> int:
    """Seconds to wait after ``failures`` consecutive failures: base, 2*base, 4*base, ... at most ``cap``."""
    if failures <= 0 or base <= 0:
        return 0
    return int(min(base * (2 ** min(failures - 1, 30)), cap))


def recap_of(out: str, node: str) -> dict[str, int] | None:
    """The PLAY RECAP counts of ``node`` in an ansible-playbook output, or None when it has no recap line."""
    for match in RECAP.finditer(out):
        if match[1] == node:
            return {"changed": int(match[3]), "unreachable": int(match[4]), "failed": int(match[5])}
    return None


def last_line(out: str) -> str:
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _utc(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


class Agent:
    """One pull run. ``runner`` and ``clock`` are injectable so the decisions are unit-tested without Git."""

    def __init__(self, config: Config, runner: Runner = run_command, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.runner = runner
        self.clock = clock
        self.previous = read_status(config.status_file)

    # -- git ------------------------------------------------------------------------------------------
    def _git_env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": os.path.dirname(self.config.status_file),
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }
        if self.config.ssh_key:
            # Paths only: the key itself never appears on a command line.
            env["GIT_SSH_COMMAND"] = (
                f"ssh -i {self.config.ssh_key} -o IdentitiesOnly=yes -o BatchMode=yes"
                f" -o UserKnownHostsFile={self.config.known_hosts} -o StrictHostKeyChecking=yes"
            )
        return env

    def git(self, *args: str, timeout: int | None = None) -> Outcome:
        argv = [
            "git",
            "-C",
            self.config.checkout,
            "-c",
            "gpg.format=ssh",
            "-c",
            f"gpg.ssh.allowedSignersFile={self.config.allowed_signers}",
            *args,
        ]
        return self.runner(argv, self._git_env(), None, timeout or self.config.git_timeout)

    def ensure_checkout(self) -> Outcome:
        if os.path.isdir(os.path.join(self.config.checkout, ".git")):
            return self.git("remote", "set-url", "origin", self.config.repo)
        os.makedirs(self.config.checkout, mode=0o700, exist_ok=True)
        first = self.git("init", "--quiet")
        if first.rc != 0:
            return first
        return self.git("remote", "add", "origin", self.config.repo)

    def fetch(self) -> tuple[str, str]:
        """Fetch the branch; returns (commit, "") or ("", why it failed)."""
        prepared = self.ensure_checkout()
        if prepared.rc != 0:
            return "", f"cannot prepare {self.config.checkout}: {last_line(prepared.out)}"
        ref = f"refs/remotes/origin/{self.config.branch}"
        fetched = self.git("fetch", "--quiet", "--no-tags", "origin", f"+refs/heads/{self.config.branch}:{ref}")
        if fetched.rc != 0:
            return "", f"fetch of branch {self.config.branch} from {self.config.repo} failed: {last_line(fetched.out)}"
        head = self.git("rev-parse", "--verify", f"{ref}^{{commit}}")
        if head.rc != 0:
            return "", f"branch {self.config.branch} has no commit after the fetch: {last_line(head.out)}"
        return head.out.strip().splitlines()[0], ""

    def verify(self, commit: str, applied: str) -> str:
        """Why ``commit`` must not be applied, or "" when its signature is good and it moves forward."""
        checked = self.git("verify-commit", commit)
        if checked.rc != 0:
            return (
                f"commit {commit} refused: no valid signature by an allowed signer "
                f"({self.config.allowed_signers}): {last_line(checked.out)}"
            )
        if applied and applied != commit:
            ancestor = self.git("merge-base", "--is-ancestor", applied, commit)
            if ancestor.rc != 0:
                return (
                    f"commit {commit} refused: it does not descend from the last applied commit {applied}"
                    " (a rollback or a rewritten branch); push a new signed commit on top of it"
                )
        return ""

    def checkout(self, commit: str) -> str:
        done = self.git("-c", "advice.detachedHead=false", "checkout", "--quiet", "--force", "--detach", commit)
        if done.rc != 0:
            return f"checkout of {commit} failed: {last_line(done.out)}"
        cleaned = self.git("clean", "-ffdxq")
        return "" if cleaned.rc == 0 else f"cleaning the checkout failed: {last_line(cleaned.out)}"

    # -- ansible --------------------------------------------------------------------------------------
    def playbook_argv(self) -> list[str]:
        cfg = self.config
        return [
            os.path.join(cfg.venv, "bin", "ansible-playbook"),
            "-i",
            os.path.join(cfg.checkout, cfg.inventory),
            "-c",
            "local",
            "--limit",
            cfg.node,
            "-e",
            f"@{cfg.extra_vars_file}",
            cfg.playbook,
        ]

    @property
    def report_file(self) -> str:
        return os.path.join(os.path.dirname(self.config.status_file), "report.json")

    def playbook_env(self) -> dict[str, str]:
        cfg = self.config
        env = {
            "PATH": os.path.join(cfg.venv, "bin") + os.pathsep + os.environ.get("PATH", "/usr/sbin:/usr/bin"),
            "HOME": os.path.dirname(cfg.status_file),
            "LC_ALL": "C.UTF-8",
            "ANSIBLE_COLLECTIONS_PATH": os.path.join(cfg.checkout, "collections"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            # The fleet report of this one-node run (docs/fleet-report.md), next to the status file.
            "ANSIBLE_CALLBACKS_ENABLED": "edgefleet.k8s.fleet_summary",
            "EDGEFLEET_REPORT": self.report_file,
        }
        config_file = os.path.join(cfg.checkout, "ansible.cfg")
        if os.path.isfile(config_file):
            env["ANSIBLE_CONFIG"] = config_file
        return env

    def converge(self) -> tuple[dict[str, int], str]:
        """Run the site playbook for this node; returns the recap counts and why it failed ("" when it did not)."""
        done = self.runner(self.playbook_argv(), self.playbook_env(), self.config.checkout, self.config.run_timeout)
        with open(os.open(self.config.log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as log:
            log.write(done.out)
        counts = recap_of(done.out, self.config.node)
        if counts is None:
            return {"changed": 0, "unreachable": 0, "failed": 1}, (
                f"ansible-playbook ended (rc {done.rc}) without a recap for {self.config.node}: {last_line(done.out)}"
            )
        if done.rc != 0 or counts["failed"] or counts["unreachable"]:
            detail = FAILED_LINE.search(done.out)
            why = detail.group(0)[:400] if detail else last_line(done.out)
            return counts, f"ansible-playbook failed (rc {done.rc}, failed={counts['failed']}): {why}"
        return counts, ""

    # -- one run --------------------------------------------------------------------------------------
    def run(self, now_flag: bool = False) -> tuple[int, Status | None, str]:
        """One pull run. Returns (exit code, the status written or None when backing off, a line for the log)."""
        cfg = self.config
        now = float(self.clock())
        prev = self.previous
        failures = int(prev.get("consecutive_failures", 0) or 0)
        applied = str(prev.get("applied_commit", "") or "")
        next_attempt = float(prev.get("next_attempt", 0) or 0)
        if failures and not now_flag and now < next_attempt:
            return (
                0,
                None,
                (f"backing off after {failures} failed run(s) until {_utc(next_attempt)}; nothing fetched or applied"),
            )

        commit, why = self.fetch()
        result = "fetch_failed"
        counts = {"changed": 0, "unreachable": 0, "failed": 0}
        if not why:
            why = self.verify(commit, applied)
            result = "refused"
        if not why:
            why = self.checkout(commit)
            result = "failed"
        if not why:
            counts, why = self.converge()
            result = "failed" if why else "converged"

        ok = not why
        failures = 0 if ok else failures + 1
        wait = backoff_seconds(failures, cfg.backoff_base, cfg.backoff_max)
        status = Status(
            node=cfg.node,
            result=result,
            commit=commit if result in ("converged", "failed") else applied,
            fetched_commit=commit,
            applied_commit=commit if ok else applied,
            time=_utc(now),
            changed=counts["changed"],
            failed=not ok,
            message=(
                f"converged {cfg.node} to {commit}" + (f" ({counts['changed']} changed)" if counts["changed"] else "")
                if ok
                else why
            ),
            consecutive_failures=failures,
            next_attempt=now + wait if wait else 0.0,
            extra={"report": self.report_file} if result in ("converged", "failed") else {},
        )
        write_json_atomic(cfg.status_file, status.as_dict())
        return (0 if ok else 1), status, status.message


def load_config(path: str) -> Config:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return Config.from_mapping(data)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    now_flag = "--now" in args
    args = [a for a in args if a != "--now"]
    path = args[0] if args else DEFAULT_CONFIG
    try:
        config = load_config(path)
    except (OSError, ValueError, TypeError) as exc:
        sys.stderr.write(f"edgefleet-pull: cannot read {path}: {exc}\n")
        return 2
    code, _status, line = Agent(config).run(now_flag=now_flag)
    (sys.stderr if code else sys.stdout).write(f"edgefleet-pull: {line}\n")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
