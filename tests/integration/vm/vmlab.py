"""Helpers for tests on the lab's dm-crypt VM (tests/lab/vm/, docs/lab.md "The dm-crypt VM").

- `VmHost`: ssh to the VM as the scripts in tests/lab/vm/ do (user edge, the lab key, 127.0.0.1:$VM_SSH_PORT).
- `Ansible`: runs `ansible-playbook` with the ansible.posix.json stdout callback, so a run's counts and
  task results are data (`PlayRun`), not text scraped from the PLAY RECAP. Verbose output (-vvv) goes to
  stderr (ANSIBLE_VERBOSE_TO_STDERR); both streams are kept as log files.
- `qemu_running()` / `start_vm()` / `stop_vm()`: the VM's pid files and the up/check/down scripts (`env` for
  a VM other than the lab's, as the Secure Boot test boots).

Named vmlab (not conftest) because the other integration tests import the `conftest` module by name.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
VM_LAB = REPO / "tests" / "lab" / "vm"
CACHE = Path(os.environ.get("EDGEFLEET_CACHE", str(Path.home() / ".cache" / "edgefleet")))
VM_RUN = CACHE / "vm" / "run"
VM_NAME = "edgefleet-vm"
VM_INVENTORY = REPO / "inventories" / "lab" / "generated" / "vm.yml"
VM_KEY = CACHE / "lab" / "id_ed25519"
VENV_BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    """The venv's copy of an Ansible CLI when pytest runs from the venv, else the one on PATH."""
    local = VENV_BIN / name
    return str(local) if local.exists() else name


def _pid_alive(pidfile: Path, want: str) -> bool:
    """The pid in `pidfile` is alive and its command line contains `want` (as vm-lib.sh checks)."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return False
    return want in cmdline


def qemu_running() -> bool:
    return _pid_alive(VM_RUN / "qemu.pid", f"{VM_RUN}/")


def _script(name: str, timeout: float, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VM_LAB / name)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_vm(env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """tests/lab/vm/up.sh: build or reuse the image, boot (or reuse a running VM), wait for ssh. `env` sets
    up.sh's variables for a VM other than the lab's (VM_RUN, VM_NAME, VM_SSH_PORT, VM_INVENTORY, VM_BOOT...)."""
    return _script("up.sh", 1800, env)


def check_vm() -> subprocess.CompletedProcess[str]:
    """tests/lab/vm/check.sh: ssh, dm-crypt on a loop device inside the guest, the software TPM."""
    return _script("check.sh", 600)


def stop_vm(env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """tests/lab/vm/down.sh: ends only the qemu and swtpm whose pids the run directory records."""
    return _script("down.sh", 120, env)


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@dataclass(frozen=True)
class Rows:
    """A stand-in datastore's rows, counted three ways by files/rows.sh."""

    configmaps: int  # ConfigMaps row-* through the API
    digest: str  # sha256 of their names and data
    kine: int  # kine's rows under that prefix, read from SQLite itself

    def __str__(self) -> str:
        return f"{self.configmaps} ConfigMaps, digest {self.digest[:16]}..., {self.kine} kine rows"


