# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Air-gap bundle logic: upstream file names, sha256sum parsing, verification, staging plans.

Used on the controller by the ``edgefleet.k8s.artifact`` action plugin (verify the bundle
before any byte goes to a node) and on the node by the ``edgefleet.k8s.artifact`` module
(stage and install the verified files, skipping any that already match).

Bundle layout (docs/architecture.md, "Air-gap bundle contract")::

    <bundle_root>/<distribution>/<version>/
        k3s | k3s-arm64 | k3s-armhf | k0s-<version>-<arch>
        k3s-airgap-images-<arch>.tar[.gz|.zst] | k0s-airgap-bundle-<version>-<arch>   (optional)
        install.sh                                                                  (optional, K3s)
        containerd-shim-<runtime>-v1-<arch>                  (the node's WASM runtimes' shims)
        sha256sum-<arch>.txt

Pure Python, no Ansible import.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import atomic_write, sha256_file
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry, wasm

DISTRIBUTIONS = registry.NAMES
ARCHES = ("amd64", "arm64", "armhf")
COMPONENTS = ("binary", "images", "install_script", "wasm_shims")

STAGING_ROOT = "/var/lib/edgefleet/artifacts"
BIN_DIR = "/usr/local/bin"


def argument_spec(on_node: bool) -> dict[str, Any]:
    """The options of ``edgefleet.k8s.artifact``, one spec for its action plugin and its module.

    On the controller the paths stay plain strings: expanding ``~`` there would use the
    controller's home for paths that live on the node. The module (on the node) takes them as
    ``path``, and also the private options that only the action plugin sets.
    """
    path = "path" if on_node else "str"
    spec: dict[str, Any] = {
        "bundle": {"type": "str", "required": True},
        "distribution": {"type": "str", "required": True, "choices": list(DISTRIBUTIONS)},
        "version": {"type": "str", "required": True},
        "arch": {"type": "str", "required": True, "choices": list(ARCHES)},
        "components": {
            "type": "list",
            "elements": "str",
            "choices": list(COMPONENTS),
            "default": list(COMPONENTS),
        },
        "wasm_runtimes": {"type": "list", "elements": "str", "default": []},
        "bundle_sums_sha256": {"type": "str"},
        "cache_dir": {"type": path, "default": "~/.cache/edgefleet/artifacts"},
        "staging_root": {"type": path, "default": STAGING_ROOT},
        "bin_dir": {"type": path, "default": BIN_DIR},
        "images_dir": {"type": path},
        "verify_only": {"type": "bool", "default": False},
        "restart_marker": {"type": path},
        "install": {"type": "bool", "default": True},
    }
    if on_node:
        spec.update(
            {
                "_files": {"type": "list", "elements": "dict"},
                "_sources": {"type": "dict", "default": {}},
                "_probe": {"type": "bool", "default": False},
            }
        )
    return spec


_SHA_RE = re.compile(r"^[0-9a-f]{64}\Z")
# A version as it appears in a file name and a directory name: no path separators, no spaces.
_VERSION_RE = re.compile(r"^v?[0-9A-Za-z][0-9A-Za-z.+_-]*\Z")


class BundleError(Exception):
    """Every problem found with a bundle, one a line, so a user fixes them all in one go."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class WantedFile:
    """A file the node needs, named as upstream names it (a shim: as the bundle contract names it)."""

    name: str
    kind: str  # one of COMPONENTS
    required: bool
    mode: int
    install_path: str | None
    what: str = ""  # how a problem names it; default, its kind


@dataclass(frozen=True)
class PlannedFile:
    """A wanted file found in the bundle with its pinned checksum."""

    name: str
    kind: str
    sha256: str
    size: int
    mode: int
    install_path: str | None
    local_path: str = ""

    def as_module_arg(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "sha256": self.sha256,
            "size": self.size,
            "mode": f"{self.mode:04o}",
            "install_path": self.install_path,
        }


@dataclass
class BundlePlan:
    distribution: str
    version: str
    arch: str
    source: str
    sums_file: str
    files: list[PlannedFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def binary_name(distribution: str, version: str, arch: str) -> str:
    """The upstream release asset name of the distribution's binary."""
    return registry.get(distribution).release_binary(version, arch)


def image_names(distribution: str, version: str, arch: str) -> list[str]:
    """Candidate names of the air-gap images archive, most preferred first."""
    return registry.get(distribution).image_archives(version, arch)


def sums_name(arch: str) -> str:
    return f"sha256sum-{arch}.txt"


