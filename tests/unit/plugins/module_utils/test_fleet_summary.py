# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet summary: node outcomes, cluster rows, the table, the JSON report, the retry list and the stats."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_summary import (
    MAX_ERROR_CHARS,
    SCHEMA_VERSION,
    NodeOutcome,
    RunInfo,
    RunRecorder,
    build_report,
    error_message,
    fleet_stats,
    render_table,
    retry_file_text,
    retry_hosts,
    summarise,
    upgrade_cell,
    upgrade_record,
    write_atomic,
)

RUN = RunInfo(
    playbooks=["playbooks/site.yml"],
    started="2026-01-01T00:00:00Z",
    finished="2026-01-01T00:10:00Z",
    ansible_version="2.19.14",
)


def record(cluster: str, role: str, **over: object) -> dict[str, object]:
    """An edgefleet_verify fact as playbooks/verify.yml sets it."""
    base: dict[str, object] = {
        "cluster": cluster,
        "distribution": "k3s",
        "version": "v1.36.3+lab",
        "datastore": "sqlite",
        "role": role,
        "unit": "k3s",
        "unit_active": "True",
        "registered": True,
        "needs_node": True,
        "gitops_engine": "flux",
        "gitops_path": f"clusters/{cluster}",
        "overlays": ["region-lab", "model-podman-node"],
        "artifact_bytes_sent": 1000,
    }
    base.update(over)
    return base


def inventory(cluster: str, role: str, **over: object) -> dict[str, object]:
    """Host vars as the fleet inventory plugin publishes them (plus one that must never be reported)."""
    base: dict[str, object] = {
        "edgefleet_cluster": cluster,
        "edgefleet_node_role": role,
        "edgefleet_distribution": "k3s",
        "edgefleet_version": "v1.36.3+lab",
        "edgefleet_datastore": "sqlite",
        "edgefleet_gitops_engine": "flux",
        "edgefleet_gitops_path": f"clusters/{cluster}",
        "edgefleet_overlays": ["region-lab", "model-podman-node"],
        "edgefleet_join_token": "K10-secret-token",
        "ansible_host": "10.0.0.1",
    }
    base.update(over)
    return base


def lab_run() -> RunRecorder:
    """The lab fleet: lab-k3s (node1 server, node2 and node3 agents) and lab-k0s (node4 server)."""
    run = RunRecorder()
    run.add_host("node1", inventory("lab-k3s", "server"))
    run.add_host("node2", inventory("lab-k3s", "agent"))
    run.add_host("node3", inventory("lab-k3s", "agent"))
    run.add_host(
        "node4",
        inventory(
            "lab-k0s",
            "server",
            edgefleet_distribution="k0s",
            edgefleet_gitops_engine="argocd",
            edgefleet_overlays=["region-lab", "model-podman-node", "site-lab-k0s"],
        ),
    )
    return run


def converge(run: RunRecorder, *hosts: str) -> None:
    records = {
        "node1": record("lab-k3s", "server"),
        "node2": record("lab-k3s", "agent", artifact_bytes_sent=0),
        "node3": record("lab-k3s", "agent"),
        "node4": record(
            "lab-k0s",
            "server",
            distribution="k0s",
            needs_node=False,
            registered=False,
            gitops_engine="argocd",
            overlays=["region-lab", "model-podman-node", "site-lab-k0s"],
            artifact_bytes_sent="None",
        ),
    }
    for host in hosts:
        run.changed(host, "edgefleet.k8s.distribution : Write the config")
        run.verified(host, records[host])


def by_name(nodes: list[NodeOutcome]) -> dict[str, NodeOutcome]:
    return {n.name: n for n in nodes}


# The table of a fully converged lab fleet, column for column as before failures were named.
CONVERGED_TABLE = "\n".join(
    (
        "cluster  distribution     datastore  servers    agents     "
        "gitops                   overlays                                   bytes sent",
        "-------  ---------------  ---------  ---------  ---------  "
        "-----------------------  -----------------------------------------  ----------",
        "lab-k0s  k0s v1.36.3+lab  sqlite     1/1 ready  0/0 ready  "
        "argocd clusters/lab-k0s  region-lab,model-podman-node,site-lab-k0s  -",
        "lab-k3s  k3s v1.36.3+lab  sqlite     1/1 ready  2/2 ready  "
        "flux clusters/lab-k3s    region-lab,model-podman-node               2000",
    )
)


