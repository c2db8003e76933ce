# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet repo scaffold: layout, hand-written files left alone, orphans, idempotence."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import fleet_repo as repo

CLUSTERS = [
    repo.ClusterEntry("ams-01", "clusters/ams-01", ("base", "region-eu", "model-rpi4")),
    repo.ClusterEntry("nyc-01", "clusters/nyc-01", ("base", "region-us")),
]


def _load(path: Path) -> dict[str, object]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_layout(tmp_path: Path) -> None:
    result = repo.plan(str(tmp_path), CLUSTERS)
    repo.apply(str(tmp_path), result)
    ams = _load(tmp_path / "clusters/ams-01/kustomization.yaml")
    assert ams["resources"] == ["../../base"]
    assert ams["components"] == ["../../overlays/region-eu", "../../overlays/model-rpi4"]
    overlay = _load(tmp_path / "overlays/region-eu/kustomization.yaml")
    assert overlay["kind"] == "Component" and overlay["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    marker = _load(tmp_path / "overlays/region-eu/edgefleet-overlay.yaml")
    assert marker["metadata"] == {
        "name": "edgefleet-overlay-region-eu",
        "namespace": "edgefleet-system",
        "labels": {"app.kubernetes.io/managed-by": "edgefleet"},
    }
    assert not (tmp_path / "overlays/base").exists()
    assert (tmp_path / "base/kustomization.yaml").read_text().startswith(repo.HEADER)
    again = repo.plan(str(tmp_path), CLUSTERS)
    assert not again.changed and again.hand_written == [] and again.orphans == []


def test_nested_paths_get_relative_references(tmp_path: Path) -> None:
    entry = repo.ClusterEntry("x-1", "clusters/eu/x-1/", ("base", "region-eu"))
    files = repo.render([entry])
    data = yaml.safe_load(files["clusters/eu/x-1/kustomization.yaml"])
    assert data["resources"] == ["../../../base"] and data["components"] == ["../../../overlays/region-eu"]


def test_hand_written_files_are_left_alone(tmp_path: Path) -> None:
    own = tmp_path / "base" / "kustomization.yaml"
    own.parent.mkdir()
    own.write_text("# mine\nresources: [deploy.yaml]\n")
    result = repo.plan(str(tmp_path), CLUSTERS)
    assert result.hand_written == ["base/kustomization.yaml"]
    assert "base/kustomization.yaml" not in result.write
    repo.apply(str(tmp_path), result)
    assert own.read_text() == "# mine\nresources: [deploy.yaml]\n"


def test_check_mode_plan_writes_nothing_and_diffs(tmp_path: Path) -> None:
    result = repo.plan(str(tmp_path), CLUSTERS)
    assert result.changed and not any(tmp_path.iterdir())
    paths = {d["after_header"] for d in result.diffs}
    assert "clusters/nyc-01/kustomization.yaml" in paths


def test_moving_a_cluster_rewrites_only_its_kustomization(tmp_path: Path) -> None:
    repo.apply(str(tmp_path), repo.plan(str(tmp_path), CLUSTERS))
    moved = [CLUSTERS[0], repo.ClusterEntry("nyc-01", "clusters/nyc-01", ("base", "region-eu"))]
    result = repo.plan(str(tmp_path), moved)
    assert sorted(result.write) == ["clusters/nyc-01/kustomization.yaml"]
    assert result.orphans == ["overlays/region-us/edgefleet-overlay.yaml", "overlays/region-us/kustomization.yaml"]
    assert result.remove == []
    pruned = repo.plan(str(tmp_path), moved, prune=True)
    repo.apply(str(tmp_path), pruned)
    assert not (tmp_path / "overlays/region-us").exists()


def test_bad_input_lists_every_problem(tmp_path: Path) -> None:
    bad = [
        repo.ClusterEntry("Bad", "clusters/x", ()),
        repo.ClusterEntry("b", "clusters/x", ("Not_ok",)),
        repo.ClusterEntry("c", "../out", ()),
    ]
    with pytest.raises(repo.FleetRepoError) as err:
        repo.plan(str(tmp_path / "missing"), bad)
    text = str(err.value)
    assert "'Bad': name is not DNS-1123" in text
    assert "also the path of cluster 'Bad'" in text
    assert "overlay 'Not_ok'" in text
    assert "path '../out'" in text
    assert "is not a directory" in text


def test_clusters_from_hostvars() -> None:
    hostvars: dict[str, dict[str, object]] = {
        "n1": {"edgefleet_cluster": "a", "edgefleet_overlays": ["base", "r"], "edgefleet_gitops_path": "clusters/a"},
        "n2": {"edgefleet_cluster": "a", "edgefleet_overlays": ["base", "r"], "edgefleet_gitops_path": "clusters/a"},
        "n3": {"edgefleet_cluster": "b", "edgefleet_overlays": ["base"]},
        "other": {"ansible_host": "x"},
    }
    entries = repo.clusters_from_hostvars(hostvars)
    assert entries == [
        repo.ClusterEntry("a", "clusters/a", ("base", "r")),
        repo.ClusterEntry("b", "clusters/b", ("base",)),
    ]


def test_the_inventory_kustomization_decides_the_folders(tmp_path: Path) -> None:
    entry = repo.ClusterEntry(
        "ber-01",
        "clusters/ber-01",
        ("base", "region-eu-west"),
        kustomization={
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["../../base"],
            "components": ["../../components/region-eu-west"],
        },
    )
    result = repo.plan(str(tmp_path), [entry])
    assert "components/region-eu-west/kustomization.yaml" in result.write
    assert "overlays/region-eu-west/kustomization.yaml" not in result.write
    data = yaml.safe_load(result.write["clusters/ber-01/kustomization.yaml"])
    assert data["components"] == ["../../components/region-eu-west"]


def test_a_kustomization_pointing_outside_the_repo_is_refused(tmp_path: Path) -> None:
    entry = repo.ClusterEntry("x", "clusters/x", (), kustomization={"resources": ["../../../etc"]})
    with pytest.raises(repo.FleetRepoError, match="outside the fleet repo"):
        repo.plan(str(tmp_path), [entry])


def test_a_cluster_lists_its_nodes_and_a_node_left_out_disappears(tmp_path: Path) -> None:
    with_nodes = [repo.ClusterEntry("ams-01", "clusters/ams-01", ("base",), nodes=("s1", "a2", "a1"))]
    repo.apply(str(tmp_path), repo.plan(str(tmp_path), with_nodes))
    listing = tmp_path / "clusters/ams-01" / repo.NODES_FILE
    assert _load(listing) == {"cluster": "ams-01", "nodes": ["a1", "a2", "s1"]}
    assert repo.NODES_FILE not in listing.with_name("kustomization.yaml").read_text()

    without_a2 = [repo.ClusterEntry("ams-01", "clusters/ams-01", ("base",), nodes=("s1", "a1"))]
    result = repo.plan(str(tmp_path), without_a2)
    assert list(result.write) == [f"clusters/ams-01/{repo.NODES_FILE}"]
    repo.apply(str(tmp_path), result)
    assert "a2" not in listing.read_text() and _load(listing)["nodes"] == ["a1", "s1"]
    assert not repo.plan(str(tmp_path), without_a2).changed


def test_the_nodes_come_from_the_inventory_servers_and_agents() -> None:
    hostvars: dict[str, dict[str, object]] = {
        "s1": {"edgefleet_cluster": "ams-01", "edgefleet_cluster_servers": ["s1"], "edgefleet_cluster_agents": ["a1"]},
    }
    assert repo.clusters_from_hostvars(hostvars)[0].nodes == ("s1", "a1")
