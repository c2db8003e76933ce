# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gitops_deploy_key, gitops_bundle_info and gitops_registration: their documentation against their
argument specs, and each module end to end through AnsibleModule (check mode, diff, no_log, 0600)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import options
from ansible_collections.edgefleet.k8s.plugins.modules import (
    gitops_bundle_info,
    gitops_deploy_key,
    gitops_registration,
)
from module_run import run_module

MODULES: dict[str, ModuleType] = {
    "gitops_deploy_key": gitops_deploy_key,
    "gitops_bundle_info": gitops_bundle_info,
    "gitops_registration": gitops_registration,
}
KNOWN_HOSTS = "git.example.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleHostKeyOnlyForTests\n"
_KEYS = ("type", "default", "choices", "elements", "required")


def _doc(module: ModuleType) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(module.DOCUMENTATION)
    return doc


def _doc_view(doc_options: dict[str, Any]) -> dict[str, Any]:
    """What DOCUMENTATION says of each option, in argument-spec terms."""
    view: dict[str, Any] = {}
    for name, entry in doc_options.items():
        item = {key: entry[key] for key in _KEYS if key in entry}
        if item.get("required") is False:
            del item["required"]
        if "suboptions" in entry:
            item["options"] = _doc_view(entry["suboptions"])
        view[name] = item
    return view


