# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The k3s, k0s and distribution_common roles: argument_specs, defaults and docs agree; wrappers pass every variable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
ROLES = ["k3s", "k0s", "distribution_common"]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_defaults_and_docs_agree(role: str) -> None:
    specs = _load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
    defaults = _load(ROOT / "roles" / role / "defaults" / "main.yml")
    doc = (ROOT / "docs" / "roles" / f"{role}.md").read_text()
    options = specs["main"]["options"]
    assert specs["validate"]["options"] == options
    assert set(options) == set(defaults), set(options) ^ set(defaults)
    for name, opt in options.items():
        assert opt["default"] == defaults[name], name
        assert opt["description"], name
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"docs/roles/{role}.md lacks {name}"
        assert f"| {opt['type']}" in row, name


@pytest.mark.parametrize("role", ["k3s", "k0s"])
def test_wrapper_passes_every_common_variable(role: str) -> None:
    tasks = _load(ROOT / "roles" / role / "tasks" / "main.yml")
    passed = tasks[0]["vars"]
    common = _load(ROOT / "roles" / "distribution_common" / "defaults" / "main.yml")
    assert set(passed) == set(common), set(passed) ^ set(common)
    assert passed["edgefleet_distribution_common_name"] == role
    own = _load(ROOT / "roles" / role / "defaults" / "main.yml")
    for value in passed.values():
        if isinstance(value, str) and value.startswith("{{ edgefleet_"):
            assert value[3:-3].strip() in own, value
