# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as AWX/AAP users get it: built with ansible-galaxy, installed from the tarball (docs/awx.md).

`build()` runs `ansible-galaxy collection build` on the checkout; `install()` installs a tarball into a fresh
collections path with nothing else on it (the collection's dependencies come from the `ansible` package, as in
an execution environment). `ansible()` runs an ansible CLI with that path and no checkout on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PLUGINS = REPO / "plugins"


def expected_plugins() -> dict[str, set[str]]:
    """Every plugin the checkout has, by the type ansible-doc lists it under (FQCN)."""
    fq = "edgefleet.k8s.{}".format
    return {
        "module": {fq(p.stem) for p in (PLUGINS / "modules").glob("*.py") if p.stem != "__init__"},
        "callback": {fq(p.stem) for p in (PLUGINS / "callback").glob("*.py") if p.stem != "__init__"},
        "inventory": {fq(p.stem) for p in (PLUGINS / "inventory").glob("*.py") if p.stem != "__init__"},
        # A filter's documentation is plugins/filter/<name>.yml; the test also compares them with FilterModule.
        "filter": {fq(p.stem) for p in (PLUGINS / "filter").glob("*.yml")},
        "role": {fq(p.name) for p in (REPO / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file()},
    }


def env(collections: Path | None) -> dict[str, str]:
    """The environment for an ansible CLI: the venv first, and only `collections` as collections path."""
    out = dict(os.environ)
    out.update(
        PATH=f"{VENV_BIN}{os.pathsep}{out.get('PATH', '')}",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    if collections is not None:
        out["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    return out


def run(argv: list[str], *, cwd: Path, environ: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=environ, capture_output=True, text=True, check=False, timeout=timeout, stdin=subprocess.DEVNULL
    )


def build(out: Path) -> Path:
    """`ansible-galaxy collection build` of the checkout into `out`; returns the tarball."""
    proc = run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out), str(REPO)],
        cwd=REPO,
        environ=env(REPO / "collections"),
    )
    assert proc.returncode == 0, f"collection build failed: {proc.stdout}{proc.stderr}"
    tarballs = sorted(out.glob("edgefleet-k8s-*.tar.gz"))
    assert len(tarballs) == 1, f"expected one tarball in {out}: {tarballs}"
    return tarballs[0]


def install(tarball: Path, collections: Path) -> Path:
    """Install `tarball` (no dependencies: the `ansible` package has them) into the fresh path `collections`."""
    proc = run(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--no-deps",
            "--force",
            "-p",
            str(collections),
            str(tarball),
        ],
        cwd=collections.parent,
        environ=env(collections),
    )
    assert proc.returncode == 0, f"collection install failed: {proc.stdout}{proc.stderr}"
    installed = collections / "ansible_collections" / "edgefleet" / "k8s"
    assert (installed / "MANIFEST.json").is_file(), f"nothing installed at {installed}"
    assert not installed.is_symlink(), f"{installed} is a link, not an installed copy"
    return installed
