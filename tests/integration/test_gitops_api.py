# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gitops_registration (after gitops_bundle_info) against a REAL kube-apiserver (kine/SQLite, `kube_apiserver`).

The control plane is the lab's bare stand-in (no K3s, no controllers, no pods), and the Flux and
Argo CD CRDs are our minimal hand-written stand-ins from tests/lab/gitops/make_bundle.py. What this
proves: the objects we render are accepted by a real API server, read back as rendered, a second
apply changes nothing, and moving a cluster changes only that cluster's path/overlay objects.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import api
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.module import (
    GitopsError,
    run_bundle_info,
    run_registration,
)

pytestmark = pytest.mark.gitops_api

KNOWN_HOSTS = "git.example.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleHostKeyOnlyForTests\n"


@pytest.fixture(scope="module")
def bundle_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gitops-bundle")
    subprocess.run([sys.executable, str(ROOT / "tests/lab/gitops/make_bundle.py"), str(root)], check=True, timeout=60)
    return root


def _kubectl(cp: Any, *args: str) -> Any:
    out = cp.kubectl(*args, "-o", "yaml")
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def _params(cp: Any, bundle_root: Path, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "engine": "flux",
        "cluster": "ams-01",
        "path": "clusters/ams-01",
        "overlays": ["base", "region-eu"],
        "region": "eu",
        "model": "rpi4",
        "channel": "stable",
        "repo_url": "ssh://git@git.example.internal/fleet.git",
        "known_hosts": KNOWN_HOSTS,
        "deploy_key_path": str(tmp_path / "keys" / "ams-01"),
        "delivery": "api",
        "kubeconfig": str(cp.kubeconfig),
        "engine_bundle": str(bundle_root / "gitops" / "flux" / "lab"),
    }
    params.update(kw)
    return params


def test_flux_registration_through_the_api(kube_apiserver: Any, bundle_root: Path, tmp_path: Path) -> None:
    cp = kube_apiserver
    params = _params(cp, bundle_root, tmp_path)
    dry = run_registration(params, check_mode=True)
    assert dry["changed"]
    assert cp.kubectl("get", "namespace", "flux-system").returncode != 0  # check mode created nothing

    first = run_registration(params, check_mode=False)
    assert first["changed"]
    crd = _kubectl(cp, "get", "crd", "gitrepositories.source.toolkit.fluxcd.io")
    assert crd["spec"]["group"] == "source.toolkit.fluxcd.io"
    source = _kubectl(cp, "get", "gitrepositories.source.toolkit.fluxcd.io", "-n", "flux-system", "edgefleet-fleet")
    assert source["spec"]["url"] == params["repo_url"] and source["spec"]["ref"] == {"branch": "main"}
    sync = _kubectl(
        cp, "get", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system", "edgefleet-fleet",
        "--show-managed-fields",
    )  # fmt: skip
    assert sync["spec"]["path"] == "./clusters/ams-01"
    assert {f["manager"] for f in sync["metadata"]["managedFields"]} == {"edgefleet"}
    secret = _kubectl(cp, "get", "secret", "-n", "flux-system", "edgefleet-fleet-auth")
    private = (tmp_path / "keys" / "ams-01").read_text()
    assert base64.b64decode(secret["data"]["identity"]).decode() == private
    assert base64.b64decode(secret["data"]["identity.pub"]).decode() == first["public_key"]
    identity = _kubectl(cp, "get", "configmap", "-n", "edgefleet-system", "cluster-identity")
    assert identity["data"]["overlays"] == "base,region-eu" and identity["data"]["region"] == "eu"
    deploy = _kubectl(cp, "get", "deployment", "-n", "flux-system", "source-controller")
    assert deploy["metadata"]["annotations"]["edgefleet.io/stand-in"]
    assert cp.kubectl("get", "deployment", "-n", "flux-system", "helm-controller").returncode != 0  # trimmed
    assert private not in repr(first)

    second = run_registration(params, check_mode=False)
    assert not second["changed"], second["applied"]
    assert not run_registration(params, check_mode=True)["changed"]

    moved = run_registration({**params, "overlays": ["base", "region-us"], "region": "us"}, check_mode=False)
    assert sorted(moved["applied"]["changed"]) == [
        "ConfigMap/edgefleet-system/cluster-identity",
        "ConfigMap/flux-system/edgefleet-cluster-vars",
    ]
    moved_path = run_registration({**params, "path": "clusters/us/ams-01"}, check_mode=False)
    assert "Kustomization/flux-system/edgefleet-fleet" in moved_path["applied"]["changed"]
    sync = _kubectl(cp, "get", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system", "edgefleet-fleet")
    assert sync["spec"]["path"] == "./clusters/us/ams-01"


def test_node_labels_and_wait(kube_apiserver: Any, bundle_root: Path, tmp_path: Path) -> None:
    cp = kube_apiserver
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ams-01-s1", "labels": {"keep": "me"}}}
    created = cp.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(node))
    assert created.returncode == 0, created.stderr
    nodes = ["ams-01-s1", "ams-01-a9"]
    params = _params(cp, bundle_root, tmp_path, nodes=nodes, cluster="ams-02", path="clusters/ams-02")
    params["flux"] = {"name": "fleet-ams-02"}
    result = run_registration(params, check_mode=False)
    assert "Node/ams-01-s1" in result["applied"]["changed"]
    assert any("ams-01-a9" in w for w in result["warnings"])  # not registered: a warning, not a failure
    labels = _kubectl(cp, "get", "node", "ams-01-s1")["metadata"]["labels"]
    assert labels["keep"] == "me" and labels["edgefleet.io/region"] == "eu"
    assert labels["edgefleet.io/overlays"] == "base.region-eu"
    assert "Node/ams-01-s1" in run_registration(params, check_mode=False)["applied"]["unchanged"]

    # no source-controller runs here: waiting must time out and say what it saw
    with pytest.raises(GitopsError, match="not Ready after 2s; last status: no Ready condition"):
        run_registration({**params, "wait": True, "wait_timeout": 2}, check_mode=False)
    # play the controller: set Ready=True through the status subresource, then the wait succeeds
    status = {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Succeeded",
                    "message": "ok",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        }
    }
    patched = cp.kubectl(
        "patch",
        "gitrepositories.source.toolkit.fluxcd.io",
        "-n",
        "flux-system",
        "fleet-ams-02",
        "--subresource=status",
        "--type=merge",
        "-p",
        yaml.safe_dump(status),
    )
    assert patched.returncode == 0, patched.stderr
    ready = run_registration({**params, "wait": True, "wait_timeout": 10}, check_mode=False)
    assert ready["ready"].startswith("Ready=True")


