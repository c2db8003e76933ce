# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make test-flux`: REAL Flux controllers reconcile a local fleet repo.

What runs, all on 127.0.0.1, as host processes started and stopped by this test:

- kine (SQLite) + a real kube-apiserver: the lab's bare control plane (`controlplane_factory`). It is
  not K3s: there is no kube-controller-manager, no node, no pod. The controllers use its admin kubeconfig.
- Flux source-controller and kustomize-controller, built from their Go modules by tests/lab/flux/build.sh,
  with the real Flux CRDs from those modules' config/crd/bases.
- A Git host stand-in: tests/lab/flux/git_http.py serves a bare repo over smart HTTP (git http-backend).

The chain under test is ours end to end: a fleet file -> the edgefleet.k8s.fleet inventory plugin
(ansible-inventory) -> the fleet_repo scaffold (module_utils/_fleet_repo.py) -> a commit -> the
registration objects applied by gitops_registration's code path (module_utils/_gitops/module.py
run_registration, delivery=api, wait=true) -> Flux fetches the commit and applies the cluster's Kustomize folder. The
overlay marker ConfigMaps must appear, carry Flux's ownership labels, and follow the cluster when the
fleet file moves it to another region (old overlay pruned, new one applied, at the new commit).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FLUX_LAB = ROOT / "tests" / "lab" / "flux"
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import fleet_repo
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.module import run_registration
from edgefleet_standin import core  # put on sys.path by conftest.py

pytestmark = pytest.mark.flux

FLUX_NS = "flux-system"
NAME = "edgefleet-fleet"
MARKER_NS = fleet_repo.MARKER_NAMESPACE
WAIT = 240.0  # seconds: an upper bound for each reconcile on a loaded 2-core machine

# site-a is the cluster under test; site-b only shares the repo (its overlay must never reach site-a).
FLEET = """\
plugin: edgefleet.k8s.fleet
defaults:
  distribution: k3s
  version: v1.31.4+k3s1
  datastore: sqlite
  model: rpi4
  channel: stable
  arch: arm64
  gitops:
    engine: flux
    repo: {repo}
    branch: main
overlays:
  rules:
    - {{name: eu, slot: region, match: {{region: eu-west}}, overlay: region-eu-west}}
    - {{name: us, slot: region, match: {{region: us-east}}, overlay: region-us-east}}
    - {{name: apac, slot: region, match: {{region: ap-south}}, overlay: region-ap-south}}
sites:
  - name: site-a
    region: {region_a}
    nodes:
      - {{name: site-a-s1, address: 192.0.2.101, role: server}}
  - name: site-b
    region: ap-south
    nodes:
      - {{name: site-b-s1, address: 192.0.2.102, role: server}}
"""


@dataclass(frozen=True)
class FluxBuild:
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def crds(self) -> list[Path]:
        return sorted((self.root / "crd").glob("*.yaml"))


@pytest.fixture(scope="module")
def flux_build() -> FluxBuild:
    out = subprocess.run([str(FLUX_LAB / "build.sh"), "--print-root"], capture_output=True, text=True, check=True)
    build = FluxBuild(Path(out.stdout.strip()))
    missing = [t for t in ("source-controller", "kustomize-controller") if not (build.bin / t).is_file()]
    if missing or not build.crds:
        pytest.fail(f"Flux controllers {missing} or CRDs missing under {build.root}: run `make flux` first")
    return build


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "edgefleet-test", "GIT_AUTHOR_EMAIL": "test@example.invalid"}
    env.update(GIT_COMMITTER_NAME="edgefleet-test", GIT_COMMITTER_EMAIL="test@example.invalid")
    out = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=60)
    assert out.returncode == 0, f"git {' '.join(args)}: {out.stderr}"
    return out.stdout.strip()


