# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet fuzzer (fleet_fuzz.py) in the unit tests: 500 cases with a fixed seed, in four slices that
pytest-xdist can run side by side. Every case must end refused (AnsibleParserError) or listed
(`ansible-inventory --list` prints it); `make fuzz` runs 10,000."""

from __future__ import annotations

import pytest
from fleet_fuzz import SEED, run

CASES = 500
SLICES = 4


@pytest.mark.parametrize("part", range(SLICES))
def test_mutated_fleets_are_refused_cleanly_or_listed(part: int) -> None:
    size = CASES // SLICES
    report = run(size, SEED, start=part * size)
    assert report["cases"] == size
    failures = [
        f"case {f.index} ({f.kind}; {', '.join(f.mutations)} on {f.target}):\n{f.detail}" for f in report["failures"]
    ]
    assert not failures, "\n\n".join(failures)
    assert report["outcomes"].get("refused") and report["outcomes"].get("listed"), report["outcomes"]