def test_argocd_registration_through_the_api(kube_apiserver: Any, bundle_root: Path, tmp_path: Path) -> None:
    """The role's path: the bundle verified by gitops_bundle_info, its files handed to gitops_registration."""
    cp = kube_apiserver
    verified = run_bundle_info({"engine": "argocd", "root": str(bundle_root), "version": "lab"})
    params = _params(
        cp,
        bundle_root,
        tmp_path,
        engine="argocd",
        cluster="par-01",
        path="clusters/par-01",
        engine_bundle=None,
        engine_files=verified["engine_files"],
        engine_sums=verified["engine_sums"],
        engine_images=verified["images"],
        argocd={"agent_hub": "hub.example.internal"},
    )
    assert run_registration(params, check_mode=False)["changed"]
    app = _kubectl(cp, "get", "applications.argoproj.io", "-n", "argocd", "par-01")
    assert app["spec"]["source"]["path"] == "clusters/par-01"
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    repo = _kubectl(cp, "get", "secret", "-n", "argocd", "edgefleet-fleet-repo")
    assert repo["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "repository"
    assert base64.b64decode(repo["data"]["sshPrivateKey"]).decode() == (tmp_path / "keys" / "ams-01").read_text()
    agent = _kubectl(cp, "get", "configmap", "-n", "argocd", "argocd-agent-params")
    assert agent["data"]["agent.server.address"] == "hub.example.internal"
    assert not run_registration(params, check_mode=False)["changed"]


def test_missing_crds_are_reported_not_a_traceback(kube_apiserver: Any) -> None:
    dyn = api.connect(str(kube_apiserver.kubeconfig))
    obj = {"apiVersion": "nothere.example.io/v1", "kind": "Nope", "metadata": {"name": "x", "namespace": "default"}}
    with pytest.raises(api.ApiApplyError, match=r"the API has no Nope in nothere\.example\.io/v1; install the engine"):
        api.apply_objects(dyn, [obj])
    with pytest.raises(api.ApiApplyError, match="kubeconfig /nonexistent: cannot load it"):
        api.connect("/nonexistent")


# ---------------------------------------------------------------- the role, through ansible-playbook


FLEET = """\
plugin: edgefleet.k8s.fleet
defaults:
  model: rpi4
  channel: stable
  arch: arm64
  gitops:
    engine: flux
    repo: ssh://git@git.example.internal/fleet.git
    branch: main
overlays:
  rules:
    - {{name: eu, slot: region, match: {{region: eu-west}}, overlay: region-eu-west}}
    - {{name: us, slot: region, match: {{region: us-east}}, overlay: region-us-east}}
sites:
  - name: site-a
    region: {region_a}
    distribution: k3s
    version: v1.31.4+k3s1
    datastore: sqlite
    vars: {{edgefleet_gitops_kubeconfig: "{kubeconfig_a}"}}
    nodes:
      - {{name: site-a-s1, address: 192.0.2.101, role: server}}
  - name: site-b
    region: eu-west
    distribution: k0s
    version: v1.31.3+k0s.0
    datastore: sqlite
    gitops: {{engine: argocd}}
    vars: {{edgefleet_gitops_kubeconfig: "{kubeconfig_b}"}}
    nodes:
      - {{name: site-b-s1, address: 192.0.2.102, role: server}}
"""


def _playbook(inventory: Path, extra: dict[str, Any]) -> str:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    cmd = ["ansible-playbook", "-i", str(inventory), str(ROOT / "tests/integration/gitops/register_api.yml")]
    cmd += ["-e", json.dumps(extra)]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-3000:]
    return out.stdout


