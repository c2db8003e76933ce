# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as AWX/AAP users get it: built with ansible-galaxy, installed from the tarball (docs/awx.md).

`build()` runs `ansible-galaxy collection build` on the checkout; `install()` installs a tarball into a fresh
collections path with nothing else on it (the collection's dependencies come from the `ansible` package, as in
an execution environment). `ansible()` runs an ansible CLI with that path and no checkout on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PLUGINS = REPO / "plugins"


def expected_plugins() -> dict[str, set[str]]:
    """Every plugin the checkout has, by the type ansible-doc lists it under (FQCN)."""
    fq = "edgefleet.k8s.{}".format
    return {
        "module": {fq(p.stem) for p in (PLUGINS / "modules").glob("*.py") if p.stem != "__init__"},
        "callback": {fq(p.stem) for p in (PLUGINS / "callback").glob("*.py") if p.stem != "__init__"},
        "inventory": {fq(p.stem) for p in (PLUGINS / "inventory").glob("*.py") if p.stem != "__init__"},
        # A filter's documentation is plugins/filter/<name>.yml; the test also compares them with FilterModule.
        "filter": {fq(p.stem) for p in (PLUGINS / "filter").glob("*.yml")},
        "role": {fq(p.name) for p in (REPO / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file()},
    }


def env(collections: Path | None) -> dict[str, str]:
    """The environment for an ansible CLI: the venv first, and only `collections` as collections path."""
    out = dict(os.environ)
    out.update(
        PATH=f"{VENV_BIN}{os.pathsep}{out.get('PATH', '')}",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    if collections is not None:
        out["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    return out


def run(argv: list[str], *, cwd: Path, environ: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def build(out: Path) -> Path:
    """`ansible-galaxy collection build` of the checkout into `out`; returns the tarball."""
    proc = run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out), str(REPO)],
        cwd=REPO,
        environ=env(REPO / "collections"),
    )
    assert proc.returncode == 0, f"collection build failed: {proc.stdout}{proc.stderr}"
    tarballs = sorted(out.glob("edgefleet-k8s-*.tar.gz"))
    assert len(tarballs) == 1, f"expected one tarball in {out}: {tarballs}"
    return tarballs[0]


def install(tarball: Path, collections: Path) -> Path:
    """Install `tarball` (no dependencies: the `ansible` package has them) into the fresh path `collections`."""
    proc = run(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--no-deps",
            "--force",
            "-p",
            str(collections),
            str(tarball),
        ],
        cwd=collections.parent,
        environ=env(collections),
    )
    assert proc.returncode == 0, f"collection install failed: {proc.stdout}{proc.stderr}"
    installed = collections / "ansible_collections" / "edgefleet" / "k8s"
    assert (installed / "MANIFEST.json").is_file(), f"nothing installed at {installed}"
    assert not installed.is_symlink(), f"{installed} is a link, not an installed copy"
    return installed


# --------------------------------------------------------------------------- AWX-style jobs on lab nodes

LAB = REPO / "tests" / "lab"
CACHE = Path(os.environ.get("EDGEFLEET_CACHE", Path.home() / ".cache" / "edgefleet")).expanduser()
LAB_KEY = CACHE / "lab" / "id_ed25519"
# The scenario label tests/lab/node.sh puts on these tests' containers (`node.sh rm-scenario awx` clears leftovers).
SCENARIO = "awx"
CLUSTER = "awx-k3s"


@dataclass(frozen=True)
class LabNode:
    name: str  # the podman container
    host: str  # the inventory host name (and the container's hostname)
    address: str  # on edgefleet-lab, in this test's block 10.231.0.206-210 (docs/lab.md)


def _node_sh(*args: str, timeout: int = 900) -> str:
    proc = subprocess.run([str(LAB / "node.sh"), *args], capture_output=True, text=True, check=False, timeout=timeout)
    assert proc.returncode == 0, f"node.sh {' '.join(args)}: {proc.stderr[-3000:]}"
    return proc.stdout.strip()


@contextlib.contextmanager
def own_node(node: LabNode) -> Iterator[LabNode]:
    """A lab node of the test's own: the lab image, key and network made or reused (tests/lab/node.sh
    prepare), the container started, and always removed afterwards (by name: other tests' nodes stay)."""
    _node_sh("prepare")
    try:
        _node_sh("run", node.name, node.host, node.address, "awx", SCENARIO)
        yield node
    finally:
        _node_sh("rm", node.name, timeout=120)


def fleet_file(nodes: list[LabNode]) -> str:
    """One single-server K3s site (docs/fleet-schema.md); more nodes join as agents."""
    lines = [
        "---",
        "# Written by tests/integration/awx.py: the AWX job test's own site (lab stand-ins, not real K3s).",
        "plugin: edgefleet.k8s.fleet",
        "defaults:",
        "  region: lab",
        "  model: podman-node",
        "  channel: stable",
        "  arch: amd64",
        "sites:",
        f"  - name: {CLUSTER}",
        "    distribution: k3s",
        "    version: v1.36.3+lab",
        "    datastore: sqlite",
        "    gitops: {engine: none}",
        "    nodes:",
    ]
    for i, node in enumerate(nodes):
        role = "server" if i == 0 else "agent"
        lines.append(f"      - {{name: {node.host}, address: {node.address}, role: {role}}}")
    return "\n".join(lines) + "\n"