def _spec_view(spec: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for name, entry in spec.items():
        item = {key: entry[key] for key in _KEYS if key in entry}
        if "options" in entry:
            item["options"] = _spec_view(entry["options"])
        view[name] = item
    return view


@pytest.mark.parametrize("name", sorted(MODULES))
def test_documentation_matches_the_argument_spec(name: str) -> None:
    """DOCUMENTATION repeats each default for ansible-doc; options.py is where it is defined."""
    doc = _doc(MODULES[name])
    assert doc["module"] == name
    assert _doc_view(doc["options"]) == _spec_view(options.SPECS[name])


def _walk(spec: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for name, entry in spec.items():
        found.append((prefix + name, entry))
        found.extend(_walk(entry.get("options", {}), f"{prefix}{name}."))
    return found


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_optional_option_has_a_real_default(name: str) -> None:
    for option, entry in _walk(options.SPECS[name]):
        if entry.get("required"):
            assert "default" not in entry, option
        else:
            assert entry.get("default") is not None, f"{name}: {option} has no default"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_use_the_shared_attributes(name: str) -> None:
    fragments = _doc(MODULES[name])["extends_documentation_fragment"]
    assert fragments[0] == "ansible.builtin.action_common_attributes"
    expected = "edgefleet.k8s.attributes.read_only" if name == "gitops_bundle_info" else "edgefleet.k8s.attributes"
    assert fragments[1:] == [expected]


def test_settings_suboptions_are_the_dataclass_fields() -> None:
    from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import core

    assert options.REGISTRATION["flux"]["options"]["source_interval"]["default"] == core.FluxSettings().source_interval
    assert options.REGISTRATION["argocd"]["options"]["namespace"]["default"] == core.ArgoSettings().namespace
    assert set(options.REGISTRATION) >= set(core.ENGINE_TABLE)


# ---------------------------------------------------------------- the modules through AnsibleModule


def _bundle(root: Path) -> Path:
    folder = root / "gitops" / "flux" / "v1"
    folder.mkdir(parents=True)
    contents = {
        "crds.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: flux-system}\n",
        "source-controller.yaml": "kind: Deployment\n",
        "kustomize-controller.yaml": "kind: Deployment\n",
        "images.txt": "source-controller ex/sc:v1\nkustomize-controller ex/kc:v1\n",
    }
    for name, text in contents.items():
        (folder / name).write_text(text)
    sums = "".join(f"{hashlib.sha256(t.encode()).hexdigest()}  {n}\n" for n, t in contents.items())
    (folder / "sha256sum.txt").write_text(sums)
    return root


def test_the_three_modules_in_a_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = "ssh://git@git.example.internal/fleet.git"
    key_args = {"cluster": "ams-01", "repo_url": repo, "path": str(tmp_path / "keys" / "ams-01")}
    check_key = run_module(gitops_deploy_key, {**key_args, "_ansible_check_mode": True}, capsys)
    assert check_key["changed"] and not (tmp_path / "keys").exists()
    key = run_module(gitops_deploy_key, key_args, capsys)
    private = (tmp_path / "keys" / "ams-01").read_text()
    assert key["changed"] and key["needed"] and stat.S_IMODE(os.stat(tmp_path / "keys" / "ams-01").st_mode) == 0o600
    assert private not in json.dumps(key)
    assert not run_module(gitops_deploy_key, key_args, capsys)["changed"]

    info_args = {"engine": "flux", "root": str(_bundle(tmp_path / "bundles")), "version": "v1"}
    info = run_module(gitops_bundle_info, {**info_args, "_ansible_check_mode": True}, capsys)
    assert not info["changed"] and info["images"] == ["ex/sc:v1", "ex/kc:v1"]

    args = {
        "engine": "flux",
        "cluster": "ams-01",
        "repo_url": repo,
        "known_hosts": KNOWN_HOSTS,
        "overlays": ["base", "region-eu"],
        "region": "eu",
        "deploy_key": private,
        "deploy_key_public": key["public_key"],
        "manifests_dir": str(tmp_path / "manifests"),
        "engine_files": info["engine_files"],
        "engine_sums": info["engine_sums"],
        "engine_images": info["images"],
        "flux": {"source_interval": "30m"},
        "_ansible_check_mode": True,
        "_ansible_diff": True,
    }
    check = run_module(gitops_registration, args, capsys)
    assert check["changed"] and check["diff"] and not (tmp_path / "manifests").exists()
    assert "BEGIN OPENSSH" not in json.dumps(check)
    real = run_module(gitops_registration, {**args, "_ansible_check_mode": False}, capsys)
    assert real["changed"] and real["path"] == "clusters/ams-01" and real["public_key"] == key["public_key"]
    assert "BEGIN OPENSSH" not in json.dumps(real)
    registration = tmp_path / "manifests" / "edgefleet-gitops.yaml"
    assert stat.S_IMODE(os.stat(registration).st_mode) == 0o600
    docs = {d["kind"]: d for d in yaml.safe_load_all(registration.read_text()) if d}
    # the suboption given and the defaults of the others, all from the one spec
    assert docs["GitRepository"]["spec"]["interval"] == "30m" and docs["GitRepository"]["spec"]["timeout"] == "60s"
    assert docs["Kustomization"]["spec"]["retryInterval"] == "2m"
    assert docs["Secret"]["stringData"]["identity"] == private
    again = run_module(gitops_registration, {**args, "_ansible_check_mode": False, "_ansible_diff": False}, capsys)
    assert not again["changed"] and "diff" not in again


def test_registration_fails_listing_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module(
        gitops_registration,
        {
            "engine": "argocd",
            "cluster": "Bad_Name",
            "repo_url": "git@git.example.internal:fleet.git",
            "delivery": "api",
            "manifests_dir": str(tmp_path / "m"),
        },
        capsys,
    )
    assert result["failed"]
    assert result["msg"].startswith("4 problem(s) in the GitOps registration for 'Bad_Name': ")
    for needle in ("cluster: found 'Bad_Name'", "kubeconfig: missing", "deploy_key: missing", "known_hosts: missing"):
        assert needle in result["msg"]


def test_deploy_key_module_hides_a_given_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import keys

    given = keys.generate("x").private_openssh
    result = run_module(gitops_deploy_key, {"cluster": "c", "private_key": given}, capsys)
    assert not result["changed"] and result["public_key"].startswith("ssh-ed25519 ")
    assert given not in json.dumps(result)
    skipped = run_module(
        gitops_deploy_key, {"cluster": "c", "repo_url": "https://h/r.git", "path": str(tmp_path)}, capsys
    )
    assert skipped["needed"] is False and not skipped["changed"]
