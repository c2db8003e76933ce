# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback for tests/bench/playbook.py: counts every per-host task result and times each task.

Enabled by the benchmark only (ANSIBLE_CALLBACK_PLUGINS=tests/bench/callback_plugins,
ANSIBLE_CALLBACKS_ENABLED=...,bench_tally); it writes its tally as JSON to $EDGEFLEET_BENCH_TALLY at the end of the
run. A host-task is one result of one task on one host: ok (changed or not), failed (ignored or not), skipped or
unreachable, include_role/include_tasks results among them, loop items not counted apart.
"""

from __future__ import annotations

import json
import os
import time
import typing as t

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_tally
type: aggregate
short_description: count host-task results and time tasks for the playbook benchmark
description:
  - Writes the counts of host-task results (ok, changed, failed, ignored, skipped, unreachable) and the wall time
    and host results of each task to the JSON file named by E(EDGEFLEET_BENCH_TALLY).
requirements:
  - enable in configuration
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible is untyped here
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_tally"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.counts = {"ok": 0, "changed": 0, "failed": 0, "ignored": 0, "skipped": 0, "unreachable": 0}
        # One entry a task, in the order the tasks started: [play/task name, host results, wall seconds].
        self.tasks: list[list[t.Any]] = []
        self.play = ""
        self.started = 0.0

    def _close_task(self) -> None:
        if self.tasks:
            self.tasks[-1][2] += time.perf_counter() - self.started

    def v2_playbook_on_play_start(self, play: t.Any) -> None:
        self._close_task()
        self.play = play.get_name()
        self.started = time.perf_counter()

    def _task_start(self, task: t.Any) -> None:
        self._close_task()
        self.tasks.append([f"{self.play} | {task.get_name()}", 0, 0.0])
        self.started = time.perf_counter()

    def v2_playbook_on_task_start(self, task: t.Any, is_conditional: bool) -> None:
        self._task_start(task)

    def v2_playbook_on_handler_task_start(self, task: t.Any) -> None:
        self._task_start(task)

    def _result(self, kind: str) -> None:
        self.counts[kind] += 1
        if self.tasks:
            self.tasks[-1][1] += 1

    def v2_runner_on_ok(self, result: t.Any) -> None:
        self._result("ok")
        if result.is_changed():
            self.counts["changed"] += 1

    def v2_runner_on_failed(self, result: t.Any, ignore_errors: bool = False) -> None:
        self._result("ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result: t.Any) -> None:
        self._result("skipped")

    def v2_runner_on_unreachable(self, result: t.Any) -> None:
        self._result("unreachable")

    def v2_playbook_on_stats(self, stats: t.Any) -> None:
        self._close_task()
        path = os.environ.get("EDGEFLEET_BENCH_TALLY")
        if not path:
            return
        host_tasks = sum(self.counts[k] for k in ("ok", "failed", "ignored", "skipped", "unreachable"))
        recap = {host: stats.summarize(host) for host in sorted(stats.processed)}
        with open(path, "w") as out:
            json.dump({"host_tasks": host_tasks, "counts": self.counts, "tasks": self.tasks, "recap": recap}, out)
