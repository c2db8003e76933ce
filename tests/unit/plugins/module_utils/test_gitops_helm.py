# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helm as the other layering: values layers per overlay slot, for Flux, Argo CD and the scaffold."""

from __future__ import annotations

import sys
import typing as t
from pathlib import Path

import pytest
import yaml

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.filter.overlays import overlays as overlays_filter
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import fleet_repo, helm, module
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_problems import Problems
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_schema import build_plan
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.overlays import ClusterFacts, parse_config, resolve
from test_fleet_schema import F, errors_of, registry

# rules listed against slot order on purpose: the layers must come out base, region, model, channel, site
RULES: list[dict[str, t.Any]] = [
    {"name": "ber", "slot": "site", "match": {"site": "ber-01"}, "overlay": "site-ber"},
    {"name": "beta", "slot": "channel", "match": {"channel": "beta"}, "overlay": "channel-beta"},
    {"name": "pi", "slot": "model", "match": {"model": "rpi5"}, "overlay": "model-rpi5"},
    {"name": "eu", "slot": "region", "match": {"region": "eu-west"}, "overlay": "region-eu"},
]
VALUES: dict[str, dict[str, t.Any]] = {
    "base": {"replicas": 1, "color": "grey", "tier": "base", "limits": {"cpu": "100m", "memory": "64Mi"}},
    "region-eu": {"color": "blue", "tier": "region"},
    "model-rpi5": {"limits": {"memory": "32Mi"}, "tier": "model"},
    "channel-beta": {"tier": "channel"},
    "site-ber": {"tier": "site"},
}
FACTS = ClusterFacts("ber-01", "eu-west", "rpi5", "beta", "k3s", {}, frozenset())


def config(rules: list[dict[str, t.Any]] | None = None, **helm_kw: t.Any) -> t.Any:
    problems = Problems()
    cfg = parse_config(
        {"rules": RULES if rules is None else rules, "helm": {"chart": "charts/edge-app", **helm_kw}}, problems, "f.yml"
    )
    assert [str(p) for p in problems.errors] == []
    return cfg


def test_layers_follow_the_slot_order_with_one_values_file_each() -> None:
    result = resolve(config(values=VALUES), FACTS)
    assert result.conflicts == []
    assert result.helm is not None
    layers = result.helm["layers"]
    assert [(x["name"], x["slot"]) for x in layers] == [
        ("base", "base"),
        ("region-eu", "region"),
        ("model-rpi5", "model"),
        ("channel-beta", "channel"),
        ("site-ber", "site"),
    ]
    # the same order as the Kustomize components, and each file in its layer's folder
    assert [x["name"] for x in layers[1:]] == result.overlays[1:]
    assert [x["file"] for x in layers] == ["base/values.yaml"] + [
        f"components/{o}/values.yaml" for o in result.overlays[1:]
    ]
    assert layers[2]["values"] == {"limits": {"memory": "32Mi"}, "tier": "model"}
    assert result.helm["release"] == "edgefleet" and result.helm["namespace"] == "default"


def test_files_follow_the_overlay_folders() -> None:
    problems = Problems()
    cfg = parse_config(
        {"base": "bases/edge", "components_dir": "comp", "rules": RULES[:1], "helm": {"chart": "charts/a"}},
        problems,
        "f.yml",
    )
    assert problems.errors == []
    result = resolve(cfg, FACTS)
    assert result.helm is not None
    assert [x["file"] for x in result.helm["layers"]] == ["bases/edge/values.yaml", "comp/site-ber/values.yaml"]
    assert [x["values"] for x in result.helm["layers"]] == [{}, {}]


def test_no_helm_key_means_no_helm_layering() -> None:
    problems = Problems()
    result = resolve(parse_config({"rules": RULES}, problems, "f.yml"), FACTS)
    assert result.helm is None


