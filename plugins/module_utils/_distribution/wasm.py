# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WebAssembly runtimes: the known containerd shims, the node label of a WASM-capable node, and the
``RuntimeClass`` objects that send WASM pods to those nodes only.

Private to edgefleet.k8s: no stable API. Pure Python, used by the fleet schema on the controller
and by modules on nodes. The runtime table follows the shims K3s detects on a node (docs/wasm.md);
the handler of each runtime is its name there, and a K0s drop-in gives containerd the same names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.text import did_you_mean

LABEL_PREFIX = "edgefleet.io/wasm-"
# Our RuntimeClasses are named apart from K3s's packaged ones (``spin``, ``wasmtime``...; no node selector):
# two add-ons owning one object would overwrite each other, and disabling K3s's packaged component would
# also remove the RuntimeClasses of every other runtime K3s detects.
CLASS_PREFIX = "wasm-"
MANAGED_BY = {"app.kubernetes.io/managed-by": "edgefleet.k8s"}
# The manifests stack (K0s: a sub-folder of its own) and file that hold the RuntimeClass objects.
MANIFEST_STACK = "edgefleet-wasm"
MANIFEST_FILE = "edgefleet-wasm.yaml"
# Where the shims are installed on a node, on K3s and K0s alike: the first directory K3s searches for
# known shims when its agent starts, and the directory the K0s drop-in points containerd at.
SHIM_DIR = "/opt/kwasm/bin"


@dataclass(frozen=True)
class WasmRuntime:
    """One runtime: the containerd handler (the RuntimeClass's ``handler``), the shim's runtime type
    and the shim binary's file name."""

    name: str
    runtime_type: str
    shim_binary: str

    @property
    def handler(self) -> str:
        return self.name

    @property
    def class_name(self) -> str:
        """The name of our ``RuntimeClass`` for this runtime (``wasm-<runtime>``)."""
        return CLASS_PREFIX + self.name

    @property
    def node_label(self) -> str:
        """The label only nodes that run this runtime carry (value ``"true"``)."""
        return LABEL_PREFIX + self.name


RUNTIMES: Mapping[str, WasmRuntime] = MappingProxyType(
    {
        name: WasmRuntime(name, f"io.containerd.{name}.v2", f"containerd-shim-{name}-v1")
        for name in ("lunatic", "slight", "spin", "wasmedge", "wasmer", "wasmtime", "wws")
    }
)
NAMES: tuple[str, ...] = tuple(RUNTIMES)


def check_runtimes(value: object) -> tuple[list[str], list[tuple[str, str]]]:
    """The runtime names of a ``wasm:`` setting, in the order given, and the problems as (``[index]`` or
    ``""``, message); each names the bad entry and lists the allowed names. An empty list means no WASM."""
    allowed = ", ".join(NAMES)
    if value is None:
        return [], []
    if not isinstance(value, list):
        return [], [("", f"found {value!r}; allowed: a list of WASM runtime names ({allowed})")]
    names: list[str] = []
    problems: list[tuple[str, str]] = []
    for index, name in enumerate(value):
        if not isinstance(name, str) or name not in RUNTIMES:
            hint = did_you_mean(name, NAMES) if isinstance(name, str) else ""
            problems.append((f"[{index}]", f"found {name!r}, not a known WASM runtime; allowed: {allowed}{hint}"))
        elif name in names:
            problems.append((f"[{index}]", f"{name!r} is given twice"))
        else:
            names.append(name)
    return names, problems


def node_labels(runtimes: Sequence[str]) -> dict[str, str]:
    """The labels of a node that runs ``runtimes``: one per runtime."""
    return {RUNTIMES[name].node_label: "true" for name in runtimes}


def node_runtimes(labels: Mapping[str, Any]) -> list[str]:
    """The runtimes a node runs, from its labels (``edgefleet.io/wasm-<runtime>: "true"``), sorted; labels
    of unknown runtimes and values other than ``"true"`` are not runtimes."""
    found = {
        key[len(LABEL_PREFIX) :]
        for key, value in labels.items()
        if isinstance(key, str) and key.startswith(LABEL_PREFIX) and str(value).lower() == "true"
    }
    return sorted(name for name in found if name in RUNTIMES)


def runtime_class(name: str) -> dict[str, Any]:
    """The ``RuntimeClass`` of one runtime: its handler, and a node selector on the label only nodes
    with that runtime carry, so the scheduler never sends a WASM pod to a node without the shim."""
    runtime = RUNTIMES[name]
    return {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": runtime.class_name, "labels": dict(MANAGED_BY)},
        "handler": runtime.handler,
        "scheduling": {"nodeSelector": {runtime.node_label: "true"}},
    }


def runtime_classes(runtimes: Sequence[str]) -> list[dict[str, Any]]:
    """One ``RuntimeClass`` per runtime, sorted by name (stable output)."""
    return [runtime_class(name) for name in sorted(set(runtimes))]


def runtime_classes_yaml(runtimes: Sequence[str], header: str) -> str:
    """The objects as one multi-document manifest (JSON documents are YAML), for a manifests folder."""
    docs = [json.dumps(obj, sort_keys=True, indent=2) for obj in runtime_classes(runtimes)]
    return header + "---\n" + "\n---\n".join(docs) + "\n"


def containerd_runtimes_dropin(runtimes: Sequence[str], shim_dir: str, header: str) -> str:
    """A containerd (config version 2) drop-in that names one CRI runtime per WASM runtime, for a runtime
    that does not find the shims by itself; the handler names match the RuntimeClass objects."""
    lines = [header.rstrip("\n"), "version = 2"]
    for name in sorted(set(runtimes)):
        runtime = RUNTIMES[name]
        table = f'[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{runtime.handler}]'
        lines += [
            "",
            table,
            f"  runtime_type = {json.dumps(runtime.runtime_type)}",
            f"  runtime_path = {json.dumps(shim_dir.rstrip('/') + '/' + runtime.shim_binary)}",
        ]
    return "\n".join(lines) + "\n"
