# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet repo scaffold: layout, hand-written files left alone, orphans, idempotence."""

from __future__ import annotations

import dataclasses
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import fleet_repo as repo
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import networkpolicy as netpol

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


# ---------------------------------------------------------------- NetworkPolicies (CIS 5.3.2)

ENGINES = [
    repo.ClusterEntry("ams-01", "clusters/ams-01", ("base", "region-eu"), engine="flux"),
    repo.ClusterEntry("nyc-01", "clusters/nyc-01", ("base",), engine="argocd"),
    repo.ClusterEntry("off-01", "clusters/off-01", ("base",), engine="flux", network_policies=False),
    repo.ClusterEntry("lab-01", "clusters/lab-01", ("base",)),  # engine none
]


def _policies(tmp_path: Path, component: str) -> dict[tuple[str, str], dict[str, t.Any]]:
    """(namespace, name) -> spec of every policy of a NetworkPolicy component."""
    kustomization = _load(tmp_path / component / "kustomization.yaml")
    assert kustomization["kind"] == "Component" and kustomization["resources"] == [netpol.FILE]
    text = (tmp_path / component / netpol.FILE).read_text()
    assert text.startswith(repo.HEADER)
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert all(d["apiVersion"] == "networking.k8s.io/v1" and d["kind"] == "NetworkPolicy" for d in docs)
    found = {(d["metadata"]["namespace"], d["metadata"]["name"]): d["spec"] for d in docs}
    assert len(found) == len(docs), "a policy is there twice"
    return found


def _egress_ports(specs: list[dict[str, t.Any]]) -> set[tuple[str, int, str]]:
    """(protocol, port, destination) allowed out; destination 'any' when a rule has no 'to'."""
    out: set[tuple[str, int, str]] = set()
    for spec in specs:
        for rule in spec.get("egress") or []:
            dests = rule.get("to")
            where = "any" if not dests else yaml.safe_dump(dests, sort_keys=True)
            for port in rule.get("ports") or []:
                out.add((port["protocol"], port["port"], where))
    return out


@pytest.mark.parametrize(
    ("engine", "namespace", "internal"),
    [("flux", "flux-system", {9090}), ("argocd", "argocd", {8080, 8081, 6379, 5556, 5557})],
)
def test_every_namespace_gets_a_default_deny_and_the_engine_its_traffic(
    tmp_path: Path, engine: str, namespace: str, internal: set[int]
) -> None:
    repo.apply(str(tmp_path), repo.plan(str(tmp_path), ENGINES))
    found = _policies(tmp_path, f"base/networkpolicies/{engine}")
    for ns in ("edgefleet-system", namespace):
        deny = found[(ns, "edgefleet-default-deny")]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, ns
    assert {ns for ns, _name in found} == {"edgefleet-system", namespace}
    assert [name for ns, name in found if ns == "edgefleet-system"] == ["edgefleet-default-deny"]
    engine_specs = [spec for (ns, _name), spec in found.items() if ns == namespace]
    assert all(spec["podSelector"] == {} for spec in engine_specs)
    egress = _egress_ports(engine_specs)
    kube_system = yaml.safe_dump(
        [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}], sort_keys=True
    )
    assert {("UDP", 53, kube_system), ("TCP", 53, kube_system)} <= egress  # DNS, in kube-system only
    assert {("TCP", 6443, "any"), ("TCP", 443, "any")} <= egress  # the API server, by port
    assert {("TCP", 22, "any"), ("TCP", 443, "any")} <= egress  # Git over SSH and HTTPS
    same_namespace = yaml.safe_dump([{"podSelector": {}}], sort_keys=True)
    assert {p for proto, p, where in egress if where == same_namespace and proto == "TCP"} == internal
    # nothing else goes out to any address, and nothing comes in but the engine's own pods
    assert {p for _proto, p, where in egress if where == "any"} == {6443, 443, 22}
    ingress = [(rule, spec) for spec in engine_specs for rule in spec.get("ingress") or []]
    assert ingress and all(rule["from"] == [{"podSelector": {}}] for rule, _spec in ingress)
    assert {p["port"] for rule, _spec in ingress for p in rule["ports"]} == internal


