# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The built collection (issue 15, acceptance 3 and 4; docs/awx.md): what the tarball holds, that every plugin
renders in ansible-doc when installed from it, and that the fleet inventory exports the same from it as from
the checkout. Needs no lab: seconds. Run by make test-awx."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import awx
import pytest
import yaml

pytestmark = pytest.mark.awx

MAX_MEMBER = 1024 * 1024
# The tarball's size budget (docs/awx.md states the measured size).
MAX_TARBALL = 1024 * 1024


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return awx.build(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh collections path holding only the collection installed from the tarball."""
    path = tmp_path_factory.mktemp("fresh") / "collections"
    path.mkdir()
    awx.install(tarball, path)
    yield path


def members(tarball: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(tarball) as tar:
        return tar.getmembers()


def test_tarball_holds_no_lab_no_tests_of_the_lab_no_large_file_and_no_binary(tarball: Path) -> None:
    infos = members(tarball)
    names = [m.name.removeprefix("./") for m in infos]
    assert "MANIFEST.json" in names and "plugins/inventory/fleet.py" in names, names[:20]
    assert tarball.stat().st_size < MAX_TARBALL, f"{tarball.name} is {tarball.stat().st_size} bytes"
    lab = [n for n in names if n == "tests/lab" or n.startswith(("tests/lab/", "tests/integration/"))]
    assert not lab, f"the tarball ships the lab: {lab[:10]}"
    large = [(m.name, m.size) for m in infos if m.isfile() and m.size > MAX_MEMBER]
    assert not large, f"files over 1 MB: {large}"
    with tarfile.open(tarball) as tar:
        binaries = []
        for m in infos:
            f = tar.extractfile(m) if m.isfile() else None
            if f is not None and f.read(4) == b"\x7fELF":
                binaries.append(m.name)
    assert not binaries, f"binaries in the tarball: {binaries}"
    caches = [n for n in names if any(p in n.split("/") for p in ("__pycache__", ".mypy_cache", ".pytest_cache"))]
    assert not caches, f"caches in the tarball: {caches[:10]}"


def test_tarball_holds_nothing_that_build_ignore_lists(tarball: Path) -> None:
    patterns = yaml.safe_load((awx.REPO / "galaxy.yml").read_text())["build_ignore"]
    names = [m.name.removeprefix("./") for m in members(tarball)]
    shipped = []
    for name in names:
        parts = name.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in patterns:
            if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or fnmatch.fnmatch(parts[-1], pattern):
                shipped.append(f"{name} ({pattern})")
    assert not shipped, "build_ignore'd paths in the tarball:\n" + "\n".join(shipped)


def filter_names() -> set[str]:
    """The filters FilterModule.filters() returns, from the source (every one must have its <name>.yml doc)."""
    names: set[str] = set()
    for src in (awx.PLUGINS / "filter").glob("*.py"):
        for node in ast.walk(ast.parse(src.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "filters":
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Dict):
                        names |= {k.value for k in ret.value.keys if isinstance(k, ast.Constant)}
    return {f"edgefleet.k8s.{n}" for n in names}


def test_every_filter_has_its_documentation_file() -> None:
    assert filter_names() == awx.expected_plugins()["filter"]


@pytest.mark.parametrize("ptype", sorted(awx.expected_plugins()))
def test_installed_collection_lists_every_plugin(installed: Path, ptype: str) -> None:
    proc = awx.run(
        [str(awx.VENV_BIN / "ansible-doc"), "-t", ptype, "-l", "edgefleet.k8s", "--json"],
        cwd=installed.parent,
        environ=awx.env(installed),
    )
    assert proc.returncode == 0, proc.stderr
    listed = set(json.loads(proc.stdout))
    assert listed == awx.expected_plugins()[ptype], f"{ptype}: listed {sorted(listed)}"


def test_installed_collection_is_the_tarball_not_the_checkout(installed: Path) -> None:
    proc = awx.run(
        [str(awx.VENV_BIN / "ansible-galaxy"), "collection", "list", "edgefleet.k8s", "--format", "json"],
        cwd=installed.parent,
        environ=awx.env(installed),
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert list(found) == [str(installed / "ansible_collections")], found


@pytest.mark.parametrize("ptype", sorted(awx.expected_plugins()))
def test_every_plugin_renders_in_ansible_doc(installed: Path, ptype: str) -> None:
    """One ansible-doc call per plugin type renders every page of that type (text), a second one reads them
    as JSON: each page is read from the installed copy and has its short description (and EXAMPLES)."""
    names = sorted(awx.expected_plugins()[ptype])
    proc = awx.run(
        [str(awx.VENV_BIN / "ansible-doc"), "-t", ptype, *names], cwd=installed.parent, environ=awx.env(installed)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[WARNING]" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
    # "> MODULE edgefleet.k8s.artifact (<path>)", "> ROLE: *edgefleet.k8s.gitops* (<path>)": one page each.
    heads = re.findall(r"^> ([A-Z]+):? \W*(edgefleet\.k8s\.\w+)\W* \((.*)\)$", proc.stdout, re.M)
    assert sorted(h[1] for h in heads) == names, heads
    assert all(h[0] == ptype.upper() and h[2].startswith(str(installed)) for h in heads), heads
    doc = awx.run(
        [str(awx.VENV_BIN / "ansible-doc"), "-t", ptype, *names, "--json"],
        cwd=installed.parent,
        environ=awx.env(installed),
    )
    assert doc.returncode == 0, doc.stderr
    entries = json.loads(doc.stdout)
    assert sorted(entries) == names
    for name, entry in entries.items():
        if ptype == "role":
            assert all(spec.get("short_description") for spec in entry["entry_points"].values()), entry
        else:
            assert entry["doc"]["short_description"], f"{name}: {entry['doc']}"
            assert ptype in ("callback", "inventory") or entry.get("examples"), f"{name}: no EXAMPLES"


def export(fleet: Path, *, cwd: Path, config: Path, collections: Path) -> dict[str, object]:
    environ = awx.env(collections)
    environ["ANSIBLE_CONFIG"] = str(config)
    proc = awx.run(
        [str(awx.VENV_BIN / "ansible-inventory"), "-i", str(fleet), "--list", "--export"], cwd=cwd, environ=environ
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data: dict[str, object] = json.loads(proc.stdout)
    return data


@pytest.mark.parametrize("fleet", ["inventories/lab/lab.fleet.yml", "inventories/example/example.fleet.yml"])
def test_inventory_export_is_the_same_from_the_tarball_as_from_the_checkout(
    installed: Path, tmp_path: Path, fleet: str
) -> None:
    """AWX imports an inventory source with `ansible-inventory --list --export` from the project checkout."""
    checkout = export(
        awx.REPO / fleet, cwd=awx.REPO, config=awx.REPO / "ansible.cfg", collections=awx.REPO / "collections"
    )
    # The project: the same inventory directory and ansible.cfg, the collection only from the tarball.
    project = tmp_path / "project"
    shutil.copytree(
        awx.REPO / Path(fleet).parent, project / Path(fleet).parent, ignore=shutil.ignore_patterns("generated")
    )
    shutil.copy(awx.REPO / "ansible.cfg", project / "ansible.cfg")
    from_tarball = export(project / fleet, cwd=project, config=project / "ansible.cfg", collections=installed)
    hosts = {h for g in checkout.values() if isinstance(g, dict) for h in g.get("hosts", [])}
    assert hosts, f"{fleet}: the checkout exported no host: {checkout}"
    assert json.dumps(from_tarball, sort_keys=True) == json.dumps(checkout, sort_keys=True)
