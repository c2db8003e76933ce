# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GitOps: rendering, validation, deploy key, bundle verification, file delivery, and the modules' runners."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import bundle, keys
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import core as gitops
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.module import (
    GitopsError,
    run_bundle_info,
    run_deploy_key,
    run_registration,
)

KNOWN_HOSTS = "git.example.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleHostKeyOnlyForTests\n"


def _facts(**kw: Any) -> gitops.ClusterFacts:
    base: dict[str, Any] = {
        "cluster": "ams-01",
        "path": "clusters/ams-01",
        "overlays": ("base", "region-eu", "model-rpi4"),
        "site": "ams-01",
        "region": "eu",
        "model": "rpi4",
        "channel": "stable",
    }
    base.update(kw)
    return gitops.ClusterFacts(**base)


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, [o["kind"] for o in objects]
    return found[0]


@pytest.fixture(scope="module")
def key() -> gitops.DeployKey:
    return keys.generate("edgefleet-ams-01")


def test_flux_objects_follow_the_cluster_path(key: gitops.DeployKey) -> None:
    repo = gitops.RepoSettings("ssh://git@git.example.internal/fleet.git", "main", KNOWN_HOSTS)
    objects = gitops.registration_objects("flux", _facts(), repo, gitops.FluxSettings(), gitops.ArgoSettings(), key)
    source = _by_kind(objects, "GitRepository")
    sync = _by_kind(objects, "Kustomization")
    secret = _by_kind(objects, "Secret")
    assert source["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert source["spec"]["url"] == repo.url
    assert source["spec"]["ref"] == {"branch": "main"}
    assert source["spec"]["interval"] == "10m"
    assert source["spec"]["secretRef"] == {"name": secret["metadata"]["name"]}
    assert sync["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert sync["spec"]["path"] == "./clusters/ams-01"
    assert sync["spec"]["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"]}
    assert sync["spec"]["retryInterval"] == "2m"
    assert sync["spec"]["prune"] is True and sync["spec"]["wait"] is False
    assert sync["spec"]["postBuild"]["substituteFrom"][0]["name"] == gitops.SUBSTITUTE_NAME
    assert secret["stringData"]["identity"] == key.private_openssh
    assert secret["stringData"]["identity.pub"] == key.public_openssh
    assert secret["stringData"]["known_hosts"] == KNOWN_HOSTS
    # namespaces come before the objects that live in them
    kinds = [o["kind"] for o in objects]
    assert kinds.index("Namespace") < kinds.index("ConfigMap")


@pytest.mark.parametrize("engine", ["flux", "argocd"])
def test_every_namespace_we_create_has_a_default_account_without_a_token(engine: str, key: gitops.DeployKey) -> None:
    """CIS 5.1.5: the default ServiceAccount of each namespace the registration creates mounts no API token."""
    repo = gitops.RepoSettings("ssh://git@git.example.internal/fleet.git", "main", KNOWN_HOSTS)
    objects = gitops.registration_objects(engine, _facts(), repo, gitops.FluxSettings(), gitops.ArgoSettings(), key)
    namespaces = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
    assert namespaces and len(namespaces) == len(set(namespaces))
    for name in namespaces:
        index = next(i for i, o in enumerate(objects) if o["kind"] == "Namespace" and o["metadata"]["name"] == name)
        account = objects[index + 1]
        assert (account["kind"], account["metadata"]["name"], account["metadata"]["namespace"]) == (
            "ServiceAccount",
            "default",
            name,
        )
        assert account["automountServiceAccountToken"] is False


def test_flux_overrides_reach_the_objects(key: gitops.DeployKey) -> None:
    flux = gitops.FluxSettings(source_interval="1h", retry_interval="30s", prune=False, substitute=False)
    repo = gitops.RepoSettings("https://git.example.internal/fleet.git", "edge")
    objects = gitops.flux_objects(_facts(), repo, flux, key)
    source = _by_kind(objects, "GitRepository")
    sync = _by_kind(objects, "Kustomization")
    assert source["spec"]["interval"] == "1h" and source["spec"]["ref"] == {"branch": "edge"}
    assert "secretRef" not in source["spec"]  # https: no SSH secret
    assert not [o for o in objects if o["kind"] == "Secret"]
    assert sync["spec"]["retryInterval"] == "30s" and sync["spec"]["prune"] is False
    assert "postBuild" not in sync["spec"]


def test_argocd_application_is_automated_with_backoff(key: gitops.DeployKey) -> None:
    repo = gitops.RepoSettings("git@git.example.internal:fleet.git", "main", KNOWN_HOSTS)
    argo = gitops.ArgoSettings(agent_hub="hub.example.internal", agent_hub_port=8443)
    objects = gitops.registration_objects("argocd", _facts(), repo, gitops.FluxSettings(), argo, key)
    app = _by_kind(objects, "Application")
    secret = _by_kind(objects, "Secret")
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["metadata"]["namespace"] == "argocd"
    assert app["spec"]["source"] == {"repoURL": repo.url, "targetRevision": "main", "path": "clusters/ams-01"}
    assert app["spec"]["destination"]["server"] == "https://kubernetes.default.svc"
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert app["spec"]["syncPolicy"]["retry"]["backoff"] == {"duration": "30s", "factor": 2, "maxDuration": "10m"}
    assert secret["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "repository"
    assert secret["stringData"]["sshPrivateKey"] == key.private_openssh
    params = [o for o in objects if o["metadata"]["name"] == "argocd-agent-params"]
    assert params and params[0]["data"]["agent.server.address"] == "hub.example.internal"
    assert params[0]["data"]["agent.server.port"] == "8443"


def test_no_agent_params_without_a_hub(key: gitops.DeployKey) -> None:
    repo = gitops.RepoSettings("https://git.example.internal/fleet.git")
    objects = gitops.argocd_objects(_facts(), repo, gitops.ArgoSettings(), key)
    assert not [o for o in objects if o["metadata"]["name"] == "argocd-agent-params"]


def test_identity_configmap_and_labels() -> None:
    repo = gitops.RepoSettings("https://git.example.internal/fleet.git")
    cm = gitops.identity_configmap(_facts(), repo)
    assert cm["metadata"] == {
        "name": "cluster-identity",
        "namespace": "edgefleet-system",
        "labels": {"app.kubernetes.io/managed-by": "edgefleet", **gitops.node_labels(_facts())},
    }
    assert cm["data"]["overlays"] == "base,region-eu,model-rpi4"
    assert cm["data"]["region"] == "eu" and cm["data"]["channel"] == "stable"
    labels = gitops.node_labels(_facts())
    assert labels["edgefleet.io/region"] == "eu"
    assert labels["edgefleet.io/overlays"] == "base.region-eu.model-rpi4"


def test_label_safe_keeps_valid_values_and_bounds_long_ones() -> None:
    assert gitops.label_safe("eu-west_1.a") == "eu-west_1.a"
    long = ".".join(f"overlay-number-{i}" for i in range(10))
    safe = gitops.label_safe(long)
    assert len(safe) <= 63 and safe[0].isalnum() and safe[-1].isalnum()
    assert safe != gitops.label_safe(long + "x")  # the digest keeps distinct values distinct
    assert gitops.label_safe("bad value/with:chars") == "bad-value-with-chars"


def test_validate_lists_every_problem() -> None:
    problems = gitops.validate(
        "gitlab",
        _facts(cluster="Bad_Name", path="/abs/../x", overlays=("ok", "NOT OK")),
        gitops.RepoSettings("ftp://x", "bad branch"),
        gitops.FluxSettings(interval="10 minutes", namespace="Flux"),
        gitops.ArgoSettings(agent_mode="push", agent_hub_port=0),
    )
    text = "\n".join(problems)
    for needle in (
        "engine: found 'gitlab'",
        "cluster: found 'Bad_Name'",
        "path: found '/abs/../x'",
        "repo_url: found 'ftp://x'",
        "branch: found 'bad branch'",
        "flux.interval: found '10 minutes'",
        "flux.namespace: found 'Flux'",
        "argocd.agent_mode: found 'push'",
        "argocd.agent_hub_port: found 0",
        "overlays: found 'NOT OK'",
    ):
        assert needle in text
    assert len(problems) == 10


def test_redact_object_hides_the_key_but_shows_a_change(key: gitops.DeployKey) -> None:
    secret = {"kind": "Secret", "stringData": {"identity": key.private_openssh}}
    shown = gitops.redact_object(secret)
    assert key.private_openssh not in str(shown)
    other = gitops.redact_object({"kind": "Secret", "stringData": {"identity": "different"}})
    assert shown != other
    assert gitops.redact_object({"kind": "ConfigMap", "data": {"a": "b"}}) == {"kind": "ConfigMap", "data": {"a": "b"}}


# ---------------------------------------------------------------- deploy key


def test_deploy_key_is_ed25519_0600_and_reused(tmp_path: Path) -> None:
    path = str(tmp_path / "keys" / "ams-01")
    key, changed = keys.ensure(path, "edgefleet-ams-01")
    assert changed and key is not None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert key.public_openssh.startswith("ssh-ed25519 ") and key.public_openssh.endswith(" edgefleet-ams-01")
    assert Path(path + ".pub").read_text().strip() == key.public_openssh
    again, changed_again = keys.ensure(path, "edgefleet-ams-01")
    assert not changed_again and again is not None
    assert again.private_openssh == key.private_openssh


def test_deploy_key_check_mode_generates_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "k")
    key, changed = keys.ensure(path, "c", check_mode=True)
    assert key is None and changed and not os.path.exists(path)


def test_deploy_key_refuses_garbage_and_rsa(tmp_path: Path) -> None:
    with pytest.raises(keys.DeployKeyError, match="not an unencrypted OpenSSH private key"):
        keys.load("not a key", source="vault")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=1024)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(keys.DeployKeyError, match="allowed: an ed25519 key"):
        keys.load(pem)