def test_converged_fleet_table_is_unchanged() -> None:
    run = lab_run()
    converge(run, "node1", "node2", "node3", "node4")
    nodes = run.outcomes(failures={}, dark={})
    assert {n.state for n in nodes} == {"ready"}
    assert render_table(summarise(nodes)) == CONVERGED_TABLE
    assert retry_hosts(nodes) == []


def test_unreachable_agent_before_verify_counts_and_is_named() -> None:
    run = lab_run()
    run.unreachable("node3", "edgefleet.k8s.preflight : Read the node", "ssh: connect to host 10.231.0.13: timed out")
    converge(run, "node1", "node2", "node4")
    nodes = run.outcomes(failures={}, dark={"node3": 1})
    k0s, k3s = summarise(nodes)
    assert (k3s.servers_ready, k3s.servers, k3s.agents_ready, k3s.agents) == (1, 1, 1, 2)
    assert k3s.not_ready == [("node3", "unreachable")]
    assert not k3s.ok and k0s.ok
    node3 = by_name(nodes)["node3"]
    assert node3.state == "unreachable"
    assert node3.error_task == "edgefleet.k8s.preflight : Read the node"
    assert node3.error == "ssh: connect to host 10.231.0.13: timed out"
    # From the inventory, since it never reached verify.
    assert (node3.cluster, node3.role, node3.version) == ("lab-k3s", "agent", "v1.36.3+lab")
    table = render_table(summarise(nodes))
    lines = table.splitlines()
    header, k3s_line = lines[0], lines[3]
    assert header.endswith("not ready")
    assert k3s_line.endswith("node3 (unreachable)")
    assert "1/2 ready" in k3s_line
    assert retry_hosts(nodes) == ["node3"]


def test_failed_server_of_a_cluster_that_never_reached_verify() -> None:
    run = lab_run()
    run.failed("node4", "edgefleet.k8s.distribution : Start the unit", "Unable to start service k0scontroller")
    converge(run, "node1", "node2", "node3")
    nodes = run.outcomes(failures={"node4": 1}, dark={})
    k0s, k3s = summarise(nodes)
    assert (k0s.servers_ready, k0s.servers, k0s.agents) == (0, 1, 0)
    assert k0s.not_ready == [("node4", "failed")]
    assert k0s.distribution == "k0s" and k0s.version == "v1.36.3+lab"
    assert k0s.gitops == "argocd clusters/lab-k0s"
    assert k3s.ok
    assert by_name(nodes)["node4"].error == "Unable to start service k0scontroller"


def test_agents_skipped_for_a_lost_server_carry_the_reason() -> None:
    run = lab_run()
    run.unreachable("node1", "Check the node against what its role needs", "ssh: connect timed out")
    reason = "node2: skipped, because node1, the init server of cluster lab-k3s, failed or was unreachable"
    run.skipped("node2", reason)
    converge(run, "node4")
    nodes = run.outcomes(failures={}, dark={"node1": 1})
    named = by_name(nodes)
    assert (named["node2"].state, named["node2"].error) == ("skipped", reason)
    # node3 was skipped without a recorded reason (e.g. a --tags run): skipped, no error.
    assert (named["node3"].state, named["node3"].error) == ("skipped", None)
    assert named["node1"].state == "unreachable" and named["node4"].state == "ready"
    assert retry_hosts(nodes) == ["node1", "node2", "node3"]


def test_every_node_lost_still_gives_a_row_per_cluster() -> None:
    run = lab_run()
    for host in ("node1", "node2", "node3", "node4"):
        run.unreachable(host, "Gathering Facts", "timed out")
    nodes = run.outcomes(failures={}, dark=dict.fromkeys(("node1", "node2", "node3", "node4"), 1))
    rows = summarise(nodes)
    assert [(r.cluster, r.servers_ready, r.servers, r.agents_ready, r.agents) for r in rows] == [
        ("lab-k0s", 0, 1, 0, 0),
        ("lab-k3s", 0, 1, 0, 2),
    ]
    assert retry_hosts(nodes) == ["node1", "node2", "node3", "node4"]
    assert "node1 (unreachable), node2 (unreachable), node3 (unreachable)" in render_table(rows)