def test_a_value_given_differently_inside_one_slot_is_a_conflict() -> None:
    rules = [
        {"name": "a", "slot": "site", "overlay": "site-a"},
        {"name": "b", "slot": "site", "overlay": "site-b"},
        {"name": "eu", "slot": "region", "overlay": "region-eu"},
    ]
    values = {
        "base": {"color": "grey"},
        "region-eu": {"color": "blue"},  # another slot: the later slot wins, no conflict
        "site-a": {"color": "red", "limits": {"cpu": "1"}, "same": 1},
        "site-b": {"color": "green", "limits": 5, "same": 1},
    }
    result = resolve(config(rules, values=values), FACTS)
    assert result.conflicts == [
        "slot 'site' gets different Helm values for 'color': overlay 'site-a' -> 'red', overlay 'site-b' -> 'green'",
        "slot 'site' gets different Helm values for 'limits': overlay 'site-a' -> {...}, overlay 'site-b' -> 5",
    ]
    # the same value from both overlays of a slot is no conflict
    values["site-b"] = {"color": "red", "same": 1}
    values["site-a"] = {"color": "red"}
    assert resolve(config(rules, values=values), FACTS).conflicts == []


def test_the_inventory_reports_a_helm_conflict_as_it_reports_a_kustomize_one() -> None:
    def fleet(values: dict[str, t.Any], exclusive_clash: bool) -> dict[str, t.Any]:
        rules = [
            {"name": "a", "slot": "site", "overlay": "site-a"},
            {"name": "b", "slot": "site", "overlay": "site-b"},
        ]
        if exclusive_clash:
            rules += [
                {"name": "r1", "slot": "region", "overlay": "r1"},
                {"name": "r2", "slot": "region", "overlay": "r2"},
            ]
        doc = registry()
        doc["overlays"] = {"rules": rules, "helm": {"chart": "charts/edge-app", "values": values}}
        return doc

    clash = {"site-a": {"tier": "a"}, "site-b": {"tier": "b"}}
    helm_errors = errors_of(fleet(clash, exclusive_clash=False))
    both = errors_of(fleet(clash, exclusive_clash=True))
    assert len(helm_errors) == 1 and len(both) == 2
    kustomize_error = next(e for e in both if "exclusive slot" in e)
    # same file, site and key; only the message after the key differs
    prefix = kustomize_error.split("exclusive slot")[0]
    assert helm_errors[0].startswith(prefix), (helm_errors, kustomize_error)
    assert F in prefix and "ber-01" in prefix and "overlays" in prefix
    assert "'tier': overlay 'site-a' -> 'a', overlay 'site-b' -> 'b'" in helm_errors[0]
    # without the clash the inventory publishes the layering for the roles and the scaffold
    plan = build_plan([(F, fleet({"site-a": {"tier": "a"}}, exclusive_clash=False))])[0]
    published = plan["sites"][0]["vars"]["edgefleet_helm"]
    assert [x["name"] for x in published["layers"]] == ["base", "site-a", "site-b"]


@pytest.mark.parametrize(
    ("helm_data", "key", "fragment"),
    [
        ({"release": "x"}, "overlays.helm.chart", "missing"),
        ({"chart": "/abs/chart"}, "overlays.helm.chart", "relative path"),
        ({"chart": "c", "release": "Bad_Name"}, "overlays.helm.release", "DNS-1123"),
        ({"chart": "c", "namespace": "x" * 64}, "overlays.helm.namespace", "DNS-1123"),
        ({"chart": "c", "values": {"region-ue": {}}}, "overlays.helm.values.region-ue", "did you mean 'region-eu'"),
        ({"chart": "c", "values": {"base": [1]}}, "overlays.helm.values.base", "a mapping of Helm values"),
        ({"chart": "c", "values": []}, "overlays.helm.values", "a mapping of layer"),
        ({"chart": "c", "valuse": {}}, "overlays.helm.valuse", ""),
        ("charts/app", "overlays.helm", "a mapping with keys chart"),
    ],
)
def test_bad_helm_settings_name_the_key(helm_data: t.Any, key: str, fragment: str) -> None:
    problems = Problems()
    parse_config({"rules": RULES, "helm": helm_data}, problems, "f.yml")
    found = [str(p) for p in problems.errors]
    assert any(key in p and fragment in p for p in found), found


def test_every_bad_helm_setting_is_listed_at_once() -> None:
    problems = Problems()
    parse_config({"rules": RULES, "helm": {"release": "A", "namespace": "B", "values": {"nope": {}}}}, problems, "f")
    keys = sorted(p.key for p in problems.errors)
    assert keys == [
        "overlays.helm.chart",
        "overlays.helm.namespace",
        "overlays.helm.release",
        "overlays.helm.values.nope",
    ]


