# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WASM runtimes: the fleet's `wasm` setting, the node labels of WASM-capable nodes, the RuntimeClass
objects and the containerd drop-in that names the runtimes."""

from __future__ import annotations

import os
import stat
import sys
import tomllib
import typing as t
from pathlib import Path

import pytest
import yaml

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import wasm
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import wasm_module as m
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k0s import K0S
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k3s import K3S
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_schema import FleetError, build_plan


def fleet(runtimes: t.Any, agent_wasm: t.Any = False) -> dict[str, t.Any]:
    return {
        "defaults": {
            "region": "eu",
            "model": "rpi5",
            "channel": "stable",
            "version": "v1.31.4+k3s1",
            "gitops": {"engine": "none"},
        },
        "sites": [
            {
                "name": "ber-01",
                "wasm": runtimes,
                "nodes": [
                    {"name": "ber-01-s1", "address": "192.0.2.10", "role": "server"},
                    {"name": "ber-01-a1", "address": "192.0.2.11", "role": "agent", "wasm": agent_wasm},
                ],
            }
        ],
    }


def node_vars(plan: dict[str, t.Any], name: str) -> dict[str, t.Any]:
    site = plan["sites"][0]
    node = next(n for n in site["nodes"] if n["name"] == name)
    return {**site["vars"], **node["vars"]}


def test_only_wasm_capable_nodes_carry_the_runtime_labels() -> None:
    plan, _warnings = build_plan([("fleet.yml", fleet(["spin", "wasmtime"]))])
    server, agent = node_vars(plan, "ber-01-s1"), node_vars(plan, "ber-01-a1")
    assert server["edgefleet_wasm_runtimes"] == ["spin", "wasmtime"]
    assert server["edgefleet_node_labels"]["edgefleet.io/wasm-spin"] == "true"
    assert server["edgefleet_node_labels"]["edgefleet.io/wasm-wasmtime"] == "true"
    assert not [k for k in agent["edgefleet_node_labels"] if k.startswith("edgefleet.io/wasm-")]
    assert agent["edgefleet_node_labels"]["edgefleet.io/site"] == "ber-01"  # the identity labels stay


def test_no_wasm_no_labels() -> None:
    doc = fleet(None)
    del doc["sites"][0]["wasm"]
    plan, _warnings = build_plan([("fleet.yml", doc)])
    server = node_vars(plan, "ber-01-s1")
    assert "edgefleet_wasm_runtimes" not in server and "edgefleet_registries" not in server
    assert not [k for k in server["edgefleet_node_labels"] if k.startswith("edgefleet.io/wasm-")]


def test_unknown_runtimes_are_refused_with_the_allowed_list() -> None:
    with pytest.raises(FleetError) as info:
        build_plan([("fleet.yml", fleet(["spin", "spinn", "docker", "spin"], agent_wasm="yes"))])
    text = [str(p) for p in info.value.problems]
    assert len(text) == 4, text
    assert any("wasm[1]" in p and "'spinn'" in p and "did you mean 'spin'" in p for p in text)
    assert any("wasm[2]" in p and "allowed: lunatic, slight, spin, wasmedge, wasmer, wasmtime, wws" in p for p in text)
    assert any("wasm[3]" in p and "given twice" in p for p in text)
    assert any("ber-01-a1" in p and "wasm" in p and "true or false" in p for p in text)


def test_a_model_says_which_runtimes_its_sites_run_and_a_sites_own_setting_wins() -> None:
    doc = fleet(None)
    del doc["sites"][0]["wasm"]
    doc["defaults"]["wasm"] = ["wws"]
    doc["defaults"]["models"] = {"rpi5": {"wasm": ["spin"]}, "nuc": {"wasm": ["wasmtime", "spin"]}}
    other = {
        "name": "par-01",
        "model": "x86-box",
        "nodes": [{"name": "par-01-s1", "address": "192.0.2.20", "role": "server"}],
    }
    own = {
        "name": "mad-01",
        "model": "nuc",
        "wasm": [],
        "nodes": [{"name": "mad-01-s1", "address": "192.0.2.30", "role": "server"}],
    }
    doc["sites"] += [other, own]
    plan, _warnings = build_plan([("fleet.yml", doc)])
    by_site = {
        site["nodes"][0]["name"].rsplit("-", 1)[0]: {**site["vars"], **site["nodes"][0]["vars"]}
        for site in plan["sites"]
    }

    def wasm_labels(site: str) -> list[str]:
        return sorted(k for k in by_site[site]["edgefleet_node_labels"] if k.startswith("edgefleet.io/wasm-"))

    # rpi5 (the default model): the model's runtimes, not the fleet default's.
    assert by_site["ber-01"]["edgefleet_wasm_runtimes"] == ["spin"]
    assert wasm_labels("ber-01") == ["edgefleet.io/wasm-spin"]
    # A model without an entry: the fleet default.
    assert by_site["par-01"]["edgefleet_wasm_runtimes"] == ["wws"]
    # The site's own setting (here: none at all) wins over its model's.
    assert "edgefleet_wasm_runtimes" not in by_site["mad-01"] and wasm_labels("mad-01") == []
    # The agent with wasm: false opts out of its model's runtimes too.
    agent = node_vars(plan, "ber-01-a1")
    assert not [k for k in agent["edgefleet_node_labels"] if k.startswith("edgefleet.io/wasm-")]


def test_every_bad_model_entry_is_reported() -> None:
    doc = fleet(None)
    del doc["sites"][0]["wasm"]
    doc["defaults"]["models"] = {
        "rpi5": {"wasm": ["spin", "spinn"], "cpu": "arm"},
        "Bad_Model": {"wasm": ["spin"]},
        "nuc": ["wasmtime"],
    }
    with pytest.raises(FleetError) as info:
        build_plan([("fleet.yml", doc)])
    text = [str(p) for p in info.value.problems]
    assert len(text) == 4, text
    assert any("defaults.models.rpi5.wasm[1]" in p and "did you mean 'spin'" in p for p in text), text
    assert any("defaults.models.rpi5.cpu" in p and "allowed: wasm" in p for p in text), text
    assert any("defaults.models.Bad_Model" in p and "DNS-1123" in p for p in text), text
    assert any("defaults.models.nuc" in p and "a mapping with keys wasm" in p for p in text), text
    doc["defaults"]["models"] = []
    with pytest.raises(FleetError) as info:
        build_plan([("fleet.yml", doc)])
    assert ["defaults.models" in str(p) and "{rpi5: {wasm: [spin]}}" in str(p) for p in info.value.problems] == [True]


def test_a_runtime_class_per_runtime_with_handler_and_node_selector() -> None:
    objects = wasm.runtime_classes(["wasmtime", "spin", "wasmtime"])
    # Named apart from K3s's packaged classes (`spin`, `wasmtime`, no node selector), handler the runtime's name.
    assert [o["metadata"]["name"] for o in objects] == ["wasm-spin", "wasm-wasmtime"]
    assert [o["handler"] for o in objects] == ["spin", "wasmtime"]
    spin = objects[0]
    assert spin["apiVersion"] == "node.k8s.io/v1" and spin["kind"] == "RuntimeClass"
    assert spin["handler"] == "spin"
    assert spin["scheduling"] == {"nodeSelector": {"edgefleet.io/wasm-spin": "true"}}
    # The selector is exactly the label the fleet puts on capable nodes.
    assert spin["scheduling"]["nodeSelector"] == wasm.node_labels(["spin"])


def test_the_manifest_parses_back_to_the_objects() -> None:
    text = wasm.runtime_classes_yaml(["spin", "wasmtime"], "# Managed by edgefleet.k8s (t).\n")
    assert list(yaml.safe_load_all(text)) == wasm.runtime_classes(["spin", "wasmtime"])


def test_containerd_dropin_names_the_runtime_handlers() -> None:
    text = wasm.containerd_runtimes_dropin(["wasmtime", "spin"], "/opt/edgefleet/wasm/bin/", "# header\n")
    runtimes = tomllib.loads(text)["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert runtimes == {
        "spin": {
            "runtime_type": "io.containerd.spin.v2",
            "runtime_path": "/opt/edgefleet/wasm/bin/containerd-shim-spin-v1",
        },
        "wasmtime": {
            "runtime_type": "io.containerd.wasmtime.v2",
            "runtime_path": "/opt/edgefleet/wasm/bin/containerd-shim-wasmtime-v1",
        },
    }


def test_node_runtimes_come_from_the_wasm_labels_only() -> None:
    labels = {
        "edgefleet.io/site": "ber-01",
        "edgefleet.io/wasm-wasmtime": "true",
        "edgefleet.io/wasm-spin": "true",
        "edgefleet.io/wasm-wws": "false",
        "edgefleet.io/wasm-docker": "true",
    }
    assert wasm.node_runtimes(labels) == ["spin", "wasmtime"]
    assert wasm.node_runtimes(wasm.node_labels(["slight"])) == ["slight"]
    assert wasm.node_runtimes({}) == []


# --------------------------------------------------------------------------- the strategies' files

K3S_MANIFEST = "/var/lib/rancher/k3s/server/manifests/edgefleet-wasm.yaml"
K0S_MANIFEST = "/var/lib/k0s/manifests/edgefleet-wasm/edgefleet-wasm.yaml"
K0S_DROPIN = "/etc/k0s/containerd.d/edgefleet-wasm.toml"
SPIN_NODE = wasm.node_labels(["spin", "wasmtime"])


def test_the_manifest_goes_into_each_distributions_own_folder() -> None:
    assert K3S.wasm_manifest_path() == K3S_MANIFEST
    assert K0S.wasm_manifest_path() == K0S_MANIFEST  # K0s: a stack (sub-folder) of its own
    assert [f.path for f in K3S.wasm_files(["spin"], ["spin"], "# h\n")] == [K3S_MANIFEST]  # K3s finds shims itself
    k0s = K0S.wasm_files(["spin"], ["spin"], "# h\n")
    assert [(f.path, f.restart) for f in k0s] == [(K0S_MANIFEST, False), (K0S_DROPIN, True)]
    assert K0S.wasm_files([], [], "# h\n") == [] and K3S.wasm_files([], ["spin"], "# h\n") == []
    runtimes = tomllib.loads(k0s[1].content.decode())["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert runtimes["spin"]["runtime_path"] == "/opt/kwasm/bin/containerd-shim-spin-v1"


# --------------------------------------------------------------------------- the module's writes


def run(dist: t.Any, root: Path, check: bool = False, **extra: t.Any) -> dict[str, t.Any]:
    given = {"host": "n1", "runtimes": ["spin", "wasmtime"], "labels": SPIN_NODE, "runtime_classes": True, **extra}
    return m.apply_wasm(dist, given, check, root=str(root), owner=(None, None))


def at(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


@pytest.mark.parametrize("dist", [K3S, K0S], ids=["k3s", "k0s"])
def test_write_0600_once_check_mode_writes_nothing(dist: t.Any, tmp_path: Path) -> None:
    dry = run(dist, tmp_path, check=True)
    assert dry["changed"] and dry["written"] == dry["files"] and not any(tmp_path.iterdir())
    assert dry["diff"] and all(d["before"] == "" for d in dry["diff"])
    first = run(dist, tmp_path)
    assert first["changed"] and first["written"] == first["files"]
    assert first["runtime_classes"] == ["wasm-spin", "wasm-wasmtime"] and first["node_runtimes"] == ["spin", "wasmtime"]
    for path in first["files"]:
        assert stat.S_IMODE(os.stat(at(tmp_path, path)).st_mode) == 0o600
    objects = list(yaml.safe_load_all(at(tmp_path, dist.wasm_manifest_path()).read_text()))
    assert objects == wasm.runtime_classes(["spin", "wasmtime"])
    second = run(dist, tmp_path)
    assert not second["changed"] and second["written"] == [] and second["removed"] == []
    assert not second["restart_required"]


def test_k0s_dropin_restarts_and_the_manifest_does_not(tmp_path: Path) -> None:
    first = run(K0S, tmp_path, restart_marker="/var/lib/edgefleet/restart-pending/unit")
    assert first["restart_required"] and at(tmp_path, "/var/lib/edgefleet/restart-pending/unit").exists()
    os.unlink(at(tmp_path, "/var/lib/edgefleet/restart-pending/unit"))
    # A change of the site's runtimes rewrites only the manifest: the deploy controller applies it, no restart.
    fewer = run(K0S, tmp_path, runtimes=["spin"])
    assert fewer["written"] == [K0S_MANIFEST] and not fewer["restart_required"]
    assert run(K3S, tmp_path)["restart_required"] is False


@pytest.mark.parametrize("dist", [K3S, K0S], ids=["k3s", "k0s"])
def test_runtimes_removed_the_files_of_ours_go_and_foreign_files_stay(dist: t.Any, tmp_path: Path) -> None:
    run(dist, tmp_path)
    gone = run(dist, tmp_path, runtimes=[], labels={})
    assert gone["changed"] and gone["files"] == [] and sorted(gone["removed"]) == sorted(dist.wasm_managed_paths())
    assert gone["restart_required"] is (dist is K0S)  # containerd reads the drop-in at start
    assert not any(at(tmp_path, p).exists() for p in dist.wasm_managed_paths())
    assert not run(dist, tmp_path, runtimes=[], labels={})["changed"]
    # A file of the same name without our header is someone else's: never removed.
    at(tmp_path, dist.wasm_manifest_path()).write_text("kind: RuntimeClass\n")
    assert not run(dist, tmp_path, runtimes=[], labels={})["changed"]
    assert at(tmp_path, dist.wasm_manifest_path()).exists()


def test_only_the_init_server_keeps_the_manifest(tmp_path: Path) -> None:
    joined = run(K0S, tmp_path, runtime_classes=False)
    assert joined["files"] == [K0S_DROPIN] and joined["runtime_classes"] == []
    plain = run(K3S, tmp_path / "agent", runtime_classes=False, labels={})
    assert plain["files"] == [] and not plain["changed"] and not (tmp_path / "agent").exists()


def test_bad_runtimes_fail_before_any_write(tmp_path: Path) -> None:
    bad = run(K3S, tmp_path, runtimes=["spin", "spinn"])
    assert bad["failed"] and "edgefleet_wasm_runtimes[1]" in bad["msg"] and "did you mean 'spin'" in bad["msg"]
    assert not any(tmp_path.iterdir())
    only = m.apply_wasm(K3S, {"runtimes": ["spin"], "validate_only": True}, False, root=str(tmp_path))
    assert only == {"changed": False, "problems": []} and not any(tmp_path.iterdir())