def test_not_ready_after_verify_keeps_the_assert_message() -> None:
    run = lab_run()
    converge(run, "node1", "node2", "node4")
    run.verified("node3", record("lab-k3s", "agent", registered=False))
    run.failed("node3", "Stop when a node that runs a kubelet is not registered", "node3: not a Node of lab-k3s")
    nodes = by_name(run.outcomes(failures={"node3": 1}, dark={}))
    assert nodes["node3"].state == "not_ready"
    assert nodes["node3"].error == "node3: not a Node of lab-k3s"
    assert nodes["node1"].error is None


def test_inactive_unit_is_not_ready() -> None:
    run = RunRecorder()
    run.verified("n", record("c", "server", unit_active="False"))
    (row,) = summarise(run.outcomes())
    assert (row.servers_ready, row.servers) == (0, 1)
    assert row.not_ready == [("n", "not_ready")]


def test_rescued_failure_does_not_fail_a_node() -> None:
    """Ansible counts a failure a rescue block handled as rescued, not failed: the node stays ready."""
    run = lab_run()
    run.failed("node2", "Try the mirror", "HTTP 503")
    converge(run, "node1", "node2", "node3", "node4")
    nodes = by_name(run.outcomes(failures={}, dark={}))
    assert nodes["node2"].state == "ready"
    assert nodes["node2"].error is None


def test_rescued_failure_explains_a_node_that_never_reached_verify() -> None:
    run = lab_run()
    run.failed("node3", "Join the cluster", "server node1 unreachable")
    converge(run, "node1", "node2", "node4")
    nodes = by_name(run.outcomes(failures={}, dark={}))
    assert nodes["node3"].state == "skipped"
    assert nodes["node3"].error == "server node1 unreachable"
    assert retry_hosts(nodes.values()) == ["node3"]


def test_failure_after_a_ready_record_fails_the_node() -> None:
    run = lab_run()
    converge(run, "node1", "node2", "node3", "node4")
    run.failed("node1", "Restart", "unit failed")
    assert by_name(run.outcomes(failures={"node1": 1}, dark={}))["node1"].state == "failed"


def test_unreachable_wins_over_an_earlier_failure() -> None:
    run = lab_run()
    run.failed("node2", "A", "first")
    run.unreachable("node2", "B", "then gone")
    node2 = by_name(run.outcomes(failures={"node2": 1}, dark={"node2": 1}))["node2"]
    assert (node2.state, node2.error_task, node2.error) == ("unreachable", "B", "then gone")


def test_changed_tasks_are_counted_and_named_once() -> None:
    run = lab_run()
    for task in ("Write the config", "Start the unit", "Write the config"):
        run.changed("node1", task)
    converge(run, "node1")
    node1 = by_name(run.outcomes())["node1"]
    assert node1.changed_count == 4
    assert node1.changed_tasks == [
        "Write the config",
        "Start the unit",
        "edgefleet.k8s.distribution : Write the config",
    ]


def test_only_hosts_of_the_run_are_reported() -> None:
    """A host that fails but is not a fleet host (the controller's bundle check) is not a node."""
    run = lab_run()
    run.failed("localhost", "Verify every bundle", "sha256 mismatch")
    converge(run, "node1", "node2", "node3", "node4")
    assert [n.name for n in run.outcomes()] == ["node1", "node2", "node3", "node4"]


def test_table_names_at_most_five_nodes_per_cluster() -> None:
    run = RunRecorder()
    for i in range(8):
        run.add_host(f"edge-{i}", inventory("big", "agent"))
    nodes = run.outcomes(failures={}, dark={})
    line = render_table(summarise(nodes)).splitlines()[2]
    assert line.endswith(
        "edge-0 (skipped), edge-1 (skipped), edge-2 (skipped), edge-3 (skipped), edge-4 (skipped), +3 more"
    )