def test_deploy_key_mode_is_repaired(tmp_path: Path) -> None:
    path = str(tmp_path / "k")
    keys.ensure(path, "c")
    os.chmod(path, 0o644)
    _key, changed = keys.ensure(path, "c")
    assert changed and stat.S_IMODE(os.stat(path).st_mode) == 0o600


# ---------------------------------------------------------------- engine bundle


def make_bundle(root: Path, engine: str = "flux", tamper: str | None = None, unlisted: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    contents = {"crds.yaml": "kind: CustomResourceDefinition\n"}
    for component in bundle.KNOWN_COMPONENTS[engine]:
        contents[f"{component}.yaml"] = f"# {component}\nkind: Deployment\n"
    contents["images.txt"] = "\n".join(f"{c} example/{c}:v1" for c in bundle.KNOWN_COMPONENTS[engine]) + "\n"
    sums = []
    for name, text in contents.items():
        (root / name).write_text(text)
        if name != unlisted:
            sums.append(f"{hashlib.sha256(text.encode()).hexdigest()}  {name}")
    (root / "sha256sum.txt").write_text("\n".join(sums) + "\n")
    if tamper:
        (root / tamper).write_text("tampered\n")
    return root


def test_bundle_picks_the_default_components_and_their_images(tmp_path: Path) -> None:
    plan = bundle.plan(str(make_bundle(tmp_path)), "flux", list(bundle.DEFAULT_COMPONENTS["flux"]))
    assert plan.problems == []
    assert sorted(plan.files) == ["crds.yaml", "kustomize-controller.yaml", "source-controller.yaml"]
    assert plan.images == ["example/source-controller:v1", "example/kustomize-controller:v1"]


def test_bundle_refuses_tampered_unlisted_and_unknown(tmp_path: Path) -> None:
    root = make_bundle(tmp_path, tamper="source-controller.yaml", unlisted="kustomize-controller.yaml")
    plan = bundle.plan(str(root), "flux", ["source-controller", "kustomize-controller", "flagger"])
    text = "\n".join(plan.problems)
    assert "source-controller.yaml: sha256 is" in text
    assert "kustomize-controller.yaml is not listed" in text
    assert "components: found 'flagger'" in text
    assert "source-controller.yaml" not in plan.files


def test_bundle_requires_the_core_components(tmp_path: Path) -> None:
    plan = bundle.plan(str(make_bundle(tmp_path, "argocd")), "argocd", ["redis"])
    text = "\n".join(plan.problems)
    assert "application-controller is missing" in text and "repo-server is missing" in text


# ---------------------------------------------------------------- the runners of the three modules


def _params(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "engine": "flux",
        "cluster": "ams-01",
        "path": "clusters/ams-01",
        "overlays": ["base", "region-eu"],
        "region": "eu",
        "repo_url": "ssh://git@git.example.internal/fleet.git",
        "known_hosts": KNOWN_HOSTS,
        "deploy_key_path": str(tmp_path / "key"),
        "distribution": "k3s",
        "delivery": "manifests",
        "manifests_dir": str(tmp_path / "manifests"),
        "engine_bundle": str(make_bundle(tmp_path / "bundle")),
    }
    params.update(kw)
    return params


def test_run_writes_0600_files_then_reports_no_change(tmp_path: Path) -> None:
    params = _params(tmp_path)
    check = run_registration(params, check_mode=True)
    assert check["changed"] and not (tmp_path / "manifests").exists()
    first = run_registration(params, check_mode=False)
    assert first["changed"]
    registration = tmp_path / "manifests" / gitops.REGISTRATION_FILE
    assert stat.S_IMODE(os.stat(registration).st_mode) == 0o600
    docs = list(yaml.safe_load_all(registration.read_text()))
    assert [d["kind"] for d in docs].count("Secret") == 1
    secret = next(d for d in docs if d["kind"] == "Secret")
    private = (tmp_path / "key").read_text()
    assert secret["stringData"]["identity"] == private
    assert (tmp_path / "manifests" / "edgefleet-gitops-engine-flux-crds.yaml").exists()
    # the key never leaves in the result, nor in the diff
    assert private not in repr(first)
    assert first["public_key"] in secret["stringData"]["identity.pub"]
    second = run_registration(params, check_mode=False)
    assert not second["changed"] and second["diff"] == []
    assert run_registration(params, check_mode=True)["changed"] is False


def test_run_moving_region_changes_only_the_path_and_identity(tmp_path: Path) -> None:
    params = _params(tmp_path)
    run_registration(params, check_mode=False)
    before = list(yaml.safe_load_all((tmp_path / "manifests" / gitops.REGISTRATION_FILE).read_text()))
    moved = run_registration({**params, "overlays": ["base", "region-us"], "region": "us"}, check_mode=False)
    assert moved["changed"]
    after = list(yaml.safe_load_all((tmp_path / "manifests" / gitops.REGISTRATION_FILE).read_text()))
    changed = {gitops.object_ref(b) for b, a in zip(before, after, strict=True) if a != b}
    assert changed == {
        "ConfigMap/edgefleet-system/cluster-identity",
        "ConfigMap/flux-system/edgefleet-cluster-vars",
    }
    assert len(moved["diff"]) == 1 and "region-us" in moved["diff"][0]["after"]
    assert "BEGIN OPENSSH" not in moved["diff"][0]["before"] + moved["diff"][0]["after"]


def test_run_removes_engine_files_of_dropped_components(tmp_path: Path) -> None:
    params = _params(tmp_path, engine_components=["source-controller", "kustomize-controller", "helm-controller"])
    run_registration(params, check_mode=False)
    helm = tmp_path / "manifests" / "edgefleet-gitops-engine-flux-helm-controller.yaml"
    assert helm.exists()
    result = run_registration({**params, "engine_components": None}, check_mode=False)
    assert result["removed"] == [str(helm)] and not helm.exists()


def test_run_refuses_bad_input_before_writing(tmp_path: Path) -> None:
    params = _params(tmp_path, known_hosts="", cluster="Bad", engine_components=["nope"])
    with pytest.raises(GitopsError) as err:
        run_registration(params, check_mode=False)
    message = str(err.value)
    assert "known_hosts: missing" in message and "cluster: found 'Bad'" in message and "'nope'" in message
    assert not (tmp_path / "manifests").exists() and not (tmp_path / "key").exists()


def test_run_k0s_uses_its_stack_folder() -> None:
    assert gitops.MANIFEST_DIRS["k0s"] == "/var/lib/k0s/manifests/edgefleet-gitops"
    assert gitops.MANIFEST_DIRS["k3s"] == "/var/lib/rancher/k3s/server/manifests"


def test_deploy_key_runner_keeps_the_key(tmp_path: Path) -> None:
    result = run_deploy_key({"cluster": "ams-01", "path": str(tmp_path / "k")}, False)
    assert result["changed"] and result["needed"] and result["public_key"].startswith("ssh-ed25519 ")
    assert result["public_key"].endswith(" edgefleet-ams-01") and result["path"] == str(tmp_path / "k")
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    assert not run_deploy_key({"cluster": "ams-01", "path": str(tmp_path / "k")}, False)["changed"]


def test_deploy_key_runner_decides_from_the_repo_url(tmp_path: Path) -> None:
    """Only an SSH repo needs a key: for https nothing is read or written."""
    params = {"cluster": "ams-01", "path": str(tmp_path / "k")}
    https = run_deploy_key({**params, "repo_url": "https://git.example.internal/fleet.git"}, False)
    assert https == {
        "changed": False,
        "needed": False,
        "public_key": "",
        "fingerprint": "",
        "ssh_fingerprint": "",
        "path": params["path"],
    }
    assert not (tmp_path / "k").exists()
    for url in ("ssh://git@git.example.internal/fleet.git", "git@git.example.internal:fleet.git"):
        assert run_deploy_key({**params, "repo_url": url}, False)["needed"]
    assert (tmp_path / "k").exists()


def test_deploy_key_runner_check_mode_and_missing_path(tmp_path: Path) -> None:
    check = run_deploy_key({"cluster": "c", "path": str(tmp_path / "k")}, True)
    assert check["changed"] and check["public_key"] == "" and not (tmp_path / "k").exists()
    with pytest.raises(GitopsError, match="path: missing; gitops_deploy_key needs the path of the key to keep"):
        run_deploy_key({"cluster": "c"}, False)


def test_bundle_info_then_files_travel_with_the_call(tmp_path: Path) -> None:
    make_bundle(tmp_path / "b" / "gitops" / "flux" / "v1")
    verified = run_bundle_info({"engine": "flux", "root": str(tmp_path / "b"), "version": "v1"})
    assert verified["path"] == str(tmp_path / "b" / "gitops" / "flux" / "v1") and not verified["changed"]
    assert list(verified["engine_files"]) == ["crds.yaml", "source-controller.yaml", "kustomize-controller.yaml"]
    assert verified["components"] == ["source-controller", "kustomize-controller"]
    params = _params(tmp_path, engine_bundle=None)
    params.update(
        engine_files=verified["engine_files"], engine_sums=verified["engine_sums"], engine_images=verified["images"]
    )
    result = run_registration(params, check_mode=False)
    assert (tmp_path / "manifests" / "edgefleet-gitops-engine-flux-source-controller.yaml").exists()
    assert result["images"] == verified["images"]
    # a file altered in transit is refused, and nothing is written
    altered = dict(verified["engine_files"], **{"crds.yaml": "kind: Other\n"})
    with pytest.raises(GitopsError, match=r"crds\.yaml arrived with sha256"):
        run_registration({**params, "engine_files": altered, "manifests_dir": str(tmp_path / "other")}, False)
    assert not (tmp_path / "other").exists()


def test_bundle_info_without_a_root_is_empty(tmp_path: Path) -> None:
    result = run_bundle_info({"engine": "argocd", "version": "v9"})
    assert result == {
        "changed": False,
        "path": "",
        "components": ["application-controller", "repo-server", "redis"],
        "images": [],
        "engine_files": {},
        "engine_sums": {},
    }
    with pytest.raises(GitopsError, match="version: missing"):
        run_bundle_info({"engine": "flux", "root": str(tmp_path)})


def test_bundle_info_refuses_a_tampered_bundle(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b" / "gitops" / "flux" / "v1", tamper="crds.yaml")
    with pytest.raises(GitopsError, match=r"1 problem\(s\) in the flux bundle .*crds.yaml: sha256 is"):
        run_bundle_info({"engine": "flux", "root": str(tmp_path / "b"), "version": "v1"})
    assert root.is_dir()


def test_a_node_without_cryptography_gets_the_checked_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checked = run_deploy_key({"cluster": "ams-01", "path": str(tmp_path / "k")}, False)
    private = (tmp_path / "k").read_text()
    monkeypatch.setattr(keys, "HAS_CRYPTOGRAPHY", False)  # as on a lab node: python3 without cryptography
    params = _params(tmp_path, deploy_key_path=None, deploy_key=private, deploy_key_public=checked["public_key"])
    result = run_registration(params, check_mode=False)
    assert result["public_key"] == checked["public_key"]
    with pytest.raises(GitopsError, match="cryptography is needed"):
        run_registration({**params, "deploy_key_public": None}, check_mode=False)
    with pytest.raises(GitopsError, match="non-ed25519"):
        run_registration({**params, "deploy_key_public": "ssh-rsa AAAA x"}, check_mode=False)


def test_deploy_key_runner_checks_a_given_key(tmp_path: Path) -> None:
    key = keys.generate("x")
    result = run_deploy_key({"cluster": "c", "private_key": key.private_openssh, "path": str(tmp_path / "k")}, False)
    assert not result["changed"] and result["public_key"].split()[:2] == key.public_openssh.split()[:2]
    assert result["public_key"].endswith(" edgefleet-c") and not (tmp_path / "k").exists()
    with pytest.raises(GitopsError, match="private_key: not an unencrypted OpenSSH private key"):
        run_deploy_key({"cluster": "c", "private_key": "garbage"}, False)


def test_registration_ignores_the_key_for_a_repo_that_is_not_ssh(tmp_path: Path) -> None:
    params = _params(tmp_path, repo_url="https://git.example.internal/fleet.git", known_hosts="")
    result = run_registration({**params, "deploy_key": "not even a key"}, check_mode=False)
    assert result["public_key"] == "" and not (tmp_path / "key").exists()
    docs = list(yaml.safe_load_all((tmp_path / "manifests" / gitops.REGISTRATION_FILE).read_text()))
    assert not [d for d in docs if d["kind"] == "Secret"]


def test_registration_check_mode_shows_the_secret_before_the_key_exists(tmp_path: Path) -> None:
    result = run_registration(_params(tmp_path), check_mode=True)
    secret = next(o for o in result["objects"] if o["kind"] == "Secret")
    assert set(secret["stringData"]) == {"identity", "identity.pub", "known_hosts"}
    assert result["changed"] and not (tmp_path / "key").exists()


def test_engine_table_is_where_components_come_from() -> None:
    for name, row in gitops.ENGINE_TABLE.items():
        assert set(row.required_components) <= set(row.default_components) <= set(row.components)
        assert bundle.DEFAULT_COMPONENTS[name] == row.default_components
        assert gitops.components_for(name, []) == list(row.default_components)
        assert gitops.components_for(name, ["x"]) == ["x"]
    assert gitops.ENGINES == ("flux", "argocd")


@pytest.mark.parametrize(
    ("engine", "overrides"),
    [
        ("flux", {}),
        ("flux", {"name": "fleet", "namespace": "gitops", "interval": "1m"}),
        ("argocd", {"namespace": "cd"}),
    ],
)
def test_gate_refs_name_the_objects_the_registration_writes(engine: str, overrides: dict[str, Any]) -> None:
    """The upgrade's GitOps gate looks for exactly the identity ConfigMap and the source/sync objects that
    registration_objects writes for the same cluster and settings (an SSH repo, key and all)."""
    flux = gitops.FluxSettings(**overrides) if engine == "flux" else gitops.FluxSettings()
    argo = gitops.ArgoSettings(**overrides) if engine == "argocd" else gitops.ArgoSettings()
    key = keys.generate("edge-1")
    repo = gitops.RepoSettings(
        url="ssh://git@git.example.internal/fleet.git", known_hosts="git.example.internal ssh-ed25519 AAAA"
    )
    written = gitops.registration_objects(engine, _facts(), repo, flux, argo, key)
    wanted = {
        (o["metadata"].get("namespace", ""), o["kind"], o["metadata"]["name"])
        for o in written
        if o["kind"] in ("GitRepository", "Kustomization", "Application")
        or (o["kind"] == "ConfigMap" and o["metadata"]["name"] == "cluster-identity")
    }
    refs = gitops.gate_refs(engine, _facts().cluster, {**overrides, "not-a-setting": 1})
    found = {(r["namespace"], r["ref"].split("/")[0].split(".")[0], r["ref"].split("/")[1]) for r in refs}
    assert {(ns, kind.lower(), name) for ns, kind, name in wanted} == found
    assert len(refs) == (3 if engine == "flux" else 2)
    groups = {r["ref"].split("/")[0] for r in refs}
    assert "configmap" in groups
    assert ("gitrepository.source.toolkit.fluxcd.io" in groups) == (engine == "flux")
    assert ("application.argoproj.io" in groups) == (engine == "argocd")


def test_gate_refs_none_and_unknown_engine() -> None:
    assert gitops.gate_refs("none", "c") == []
    with pytest.raises(ValueError, match="found 'fluxcd'"):
        gitops.gate_refs("fluxcd", "c")
