# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry mirrors from the fleet reach a K3s server, a K3s agent and a K0s controller.

Three containers of this test's own (scenario label `edge-workloads`), created by the fixture and always removed:
edgefleet-ew1 (K3s server, 10.231.0.222) and edgefleet-ew2 (K3s agent, .223) of cluster ew-k3s, and edgefleet-ew3
(K0s controller, .224) of cluster ew-k0s, converged with playbooks/site.yml through a fleet file the test writes.

The binaries are the lab's STAND-INS, NOT K3s or K0s (tests/lab/controlplane): a real kube-apiserver behind a
K3s/K0s-shaped CLI, with no containerd. So this proves the files the collection writes (content, modes, which file
a change touches, what the log shows), never that an image was pulled through a mirror.

One bring-up serves every assertion: a -vvv converge (the registry password is in no line of it), a second run
with changed=0, a mirror change that rewrites only the affected file, and a fleet with three bad mirror entries
that fails with all three named before any host is touched.

Both sites also run the WASM runtimes spin and wasmtime (the K3s site's own `wasm`, the K0s site's through its
hardware model's entry in `defaults.models`), with the K3s agent ew2 `wasm: false`: the shims staged from the
air-gap bundle (the lab's are stand-ins, scripts that are no shim) on the WASM-capable nodes only, the RuntimeClass
objects the init servers' manifests folders deliver (read back from the API server through the stand-in's admin
kubeconfig), the runtime labels on the K3s and K0s nodes, the K0s containerd drop-in, and a second run with
changed=0. No shim runs here: the stand-in has no containerd, so this proves the objects and files, not that a
WASM pod ran.

Needs the lab image, network and key (tests/lab/node.sh prepare) and the stand-in bundle
(tests/lab/controlplane/bundle.sh). KEEP=1 leaves the containers running.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from labsite import CACHE, Site, lab_fleet_defaults, lab_versions, scenario_containers

# lab_own: containers of its own; make test-lab-own runs it (in make test, in the api lane), not make test-lab.
pytestmark = pytest.mark.lab_own

SCENARIO = "edge-workloads"
NODES = {"ew1": "10.231.0.222", "ew2": "10.231.0.223", "ew3": "10.231.0.224"}
CONTAINER = "edgefleet-{}"
# Stands in for a vault variable: what is tested is that the collection never prints it.
PASSWORD = "ew-lab-Pw-7f3c91"
REGISTRIES: dict[str, Any] = {
    "mirrors": {
        "docker.io": {"endpoints": ["https://mirror.site.local"]},
        "*": {"endpoints": ["https://mirror2.site.local:5000"]},
    },
    "configs": {"mirror.site.local": {"tls": {"ca_file": "/etc/ssl/site/ca.pem"}}},
}
K3S_FILE = "/etc/rancher/k3s/registries.yaml"
HOSTS = "/etc/k0s/containerd-hosts.d"
WASM = ["spin", "wasmtime"]
K3S_WASM_MANIFEST = "/var/lib/rancher/k3s/server/manifests/edgefleet-wasm.yaml"
K0S_WASM_MANIFEST = "/var/lib/k0s/manifests/edgefleet-wasm/edgefleet-wasm.yaml"
K0S_WASM_DROPIN = "/etc/k0s/containerd.d/edgefleet-wasm.toml"
K0S_FILES = [
    "/etc/k0s/containerd.d/edgefleet-registries.toml",
    f"{HOSTS}/_default/hosts.toml",
    f"{HOSTS}/docker.io/hosts.toml",
]


def note(msg: str) -> None:
    print(f"[edge-workloads-lab] {msg}", flush=True)


VERSIONS = lab_versions()


class Lab(Site):
    def __init__(self, work: Path) -> None:
        inventory = work / "inventory"
        super().__init__(work, inventory / "ew.fleet.yml")
        self.write_fleet(REGISTRIES)

    def write_fleet(self, registries: Any) -> None:
        defaults = {
            **lab_fleet_defaults(
                "sqlite", VERSIONS["EDGEFLEET_LAB_K3S_VERSION"], VERSIONS["EDGEFLEET_LAB_K0S_VERSION"]
            ),
            "registries": registries,
            # The K0s site's hardware model runs the WASM runtimes; the K3s site names them itself.
            "models": {"ew-wasm-box": {"wasm": WASM}},
        }
        sites = [
            {
                "name": "ew-k3s",
                "distribution": "k3s",
                "wasm": WASM,
                "nodes": [
                    {"name": "ew1", "address": NODES["ew1"], "role": "server"},
                    {"name": "ew2", "address": NODES["ew2"], "role": "agent", "wasm": False},
                ],
            },
            {
                "name": "ew-k0s",
                "distribution": "k0s",
                "model": "ew-wasm-box",
                "nodes": [{"name": "ew3", "address": NODES["ew3"], "role": "server"}],
            },
        ]
        auth = {"mirror.site.local": {"username": "ew-puller", "password": PASSWORD}}
        self.write_own_fleet(defaults, sites, {"edgefleet_registry_auth": auth})

    def play(self, *extra: str, timeout: int = 900) -> Any:
        started = time.monotonic()
        run = self.run(*extra, timeout=timeout, playbook="site.yml")
        (self.work / f"run-{self.count}.log").write_text(run.out)
        note(f"site.yml {' '.join(extra)}: rc {run.rc} in {time.monotonic() - started:.0f} s")
        return run


def sh(node: str, script: str) -> str:
    proc = subprocess.run(
        ["podman", "exec", CONTAINER.format(node), "bash", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, f"{node}: `{script}` exited {proc.returncode}: {proc.stdout[-1500:]}{proc.stderr}"
    return proc.stdout


def restarted(out: str) -> set[str]:
    """The hosts whose unit the role restarted (or started) in a run."""
    hosts: set[str] = set()
    for block in out.split("TASK [")[1:]:
        if block.startswith("edgefleet.k8s.distribution : Enable and start or restart"):
            hosts.update(re.findall(r"^changed: \[(\w+)\]", block, re.M))
    return hosts


def stamps(node: str, paths: list[str]) -> dict[str, str]:
    """mode, inode and mtime of each file: an atomic rewrite changes the inode."""
    out = sh(node, "stat -c '%n %a %i %Y.%y' " + " ".join(paths))
    return {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines()}


SKIP = ("--skip-tags", "os_hardening,gitops")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    for kind, key in (("k3s", "EDGEFLEET_LAB_K3S_VERSION"), ("k0s", "EDGEFLEET_LAB_K0S_VERSION")):
        bundle = CACHE / "bundle" / kind / VERSIONS[key]
        assert bundle.is_dir(), f"no stand-in bundle {bundle}: run tests/lab/controlplane/bundle.sh"
    nodes = [(CONTAINER.format(name), name, ip) for name, ip in NODES.items()]
    with scenario_containers(nodes, SCENARIO):
        yield Lab(tmp_path_factory.mktemp("edge-workloads-lab"))


def test_registry_mirrors_on_k3s_and_k0s(lab: Lab) -> None:
    started = time.monotonic()
    first = lab.play(*SKIP, "-vvv")
    assert first.rc == 0, first.out[-6000:]
    basic = base64.b64encode(f"ew-puller:{PASSWORD}".encode()).decode()
    leaks = [line for line in first.out.splitlines() if PASSWORD in line or basic in line]
    assert leaks == [], leaks[:3]
    # -vvv names each module file it runs and shows its arguments: the check above covers the registries module's.
    assert "plugins/modules/registries_config.py" in first.out
    converged = time.monotonic()

    # K3s: registries.yaml on the server and the agent, 0600, matching the fleet and the vault.
    for node in ("ew1", "ew2"):
        assert stamps(node, [K3S_FILE])[K3S_FILE].startswith("600 "), node
        data = yaml.safe_load(sh(node, f"cat {K3S_FILE}"))
        assert data == {
            "mirrors": {
                "docker.io": {"endpoint": ["https://mirror.site.local"]},
                "*": {"endpoint": ["https://mirror2.site.local:5000"]},
            },
            "configs": {
                "mirror.site.local": {
                    "auth": {"username": "ew-puller", "password": PASSWORD},
                    "tls": {"ca_file": "/etc/ssl/site/ca.pem"},
                }
            },
        }, node
    # K0s: one hosts.toml per registry and the import drop-in, 0600.
    k0s_before = stamps("ew3", K0S_FILES)
    assert all(v.startswith("600 ") for v in k0s_before.values()), k0s_before
    docker = tomllib.loads(sh("ew3", f"cat {HOSTS}/docker.io/hosts.toml"))
    assert docker["host"] == {
        "https://mirror.site.local": {
            "capabilities": ["pull", "resolve"],
            "ca": "/etc/ssl/site/ca.pem",
            "header": {"Authorization": [f"Basic {basic}"]},
        }
    }
    fallback = tomllib.loads(sh("ew3", f"cat {HOSTS}/_default/hosts.toml"))
    assert list(fallback["host"]) == ["https://mirror2.site.local:5000"]
    dropin = tomllib.loads(sh("ew3", f"cat {K0S_FILES[0]}"))
    assert dropin["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"] == HOSTS

    # A second run changes nothing.
    second = lab.play(*SKIP)
    assert second.rc == 0, second.out[-4000:]
    recap = second.recap()
    assert set(NODES) <= set(recap) and all(r["changed"] == 0 for r in recap.values()), recap

    # A mirror change: on K0s only docker.io's hosts.toml is rewritten (no restart needed), on K3s registries.yaml.
    k3s_before = stamps("ew1", [K3S_FILE])
    changed = copy.deepcopy(REGISTRIES)
    changed["mirrors"]["docker.io"]["endpoints"] = ["https://mirror.site.local", "https://mirror3.site.local"]
    lab.write_fleet(changed)
    third = lab.play(*SKIP)
    assert third.rc == 0, third.out[-4000:]
    k0s_after = stamps("ew3", K0S_FILES)
    assert [p for p in K0S_FILES if k0s_after[p] != k0s_before[p]] == [f"{HOSTS}/docker.io/hosts.toml"]
    assert stamps("ew1", [K3S_FILE]) != k3s_before
    # K3s reads registries.yaml at start: its nodes restart; containerd reads hosts.toml at each pull: K0s does not.
    assert restarted(third.out) == {"ew1", "ew2"}, third.out[-3000:]
    assert restarted(second.out) == set()
    assert "mirror3.site.local" in sh("ew1", f"cat {K3S_FILE}")

    # Three bad mirror entries: all three reported in one run, before any host is touched.
    untouched = {node: stamps(node, [K3S_FILE]) for node in ("ew1", "ew2")}
    bad = copy.deepcopy(changed)
    bad["mirrors"]["docker.io"]["endpoints"] = ["ftp://mirror.site.local"]
    bad["mirrors"]["quay.io"] = {"endpoint": ["https://mirror.site.local"]}
    bad["configs"]["mirror.site.local"]["tls"]["ca"] = "/etc/ssl/site/ca.pem"
    lab.write_fleet(bad)
    fourth = lab.play(*SKIP)
    assert fourth.rc != 0
    for expected in (
        "registries.mirrors.docker.io.endpoints[0]",
        "registries.mirrors.quay.io.endpoint",
        "registries.configs.mirror.site.local.tls.ca",
    ):
        assert expected in fourth.out, (expected, fourth.out[-4000:])
    assert "TASK [" not in fourth.out, fourth.out[-3000:]
    assert {node: stamps(node, [K3S_FILE]) for node in ("ew1", "ew2")} == untouched
    lab.write_fleet(changed)
    note(f"converge {converged - started:.0f} s, whole test {time.monotonic() - started:.0f} s")


def runtime_classes(node: str, kubectl: str, timeout: float = 240) -> dict[str, dict[str, Any]]:
    """Our RuntimeClass objects as the API server holds them, by name, once the deploy controller applied both;
    whatever is there when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        items = json.loads(sh(node, f"{kubectl} get runtimeclasses -o json"))["items"]
        found = {o["metadata"]["name"]: o for o in items if o["metadata"]["name"].startswith("wasm-")}
        if len(found) >= len(WASM) or time.monotonic() > deadline:
            return found
        time.sleep(5)


def node_labels(node: str, kubectl: str = "k3s kubectl") -> dict[str, dict[str, str]]:
    nodes = json.loads(sh(node, f"{kubectl} get nodes -o json"))["items"]
    return {n["metadata"]["name"]: n["metadata"].get("labels", {}) for n in nodes}


def wasm_labels_of(labels: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    return {name: sorted(k for k in found if k.startswith("edgefleet.io/wasm-")) for name, found in labels.items()}


def bundle_sums(kind: str) -> dict[str, str]:
    """The stand-in bundle's sums file of one distribution: file name -> sha256."""
    version = VERSIONS["EDGEFLEET_LAB_K3S_VERSION" if kind == "k3s" else "EDGEFLEET_LAB_K0S_VERSION"]
    lines = (CACHE / "bundle" / kind / version / "sha256sum-amd64.txt").read_text().splitlines()
    return {line.split()[1].lstrip("*"): line.split()[0] for line in lines if line.strip()}


def installed_shims(node: str) -> dict[str, str]:
    """The shims in the node's shim directory: name -> "<mode> <owner> <sha256>"."""
    out = sh(
        node,
        'for f in /opt/kwasm/bin/containerd-shim-*; do [ -e "$f" ] || continue; '
        'echo "$(basename "$f") $(stat -c \'%a %U\' "$f") $(sha256sum < "$f" | cut -d" " -f1)"; done',
    )
    return {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines() if line.strip()}


def test_wasm_runtime_classes_labels_and_k0s_dropin(lab: Lab) -> None:
    started = time.monotonic()
    first = lab.play(*SKIP)
    assert first.rc == 0, first.out[-6000:]

    # The shims of the site's runtimes come from the air-gap bundle (the lab's are STAND-INS, scripts that are no
    # shim): on each WASM-capable node, with the sha256 the bundle's sums file pins, 0755 root, and no other
    # runtime's; none on the agent with wasm: false.
    for node, kind in (("ew1", "k3s"), ("ew3", "k0s")):
        sums = bundle_sums(kind)
        assert installed_shims(node) == {
            f"containerd-shim-{name}-v1": f"755 root {sums[f'containerd-shim-{name}-v1-amd64']}" for name in WASM
        }, node
    assert installed_shims("ew2") == {}

    # The API servers hold wasm-spin and wasm-wasmtime: handler the runtime, node selector its label.
    for node, kubectl, manifest in (
        ("ew1", "k3s kubectl", K3S_WASM_MANIFEST),
        ("ew3", "k0s kubectl", K0S_WASM_MANIFEST),
    ):
        assert stamps(node, [manifest])[manifest].startswith("600 "), node
        classes = runtime_classes(node, kubectl)
        assert {name: (o["handler"], o.get("scheduling", {}).get("nodeSelector")) for name, o in classes.items()} == {
            "wasm-spin": ("spin", {"edgefleet.io/wasm-spin": "true"}),
            "wasm-wasmtime": ("wasmtime", {"edgefleet.io/wasm-wasmtime": "true"}),
        }, node
    # The manifest is the init server's alone: the agent has none.
    assert sh("ew2", f"test ! -e {K3S_WASM_MANIFEST} && echo absent").strip() == "absent"

    # Only the WASM-capable K3s node carries the runtime labels; the agent with wasm: false carries none.
    wasm_labels = wasm_labels_of(node_labels("ew1"))
    assert wasm_labels == {"ew1": ["edgefleet.io/wasm-spin", "edgefleet.io/wasm-wasmtime"], "ew2": []}, wasm_labels
    # The K0s single controller's kubelet registers its node with them too (k0s --labels on its command line).
    wasm_labels = wasm_labels_of(node_labels("ew3", "k0s kubectl"))
    assert wasm_labels == {"ew3": ["edgefleet.io/wasm-spin", "edgefleet.io/wasm-wasmtime"]}, wasm_labels

    # K0s: the containerd drop-in names both runtimes, with their shims; K3s nodes get none (K3s finds shims itself).
    assert stamps("ew3", [K0S_WASM_DROPIN])[K0S_WASM_DROPIN].startswith("600 ")
    runtimes = tomllib.loads(sh("ew3", f"cat {K0S_WASM_DROPIN}"))["plugins"]["io.containerd.grpc.v1.cri"]
    assert runtimes["containerd"]["runtimes"] == {
        name: {"runtime_type": f"io.containerd.{name}.v2", "runtime_path": f"/opt/kwasm/bin/containerd-shim-{name}-v1"}
        for name in WASM
    }
    for node in ("ew1", "ew2"):
        assert sh(node, "test ! -e /etc/k0s/containerd.d && echo absent").strip() == "absent", node

    # A second run changes nothing.
    second = lab.play(*SKIP)
    assert second.rc == 0, second.out[-4000:]
    recap = second.recap()
    assert set(NODES) <= set(recap) and all(r["changed"] == 0 for r in recap.values()), recap
    # ... and sends nothing: every shim (and binary) is already staged with its pinned sha256.
    assert {node: second.node(node)["bytes_sent"] for node in NODES} == dict.fromkeys(NODES, 0)
    note(f"WASM test {time.monotonic() - started:.0f} s")