def test_report_has_a_record_per_cluster_and_node() -> None:
    run = lab_run()
    run.unreachable("node3", "edgefleet.k8s.preflight : Read the node", "ssh: timed out")
    run.failed("node4", "edgefleet.k8s.distribution : Start the unit", "unit failed")
    converge(run, "node1", "node2")
    report = build_report(run.outcomes(failures={"node4": 1}, dark={"node3": 1}), RUN)
    # It is JSON as is, and says which schema it follows.
    assert json.loads(json.dumps(report)) == report
    assert report["schema_version"] == SCHEMA_VERSION == 1
    assert report["run"] == {
        "playbooks": ["playbooks/site.yml"],
        "started": "2026-01-01T00:00:00Z",
        "finished": "2026-01-01T00:10:00Z",
        "ansible_version": "2.19.14",
        "check_mode": False,
    }
    assert report["totals"] == {
        "clusters": 2,
        "nodes": 4,
        "ready": 2,
        "not_ready": 0,
        "failed": 1,
        "unreachable": 1,
        "skipped": 0,
    }
    assert report["retry"] == ["node3", "node4"]
    k0s, k3s = report["clusters"]
    assert k3s == {
        "name": "lab-k3s",
        "ok": False,
        "distribution": "k3s",
        "version": "v1.36.3+lab",
        "datastore": "sqlite",
        "gitops": "flux clusters/lab-k3s",
        "overlays": ["region-lab", "model-podman-node"],
        "servers": {"ready": 1, "total": 1},
        "agents": {"ready": 1, "total": 2},
        "bytes_sent": 1000,
        "states": {"ready": 2, "not_ready": 0, "failed": 0, "unreachable": 1, "skipped": 0},
        "nodes": ["node1", "node2", "node3"],
        "not_ready": ["node3"],
    }
    assert k0s["servers"] == {"ready": 0, "total": 1} and k0s["not_ready"] == ["node4"]
    assert k0s["bytes_sent"] is None
    nodes = {n["name"]: n for n in report["nodes"]}
    assert nodes["node1"] == {
        "name": "node1",
        "cluster": "lab-k3s",
        "role": "server",
        "state": "ready",
        "distribution": "k3s",
        "version": "v1.36.3+lab",
        "changed": {"count": 1, "tasks": ["edgefleet.k8s.distribution : Write the config"]},
        "bytes_sent": 1000,
        "error": None,
    }
    assert nodes["node3"]["state"] == "unreachable"
    assert nodes["node3"]["error"] == {"task": "edgefleet.k8s.preflight : Read the node", "message": "ssh: timed out"}
    assert nodes["node3"]["changed"] == {"count": 0, "tasks": []}
    assert nodes["node4"]["state"] == "failed"
    assert nodes["node4"]["error"] == {"task": "edgefleet.k8s.distribution : Start the unit", "message": "unit failed"}


def test_report_holds_no_other_host_var() -> None:
    run = lab_run()
    run.failed("node1", "t", "m")
    text = json.dumps(build_report(run.outcomes(), RUN))
    assert "K10-secret-token" not in text and "edgefleet_join_token" not in text
    assert "10.0.0.1" not in text


def test_retry_file_is_one_host_a_line() -> None:
    assert retry_file_text(["node3", "node4"]) == "node3\nnode4\n"
    assert retry_file_text([]) == ""


def test_fleet_stats_are_counts_and_the_nodes_to_retry() -> None:
    run = lab_run()
    run.unreachable("node3", "t", "gone")
    converge(run, "node1", "node2", "node4")
    stats = fleet_stats(run.outcomes(failures={}, dark={"node3": 1}))
    assert stats == {
        "schema_version": 1,
        "ok": False,
        "clusters": {
            "lab-k0s": {"servers_ready": 1, "servers": 1, "agents_ready": 0, "agents": 0},
            "lab-k3s": {"servers_ready": 1, "servers": 1, "agents_ready": 1, "agents": 2},
        },
        "retry": ["node3"],
    }


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"msg": "boom"}, "boom"),
        (
            {"msg": "non-zero return code", "rc": 1, "stderr": "line one\nError: no such unit"},
            "non-zero return code: Error: no such unit",
        ),
        ({"rc": 3}, "rc=3"),
        (
            {"msg": "One or more items failed", "results": [{"failed": False}, {"failed": True, "msg": "item two"}]},
            "One or more items failed: item two",
        ),
        ({"msg": "two\n  lines"}, "two lines"),
    ],
)
def test_error_message(result: dict[str, Any], message: str) -> None:
    assert error_message(result) == message


