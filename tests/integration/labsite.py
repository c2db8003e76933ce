# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab fleet for integration tests that run `playbooks/site.yml` on the lab nodes (`make lab-up`).

The lab fleet (inventories/lab/lab.fleet.yml) has two clusters: lab-k3s (node1 server, node2 and node3
agents) and lab-k0s (node4), in the containers edgefleet-node1..4. Their control planes are the lab's
stand-ins (a real kube-apiserver on kine/SQLite behind a K3s/K0s-shaped CLI), not real K3s or K0s.
`Site` runs ansible-playbook with the fleet_summary callback and reads its JSON report and retry file.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
FLEET = REPO / "inventories" / "lab" / "lab.fleet.yml"
NODES = ("node1", "node2", "node3", "node4")
LAB = REPO / "tests" / "lab"
CACHE = Path(os.environ.get("EDGEFLEET_CACHE", str(Path.home() / ".cache" / "edgefleet")))
IMAGE = "localhost/edgefleet-node:bookworm"
NETWORK = "edgefleet-lab"
CONTAINER = "edgefleet-{}"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def lab_versions() -> dict[str, str]:
    """The lab's pinned versions (tests/lab/controlplane/versions.env), the stand-ins' version strings among them."""
    env = (LAB / "controlplane" / "versions.env").read_text()
    return dict(line.split("=", 1) for line in env.splitlines() if "=" in line and not line.startswith("#"))


# How Ansible reaches the containers of a test's own fleet (its group_vars/all.yml).
LAB_CONNECTION_VARS: dict[str, Any] = {
    "ansible_user": "edge",
    "ansible_become": True,
    "ansible_ssh_private_key_file": str(CACHE / "lab" / "id_ed25519"),
    "ansible_python_interpreter": "/usr/bin/python3",
    "edgefleet_distribution_unit_type": "exec",
}


def lab_fleet_defaults(datastore: str, k3s: str, k0s: str) -> dict[str, Any]:
    """The defaults of a test's own lab fleet: the lab's region and model, amd64, no GitOps engine."""
    return {
        "region": "lab",
        "model": "podman-node",
        "channel": "stable",
        "arch": "amd64",
        "datastore": datastore,
        "gitops": {"engine": "none"},
        "channels": {"stable": {"k3s": k3s, "k0s": k0s}},
    }


def podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=False, timeout=60)


def lab_is_up() -> bool:
    names = podman("ps", "--format", "{{.Names}}").stdout.split()
    return all(CONTAINER.format(n) in names for n in NODES)


@contextlib.contextmanager
def shared_lab_lock() -> Iterator[None]:
    """Held while a test module uses the shared lab nodes (node1..4), so that modules run by parallel pytest
    workers take turns on them."""
    path = CACHE / "lab" / "shared-nodes.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def pause(*nodes: str, attempts: int = 5) -> None:
    """Freeze the nodes' containers. runc's cgroup v1 freezer gives up when the cgroup does not settle in
    FROZEN within its retries, which happens on a loaded machine while processes start or exit in the
    container (runc: "unable to freeze"; opencontainers/runc#2774 and #2791 call it a game of chances);
    runc thaws the cgroup again then, so the attempt is repeated."""
    for node in nodes:
        errors = []
        for attempt in range(1, attempts + 1):
            proc = podman("pause", CONTAINER.format(node))
            state = podman("inspect", "-f", "{{.State.Status}}", CONTAINER.format(node)).stdout.strip()
            if proc.returncode == 0 or state == "paused":
                break
            errors.append(f"attempt {attempt}: rc {proc.returncode}, state {state}: {proc.stderr.strip()}")
            time.sleep(2)
        else:
            raise AssertionError(f"cannot pause {node} in {attempts} attempts: " + "; ".join(errors))


def unpause(*nodes: str) -> None:
    for node in nodes:
        state = podman("inspect", "-f", "{{.State.Status}}", CONTAINER.format(node)).stdout.strip()
        if state == "paused":
            podman("unpause", CONTAINER.format(node))


