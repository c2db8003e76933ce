# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make test-helm`: the fleet's Helm values layers, rendered by a real `helm template`.

1. A fleet with Helm layering goes through the inventory's schema (``build_plan``), and the
   scaffold (``fleet_repo``) writes the fleet repo, with the small chart ``helm/edge-app`` beside it.
2. Argo CD: the chart is rendered with the Application's ``helm.valueFiles``, as Argo CD would.
3. Flux: ``kubectl kustomize`` renders the cluster folder, which brings the layers' ConfigMaps; the
   chart is rendered with those ConfigMaps' values in the HelmRelease's ``valuesFrom`` order.
4. Each rendered value must come from the layer the test expects: the latest slot that sets it.
   The expectation is written out here by hand, not computed by the code under test.
5. Two overlays of one slot giving one value differently stop the inventory, naming file, site and
   key, as an exclusive-slot clash of the Kustomize overlays does.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.helm

ROOT = Path(__file__).resolve().parents[2]
CHART = Path(__file__).resolve().parent / "helm" / "edge-app"
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import fleet_repo
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.module import run_registration
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_schema import FleetError, build_plan

REPO_URL = "https://git.example.org/fleet.git"
FLEET: dict[str, Any] = {
    "defaults": {
        "model": "rpi5",
        "channel": "beta",
        "version": "v1.31.4+k3s1",
        "gitops": {"engine": "flux", "repo": REPO_URL},
    },
    "overlays": {
        # listed against slot order on purpose
        "rules": [
            {"name": "ber", "slot": "site", "match": {"site": "ber-01"}, "overlay": "site-ber"},
            {"name": "beta", "slot": "channel", "match": {"channel": "beta"}, "overlay": "channel-beta"},
            {"name": "pi", "slot": "model", "match": {"model": "rpi5"}, "overlay": "model-rpi5"},
            {"name": "eu", "slot": "region", "match": {"region": "eu-west"}, "overlay": "region-eu"},
        ],
        "helm": {
            "chart": "charts/edge-app",
            "release": "edge-app",
            "namespace": "edge",
            "values": {
                "base": {"replicas": 1, "color": "grey", "tier": "base", "limits": {"cpu": "100m", "memory": "64Mi"}},
                "region-eu": {"color": "blue", "tier": "region"},
                "model-rpi5": {"tier": "model", "limits": {"memory": "32Mi"}},
                "channel-beta": {"tier": "channel"},
                "site-ber": {"tier": "site", "replicas": 2},
            },
        },
    },
    "sites": [
        {
            "name": "ber-01",
            "region": "eu-west",
            "nodes": [{"name": "ber-s1", "address": "192.0.2.10", "role": "server"}],
        },
        {
            "name": "nyc-01",
            "region": "us-east",
            "nodes": [{"name": "nyc-s1", "address": "192.0.2.20", "role": "server"}],
        },
    ],
}
# Which layer each value must come from: the latest slot that sets it, else an earlier one, else the chart.
EXPECTED = {
    # base < region < model < channel < site: every layer sets tier, the site's wins
    "ber-01": {"replicas": "2", "color": "blue", "tier": "site", "cpu": "100m", "memory": "32Mi"},
    # no region or site overlay: color from the base, tier from the channel, replicas from the base
    "nyc-01": {"replicas": "1", "color": "grey", "tier": "channel", "cpu": "100m", "memory": "32Mi"},
}


