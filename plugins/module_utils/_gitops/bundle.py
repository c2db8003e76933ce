# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The air-gapped GitOps engine bundle: pick the components, verify every byte.

A bundle is one directory per engine and version::

    <bundle_root>/gitops/<engine>/<version>/
        crds.yaml                 the engine's CRDs (always installed)
        <component>.yaml          one file per controller (Deployment, RBAC, ...)
        images.txt                "<component> <image reference>" per line
        sha256sum.txt             sha256sum format, lists every file above

Only the chosen components are installed; the image list is trimmed the same way,
so the air-gap image bundle carries just what runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import sha256_bytes
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.core import ENGINE_TABLE

# The component sets per engine are rows of the engine table (core.ENGINE_TABLE); these views keep
# the names the bundle code and its tests use.
KNOWN_COMPONENTS: dict[str, tuple[str, ...]] = {name: row.components for name, row in ENGINE_TABLE.items()}
DEFAULT_COMPONENTS: dict[str, tuple[str, ...]] = {name: row.default_components for name, row in ENGINE_TABLE.items()}
REQUIRED_COMPONENTS: dict[str, tuple[str, ...]] = {name: row.required_components for name, row in ENGINE_TABLE.items()}
CRDS_FILE = "crds.yaml"
IMAGES_FILE = "images.txt"
SUMS_FILE = "sha256sum.txt"
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *]?(\S.*)$")


@dataclass
class EnginePlan:
    """What the bundle gives for the chosen components, or every reason it cannot."""

    files: dict[str, bytes] = field(default_factory=dict)  # bundle file name -> content
    images: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_sums(text: str, source: str) -> tuple[dict[str, str], list[str]]:
    sums: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _SUM_LINE.match(line.strip())
        if not match:
            problems.append(f"{source}:{number}: found {line.strip()!r}, allowed: '<sha256>  <file name>'")
            continue
        sums[os.path.basename(match.group(2).strip())] = match.group(1).lower()
    return sums, problems


def check_components(engine: str, components: list[str]) -> list[str]:
    known = KNOWN_COMPONENTS.get(engine)
    if known is None:
        return [f"engine: found {engine!r}, allowed: {', '.join(KNOWN_COMPONENTS)}"]
    problems = [
        f"components: found {name!r}, allowed for {engine}: {', '.join(known)}"
        for name in components
        if name not in known
    ]
    problems.extend(
        f"components: {name} is missing; {engine} cannot reconcile without it"
        for name in REQUIRED_COMPONENTS[engine]
        if name not in components
    )
    return problems


def plan(bundle_dir: str, engine: str, components: list[str]) -> EnginePlan:
    """Read and verify the bundle files for ``components``; collect every problem."""
    result = EnginePlan(problems=check_components(engine, components))
    if not os.path.isdir(bundle_dir):
        result.problems.append(f"engine_bundle: {bundle_dir} is not a directory")
        return result
    sums_path = os.path.join(bundle_dir, SUMS_FILE)
    try:
        with open(sums_path, encoding="utf-8") as handle:
            sums, problems = parse_sums(handle.read(), sums_path)
    except OSError as exc:
        result.problems.append(f"engine_bundle: cannot read {sums_path}: {exc.strerror}")
        return result
    result.problems.extend(problems)
    wanted = [CRDS_FILE] + [f"{name}.yaml" for name in components]
    if os.path.exists(os.path.join(bundle_dir, IMAGES_FILE)) or IMAGES_FILE in sums:
        wanted.append(IMAGES_FILE)
    for name in wanted:
        path = os.path.join(bundle_dir, name)
        try:
            with open(path, "rb") as handle:
                content = handle.read()
        except OSError as exc:
            result.problems.append(f"engine_bundle: cannot read {path}: {exc.strerror}")
            continue
        expected = sums.get(name)
        if expected is None:
            result.problems.append(f"{sums_path}: {name} is not listed; every bundle file must be pinned")
            continue
        actual = sha256_bytes(content)
        if actual != expected:
            result.problems.append(f"{path}: sha256 is {actual}, {SUMS_FILE} pins {expected}")
            continue
        result.files[name] = content
    images = result.files.pop(IMAGES_FILE, None)
    if images is not None:
        for number, line in enumerate(images.decode(errors="replace").splitlines(), start=1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 2:
                result.problems.append(f"{IMAGES_FILE}:{number}: found {line!r}, allowed: '<component> <image>'")
            elif parts[0] in components or parts[0] == "crds":
                result.images.append(parts[1])
    return result


def from_verified(files: dict[str, str], sums: dict[str, str], images: list[str]) -> EnginePlan:
    """An EnginePlan from files the controller verified and sent along; every file is checked again here."""
    result = EnginePlan(images=list(images))
    good: set[str] = set()
    for name, text in sorted(files.items()):
        expected = sums.get(name)
        actual = sha256_bytes(text.encode())
        if expected is None:
            result.problems.append(f"engine_files: {name} has no sha256 in engine_sums")
        elif actual != expected:
            result.problems.append(f"engine_files: {name} arrived with sha256 {actual}, the bundle pins {expected}")
        else:
            good.add(name)
    # in the order they came (CRDs first, then the chosen components), which is the order of an API apply
    result.files = {name: text.encode() for name, text in files.items() if name in good}
    if CRDS_FILE not in files:
        result.problems.append(f"engine_files: {CRDS_FILE} is missing")
    return result


def target_name(prefix: str, engine: str, bundle_file: str) -> str:
    """The manifests-dir file name for one bundle file, e.g. edgefleet-gitops-engine-flux-crds.yaml."""
    return f"{prefix}{engine}-{bundle_file}"