def test_each_cluster_lists_its_engine_component_first_and_none_without_one(tmp_path: Path) -> None:
    files = repo.render(ENGINES)
    components = {
        entry.name: yaml.safe_load(files[f"{entry.path}/kustomization.yaml"]).get("components") for entry in ENGINES
    }
    assert components["ams-01"] == ["../../base/networkpolicies/flux", "../../overlays/region-eu"]
    assert components["nyc-01"] == ["../../base/networkpolicies/argocd"]
    assert components["off-01"] is None and components["lab-01"] is None
    assert yaml.safe_load(files["base/kustomization.yaml"])["resources"] == ["edgefleet-base.yaml"]  # base unchanged
    assert sorted(f for f in files if "networkpolicies" in f) == [
        f"base/networkpolicies/{e}/{name}" for e in ("argocd", "flux") for name in (netpol.FILE, "kustomization.yaml")
    ]


def test_a_second_plan_writes_nothing_and_turning_them_off_leaves_orphans(tmp_path: Path) -> None:
    repo.apply(str(tmp_path), repo.plan(str(tmp_path), ENGINES))
    again = repo.plan(str(tmp_path), ENGINES)
    assert not again.changed and again.write == {} and again.orphans == []
    off = [dataclasses.replace(e, network_policies=False) if e.engine == "argocd" else e for e in ENGINES]
    result = repo.plan(str(tmp_path), off, prune=True)
    assert sorted(result.write) == ["clusters/nyc-01/kustomization.yaml"]
    assert result.remove == [
        f"base/networkpolicies/argocd/{netpol.FILE}",
        "base/networkpolicies/argocd/kustomization.yaml",
    ]
    repo.apply(str(tmp_path), result)
    assert not (tmp_path / "base/networkpolicies/argocd").exists()
    assert not repo.plan(str(tmp_path), off).changed


def test_an_engine_namespace_of_its_own_gets_a_component_of_its_own(tmp_path: Path) -> None:
    entry = repo.ClusterEntry("x-1", "clusters/x-1", ("base",), engine="flux", engine_namespace="gitops")
    repo.apply(str(tmp_path), repo.plan(str(tmp_path), [entry]))
    assert _load(tmp_path / "clusters/x-1/kustomization.yaml")["components"] == [
        "../../base/networkpolicies/flux-gitops"
    ]
    found = _policies(tmp_path, "base/networkpolicies/flux-gitops")
    assert ("gitops", "edgefleet-default-deny") in found and ("gitops", "edgefleet-allow-flux-internal") in found
    assert not any(ns == "flux-system" for ns, _name in found)


def test_the_component_follows_the_inventory_base_folder(tmp_path: Path) -> None:
    entry = repo.ClusterEntry(
        "ber-01",
        "fleet/clusters/ber-01",
        ("base", "region-eu-west"),
        kustomization={"resources": ["../../common"], "components": ["../../components/region-eu-west"]},
        engine="argocd",
    )
    files = repo.render([entry], base="common")
    data = yaml.safe_load(files["fleet/clusters/ber-01/kustomization.yaml"])
    assert data["components"] == ["../../common/networkpolicies/argocd", "../../components/region-eu-west"]
    assert f"fleet/common/networkpolicies/argocd/{netpol.FILE}" in files


def test_a_bad_engine_or_engine_namespace_is_refused(tmp_path: Path) -> None:
    bad = [
        repo.ClusterEntry("a", "clusters/a", (), engine="fluxcd"),
        repo.ClusterEntry("b", "clusters/b", (), engine="flux", engine_namespace="Flux_System"),
    ]
    with pytest.raises(repo.FleetRepoError) as info:
        repo.plan(str(tmp_path), bad)
    text = str(info.value)
    assert "cluster 'a': engine 'fluxcd', allowed: flux, argocd, none" in text
    assert "cluster 'b': engine namespace 'Flux_System' is not a DNS-1123 name" in text


def test_engine_and_switches_come_from_the_inventory() -> None:
    hostvars: dict[str, dict[str, object]] = {
        "n1": {"edgefleet_cluster": "a", "edgefleet_gitops_engine": "flux"},
        "n2": {
            "edgefleet_cluster": "b",
            "edgefleet_gitops_engine": "argocd",
            "edgefleet_gitops_argocd": {"namespace": "argo"},
            "edgefleet_gitops_network_policies": False,
        },
    }
    a, b = repo.clusters_from_hostvars(hostvars)
    assert (a.engine, a.engine_namespace, a.network_policies) == ("flux", "", True)
    assert (b.engine, b.engine_namespace, b.network_policies) == ("argocd", "argo", False)