def _tool(name: str, make_target: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if not found:
        pytest.fail(f"{name} not found on PATH: `make {make_target}` provides it")
    return found


def _run(args: list[str], cwd: Path) -> str:
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, f"{' '.join(args)} failed: {out.stderr}"
    return out.stdout


def _rendered(output: str) -> dict[str, str]:
    docs = [d for d in yaml.safe_load_all(output) if d]
    (config_map,) = [d for d in docs if d["metadata"]["name"] == "edge-app-rendered"]
    assert config_map["metadata"]["namespace"] == "edge"
    return dict(config_map["data"])


def _cluster_vars(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {site["vars"]["edgefleet_cluster"]: site["vars"] for site in plan["sites"]}


@pytest.fixture(scope="module")
def fleet_repo_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    plan, _warnings = build_plan([("edge.fleet.yml", copy.deepcopy(FLEET))])
    clusters = _cluster_vars(plan)
    root = tmp_path_factory.mktemp("fleet-repo")
    entries = fleet_repo.clusters_from_hostvars(clusters)
    scaffold = fleet_repo.plan(str(root), entries)
    fleet_repo.apply(str(root), scaffold)
    assert not fleet_repo.plan(str(root), entries).changed
    shutil.copytree(CHART, root / "charts" / "edge-app")
    return root, clusters


def _registration(engine: str, hostvars: dict[str, Any]) -> list[dict[str, Any]]:
    result = run_registration(
        {
            "engine": engine,
            "cluster": hostvars["edgefleet_cluster"],
            "path": hostvars["edgefleet_gitops_path"],
            "overlays": hostvars["edgefleet_overlays"],
            "repo_url": REPO_URL,
            "helm": hostvars["edgefleet_helm"],
            "manifests_dir": "/nonexistent/manifests",
        },
        check_mode=True,
    )
    return list(result["objects"])


@pytest.mark.parametrize("cluster", sorted(EXPECTED))
def test_argocd_value_files_render_each_value_from_its_layer(
    fleet_repo_dir: tuple[Path, dict[str, dict[str, Any]]], cluster: str
) -> None:
    root, clusters = fleet_repo_dir
    (app,) = [o for o in _registration("argocd", clusters[cluster]) if o["kind"] == "Application"]
    source = app["spec"]["sources"][1]
    chart_dir = root / source["path"]
    args = [_tool("helm", "helm"), "template", source["helm"]["releaseName"], ".", "--namespace", "edge"]
    for value_file in source["helm"]["valueFiles"]:
        # Argo CD reads valueFiles relative to the chart folder; they must stay inside the repo
        assert (chart_dir / value_file).resolve().is_relative_to(root.resolve()), value_file
        args += ["--values", value_file]
    assert _rendered(_run(args, chart_dir)) == EXPECTED[cluster]


@pytest.mark.parametrize("cluster", sorted(EXPECTED))
def test_flux_values_from_renders_each_value_from_its_layer(
    fleet_repo_dir: tuple[Path, dict[str, dict[str, Any]]], cluster: str, tmp_path: Path
) -> None:
    root, clusters = fleet_repo_dir
    hostvars = clusters[cluster]
    (release,) = [o for o in _registration("flux", hostvars) if o["kind"] == "HelmRelease"]
    built = yaml.safe_load_all(
        _run([_tool("kubectl", "kubectl"), "kustomize", hostvars["edgefleet_gitops_path"]], root)
    )
    config_maps = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d["data"]
        for d in built
        if d and d["kind"] == "ConfigMap" and "namespace" in d["metadata"]
    }
    args = [_tool("helm", "helm"), "template", release["spec"]["releaseName"], str(root / "charts" / "edge-app")]
    args += ["--namespace", release["metadata"]["namespace"]]
    for index, ref in enumerate(release["spec"]["valuesFrom"]):
        # the Kustomization applies these ConfigMaps beside the HelmRelease, which reads them in this order
        data = config_maps[(release["metadata"]["namespace"], ref["name"])]
        layer_file = tmp_path / f"{index}.yaml"
        layer_file.write_text(data[ref["valuesKey"]], encoding="utf-8")
        args += ["--values", str(layer_file)]
    assert _rendered(_run(args, root)) == EXPECTED[cluster]


def test_a_conflict_inside_one_slot_stops_the_inventory_like_a_kustomize_clash() -> None:
    fleet = copy.deepcopy(FLEET)
    fleet["overlays"]["rules"].append({"name": "ring", "slot": "site", "match": {"site": "ber-01"}, "overlay": "ring"})
    fleet["overlays"]["helm"]["values"]["ring"] = {"replicas": 3}
    with pytest.raises(FleetError) as helm_clash:
        build_plan([("edge.fleet.yml", fleet)])
    fleet["overlays"]["rules"].append({"name": "us", "slot": "region", "match": {"site": "ber-01"}, "overlay": "us"})
    with pytest.raises(FleetError) as both:
        build_plan([("edge.fleet.yml", fleet)])
    (helm_problem,) = [str(p) for p in helm_clash.value.problems]
    kustomize_problem = next(str(p) for p in both.value.problems if "exclusive slot" in str(p))
    assert helm_problem.startswith(kustomize_problem.split("exclusive slot")[0])
    assert "edge.fleet.yml" in helm_problem and "ber-01" in helm_problem
    assert "slot 'site' gets different Helm values for 'replicas': overlay 'site-ber' -> 2, overlay 'ring' -> 3" in (
        helm_problem
    )
