# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every role of the collection carries: what Galaxy's importer requires (a README) and what the house
rules require (an argument spec, a page in docs/roles/). `make galaxy-import` refused the collection when two
roles had no README; it is not part of `make test`, so this check is."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())


def test_the_roles_are_found() -> None:
    assert {"distribution", "disk_encryption", "os_hardening"} <= set(ROLES), ROLES


@pytest.mark.parametrize("role", ROLES)
def test_role_has_a_readme_an_argument_spec_and_a_docs_page(role: str) -> None:
    missing = [
        path
        for path in (f"roles/{role}/README.md", f"roles/{role}/meta/argument_specs.yml", f"docs/roles/{role}.md")
        if not (ROOT / path).is_file()
    ]
    assert missing == [], f"role {role} lacks {', '.join(missing)}"
