# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_summary
type: aggregate
short_description: One table row per cluster at the end of an edgefleet.k8s.site run
version_added: 0.1.0
description:
  - Collects the C(edgefleet_verify) fact that the verify play of C(edgefleet.k8s.site) (C(edgefleet.k8s.verify))
    sets on every node, and prints after the play recap one row per cluster - cluster, distribution and version,
    datastore, servers and agents ready (unit active and, where a kubelet runs, registered as a Node),
    GitOps engine and path, overlays and the artifact bytes sent in this run.
  - Hosts that failed or were unreachable before the verify play count as not ready.
  - Enable it with C(ANSIBLE_CALLBACKS_ENABLED=edgefleet.k8s.fleet_summary) or C(callbacks_enabled) in ansible.cfg.
requirements:
  - enable in configuration
"""

from collections import defaultdict
from typing import Any

from ansible.plugins.callback import CallbackBase
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_summary import render_table, summarise


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible is untyped here
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "edgefleet.k8s.fleet_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._nodes: dict[str, dict[str, Any]] = {}
        self._failed: set[str] = set()
        self._counts: dict[str, int] = defaultdict(int)

    def v2_runner_on_ok(self, result: Any) -> None:
        facts = result._result.get("ansible_facts") or {}
        verify = facts.get("edgefleet_verify")
        if isinstance(verify, dict):
            self._nodes[result._host.get_name()] = dict(verify)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        if not ignore_errors:
            self._failed.add(result._host.get_name())

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._failed.add(result._host.get_name())

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if not self._nodes:
            return
        rows = summarise(self._nodes, self._failed)
        self._display.banner("EDGEFLEET SUMMARY")
        self._display.display(render_table(rows))
