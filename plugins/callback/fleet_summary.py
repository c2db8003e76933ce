# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_summary
type: aggregate
short_description: One table row per cluster at the end of an edgefleet.k8s.site run, a JSON report and a retry file
version_added: 0.1.0
description:
  - Collects the C(edgefleet_verify) fact that the verify play of C(edgefleet.k8s.site) (C(edgefleet.k8s.verify))
    sets on every node, and prints after the play recap one row per cluster - cluster, distribution and version,
    datastore, servers and agents ready (unit active and, where a kubelet runs, registered as a Node),
    GitOps engine and path, overlays and the artifact bytes sent in this run.
  - Every host of the C(edgefleet) group that a play of the run targets counts in its cluster's row, from the
    inventory's C(edgefleet_cluster) and C(edgefleet_node_role). A host that failed or was unreachable before the
    verify play, or that never reached it, counts as not ready; a last column, shown only when there are any,
    names those nodes and their state.
  - The table is printed whenever the run targeted at least one host of the C(edgefleet) group, also when no
    node reached the verify play.
  - With O(report_path) set, writes a JSON report - one record per cluster and per node with its state, version,
    changed tasks, bytes sent and error. With O(retry_path) set, writes the nodes to retry, one a line, for
    C(--limit @file). docs/fleet-report.md describes both files.
  - During a task that retries (a wait for C(/readyz) or for a node to register), prints one line naming the nodes
    still waited for and the time left at most, whenever that set changes and at most every 30 seconds otherwise.
  - Enable it with C(ANSIBLE_CALLBACKS_ENABLED=edgefleet.k8s.fleet_summary) or C(callbacks_enabled) in ansible.cfg.
requirements:
  - enable in configuration
options:
  report_path:
    description:
      - Where to write the JSON report at the end of the run. It is replaced atomically (a temporary file in the
        same directory, then a rename). Unset, no report is written.
    type: path
    env:
      - name: EDGEFLEET_REPORT
    ini:
      - section: callback_edgefleet_fleet_summary
        key: report_path
  retry_path:
    description:
      - Where to write the names of the nodes to retry (failed, unreachable, not ready or skipped), one a line,
        the format of C(ansible-playbook --limit @file). When every node ends ready, a file at this path is
        removed, so a stale list cannot be retried. Unset, no retry file is written or removed.
    type: path
    env:
      - name: EDGEFLEET_RETRY_FILE
    ini:
      - section: callback_edgefleet_fleet_summary
        key: retry_path
"""

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from ansible import context
from ansible.inventory.helpers import get_group_vars
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_progress import WaitTracker
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_summary import (
    INVENTORY_VARS,
    RunInfo,
    RunRecorder,
    build_report,
    error_message,
    render_table,
    retry_file_text,
    retry_hosts,
    summarise,
    write_atomic,
)

FLEET_GROUP = "edgefleet"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _inventory_vars(host: Any) -> dict[str, Any]:
    """The INVENTORY_VARS of one host: its own vars, else its groups' inventory vars."""
    wanted = list(INVENTORY_VARS.values())
    found = {key: host.vars[key] for key in wanted if key in host.vars}
    if len(found) < len(wanted):
        group_vars = get_group_vars(host.get_groups())
        found.update({key: group_vars[key] for key in wanted if key not in found and key in group_vars})
    return found


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible is untyped here
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "edgefleet.k8s.fleet_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._run = RunRecorder()
        self._playbooks: list[str] = []
        self._started = _now()
        self._waits = WaitTracker(lambda line: self._display.display(f"edgefleet: {line}"), time.monotonic)

    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._playbooks.append(str(getattr(playbook, "_file_name", "") or ""))

    def v2_playbook_on_play_start(self, play: Any) -> None:
        # The hosts a play targets under --limit (ignoring the batch restriction of serial plays), so hosts
        # lost before the verify play still land in their cluster's row.
        manager = play.get_variable_manager()
        inventory = getattr(manager, "_inventory", None)
        if inventory is None:
            return
        for host in inventory.get_hosts(play.hosts, ignore_restrictions=True):
            name = host.get_name()
            if self._run.has_host(name) or FLEET_GROUP not in (g.get_name() for g in host.get_groups()):
                continue
            self._run.add_host(name, _inventory_vars(host))

    def v2_runner_retry(self, result: Any) -> None:
        res = result._result
        delay = getattr(result._task, "delay", 0) or 0
        self._waits.retry(
            str(result._task._uuid),
            result._task.get_name(),
            result._host.get_name(),
            int(res.get("retries", 0) or 0),
            int(res.get("attempts", 0) or 0),
            float(delay),
        )

    def _done(self, result: Any) -> None:
        self._waits.done(str(result._task._uuid), result._host.get_name())

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._done(result)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._done(result)
        host = result._host.get_name()
        facts = result._result.get("ansible_facts") or {}
        verify = facts.get("edgefleet_verify")
        if isinstance(verify, dict):
            self._run.verified(host, verify)
        upgrade = facts.get("edgefleet_upgrade_report")
        if isinstance(upgrade, dict):
            self._run.upgrade_report(upgrade)
        skipped = facts.get("edgefleet_skipped")
        if isinstance(skipped, str) and skipped:
            self._run.skipped(host, skipped)
        if result._result.get("changed"):
            self._run.changed(host, result._task.get_name())

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._done(result)
        host = result._host.get_name()
        if ignore_errors:
            if result._result.get("changed"):
                self._run.changed(host, result._task.get_name())
            return
        self._run.failed(host, result._task.get_name(), error_message(result._result))

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._done(result)
        self._run.unreachable(result._host.get_name(), result._task.get_name(), error_message(result._result))

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if not self._run.hosts:
            return
        nodes = self._run.outcomes(failures=stats.failures, dark=stats.dark)
        self._display.banner("EDGEFLEET SUMMARY")
        self._display.display(render_table(summarise(nodes, self._run.upgrade)))

        report_path = self.get_option("report_path")
        if report_path:
            run = RunInfo(
                playbooks=self._playbooks,
                started=self._started,
                finished=_now(),
                ansible_version=ansible_version,
                check_mode=bool(context.CLIARGS.get("check", False)),
            )
            text = json.dumps(build_report(nodes, run, self._run.upgrade or None), indent=2) + "\n"
            self._write(report_path, text, f"fleet report: {report_path}")

        retry_path = self.get_option("retry_path")
        if retry_path:
            retry = retry_hosts(nodes)
            if retry:
                self._write(
                    retry_path,
                    retry_file_text(retry),
                    f"retry {len(retry)} node(s): --limit @{retry_path}",
                )
            else:
                self._remove(retry_path)

    def _write(self, path: str, text: str, note: str) -> None:
        try:
            write_atomic(path, text)
        except OSError as exc:
            self._display.warning(f"edgefleet.k8s.fleet_summary: cannot write {path}: {exc}")
            return
        self._display.display(note)

    def _remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._display.warning(f"edgefleet.k8s.fleet_summary: cannot remove the stale retry file {path}: {exc}")
            return
        self._display.display(f"every node ready: removed the stale retry file {path}")