def test_error_message_is_capped() -> None:
    message = error_message({"msg": "x" * 5000})
    assert len(message) == MAX_ERROR_CHARS and message.endswith("...")


def test_write_atomic_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "fleet.json"
    write_atomic(str(target), "old\n")
    write_atomic(str(target), "new\n")
    assert target.read_text() == "new\n"
    assert os.listdir(target.parent) == ["fleet.json"]


def test_write_atomic_failure_keeps_the_directory_clean(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        write_atomic(str(tmp_path / "taken"), "x")
    assert sorted(os.listdir(tmp_path)) == ["taken"]


def test_report_follows_the_documented_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).resolve().parents[4] / "docs" / "fleet-report.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    run = lab_run()
    run.unreachable("node3", "edgefleet.k8s.preflight : Read the node", "ssh: timed out")
    run.failed("node4", "edgefleet.k8s.distribution : Start the unit", "unit failed")
    run.add_host("node5", inventory("lab-k3s", "agent"))
    converge(run, "node1")
    run.verified("node2", record("lab-k3s", "agent", registered=False))
    nodes = run.outcomes(failures={"node4": 1}, dark={"node3": 1})
    assert {n.state for n in nodes} == {"ready", "not_ready", "failed", "unreachable", "skipped"}
    jsonschema.Draft202012Validator(schema).validate(build_report(nodes, RUN))
    # A field the code adds but the schema does not describe is an error.
    extra = build_report(nodes, RUN)
    extra["nodes"][0]["address"] = "10.0.0.1"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(extra)


UPGRADE = {
    "lab-k3s": {
        "outcome": "rolled_back",
        "before": "v1.36.3+lab",
        "after": "v1.36.3+lab",
        "target": "v1.36.5+lab",
        "wave": "canary",
        "reason": None,
        "extra": "dropped",
    },
    "lab-k0s": {
        "outcome": "skipped",
        "before": "v1.36.3+lab",
        "after": None,
        "target": "v1.36.5+lab",
        "wave": "wave 1",
    },
}


def test_an_upgrade_run_adds_its_result_per_cluster_to_the_table_and_report() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).resolve().parents[4] / "docs" / "fleet-report.schema.json").read_text())
    run = lab_run()
    converge(run, "node1", "node2", "node3", "node4")
    run.upgrade_report(UPGRADE)
    run.upgrade_report({"ignored": "not a record"})
    nodes = run.outcomes()
    table = render_table(summarise(nodes, run.upgrade))
    assert "upgrade" in table.splitlines()[0]
    assert "rolled back v1.36.3+lab -> v1.36.5+lab -> v1.36.3+lab" in table
    assert "skipped v1.36.3+lab" in table
    report = build_report(nodes, RUN, run.upgrade)
    jsonschema.Draft202012Validator(schema).validate(report)
    by_name = {c["name"]: c for c in report["clusters"]}
    assert by_name["lab-k3s"]["upgrade"] == {k: v for k, v in UPGRADE["lab-k3s"].items() if k != "extra"}
    assert by_name["lab-k0s"]["upgrade"]["outcome"] == "skipped"
    # Not an upgrade run: no upgrade column, no upgrade field.
    assert "upgrade" not in render_table(summarise(nodes)).splitlines()[0]
    assert all("upgrade" not in c for c in build_report(nodes, RUN)["clusters"])


def test_upgrade_cells() -> None:
    assert upgrade_cell(None) == "-"
    assert upgrade_cell({"outcome": "upgraded", "before": "v1", "after": "v2", "target": "v2"}) == "upgraded v1 -> v2"
    assert upgrade_cell({"outcome": "current", "before": "v2", "after": "v2"}) == "current v2"
    assert upgrade_cell({"outcome": "unreachable", "before": None}) == "unreachable ?"
    assert upgrade_record({"outcome": "exploded"})["outcome"] == "failed"
