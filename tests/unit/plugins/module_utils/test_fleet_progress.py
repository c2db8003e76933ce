# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The progress line of a long wait: the nodes still waited for, the time left, not one line per attempt."""

from __future__ import annotations

import sys
from pathlib import Path

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_progress import WaitTracker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_line_when_the_set_of_nodes_changes_and_otherwise_once_per_interval() -> None:
    lines: list[str] = []
    clock = Clock()
    waits = WaitTracker(lines.append, clock, interval=30)
    waits.retry("t1", "Wait for /readyz", "node2", retries=60, attempts=1, delay=5)
    waits.retry("t1", "Wait for /readyz", "node3", retries=60, attempts=1, delay=5)
    assert lines == [
        "waiting for 1 node(s) at 'Wait for /readyz': node2; at most 295 s left",
        "waiting for 2 node(s) at 'Wait for /readyz': node2, node3; at most 295 s left",
    ]
    clock.now = 10
    waits.retry("t1", "Wait for /readyz", "node2", retries=60, attempts=3, delay=5)
    assert len(lines) == 2, "a line per attempt"
    clock.now = 31
    waits.retry("t1", "Wait for /readyz", "node3", retries=60, attempts=7, delay=5)
    assert lines[-1] == "waiting for 2 node(s) at 'Wait for /readyz': node2, node3; at most 285 s left"
    waits.done("t1", "node2")
    waits.retry("t1", "Wait for /readyz", "node3", retries=60, attempts=8, delay=5)
    assert lines[-1] == "waiting for 1 node(s) at 'Wait for /readyz': node3; at most 260 s left"
    waits.done("t1", "node3")
    assert waits.line("t1") == ""


def test_many_nodes_are_cut_short() -> None:
    lines: list[str] = []
    waits = WaitTracker(lines.append, Clock())
    for i in range(12):
        waits.retry("t", "Wait", f"n{i:02d}", retries=2, attempts=1, delay=1)
    assert lines[-1].endswith("n00, n01, n02, n03, n04, n05, n06, n07 and 4 more; at most 1 s left")
