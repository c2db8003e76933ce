# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The documentation site (issue 15, acceptance 5; docs/awx.md), as built by `make docs` into build/docs/html
(DOCS_SITE overrides), looked at in headless Chromium (Debian's chromium-headless-shell or chromium).
Run by make test-docs, which builds the site first."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import awx
import pytest

pytestmark = pytest.mark.docs

SITE = Path(os.environ.get("DOCS_SITE", awx.REPO / "build" / "docs" / "html"))
PAGES = SITE / "collections" / "edgefleet" / "k8s"
# antsibull-docs names a plugin page <name>_<type>.html and titles it "<fqcn> <type>" ("module" for modules).
SUFFIX = {"module": "module", "callback": "callback", "inventory": "inventory", "filter": "filter", "role": "role"}


def chromium() -> str:
    for name in ("chromium-headless-shell", "chromium"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no headless Chromium: apt-get install chromium-headless-shell (make test-docs does)")


def browse(*args: str) -> subprocess.CompletedProcess[str]:
    # --no-sandbox: CI runs as root, where Chromium's sandbox does not start.
    argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)


def dom(page: Path) -> str:
    proc = browse("--dump-dom", page.as_uri())
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def h1(markup: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", markup, re.S)
    assert found, "no <h1> on the page"
    return text(found[1])


def page_of(ptype: str, fqcn: str) -> Path:
    return PAGES / f"{fqcn.rsplit('.', 1)[1]}_{SUFFIX[ptype]}.html"


@pytest.fixture(scope="module", autouse=True)
def site() -> None:
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no site at {SITE}: run make docs")


def test_index_loads_and_links_the_collection_and_the_guides() -> None:
    markup = dom(SITE / "index.html")
    assert "edgefleet.k8s" in h1(markup)
    body = text(markup)
    for guide in ("Architecture", "The edge lab", "AWX"):
        assert guide in body, f"the index does not link the guide {guide!r}"


def test_collection_index_lists_every_plugin_and_role() -> None:
    body = text(dom(PAGES / "index.html"))
    missing = [
        f"{fqcn} ({ptype})"
        for ptype, names in awx.expected_plugins().items()
        for fqcn in names
        if f"{fqcn.rsplit('.', 1)[1]} {SUFFIX[ptype]}" not in body
    ]
    assert not missing, f"not on the collection index: {missing}"


def test_every_plugin_has_its_page_with_its_title() -> None:
    problems = []
    for ptype, names in awx.expected_plugins().items():
        for fqcn in sorted(names):
            page = page_of(ptype, fqcn)
            if not page.is_file():
                problems.append(f"{fqcn}: no page {page.name}")
            elif not h1(page.read_text()).startswith(f"{fqcn} {SUFFIX[ptype]}"):
                problems.append(f"{fqcn}: {page.name} is titled {h1(page.read_text())!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("ptype", sorted(SUFFIX))
def test_one_page_of_each_plugin_type_renders_in_chromium(ptype: str, tmp_path: Path) -> None:
    """The first plugin of each type: its title in the rendered DOM, a screenshot that is not blank, and no
    error page (antsibull-docs writes one for a plugin whose documentation does not validate)."""
    fqcn = sorted(awx.expected_plugins()[ptype])[0]
    page = page_of(ptype, fqcn)
    assert page.is_file(), f"{fqcn}: no page {page}"
    markup = dom(page)
    assert h1(markup).startswith(f"{fqcn} {SUFFIX[ptype]}"), h1(markup)
    assert "did not return correct DOCUMENTATION" not in markup and "error" not in h1(markup).lower()
    shot = tmp_path / f"{ptype}.png"
    proc = browse("--window-size=1280,1400", f"--screenshot={shot}", page.as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG"), "not a PNG"
    # A blank or unstyled page compresses to a few KB; a rendered plugin page with the theme is far larger.
    assert len(data) > 60_000, f"{ptype}: the screenshot of {page.name} is {len(data)} bytes: blank?"
    keep = os.environ.get("DOCS_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