def _recap(stdout: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", stdout, re.M)}


def test_role_moves_only_the_moved_cluster(
    kube_apiserver: Any, controlplane_factory: Any, bundle_root: Path, tmp_path: Path
) -> None:
    """Two clusters, each with its own real API server; moving site-a changes site-a only."""
    cp = kube_apiserver
    cp_b = controlplane_factory()
    inventory = tmp_path / "inv"
    inventory.mkdir()
    fleet = inventory / "test.fleet.yml"
    kubeconfigs = {"kubeconfig_a": str(cp.kubeconfig), "kubeconfig_b": str(cp_b.kubeconfig)}
    fleet.write_text(FLEET.format(region_a="eu-west", **kubeconfigs))
    extra = {
        "edgefleet_gitops_apply": "api",
        "edgefleet_gitops_key_dir": str(tmp_path / "keys"),
        "edgefleet_gitops_known_hosts": KNOWN_HOSTS.strip(),
        "edgefleet_gitops_bundle_root": str(bundle_root),
        "edgefleet_gitops_engine_versions": {"flux": "lab", "argocd": "lab"},
    }
    first = _recap(_playbook(inventory, extra))
    assert first["site-a-s1"] > 0 and first["site-b-s1"] > 0
    assert (tmp_path / "keys" / "site-a").exists() and (tmp_path / "keys" / "site-b.pub").exists()
    sync = _kubectl(cp, "get", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system", "edgefleet-fleet")
    assert sync["spec"]["path"] == "./clusters/site-a"
    app = _kubectl(cp_b, "get", "applications.argoproj.io", "-n", "argocd", "site-b")
    assert app["spec"]["source"]["path"] == "clusters/site-b"

    assert _recap(_playbook(inventory, extra)) == {"site-a-s1": 0, "site-b-s1": 0}

    fleet.write_text(FLEET.format(region_a="us-east", **kubeconfigs))
    moved = _recap(_playbook(inventory, extra))
    assert moved["site-a-s1"] > 0 and moved["site-b-s1"] == 0
    identity_a = _kubectl(cp, "get", "configmap", "-n", "edgefleet-system", "cluster-identity")
    assert "region-us-east" in identity_a["data"]["overlays"]
    identity_b = _kubectl(cp_b, "get", "configmap", "-n", "edgefleet-system", "cluster-identity")
    assert identity_b["data"]["region"] == "eu-west"
    assert _recap(_playbook(inventory, extra)) == {"site-a-s1": 0, "site-b-s1": 0}