@dataclass
class Run:
    rc: int
    out: str
    report: dict[str, Any]
    retry: list[str] | None

    def recap(self) -> dict[str, dict[str, int]]:
        return {
            m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
            for m in RECAP.finditer(self.out)
        }

    def node(self, name: str) -> dict[str, Any]:
        found = [n for n in self.report.get("nodes", []) if n["name"] == name]
        assert found, f"{name} is not in the report: {self.report}"
        return found[0]

    def cluster(self, name: str) -> dict[str, Any]:
        found = [c for c in self.report.get("clusters", []) if c["name"] == name]
        assert found, f"cluster {name} is not in the report"
        return found[0]

    def tail(self) -> str:
        return self.out[-6000:]


class Site:
    """ansible-playbook runs on a fleet file (default the lab fleet), each with its own report and retry file."""

    def __init__(self, work: Path, fleet: Path = FLEET) -> None:
        self.work = work
        self.fleet = fleet
        self.count = 0

    def write_own_fleet(
        self, defaults: dict[str, Any], sites: list[dict[str, Any]], group_vars: dict[str, Any] | None = None
    ) -> None:
        """A test's own fleet: its fleet file, and beside it group_vars/all.yml with how Ansible reaches the lab's
        containers (LAB_CONNECTION_VARS) and the test's other vars."""
        inventory = self.fleet.parent
        (inventory / "group_vars").mkdir(parents=True, exist_ok=True)
        all_vars = {**LAB_CONNECTION_VARS, **(group_vars or {})}
        (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(all_vars))
        fleet = {"plugin": "edgefleet.k8s.fleet", "defaults": defaults, "sites": sites}
        self.fleet.write_text(yaml.safe_dump(fleet, sort_keys=False))

    def _argv(self, *extra: str, playbook: str = "site.yml") -> tuple[list[str], dict[str, str], Path, Path]:
        self.count += 1
        report = self.work / f"report-{self.count}.json"
        retry = self.work / f"retry-{self.count}"
        env = dict(os.environ)
        env.update(
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
            ANSIBLE_CALLBACKS_ENABLED="edgefleet.k8s.fleet_summary",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_NOCOLOR="1",
            EDGEFLEET_REPORT=str(report),
            EDGEFLEET_RETRY_FILE=str(retry),
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        )
        argv = [str(VENV_BIN / "ansible-playbook"), f"playbooks/{playbook}", "-i", str(self.fleet), *extra]
        return argv, env, report, retry

    @staticmethod
    def _result(rc: int, out: str, report: Path, retry: Path) -> Run:
        data = json.loads(report.read_text()) if report.exists() else {}
        lines = retry.read_text().split() if retry.exists() else None
        return Run(rc, out, data, lines)

    def run(self, *extra: str, timeout: int = 900, playbook: str = "site.yml") -> Run:
        argv, env, report, retry = self._argv(*extra, playbook=playbook)
        proc = subprocess.run(
            argv,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return self._result(proc.returncode, proc.stdout + proc.stderr, report, retry)

    def run_killed(self, when_line: str, *extra: str, timeout: int = 900) -> str:
        """A run whose controller (ansible-playbook and its workers) is killed with SIGKILL as soon as the
        output shows ``when_line``; returns the output up to then."""
        argv, env, _report, _retry = self._argv(*extra)
        log = self.work / f"run-{self.count}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + timeout
            killed = False
            while proc.poll() is None and time.monotonic() < deadline:
                if when_line in log.read_text():
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.2)
            proc.wait()
        assert killed, f"the run never reached {when_line!r}: {log.read_text()[-3000:]}"
        return log.read_text()

    def run_pausing(
        self, node: str, when_line: str, *extra: str, timeout: int = 900, playbook: str = "site.yml"
    ) -> Run:
        """A run during which ``node`` is paused as soon as the output shows ``when_line``."""
        argv, env, report, retry = self._argv(*extra, playbook=playbook)
        log = self.work / f"run-{self.count}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
            deadline = time.monotonic() + timeout
            paused = False
            while proc.poll() is None and time.monotonic() < deadline:
                if not paused and when_line in log.read_text():
                    pause(node)
                    paused = True
                time.sleep(0.5)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        assert paused, f"the run never reached {when_line!r}: {log.read_text()[-3000:]}"
        return self._result(proc.returncode, log.read_text(), report, retry)


