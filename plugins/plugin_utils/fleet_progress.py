# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One progress line per long wait: which nodes a retrying task still waits for, and the time left.

Controller-side only; fed by the fleet_summary callback's retry and result events. Ansible's own
output says "FAILED - RETRYING" once per node and attempt; this says, for the task as a whole,
which nodes are still waited for, at most once per interval and whenever that set changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

MAX_NAMES = 8


@dataclass
class _Wait:
    task: str
    left: dict[str, float] = field(default_factory=dict)
    last_line: str = ""
    last_time: float = 0.0


class WaitTracker:
    """Tracks the retrying tasks of a run; ``emit`` receives each progress line."""

    def __init__(self, emit: Callable[[str], None], clock: Callable[[], float], interval: float = 30.0) -> None:
        self._emit = emit
        self._clock = clock
        self._interval = interval
        self._waits: dict[str, _Wait] = {}

    def retry(self, task_id: str, task: str, host: str, retries: int, attempts: int, delay: float) -> None:
        """A node's attempt of a retrying task failed; ``retries - attempts`` attempts remain."""
        wait = self._waits.setdefault(task_id, _Wait(task))
        wait.left[host] = max(0, retries - attempts) * max(delay, 0.0)
        self._maybe_emit(wait)

    def done(self, task_id: str, host: str) -> None:
        """The node's result for the task arrived (ok, failed, unreachable or skipped)."""
        wait = self._waits.get(task_id)
        if wait is None or host not in wait.left:
            return
        del wait.left[host]
        if not wait.left:
            self._waits.pop(task_id, None)

    def line(self, task_id: str) -> str:
        wait = self._waits.get(task_id)
        return self._render(wait) if wait is not None else ""

    @staticmethod
    def _render(wait: _Wait) -> str:
        names = sorted(wait.left)
        shown = ", ".join(names[:MAX_NAMES]) + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")
        left = max(wait.left.values(), default=0.0)
        return f"waiting for {len(names)} node(s) at {wait.task!r}: {shown}; at most {left:.0f} s left"

    def _maybe_emit(self, wait: _Wait) -> None:
        line = self._render(wait)
        now = self._clock()
        names_changed = line.split(";")[0] != wait.last_line.split(";")[0]
        if names_changed or now - wait.last_time >= self._interval:
            wait.last_line, wait.last_time = line, now
            self._emit(line)
