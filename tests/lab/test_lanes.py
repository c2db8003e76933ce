"""Tests for tests/lab/lanes.sh (how `make test` runs the lab lane and the VM lane at once)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).parent / "lanes.sh"


def run(tmp_path: Path, *lanes: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EDGEFLEET_CACHE=str(tmp_path))
    return subprocess.run(["bash", str(SCRIPT), *lanes], capture_output=True, text=True, env=env, timeout=60)


def test_lanes_run_at_once_and_all_must_pass(tmp_path: Path) -> None:
    start = time.monotonic()
    res = run(tmp_path, "a=sleep 3; echo one", "b=sleep 3; echo two")
    assert res.returncode == 0, res.stdout + res.stderr
    assert time.monotonic() - start < 5.5, "the lanes ran one after the other (that takes 6 s or more)"
    assert "[a] one" in res.stdout and "[b] two" in res.stdout
    assert (tmp_path / "lanes" / "a.log").read_text() == "one\n"
    assert "lane a: passed" in res.stdout and "lane b: passed" in res.stdout


def test_one_failing_lane_fails_the_run_after_the_others_end(tmp_path: Path) -> None:
    res = run(tmp_path, "slow=sleep 1; echo done", "bad=echo broken; exit 3")
    assert res.returncode == 1
    assert "lane bad: FAILED" in res.stdout and "lane slow: passed" in res.stdout
    assert "[slow] done" in res.stdout, "the run did not wait for the other lane"
    # Each lane's own time: the failing one ended first.
    assert res.stdout.index("lane bad:") < res.stdout.index("lane slow:")


def test_a_failed_lanes_log_end_is_repeated_after_the_others(tmp_path: Path) -> None:
    # A CI log keeps only the end of the output: the failing lane's cause must be there, after the
    # other lane's lines, and a lane that passed is not repeated.
    res = run(tmp_path, "bad=echo the-cause; exit 1", "slow=sleep 1; echo noise")
    assert res.returncode == 1
    tail = res.stdout[res.stdout.index("[slow] noise") :]
    assert "the last 40 lines of lane bad" in tail and "[bad] the-cause" in tail, res.stdout
    assert "the last 40 lines of lane slow" not in res.stdout


def test_a_scenarios_failed_task_is_named_past_its_prefix_box_and_colours(tmp_path: Path) -> None:
    # A Molecule scenario's lines carry "[name] ", Molecule's box and colour codes; the failed task and its
    # message (on the box's next lines) must still reach the summary, and an unrelated CRITICAL must not.
    log = tmp_path / "scenario.log"
    log.write_text(
        "[single] CRITICAL 'extensions/molecule/default/molecule.yml' glob failed.  Exiting.\n"
        "[single] ok: [node1]\n"
        "[single]   \x1b[2m\x1b[1;31m│\x1b[0m "
        '\x1b[1;31mfatal: [node1]: UNREACHABLE! => {"msg": "Task failed:\x1b[0m\n'
        '[single]   \x1b[2m│\x1b[0m   Timeout (12s) waiting for privilege escalation prompt:"}\n'
        "[single] ok: [node2]\n"
    )
    res = run(tmp_path, f"bad=cat {log}; exit 1")
    summary = res.stdout[res.stdout.index("what failed in lane bad") :]
    assert '[bad] [single]   │ fatal: [node1]: UNREACHABLE! => {"msg": "Task failed:' in summary, summary
    assert "Timeout (12s) waiting for privilege escalation prompt" in summary, summary
    assert "glob failed" not in summary and "\x1b[" not in summary, summary