def exec_on(node: str, *argv: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["podman", "exec", "-i", CONTAINER.format(node), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, f"{node}: {argv} exited {proc.returncode}: {proc.stderr[-1000:]}"
    return proc.stdout


def bash_on(node: str, script: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run a bash script in a lab node's container; with ``check``, fail the test on a non-zero exit."""
    proc = subprocess.run(
        ["podman", "exec", CONTAINER.format(node), "bash", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, (
            f"{node}: `{script}` exited {proc.returncode}: {proc.stdout[-1500:]}{proc.stderr[-1500:]}"
        )
    return proc


def sha(node: str, path: str) -> str | None:
    proc = podman("exec", CONTAINER.format(node), "sha256sum", path)
    return proc.stdout.split()[0] if proc.returncode == 0 else None


def registered_nodes(server: str) -> list[str]:
    out = podman("exec", CONTAINER.format(server), "k3s", "kubectl", "get", "nodes", "-o", "name").stdout
    return [line.removeprefix("node/") for line in out.split() if line.startswith("node/")]


def remove_containers(names: Sequence[str]) -> None:
    """Remove lab containers by name (tests/lab/node.sh only removes those that also carry the lab label)."""
    subprocess.run([str(LAB / "node.sh"), "rm", *names], capture_output=True, timeout=300, check=False)


@contextlib.contextmanager
def scenario_containers(nodes: Sequence[tuple[str, str, str]], scenario: str) -> Iterator[None]:
    """Fresh lab containers ``(name, hostname, ip)`` of one test scenario, always removed afterwards (KEEP=1
    keeps them). lanes.sh and CI stop a run with SIGTERM: it becomes KeyboardInterrupt, so removal still runs."""

    def _interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    names = [name for name, _host, _ip in nodes]
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        # node.sh prepare takes the lab lock, which a full lab run holds for long: skip it when its results exist.
        prepared = (
            subprocess.run(["podman", "image", "exists", IMAGE], check=False).returncode == 0
            and subprocess.run(["podman", "network", "exists", NETWORK], check=False).returncode == 0
            and (CACHE / "lab" / "id_ed25519").is_file()
        )
        if not prepared:
            subprocess.run([str(LAB / "node.sh"), "prepare"], check=True, stdout=subprocess.DEVNULL, timeout=3600)
        remove_containers(names)  # left over from an interrupted or KEEP=1 run: start from fresh containers
        for name, host, ip in nodes:
            subprocess.run(
                [str(LAB / "node.sh"), "run", name, host, ip, "scenario", scenario],
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=300,
            )
        yield
    finally:
        if os.environ.get("KEEP") != "1":
            remove_containers(names)
        signal.signal(signal.SIGTERM, previous)


class ReadyzPoller:
    """GET /readyz every second on each server in ``urls``, with the admin client certificate of ``kubeconfig`` (the
    text of a kubeconfig; independent of any join token). A tick passes when any server answers 200, as the API is
    up for a client that knows every server (a K3s agent's load balancer does); each server's own answers are kept
    too, for the notes."""

    def __init__(self, work: Path, kubeconfig: str, urls: Sequence[str]) -> None:
        user = yaml.safe_load(kubeconfig)["users"][0]["user"]
        cert, key = work / "poller-admin.crt", work / "poller-admin.key"
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        key.chmod(0o600)
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        self.context.load_cert_chain(str(cert), str(key))
        self.urls = list(urls)
        self.results: list[tuple[float, bool]] = []
        self.per_server: dict[str, list[bool]] = {url: [] for url in self.urls}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _ready(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}/readyz", context=self.context, timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _loop(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            answers = [self._ready(url) for url in self.urls]
            for url, ok in zip(self.urls, answers, strict=True):
                self.per_server[url].append(ok)
            self.results.append((time.time(), any(answers)))
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    def __enter__(self) -> ReadyzPoller:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def failed(self) -> int:
        """Ticks on which no server answered."""
        return sum(1 for _t, ok in self.results if not ok)

    def longest_outage(self) -> int:
        """The longest run of ticks on which no server answered."""
        return _longest_run_of_false([ok for _t, ok in self.results])

    def server_outages(self) -> dict[str, int]:
        """Each server's own longest run of ticks without an answer (its restart, for one)."""
        return {url: _longest_run_of_false(answers) for url, answers in self.per_server.items()}


def _longest_run_of_false(answers: Sequence[bool]) -> int:
    longest = current = 0
    for ok in answers:
        current = 0 if ok else current + 1
        longest = max(longest, current)
    return longest
