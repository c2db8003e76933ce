# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input stops `playbooks/site.yml` before any host is touched.

Every host here points at 127.0.0.1 port 9, where nothing listens: had the run
tried to reach a host (to gather facts or change anything), Ansible would
report it UNREACHABLE. The tests assert that it never got that far, that the
run failed, and that the message names the host (or fleet file) and the key.
Nothing is sent anywhere but loopback.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _bundle(root: Path) -> Path:
    """A minimal air-gap bundle (a test fixture, not a K3s binary) so the bundle check passes."""
    version_dir = root / "k3s" / "v1.36.3+lab"
    version_dir.mkdir(parents=True)
    binary = version_dir / "k3s"
    binary.write_bytes(b"#!/bin/sh\necho 'test fixture, not k3s'\n")
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    (version_dir / "sha256sum-amd64.txt").write_text(f"{digest}  k3s\n")
    return root


def _fleet(path: Path, sites: list[dict[str, object]]) -> Path:
    doc = {
        "plugin": "edgefleet.k8s.fleet",
        "defaults": {
            "region": "test",
            "model": "none",
            "channel": "stable",
            "distribution": "k3s",
            "version": "v1.36.3+lab",
            "arch": "amd64",
            "gitops": {"engine": "none"},
        },
        "sites": sites,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _node(name: str, address: str, role: str = "server") -> dict[str, object]:
    return {"name": name, "address": address, "role": role, "vars": {"ansible_port": 9}}


def _run_site(
    tmp_path: Path, fleet: Path, components: tuple[str, ...] = ("binary",)
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_TIMEOUT="5",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    extra = {
        "edgefleet_artifacts_bundle": str(_bundle(tmp_path / "bundle")),
        "edgefleet_artifacts_components": list(components),
        "edgefleet_artifacts_cache_dir": str(tmp_path / "cache"),
        "ansible_python_interpreter": sys.executable,
    }
    extra_file = tmp_path / "extra.yml"
    extra_file.write_text(yaml.safe_dump(extra))
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/site.yml", "-i", str(fleet), "-e", f"@{extra_file}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _assert_no_host_touched(result: subprocess.CompletedProcess[str]) -> str:
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "UNREACHABLE" not in out, "the run tried to reach a host before stopping:\n" + out
    assert "changed=1" not in out and "changed: [" not in out, out
    return out


def test_unknown_key_bad_namespace_and_inline_token_all_reported_before_any_host(tmp_path: Path) -> None:
    typo = {
        "edgefleet_distribution_config": {"kube-apiserver-args": ["x=1"]},
        "edgefleet_distribution_default_sa_namespaces": ["default", "Kube_Public"],
    }
    inline_token = {"edgefleet_distribution_config": {"token": "s3cr3t-inline"}}
    site_a = {"name": "site-a", "nodes": [_node("a1", "127.0.0.2")], "vars": typo}
    site_b = {"name": "site-b", "nodes": [_node("b1", "127.0.0.3")], "vars": inline_token}
    out = _assert_no_host_touched(_run_site(tmp_path, _fleet(tmp_path / "bad.fleet.yml", [site_a, site_b])))
    # Both problems, each naming its host and key: not just the first one found.
    assert "a1" in out and "kube-apiserver-args" in out, out
    assert "b1" in out and "token" in out, out
    # A namespace the API server would refuse is found on the controller too, not at its apply on the init server.
    assert "a1: edgefleet_distribution_default_sa_namespaces[1] is 'Kube_Public'" in out, out
    # The inline token's value is a secret: it must not be echoed back.
    assert "s3cr3t-inline" not in out, out


@pytest.mark.parametrize("servers", [2])
def test_sqlite_with_two_servers_stops_at_the_inventory(tmp_path: Path, servers: int) -> None:
    nodes = [_node(f"c{i}", f"127.0.0.{10 + i}") for i in range(servers)]
    site = {"name": "site-c", "datastore": "sqlite", "nodes": nodes}
    fleet = _fleet(tmp_path / "two-servers.fleet.yml", [site])
    out = _assert_no_host_touched(_run_site(tmp_path, fleet))
    assert "two-servers.fleet.yml" in out and "site-c" in out and "datastore" in out, out
    assert "etcd" in out, out


def test_pull_mode_for_a_cluster_with_an_agent_stops_before_any_host(tmp_path: Path) -> None:
    pull = {
        "edgefleet_pull_mode": True,
        "edgefleet_pull_repo": "git://127.0.0.1:9/site.git",
        "edgefleet_pull_inventory": "inventory/site.fleet.yml",
        "edgefleet_pull_allowed_signers": "admin@example.invalid ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake",
    }
    nodes = [_node("p1", "127.0.0.21"), _node("p2", "127.0.0.22", role="agent")]
    site = {"name": "site-p", "datastore": "sqlite", "nodes": nodes, "vars": pull}
    out = _assert_no_host_touched(_run_site(tmp_path, _fleet(tmp_path / "pull.fleet.yml", [site])))
    # Both hosts, each named with the file and the key; what is allowed; the missing wheelhouse too.
    for host in ("p1", "p2"):
        found = f"pull.fleet.yml, host {host}: edgefleet_pull_mode: cluster site-p has servers [p1] and agents [p2]"
        assert found in out, out
    assert "allowed only for a cluster whose one node is its server" in out, out
    assert "edgefleet_pull_wheelhouse" in out, out


def test_a_bundle_without_the_shims_of_a_sites_wasm_runtimes_stops_before_any_host(tmp_path: Path) -> None:
    """The fixture bundle has the binary and no shim: both runtimes' shims are named, with the bundle's directory,
    by the first play on the controller."""
    site = {"name": "site-w", "wasm": ["spin", "wasmtime"], "nodes": [_node("w1", "127.0.0.1")]}
    fleet = _fleet(tmp_path / "wasm.fleet.yml", [site])
    out = _assert_no_host_touched(_run_site(tmp_path, fleet, ("binary", "wasm_shims")))
    bundle_dir = tmp_path / "bundle" / "k3s" / "v1.36.3+lab"
    for runtime in ("spin", "wasmtime"):
        assert (
            f"{bundle_dir}: the WASM shim of {runtime} containerd-shim-{runtime}-v1-amd64 is neither in the bundle "
            "nor in sha256sum-amd64.txt"
        ) in out, out