@pytest.fixture
def git_host(tmp_path: Path) -> Iterator[tuple[str, Path, int]]:
    """A bare repo fleet.git served read-only over smart HTTP on loopback: (url, work tree, server pid)."""
    served = tmp_path / "git-served"
    served.mkdir()
    _git(served, "init", "-q", "--bare", "-b", "main", "fleet.git")
    work = tmp_path / "fleet-work"
    _git(tmp_path, "init", "-q", "-b", "main", str(work))
    _git(work, "remote", "add", "origin", str(served / "fleet.git"))
    log = (tmp_path / "git-http.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(FLUX_LAB / "git_http.py"), str(served), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        assert line.startswith("listening on http://127.0.0.1:"), line
        yield line.split()[-1] + "/fleet.git", work, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _hostvars(inventory: Path) -> dict[str, dict[str, Any]]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    out = subprocess.run(
        ["ansible-inventory", "-i", str(inventory), "--list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    hostvars: dict[str, dict[str, Any]] = json.loads(out.stdout)["_meta"]["hostvars"]
    return hostvars


def _scaffold_and_push(work: Path, hostvars: dict[str, dict[str, Any]], message: str) -> str:
    """The fleet_repo scaffold for every cluster of the inventory, committed and pushed; the commit id."""
    result = fleet_repo.plan(str(work), fleet_repo.clusters_from_hostvars(hostvars), prune=True)
    assert not result.hand_written, result.hand_written
    fleet_repo.apply(str(work), result)
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", message)
    _git(work, "push", "-q", "origin", "main")
    return _git(work, "rev-parse", "HEAD")


def _register(kubeconfig: Path, hv: dict[str, Any]) -> dict[str, Any]:
    """gitops_registration's code path, delivery=api, waiting for the real source-controller."""
    params = {
        "engine": "flux",
        "delivery": "api",
        "distribution": "k3s",
        "kubeconfig": str(kubeconfig),
        "cluster": hv["edgefleet_cluster"],
        "path": hv["edgefleet_gitops_path"],
        "overlays": hv["edgefleet_overlays"],
        "site": hv["edgefleet_site"],
        "region": hv["edgefleet_region"],
        "model": hv["edgefleet_model"],
        "channel": hv["edgefleet_channel"],
        "repo_url": hv["edgefleet_gitops_repo"],
        "branch": hv["edgefleet_gitops_branch"],
        # the documented overrides, shortened for a test; defaults are tuned for flaky links
        "flux": {"source_interval": "20s", "interval": "20s", "retry_interval": "5s", "timeout": "2m"},
        "wait": True,
        "wait_timeout": WAIT,
    }
    return run_registration(params, check_mode=False)


def _get(cp: Any, *args: str) -> Any:
    out = cp.kubectl("get", *args, "-o", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _markers(cp: Any) -> dict[str, dict[str, Any]]:
    items = _get(cp, "configmaps", "-n", MARKER_NS)["items"]
    return {i["metadata"]["name"]: i for i in items if i["metadata"]["name"].startswith("edgefleet-")}


def _condition(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c.get("type") == kind), {})


def _wait_for(what: str, probe: Callable[[], Any], sup: core.Supervisor, logs: list[Path]) -> Any:
    deadline = time.monotonic() + WAIT
    last: Any = None
    while time.monotonic() < deadline:
        sup.check()
        last = probe()
        if last:
            return last
        time.sleep(2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in logs if p.exists())
    pytest.fail(f"timed out after {WAIT:.0f} s waiting for {what}\n{tails}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _listeners(pids: set[int]) -> list[tuple[int, str]]:
    """(pid, local address) of every TCP/UDP socket these processes listen on."""
    out = subprocess.run(["ss", "-H", "-l", "-t", "-u", "-n", "-p"], capture_output=True, text=True, check=True)
    found = []
    for line in out.stdout.splitlines():
        cols = line.split()
        for pid in pids:
            if f"pid={pid}," in line:
                found.append((pid, cols[4]))
    return found


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _start_controllers(build: FluxBuild, kubeconfig: Path, work: Path) -> tuple[core.Supervisor, dict[str, int]]:
    """source-controller and kustomize-controller as host processes, every address on 127.0.0.1."""
    ports = {k: core.free_port() for k in ("storage", "sc-metrics", "sc-health", "kc-metrics", "kc-health")}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KUBECONFIG": str(kubeconfig), "RUNTIME_NAMESPACE": FLUX_NS}
    env["HOME"] = str(work)  # nothing of the user's (git config, docker auth) leaks in
    (work / "storage").mkdir()
    common = ["--enable-leader-election=false", "--watch-all-namespaces=true", "--log-encoding=console"]
    sup = core.Supervisor()
    sup.add(
        core.Child(
            "source-controller",
            [
                str(build.bin / "source-controller"),
                f"--storage-path={work / 'storage'}",
                f"--storage-addr=127.0.0.1:{ports['storage']}",
                f"--storage-adv-addr=127.0.0.1:{ports['storage']}",
                f"--metrics-addr=127.0.0.1:{ports['sc-metrics']}",
                f"--health-addr=127.0.0.1:{ports['sc-health']}",
                *common,
            ],
            log_path=work / "source-controller.log",
        ),
        env,
    )
    sup.add(
        core.Child(
            "kustomize-controller",
            [
                str(build.bin / "kustomize-controller"),
                f"--metrics-addr=127.0.0.1:{ports['kc-metrics']}",
                f"--health-addr=127.0.0.1:{ports['kc-health']}",
                "--no-remote-bases=true",
                *common,
            ],
            log_path=work / "kustomize-controller.log",
        ),
        env,
    )
    return sup, ports


def test_flux_follows_the_fleet_file(
    flux_build: FluxBuild, controlplane_factory: Any, git_host: tuple[str, Path, int], tmp_path: Path
) -> None:
    t0 = time.monotonic()
    url, work, git_pid = git_host
    cp = controlplane_factory()
    logs = [tmp_path / "flux" / n for n in ("source-controller.log", "kustomize-controller.log")]

    # the real Flux CRDs from the controllers' module zips
    docs = [yaml.safe_load(p.read_text()) for p in flux_build.crds]
    core.apply_docs(cp.kubeconfig, docs)
    names = [d["metadata"]["name"] for d in docs]
    assert {"gitrepositories.source.toolkit.fluxcd.io", "kustomizations.kustomize.toolkit.fluxcd.io"} <= set(names)
    out = cp.kubectl("wait", "--for=condition=Established", "--timeout=120s", *(f"crd/{n}" for n in names))
    assert out.returncode == 0, out.stderr

    # the fleet file -> inventory -> scaffold -> commit
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    fleet = inventory / "lab.fleet.yml"
    fleet.write_text(FLEET.format(repo=url, region_a="eu-west"))
    hostvars = _hostvars(inventory)
    site_a = hostvars["site-a-s1"]
    assert site_a["edgefleet_overlays"] == ["base", "region-eu-west"]
    first = _scaffold_and_push(work, hostvars, "fleet: site-a in eu-west")

    (tmp_path / "flux").mkdir()
    sup, ports = _start_controllers(flux_build, cp.kubeconfig, tmp_path / "flux")
    try:
        for key in ("sc-health", "kc-health"):
            _wait_for(f"{key} /readyz", functools.partial(_http_ok, f"http://127.0.0.1:{ports[key]}/readyz"), sup, logs)
        t_up = time.monotonic()

        registered = _register(cp.kubeconfig, site_a)
        assert registered["changed"] and registered["path"] == "clusters/site-a"
        assert str(registered["ready"]).startswith("Ready=True"), registered["ready"]
        source = _get(cp, "gitrepositories.source.toolkit.fluxcd.io", "-n", FLUX_NS, NAME)
        assert _condition(source).get("status") == "True", source.get("status")
        artifact = source["status"]["artifact"]
        assert artifact["revision"] == f"main@sha1:{first}"
        assert artifact["url"].startswith(f"http://127.0.0.1:{ports['storage']}/")

        def applied(commit: str, want: set[str]) -> dict[str, dict[str, Any]] | None:
            sync = _get(cp, "kustomizations.kustomize.toolkit.fluxcd.io", "-n", FLUX_NS, NAME)
            if sync.get("status", {}).get("lastAppliedRevision") != f"main@sha1:{commit}":
                return None
            markers = _markers(cp)
            return markers if set(markers) == want else None

        markers = _wait_for(
            "the eu-west overlay applied by kustomize-controller",
            lambda: applied(first, {"edgefleet-base", "edgefleet-overlay-region-eu-west"}),
            sup,
            logs,
        )
        t_first = time.monotonic()
        for cm in markers.values():
            labels = cm["metadata"].get("labels", {})
            assert labels.get("kustomize.toolkit.fluxcd.io/name") == NAME, labels  # applied by Flux, not by us
            assert labels.get("kustomize.toolkit.fluxcd.io/namespace") == FLUX_NS, labels
        assert markers["edgefleet-overlay-region-eu-west"]["data"] == {"layer": "overlay", "overlay": "region-eu-west"}

        # everything we started listens on loopback only
        pids = {c.proc.pid for c in sup.children if c.proc} | set(cp.pids()) | {git_pid}
        listening = _listeners(pids)
        assert git_pid in {pid for pid, _addr in listening}, listening
        outside = [(pid, addr) for pid, addr in listening if not addr.startswith(("127.0.0.1:", "[::1]:"))]
        assert not outside, f"listening beyond loopback: {outside}"

        # the fleet file moves site-a to us-east: re-scaffold, commit, re-register
        fleet.write_text(FLEET.format(repo=url, region_a="us-east"))
        hostvars = _hostvars(inventory)
        site_a = hostvars["site-a-s1"]
        assert site_a["edgefleet_overlays"] == ["base", "region-us-east"]
        second = _scaffold_and_push(work, hostvars, "fleet: site-a moves to us-east")
        assert second != first
        t_move = time.monotonic()
        moved = _register(cp.kubeconfig, site_a)
        assert moved["changed"]  # the identity and substitution ConfigMaps carry the new region
        # what `flux reconcile source git` does; the 20 s interval would get there too
        out = cp.kubectl(
            "annotate", "--overwrite", "-n", FLUX_NS, f"gitrepositories.source.toolkit.fluxcd.io/{NAME}",
            f"reconcile.fluxcd.io/requestedAt={time.time_ns()}",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        markers = _wait_for(
            "the us-east overlay applied and the eu-west one pruned",
            lambda: applied(second, {"edgefleet-base", "edgefleet-overlay-region-us-east"}),
            sup,
            logs,
        )
        t_second = time.monotonic()
        assert markers["edgefleet-overlay-region-us-east"]["data"]["overlay"] == "region-us-east"
        sync = _get(cp, "kustomizations.kustomize.toolkit.fluxcd.io", "-n", FLUX_NS, NAME)
        assert _condition(sync).get("status") == "True", sync["status"]
        inventory_ids = {e["id"] for e in sync["status"]["inventory"]["entries"]}
        assert f"{MARKER_NS}_edgefleet-overlay-region-us-east__ConfigMap" in inventory_ids
        assert not any("region-eu-west" in i or "region-ap-south" in i for i in inventory_ids), inventory_ids
        identity = _get(cp, "configmap", "-n", MARKER_NS, "cluster-identity")
        assert identity["data"]["region"] == "us-east"
        rss = {c.name: _rss_mib(c.proc.pid) for c in sup.children if c.proc}
        print(
            f"\nflux-e2e: controllers ready {t_up - t0:.1f} s after start; first reconcile {t_first - t_up:.1f} s;"
            f" move reconciled {t_second - t_move:.1f} s after the push; total {time.monotonic() - t0:.1f} s;"
            f" RSS {', '.join(f'{k} {v:.0f} MiB' for k, v in rss.items())}"
        )
    finally:
        pids_started = [c.proc.pid for c in sup.children if c.proc]
        sup.stop_all()
    for pid in pids_started:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