def shim_name(runtime: str, arch: str) -> str:
    """The bundle's name of a WASM runtime's shim for one arch: the shim's file name, then the arch (upstream
    ships shims in tarballs of their own naming; the bundle holds the binary, one per arch, side by side)."""
    return f"{wasm.RUNTIMES[runtime].shim_binary}-{arch}"


def check_request(
    distribution: str, version: str, arch: str, components: Iterable[str], wasm_runtimes: Iterable[str] = ()
) -> list[str]:
    """Problems with what was asked for, before looking at any file."""
    problems: list[str] = []
    for index, runtime in enumerate(wasm_runtimes):
        if runtime not in wasm.RUNTIMES:
            problems.append(
                f"wasm_runtimes[{index}]: found {runtime!r}, not a known WASM runtime; allowed: {', '.join(wasm.NAMES)}"
            )
    if distribution not in DISTRIBUTIONS:
        problems.append(f"distribution: found {distribution!r}; allowed: {', '.join(DISTRIBUTIONS)}")
    if arch not in ARCHES:
        problems.append(f"arch: found {arch!r}; allowed: {', '.join(ARCHES)}")
    if not _VERSION_RE.match(version or ""):
        problems.append(f"version: found {version!r}; expected a release version such as v1.30.2+k3s1")
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        problems.append(f"components: found {', '.join(map(repr, unknown))}; allowed: {', '.join(COMPONENTS)}")
    return problems


def wanted_files(
    distribution: str,
    version: str,
    arch: str,
    components: Iterable[str] = COMPONENTS,
    bin_dir: str = BIN_DIR,
    images_dir: str | None = None,
    wasm_runtimes: Iterable[str] = (),
) -> list[list[WantedFile]]:
    """Groups of alternatives: from each group the first name present in the bundle is used.

    The binary is required (installed 0755 as ``<bin_dir>/<distribution>``); images and
    the install script are optional (a bundle without them is fine). With ``wasm_shims``, the shim of each
    of ``wasm_runtimes`` is required (installed 0755 in the shim directory under the shim's own name).
    """
    wanted = set(components)
    groups: list[list[WantedFile]] = [
        [
            WantedFile(
                binary_name(distribution, version, arch),
                "binary",
                True,
                0o755,
                os.path.join(bin_dir, distribution),
            )
        ]
    ]
    if "images" in wanted:
        target = images_dir or registry.get(distribution).images_dir
        groups.append(
            [
                WantedFile(name, "images", False, 0o644, os.path.join(target, name))
                for name in image_names(distribution, version, arch)
            ]
        )
    if "install_script" in wanted and registry.get(distribution).has_install_script():
        groups.append([WantedFile("install.sh", "install_script", False, 0o755, None)])
    if "wasm_shims" in wanted:
        for runtime in sorted({r for r in wasm_runtimes if r in wasm.RUNTIMES}):
            shim = wasm.RUNTIMES[runtime].shim_binary
            groups.append(
                [
                    WantedFile(
                        shim_name(runtime, arch),
                        "wasm_shims",
                        True,
                        0o755,
                        os.path.join(wasm.SHIM_DIR, shim),
                        f"WASM shim of {runtime}",
                    )
                ]
            )
    return groups


