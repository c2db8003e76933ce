# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gitops role in `manifests` mode, run by ansible-playbook on this machine (connection local).

Each cluster's "node" is a folder under tmp: the role writes its registration and the verified engine
bundle into the auto-apply folder there. Checks: 0600 files with the objects and the key, a second run
changes nothing, moving one cluster from region A to B changes only that cluster, check mode and diff
never show the key, and a tampered bundle stops the run naming the file.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.kustomize

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "tests/integration/gitops/register.yml"
KNOWN_HOSTS = "git.example.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleHostKeyOnlyForTests"

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
    vars:
      ansible_connection: local
      ansible_become: false
      ansible_python_interpreter: "{python}"
      edgefleet_gitops_manifests_dir: "{tmp}/site-a/manifests"
    nodes:
      - {{name: site-a-s1, address: 192.0.2.101, role: server}}
      - {{name: site-a-a1, address: 192.0.2.103, role: agent}}
  - name: site-b
    region: eu-west
    distribution: k0s
    version: v1.31.3+k0s.0
    datastore: sqlite
    gitops: {{engine: argocd}}
    vars:
      ansible_connection: local
      ansible_become: false
      ansible_python_interpreter: "{python}"
      edgefleet_gitops_manifests_dir: "{tmp}/site-b/manifests"
    nodes:
      - {{name: site-b-s1, address: 192.0.2.102, role: server}}
"""


def _recap(stdout: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", stdout, re.M)}


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    bundle = tmp_path / "bundles"
    subprocess.run([sys.executable, str(ROOT / "tests/lab/gitops/make_bundle.py"), str(bundle)], check=True, timeout=60)
    inventory = tmp_path / "inv"
    inventory.mkdir()
    return {"tmp": tmp_path, "bundle": bundle, "inventory": inventory}


def _write_fleet(world: dict[str, Any], region_a: str) -> None:
    text = FLEET.format(region_a=region_a, python=sys.executable, tmp=world["tmp"])
    (world["inventory"] / "test.fleet.yml").write_text(text)


def _play(world: dict[str, Any], *args: str, ok: bool = True) -> str:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    extra = [
        "-e",
        f"edgefleet_gitops_key_dir={world['tmp']}/keys",
        "-e",
        f"edgefleet_gitops_known_hosts='{KNOWN_HOSTS}'",
        "-e",
        f"edgefleet_gitops_bundle_root={world['bundle']}",
        "-e",
        '{"edgefleet_gitops_engine_versions": {"flux": "lab", "argocd": "lab"}}',
    ]
    cmd = ["ansible-playbook", "-i", str(world["inventory"]), str(PLAYBOOK), *extra, *args]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    if ok:
        assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    else:
        assert out.returncode != 0, out.stdout[-3000:]
    return out.stdout + out.stderr


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_register_idempotent_and_move(world: dict[str, Any]) -> None:
    tmp = world["tmp"]
    _write_fleet(world, "eu-west")
    check = _play(world, "--check", "--diff")
    assert not (tmp / "site-a" / "manifests").exists()
    assert "BEGIN OPENSSH" not in check

    first = _play(world, "--diff")
    assert "BEGIN OPENSSH" not in first
    a_file = tmp / "site-a" / "manifests" / "edgefleet-gitops.yaml"
    b_file = tmp / "site-b" / "manifests" / "edgefleet-gitops.yaml"
    assert stat.S_IMODE(os.stat(a_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp / "keys" / "site-a").st_mode) == 0o600
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _docs(a_file)}
    assert docs[("Kustomization", "edgefleet-fleet")]["spec"]["path"] == "./clusters/site-a"
    assert docs[("Secret", "edgefleet-fleet-auth")]["stringData"]["identity"] == (tmp / "keys" / "site-a").read_text()
    assert docs[("ConfigMap", "cluster-identity")]["data"]["overlays"] == "base,region-eu-west"
    assert (tmp / "site-a" / "manifests" / "edgefleet-gitops-engine-flux-crds.yaml").exists()
    assert not (tmp / "site-a" / "manifests" / "edgefleet-gitops-engine-flux-helm-controller.yaml").exists()
    b_docs = {(d["kind"], d["metadata"]["name"]): d for d in _docs(b_file)}
    assert b_docs[("Application", "site-b")]["spec"]["source"]["path"] == "clusters/site-b"
    assert not (tmp / "site-a-a1").exists()  # agents do not register

    assert set(_recap(_play(world)).values()) == {0}

    _write_fleet(world, "us-east")
    b_before = b_file.read_bytes()
    moved = _recap(_play(world, "--diff"))
    assert moved["site-a-s1"] > 0 and moved["site-b-s1"] == 0 and moved["site-a-a1"] == 0
    assert b_file.read_bytes() == b_before
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _docs(a_file)}
    assert docs[("ConfigMap", "cluster-identity")]["data"]["overlays"] == "base,region-us-east"
    assert docs[("Kustomization", "edgefleet-fleet")]["spec"]["path"] == "./clusters/site-a"
    assert set(_recap(_play(world)).values()) == {0}


def test_tampered_bundle_stops_before_delivery(world: dict[str, Any]) -> None:
    _write_fleet(world, "eu-west")
    (world["bundle"] / "gitops" / "flux" / "lab" / "source-controller.yaml").write_text("kind: Evil\n")
    out = _play(world, ok=False)
    assert "source-controller.yaml: sha256 is" in out and "sha256sum.txt pins" in out
    assert not (world["tmp"] / "site-a" / "manifests" / "edgefleet-gitops.yaml").exists()