def test_the_filter_returns_the_same_layering_and_fails_on_a_conflict() -> None:
    hostvars = {
        "edgefleet_cluster": "ber-01",
        "edgefleet_region": "eu-west",
        "edgefleet_model": "rpi5",
        "edgefleet_channel": "beta",
    }
    rules = {"rules": RULES, "helm": {"chart": "charts/edge-app", "values": VALUES}}
    out = overlays_filter(hostvars, rules)
    assert out["helm"] == resolve(config(values=VALUES), FACTS).helm
    clash = {
        "rules": [*RULES, {"slot": "site", "overlay": "site-x"}],
        "helm": {"chart": "c", "values": {"site-ber": {"a": 1}, "site-x": {"a": 2}}},
    }
    with pytest.raises(Exception, match="different Helm values for 'a'"):
        overlays_filter(hostvars, clash)


# ---------------------------------------------------------------- the engines


def settings() -> helm.HelmSettings:
    result = resolve(config(values=VALUES, release="edge-app", namespace="edge"), FACTS)
    assert result.helm is not None
    return helm.from_mapping(result.helm)


def register(engine: str, **params: t.Any) -> dict[str, t.Any]:
    base = {"engine": engine, "cluster": "ber-01", "repo_url": "https://git.example.org/fleet.git"}
    return module.run_registration({**base, **params}, check_mode=True)


def by_kind(result: dict[str, t.Any], kind: str) -> dict[str, t.Any]:
    return next(o for o in result["objects"] if o["kind"] == kind)


def test_flux_helmrelease_takes_the_layers_in_order_through_values_from() -> None:
    result = register("flux", helm=helm.to_mapping(settings()))
    release = by_kind(result, "HelmRelease")
    assert release["apiVersion"] == "helm.toolkit.fluxcd.io/v2"
    assert release["metadata"]["namespace"] == "edge"
    assert release["spec"]["valuesFrom"] == [
        {"kind": "ConfigMap", "name": f"edge-app-values-{name}", "valuesKey": "values.yaml"}
        for name in ("base", "region-eu", "model-rpi5", "channel-beta", "site-ber")
    ]
    chart = release["spec"]["chart"]["spec"]
    assert chart["chart"] == "./charts/edge-app"
    assert chart["sourceRef"] == {"kind": "GitRepository", "name": "edgefleet-fleet", "namespace": "flux-system"}
    # the release's namespace is created with the registration, once
    namespaces = [o["metadata"]["name"] for o in result["objects"] if o["kind"] == "Namespace"]
    assert namespaces.count("edge") == 1
    # the Kustomize path is still there
    assert by_kind(result, "Kustomization")["spec"]["path"] == "./clusters/ber-01"


def test_argocd_application_takes_the_same_layers_as_value_files() -> None:
    result = register("argocd", helm=helm.to_mapping(settings()))
    spec = by_kind(result, "Application")["spec"]
    assert "source" not in spec
    kustomize_source, chart_source = spec["sources"]
    assert kustomize_source["path"] == "clusters/ber-01"
    assert chart_source["path"] == "charts/edge-app"
    assert chart_source["helm"] == {
        "releaseName": "edge-app",
        "valueFiles": [
            "../../base/values.yaml",
            "../../components/region-eu/values.yaml",
            "../../components/model-rpi5/values.yaml",
            "../../components/channel-beta/values.yaml",
            "../../components/site-ber/values.yaml",
        ],
    }


def test_both_engines_share_one_layer_order() -> None:
    s = settings()
    names = [x["name"].removeprefix("edge-app-values-") for x in helm.values_from(s)]
    files = [f.split("/")[-2] for f in helm.value_files(s)]
    assert names == files == ["base", "region-eu", "model-rpi5", "channel-beta", "site-ber"]


def test_without_helm_the_objects_are_unchanged() -> None:
    flux = register("flux")
    assert all(o["kind"] != "HelmRelease" for o in flux["objects"])
    argo = by_kind(register("argocd"), "Application")["spec"]
    assert "sources" not in argo and argo["source"]["path"] == "clusters/ber-01"