def parse_sha256sums(text: str, source: str) -> tuple[dict[str, str], list[str]]:
    """Parse ``sha256sum`` output (``<hex>  <name>`` or ``<hex> *<name>``).

    Returns the name → sha256 map and the problems found (bad lines, duplicates that
    disagree). Names are taken as base names: the bundle is one flat directory.
    """
    sums: dict[str, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or not _SHA_RE.match(parts[0].lower()):
            problems.append(f"{source}:{number}: not a sha256sum line: {raw!r}")
            continue
        digest = parts[0].lower()
        name = os.path.basename(parts[1].strip().lstrip("*"))
        if name in sums and sums[name] != digest:
            problems.append(f"{source}:{number}: {name} is listed twice with different hashes")
            continue
        sums[name] = digest
    return sums, problems


def plan_bundle(
    distribution: str,
    version: str,
    arch: str,
    sums: Mapping[str, str],
    present: Callable[[str], bool],
    source: str,
    components: Iterable[str] = COMPONENTS,
    bin_dir: str = BIN_DIR,
    images_dir: str | None = None,
    wasm_runtimes: Iterable[str] = (),
) -> tuple[BundlePlan, list[str]]:
    """Choose the files to stage from what the sums file lists and what the bundle holds.

    ``present(name)`` says whether the bundle holds a file of that name. A wanted file
    that is present but not listed in the sums file is a problem (it cannot be verified),
    so is a listed file that is missing, and a missing required file.
    """
    sums_file = sums_name(arch)
    plan = BundlePlan(distribution, version, arch, source, sums_file)
    problems: list[str] = []
    for group in wanted_files(distribution, version, arch, components, bin_dir, images_dir, wasm_runtimes):
        chosen: WantedFile | None = None
        for candidate in group:
            listed = candidate.name in sums
            exists = present(candidate.name)
            if listed and exists:
                chosen = candidate
                break
            if exists and not listed:
                problems.append(
                    f"{source}/{candidate.name}: present in the bundle but not listed in {sums_file}; "
                    "every file must be pinned by the sums file"
                )
                chosen = candidate
                break
            if listed and not exists:
                problems.append(f"{source}/{candidate.name}: listed in {sums_file} but missing from the bundle")
                chosen = candidate
                break
        if chosen is None:
            if group[0].required:
                problems.append(
                    f"{source}: the {group[0].what or group[0].kind} {' or '.join(c.name for c in group)} "
                    f"is neither in the bundle nor in {sums_file}"
                )
            else:
                plan.skipped.extend(c.name for c in group[:1])
            continue
        if chosen.name in sums:
            plan.files.append(
                PlannedFile(
                    name=chosen.name,
                    kind=chosen.kind,
                    sha256=sums[chosen.name],
                    size=0,
                    mode=chosen.mode,
                    install_path=chosen.install_path,
                )
            )
    return plan, problems


def mismatch_message(location: str, expected: str, found: str, sums_file: str) -> str:
    return f"{location}: sha256 mismatch: {sums_file} pins {expected}, the file has {found}"


def verify_local_bundle(
    bundle_dir: str,
    distribution: str,
    version: str,
    arch: str,
    components: Iterable[str] = COMPONENTS,
    bin_dir: str = BIN_DIR,
    images_dir: str | None = None,
    wasm_runtimes: Iterable[str] = (),
    hasher: Callable[[str], str] = sha256_file,
) -> BundlePlan:
    """Verify a bundle directory on the controller; raise BundleError listing every problem.

    ``hasher`` gives a file's sha256 (a ``HashRecord``'s reads only what changed since it was last hashed).
    """
    components = list(components)
    wasm_runtimes = list(wasm_runtimes)
    problems = check_request(distribution, version, arch, components, wasm_runtimes)
    if problems:
        raise BundleError(problems)
    sums_path = os.path.join(bundle_dir, sums_name(arch))
    if not os.path.isdir(bundle_dir):
        raise BundleError([f"{bundle_dir}: the bundle directory does not exist"])
    try:
        with open(sums_path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise BundleError([f"{sums_path}: the checksum file is missing; every bundle needs one per arch"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError([f"{sums_path}: cannot read the checksum file: {exc}"]) from None
    sums, problems = parse_sha256sums(text, sums_path)
    plan, plan_problems = plan_bundle(
        distribution,
        version,
        arch,
        sums,
        lambda name: os.path.isfile(os.path.join(bundle_dir, name)),
        bundle_dir,
        components,
        bin_dir,
        images_dir,
        wasm_runtimes,
    )
    problems.extend(plan_problems)
    verified: list[PlannedFile] = []
    for item in plan.files:
        path = os.path.join(bundle_dir, item.name)
        if not os.path.isfile(path):
            continue
        found = hasher(path)
        if found != item.sha256:
            problems.append(mismatch_message(path, item.sha256, found, plan.sums_file))
            continue
        verified.append(
            PlannedFile(item.name, item.kind, item.sha256, os.path.getsize(path), item.mode, item.install_path, path)
        )
    if problems:
        raise BundleError(problems)
    plan.files = verified
    return plan


def bundle_dir_for(root: str, distribution: str, version: str) -> str:
    return os.path.join(root, distribution, version)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://", "file://"))


def fetch_bundle(
    url_root: str,
    cache_root: str,
    distribution: str,
    version: str,
    arch: str,
    sums_sha256: str,
    fetch: Callable[[str, str], None],
    components: Iterable[str] = COMPONENTS,
    bin_dir: str = BIN_DIR,
    images_dir: str | None = None,
    wasm_runtimes: Iterable[str] = (),
) -> BundlePlan:
    """Mirror a bundle from ``url_root`` into ``cache_root`` and verify it there.

    The sums file itself is pinned by ``sums_sha256`` (a mirror cannot swap both a file
    and its checksum). ``fetch(url, dest)`` downloads one URL to a local path (it must
    raise OSError on failure). Files already in the cache with the pinned hash are not
    downloaded again. Raises BundleError listing every problem.
    """
    components = list(components)
    wasm_runtimes = list(wasm_runtimes)
    problems = check_request(distribution, version, arch, components, wasm_runtimes)
    sums_sha256 = (sums_sha256 or "").strip().lower()
    if not _SHA_RE.match(sums_sha256):
        problems.append(
            f"bundle_sums_sha256: found {sums_sha256!r}; a mirror URL needs the sha256 of "
            f"{sums_name(arch)} pinned (64 hex characters)"
        )
    if problems:
        raise BundleError(problems)
    base = url_root.rstrip("/") + f"/{distribution}/{version}"
    cache_dir = bundle_dir_for(cache_root, distribution, version)
    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    sums_local = os.path.join(cache_dir, sums_name(arch))
    _download_verified(fetch, f"{base}/{sums_name(arch)}", sums_local, sums_sha256, "bundle_sums_sha256")
    with open(sums_local, encoding="utf-8") as handle:
        sums, parse_problems = parse_sha256sums(handle.read(), f"{base}/{sums_name(arch)}")
    if parse_problems:
        raise BundleError(parse_problems)
    fetch_problems: list[str] = []
    for group in wanted_files(distribution, version, arch, components, bin_dir, images_dir, wasm_runtimes):
        for candidate in group:
            if candidate.name in sums:
                try:
                    _download_verified(
                        fetch,
                        f"{base}/{candidate.name}",
                        os.path.join(cache_dir, candidate.name),
                        sums[candidate.name],
                        sums_name(arch),
                    )
                except BundleError as exc:
                    fetch_problems.extend(exc.problems)
                break
    if fetch_problems:
        raise BundleError(fetch_problems)
    plan = verify_local_bundle(cache_dir, distribution, version, arch, components, bin_dir, images_dir, wasm_runtimes)
    plan.source = base
    return plan


def _download_verified(fetch: Callable[[str, str], None], url: str, dest: str, expected: str, pin: str) -> None:
    if os.path.isfile(dest) and sha256_file(dest) == expected:
        return
    directory = os.path.dirname(dest)
    fd, tmp = tempfile.mkstemp(prefix=".edgefleet-fetch-", dir=directory)
    os.close(fd)
    try:
        try:
            fetch(url, tmp)
        except OSError as exc:
            raise BundleError([f"{url}: download failed: {exc}"]) from None
        found = sha256_file(tmp)
        if found != expected:
            raise BundleError([mismatch_message(url, expected, found, pin)])
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------------------
# Node side: stage and install verified files.


@dataclass
class FileResult:
    name: str
    kind: str
    sha256: str
    staged_path: str
    install_path: str | None
    staged: str = "ok"  # ok | staged | would_stage | missing
    installed: str = "ok"  # ok | installed | would_install | n/a
    before_staged: str | None = None
    before_installed: str | None = None
    restart_recorded: bool = False

    @property
    def changed(self) -> bool:
        return self.staged in ("staged", "would_stage") or self.installed in ("installed", "would_install")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "sha256": self.sha256,
            "staged_path": self.staged_path,
            "install_path": self.install_path,
            "staged": self.staged,
            "installed": self.installed,
            "changed": self.changed,
            "restart_recorded": self.restart_recorded,
        }


# In the staging root: the sha256 of the staged and installed files, by (device, inode, size, mtime, ctime),
# so a run that changes nothing reads none of them again (_common/hash_record.py).
HASH_RECORD_NAME = ".sha256-record.json"


def staging_dir_for(staging_root: str, distribution: str, version: str) -> str:
    return os.path.join(staging_root, distribution, version)


def _current(path: str, hasher: Callable[[str], str] = sha256_file) -> tuple[str | None, int | None]:
    """sha256 and mode of a regular file, or (None, None)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None, None
    if not os.path.isfile(path):
        return "not-a-regular-file", None
    return hasher(path), info.st_mode & 0o7777


def probe(
    files: Iterable[Mapping[str, Any]], staging_dir: str, hasher: Callable[[str], str] = sha256_file
) -> dict[str, str | None]:
    """sha256 of each staged file on the node (None when absent): what needs sending."""
    return {str(f["name"]): _current(os.path.join(staging_dir, str(f["name"])), hasher)[0] for f in files}


def _place(src: str, dest: str, mode: int, move: bool) -> None:
    """Put ``src`` at ``dest`` atomically (temp file in the target dir + rename), root-owned."""
    directory = os.path.dirname(dest)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".edgefleet-", dir=directory)
    os.close(fd)
    try:
        if move:
            try:
                os.replace(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)
        else:
            shutil.copyfile(src, tmp)
        os.chmod(tmp, mode)
        if os.geteuid() == 0:
            os.chown(tmp, 0, 0)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


RESTART_MARKER_TEXT = b"edgefleet.k8s: a new binary was installed; the unit must restart to run it\n"


def stage_and_install(
    files: Iterable[Mapping[str, Any]],
    staging_dir: str,
    sources: Mapping[str, str],
    check_mode: bool,
    restart_marker: str | None = None,
    restart_on_new_shim: bool = False,
    hasher: Callable[[str], str] = sha256_file,
) -> tuple[list[FileResult], list[str]]:
    """Bring each file into the staging dir (from ``sources`` when sent) and install it.

    Every file is verified against its pinned sha256 after it lands; nothing wrong is ever
    left in place (a bad transfer is refused before the rename). Returns the per-file
    results and the problems (a problem means the caller must fail).

    When a binary replaces an installed one of other content, ``restart_marker`` is written
    first: the running service still runs the old binary, and the distribution role restarts it
    when it finds the marker, in this run or, if this run dies first, the next one. So it is when a WASM
    shim is installed where there was none and ``restart_on_new_shim`` is set (a distribution that looks for
    shims only when it starts); a replaced shim needs no restart, as containerd starts it anew per container.
    """
    results: list[FileResult] = []
    problems: list[str] = []
    for spec in files:
        name = str(spec["name"])
        expected = str(spec["sha256"])
        mode = int(str(spec.get("mode") or "0644"), 8)
        install_path = spec.get("install_path") or None
        staged_path = os.path.join(staging_dir, name)
        result = FileResult(name, str(spec.get("kind", "")), expected, staged_path, install_path)
        have, have_mode = _current(staged_path, hasher)
        result.before_staged = have
        if have != expected or have_mode != mode:
            src = sources.get(name)
            if have == expected:
                result.staged = "would_stage" if check_mode else "staged"
                if not check_mode:
                    os.chmod(staged_path, mode)
            elif src is None:
                if check_mode:
                    result.staged = "would_stage"
                else:
                    result.staged = "missing"
                    problems.append(
                        f"{staged_path}: has sha256 {have or '(absent)'}, wants {expected}, and nothing was sent"
                    )
                    results.append(result)
                    continue
            else:
                found = sha256_file(src)
                if found != expected:
                    problems.append(mismatch_message(f"{name} (as received on the node)", expected, found, "bundle"))
                    results.append(result)
                    continue
                result.staged = "would_stage" if check_mode else "staged"
                if not check_mode:
                    _place(src, staged_path, mode, move=True)
        if install_path:
            inst, inst_mode = _current(install_path, hasher)
            result.before_installed = inst
            if inst != expected or inst_mode != mode:
                result.installed = "would_install" if check_mode else "installed"
                replaces = inst is not None and inst != expected and result.kind == "binary"
                new_shim = inst is None and result.kind == "wasm_shims" and restart_on_new_shim
                if restart_marker and (replaces or new_shim) and not check_mode:
                    root = 0 if os.geteuid() == 0 else None
                    atomic_write(restart_marker, RESTART_MARKER_TEXT, 0o600, root, root, dir_mode=0o700)
                    result.restart_recorded = True
                if not check_mode:
                    _place(staged_path, install_path, mode, move=False)
                    after = _current(install_path, hasher)[0]
                    if after != expected:
                        problems.append(mismatch_message(install_path, expected, str(after), "bundle"))
        else:
            result.installed = "n/a"
        results.append(result)
    return results, problems


def diff_of(results: Iterable[FileResult]) -> dict[str, str]:
    """A before/after listing of paths and hashes, for ``--diff``."""
    before: list[str] = []
    after: list[str] = []
    for item in results:
        before.append(f"{item.staged_path} {item.before_staged or '(absent)'}")
        after.append(f"{item.staged_path} {item.sha256}")
        if item.install_path:
            before.append(f"{item.install_path} {item.before_installed or '(absent)'}")
            after.append(f"{item.install_path} {item.sha256}")
    return {
        "before_header": "artifacts",
        "after_header": "artifacts",
        "before": "\n".join(before) + "\n",
        "after": "\n".join(after) + "\n",
    }