@dataclass
class VmHost:
    """ssh to the VM as `edge` (passwordless sudo), like `vm_ssh` in tests/lab/vm/vm-lib.sh."""

    port: int = int(os.environ.get("VM_SSH_PORT", "2222"))
    key: Path = VM_KEY
    user: str = "edge"

    def argv(self, command: str) -> list[str]:
        return [
            "ssh",
            *("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
            *("-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-p", str(self.port), "-i", str(self.key)),
            f"{self.user}@127.0.0.1",
            command,
        ]

    def run(self, command: str, *, stdin: str | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run `command` in the guest's shell; never raises on a non-zero exit (see `out`)."""
        return subprocess.run(
            self.argv(command), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )

    def ok(self, command: str, *, stdin: str | None = None) -> bool:
        return self.run(command, stdin=stdin).returncode == 0

    def out(self, command: str, *, stdin: str | None = None) -> str:
        """stdout of `command`, stripped; AssertionError with its stderr when it fails."""
        proc = self.run(command, stdin=stdin)
        if proc.returncode != 0:
            raise AssertionError(f"on the VM: `{command}` exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        return proc.stdout.strip()

    def script(self, path: Path, *args: str) -> str:
        """A local script run as root in the guest (`sudo bash -s args < path`)."""
        return self.out("sudo bash -s " + " ".join(args), stdin=path.read_text())

    def mounted_from(self, path: str) -> str:
        """What is mounted at `path` ('' when it is not a mount point)."""
        return self.run(f"findmnt -n -o SOURCE {path}").stdout.strip()

    def is_active(self, unit: str) -> bool:
        return self.ok(f"systemctl is-active --quiet {unit}")

    def wait_ssh(self, timeout: float) -> bool:
        return wait_for(lambda: self.ok("true") or not qemu_running(), timeout, 2) and qemu_running()


# --------------------------------------------------------------------------- ansible-playbook


@dataclass(frozen=True)
class TaskResult:
    play: str
    task: str
    action: str
    result: Mapping[str, Any]

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed")) or bool(self.result.get("unreachable"))

    @property
    def msg(self) -> str:
        return str(self.result.get("msg", ""))


@dataclass
class PlayRun:
    """One ansible-playbook run: exit status, the JSON callback's document, and where the logs are."""

    name: str
    argv: list[str]
    rc: int
    json_log: Path  # stdout: the ansible.posix.json document
    stderr_log: Path  # warnings, and the -v... output
    data: dict[str, Any] | None
    host: str = VM_NAME

    @property
    def stats(self) -> dict[str, int]:
        if self.data is None:
            raise AssertionError(f"{self.name}: no JSON result (rc {self.rc}); stderr:\n{self.stderr_tail()}")
        stats: dict[str, int] = self.data["stats"].get(self.host, {})
        return stats

    @property
    def changed(self) -> int:
        return self.stats.get("changed", 0)

    @property
    def failures(self) -> int:
        return self.stats.get("failures", 0) + self.stats.get("unreachable", 0)

    def results(self) -> Iterator[TaskResult]:
        for play in (self.data or {}).get("plays", []):
            for task in play.get("tasks", []):
                result = task.get("hosts", {}).get(self.host)
                if result is not None:
                    yield TaskResult(play["play"]["name"], task["task"]["name"], result.get("action", ""), result)

    def by_action(self, action: str) -> list[TaskResult]:
        return [r for r in self.results() if r.action == action]

    def changed_tasks(self) -> list[str]:
        return [f"{r.task} ({r.action})" for r in self.results() if r.changed]

    def failed_tasks(self) -> list[TaskResult]:
        return [r for r in self.results() if r.failed and not r.result.get("ignore_errors")]

    def stderr_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.stderr_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def explain(self) -> str:
        """Why a run failed, for an assertion message: the failed tasks' messages, else stderr's tail."""
        failed = self.failed_tasks()
        if failed:
            body = "\n".join(f"  task {r.task!r} ({r.action}): {r.msg[:1500]}" for r in failed)
        else:
            body = self.stderr_tail()
        return f"{self.name} exited {self.rc}; logs {self.json_log}, {self.stderr_log}\n{body}"


def _last_document(text: str) -> dict[str, Any] | None:
    """The last JSON document in the callback's output. With several playbooks in one run, the callback
    prints one per playbook, each holding every play so far and the run's cumulative stats."""
    decoder = json.JSONDecoder()
    last, pos = None, 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return last
        try:
            last, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return last


class Ansible:
    """ansible-playbook against the VM inventory, results from the ansible.posix.json callback."""

    def __init__(self, logs: Path, env: Mapping[str, str], inventory: Path = VM_INVENTORY) -> None:
        self.logs = logs
        self.inventory = inventory
        self.env = {
            **os.environ,
            "ANSIBLE_CONFIG": os.environ.get("ANSIBLE_CONFIG", str(REPO / "ansible.cfg")),
            "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(REPO / "collections")),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            # ansible.cfg enables profile_tasks, which writes to stdout between the JSON's lines. Naming
            # only the stdout callback here leaves no other callback (an empty list is an error).
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json",
            "ANSIBLE_VERBOSE_TO_STDERR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            **env,
        }
        self.runs: list[PlayRun] = []

    def play(
        self,
        name: str,
        *playbooks: Path,
        extra_vars: Mapping[str, str] | None = None,
        verbose: int = 0,
        timeout: float = 3600,
    ) -> PlayRun:
        argv = [_tool("ansible-playbook"), "-i", str(self.inventory), *map(str, playbooks)]
        if extra_vars:
            argv += ["-e", json.dumps(dict(extra_vars))]
        if verbose:
            argv.append("-" + "v" * verbose)
        json_log = self.logs / f"{name}.json"
        stderr_log = self.logs / f"{name}.stderr.log"
        with json_log.open("w") as out, stderr_log.open("w") as err:
            proc = subprocess.run(argv, cwd=REPO, env=self.env, stdout=out, stderr=err, timeout=timeout, check=False)
        run = PlayRun(name, argv, proc.returncode, json_log, stderr_log, _last_document(json_log.read_text()))
        self.runs.append(run)
        return run

    def vault_view(self, path: Path) -> str:
        """The decrypted content of a vault file (a secret: never put it in a message)."""
        proc = subprocess.run(
            [_tool("ansible-vault"), "view", str(path)], env=self.env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise AssertionError(f"ansible-vault view {path} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout


def first_slot(clevis_list: str, pin: str) -> str | None:
    """The key slot of the first `pin` binding in `clevis luks list` output."""
    match = re.search(rf"^(\d+): {re.escape(pin)} ", clevis_list, re.MULTILINE)
    return match.group(1) if match else None


def secret_in(text: str, secrets: Sequence[str]) -> bool:
    """True when any secret appears in `text`, as it is or JSON-escaped."""
    return any(s in text or json.dumps(s)[1:-1] in text for s in secrets)