def test_registration_refuses_bad_helm_settings_listing_every_problem() -> None:
    bad = helm.to_mapping(settings())
    bad["release"] = "Bad"
    bad["layers"][4] = {**bad["layers"][4], "slot": "channel", "values": {"tier": "other"}}
    bad["layers"][1]["file"] = "../outside/values.yaml"
    with pytest.raises(module.GitopsError) as info:
        register("flux", helm=bad)
    message = str(info.value)
    assert message.startswith("2 problem(s)")
    assert "helm.release: found 'Bad'" in message
    assert "helm.layers[1].file: found '../outside/values.yaml'" in message
    # once the files are good, the conflict inside the channel slot is reported
    bad["release"] = "edge-app"
    bad["layers"][1]["file"] = "components/region-eu/values.yaml"
    with pytest.raises(module.GitopsError, match="slot 'channel' gets different Helm values for 'tier'"):
        register("argocd", helm=bad)


def test_flux_bundle_without_helm_controller_is_refused() -> None:
    files = {"crds.yaml": "", "source-controller.yaml": "", "kustomize-controller.yaml": ""}
    with pytest.raises(module.GitopsError, match="needs Flux's helm-controller"):
        register("flux", helm=helm.to_mapping(settings()), engine_files=files, engine_sums={})


# ---------------------------------------------------------------- the scaffold


def test_scaffold_writes_a_values_file_per_layer_and_its_configmap(tmp_path: Path) -> None:
    result = resolve(config(values=VALUES, release="edge-app", namespace="edge"), FACTS)
    entry = fleet_repo.ClusterEntry(
        "ber-01", result.gitops_path, tuple(result.overlays), result.kustomization, result.helm
    )
    files = fleet_repo.render([entry])
    assert yaml.safe_load(files["components/model-rpi5/values.yaml"]) == VALUES["model-rpi5"]
    assert files["base/values.yaml"].startswith(fleet_repo.HEADER)
    for folder, layer in [("base", "base"), ("components/site-ber", "site-ber")]:
        kustomization = yaml.safe_load(files[f"{folder}/kustomization.yaml"])
        assert kustomization["configMapGenerator"] == [
            {
                "name": f"edge-app-values-{layer}",
                "namespace": "edge",
                "files": ["values.yaml=values.yaml"],
                "options": {"disableNameSuffixHash": True, "labels": {"app.kubernetes.io/managed-by": "edgefleet"}},
            }
        ]
    # a layer without values still gets its (empty) file, to fill in
    bare = resolve(config(), FACTS)
    bare_files = fleet_repo.render(
        [fleet_repo.ClusterEntry("ber-01", "clusters/ber-01", (), bare.kustomization, bare.helm)]
    )
    assert yaml.safe_load(bare_files["components/channel-beta/values.yaml"]) == {}
    # applied once, the second plan changes nothing
    first = fleet_repo.plan(str(tmp_path), [entry])
    fleet_repo.apply(str(tmp_path), first)
    assert "components/site-ber/values.yaml" in first.write
    assert not fleet_repo.plan(str(tmp_path), [entry]).changed


def test_scaffold_without_helm_writes_no_values_file() -> None:
    result = resolve(parse_config({"rules": RULES}, Problems(), "f.yml"), FACTS)
    entry = fleet_repo.ClusterEntry("ber-01", result.gitops_path, tuple(result.overlays), result.kustomization)
    files = fleet_repo.render([entry])
    assert not [f for f in files if f.endswith("values.yaml")]
    assert all("configMapGenerator" not in c for c in files.values())


def test_scaffold_refuses_a_layer_file_outside_the_repo(tmp_path: Path) -> None:
    result = resolve(config(values=VALUES), FACTS)
    assert result.helm is not None
    result.helm["layers"][0]["file"] = "../values.yaml"
    entry = fleet_repo.ClusterEntry(
        "ber-01", result.gitops_path, tuple(result.overlays), result.kustomization, result.helm
    )
    with pytest.raises(fleet_repo.FleetRepoError, match=r"cluster 'ber-01': helm.layers\[0\].file"):
        fleet_repo.plan(str(tmp_path), [entry])