PROJECT_CFG = """\
# The project's ansible.cfg, as a user's AWX project would carry it (docs/awx.md).
[defaults]
host_key_checking = False
interpreter_python = auto_silent
callbacks_enabled = edgefleet.k8s.fleet_summary
forks = 20

[inventory]
enable_plugins = edgefleet.k8s.fleet, ansible.builtin.yaml
any_unparsed_is_failed = True

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no
"""

SITE = """\
---
# The project's playbook: the collection's site playbook, from the installed collection.
- name: Edge fleet
  ansible.builtin.import_playbook: edgefleet.k8s.site
"""


# Where an EE job finds the lab's stand-in bundle (a bind mount of $EDGEFLEET_CACHE/bundle, read-only).
EE_BUNDLE = "/edgefleet-bundle"


def private_data_dir(
    pdd: Path,
    tarball: Path,
    nodes: list[LabNode],
    extravars: dict[str, Any] | None = None,
    *,
    ee: bool = False,
) -> Path:
    """An ansible-runner private data directory laid out as AWX lays out a job's:

    project/                 the project checkout (playbook, ansible.cfg, collections/requirements.yml)
    requirements_collections/ what AWX's project update installs from collections/requirements.yml
    inventory/               the inventory source (the fleet file)
    env/extravars            the job template's extra vars
    env/cmdline              what the machine credential adds (-u, --become)
    env/ssh_key              the machine credential's key (the runner hands it to an ssh-agent)
    env/envvars              the collections path AWX sets for the job

    With `ee`, the job runs in the execution environment, which holds the collection itself: no
    requirements_collections, and the bundle is read at EE_BUNDLE.
    """
    project = pdd / "project"
    (project / "collections").mkdir(parents=True)
    (project / "site.yml").write_text(SITE)
    (project / "ansible.cfg").write_text(PROJECT_CFG)
    (project / "collections" / "requirements.yml").write_text(
        f"---\ncollections:\n  - name: {tarball}\n    type: file\n"
    )
    collections = pdd / "requirements_collections"
    if not ee:
        collections.mkdir()
        install(tarball, collections)
    (pdd / "inventory").mkdir()
    (pdd / "inventory" / "awx.fleet.yml").write_text(fleet_file(nodes))
    envdir = pdd / "env"
    envdir.mkdir()
    variables: dict[str, Any] = {
        "ansible_python_interpreter": "/usr/bin/python3",
        # The lab's stand-in bundle (make controlplane-bundle) and unit type (the stand-ins do not sd_notify).
        "edgefleet_artifacts_bundle": EE_BUNDLE if ee else str(CACHE / "bundle"),
        "edgefleet_distribution_unit_type": "exec",
        "edgefleet_distribution_wait_timeout": 240,
        **(extravars or {}),
    }
    (envdir / "extravars").write_text(json.dumps(variables, indent=2))
    (envdir / "cmdline").write_text("-u edge --become")
    envvars = {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    if not ee:
        envvars.update(ANSIBLE_COLLECTIONS_PATH=str(collections), EDGEFLEET_REPORT=str(pdd / "fleet-report.json"))
    (envdir / "envvars").write_text(json.dumps(envvars))
    key = envdir / "ssh_key"
    key.touch(mode=0o600)
    key.write_text(LAB_KEY.read_text())
    return pdd


@dataclass
class Job:
    """One finished ansible-runner job, read from its artifacts directory only."""

    artifacts: Path

    @property
    def status(self) -> str:
        return (self.artifacts / "status").read_text().strip() if (self.artifacts / "status").exists() else "missing"

    @property
    def rc(self) -> int:
        return int((self.artifacts / "rc").read_text().strip()) if (self.artifacts / "rc").exists() else -1

    def events(self) -> list[dict[str, Any]]:
        files = sorted((self.artifacts / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
        return [json.loads(f.read_text()) for f in files]

    def stats(self) -> dict[str, Any]:
        found = [e for e in self.events() if e.get("event") == "playbook_on_stats"]
        assert len(found) == 1, f"{len(found)} playbook_on_stats events: {self.tail()}"
        data: dict[str, Any] = found[0]["event_data"]
        return data

    def first_task_path(self) -> str:
        for event in self.events():
            path = event.get("event_data", {}).get("task_path")
            if event.get("event") == "playbook_on_task_start" and path:
                return str(path)
        return ""

    def stdout(self) -> str:
        path = self.artifacts / "stdout"
        return path.read_text() if path.exists() else ""

    def tail(self) -> str:
        return self.stdout()[-6000:]


def run_job(
    pdd: Path, ident: str, *, playbook: str = "site.yml", timeout: int = 1200, extra: list[str] | None = None
) -> Job:
    """`ansible-runner run` as AWX starts a job; returns its artifacts (the runner's own exit code is not read)."""
    environ = env(None)
    for var in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_INVENTORY", "ANSIBLE_CALLBACKS_ENABLED"):
        environ.pop(var, None)
    run(
        [str(VENV_BIN / "ansible-runner"), "run", str(pdd), "-p", playbook, "--ident", ident, *(extra or [])],
        cwd=pdd,
        environ=environ,
        timeout=timeout,
    )
    return Job(pdd / "artifacts" / ident)
