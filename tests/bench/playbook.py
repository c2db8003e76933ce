#!/usr/bin/env python3
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Playbook benchmark: what a no-op playbooks/site.yml run costs the controller per host-task, on lab nodes.

For each size (lab nodes) it brings the podman lab to exactly that many nodes (tests/lab/up.sh), writes a fleet for
them into a temporary directory, shaped like the demo's (inventories/lab/lab.fleet.yml: its defaults and overlay
rules, its group_vars beside the fleet file): K3s sites of 5 nodes, one server and four agents (the 1-node size is one
server alone), the stand-in version and Flux registration of the lab fleet. Then it runs playbooks/site.yml twice
with the demo's callbacks (profile_tasks, fleet_summary):
  * the first converge (its wall time is reported; nodes kept from the previous size are already converged);
  * the measured no-op: the same run again, in a fresh wrapper process so that RUSAGE_CHILDREN gives the CPU time
    (user + sys) of ansible-playbook and everything it waited for (its forks, their ssh clients), and the peak RSS
    of the largest of those processes (ru_maxrss), in practice ansible-playbook itself.
A callback of the benchmark (tests/bench/callback_plugins/bench_tally.py) counts the host-tasks: every result of a
task on a host (ok, changed, failed, ignored, skipped, unreachable). The no-op must report changed=0 and failed=0;
the benchmark says so loudly when it does not. It prints host-tasks per second, CPU per host-task and the ratio of
that to the smallest size's (flat = the controller's cost grows linearly with the host-tasks), and the tasks that
took the most wall time in the no-op at the largest size.

The control planes are the lab's stand-ins (a real kube-apiserver on kine/SQLite behind a K3s-shaped CLI), not real
K3s. The ssh ControlPersist masters detach from the run, so RUSAGE_CHILDREN misses them: the run gets a control
directory of its own, and the CPU its masters used is read from /proc and added (the ssh column shows that share).

Usage: python tests/bench/playbook.py [--sizes 1,5,10,25] [--json FILE] [--keep] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "tests" / "lab"
LAB_FLEET = REPO / "inventories" / "lab" / "lab.fleet.yml"
NODES_PER_SITE = 5
MAX_NODES = 50
CALLBACKS = "ansible.builtin.profile_tasks,edgefleet.k8s.fleet_summary,bench_tally"

# A wrapper that runs one command and reports its wall time, CPU time and the peak RSS of its process tree.
_WRAPPER = r"""
import json, resource, subprocess, sys, time
out = open(sys.argv[1], "wb")
start = time.perf_counter()
proc = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": proc.returncode, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                  "user": usage.ru_utime, "sys": usage.ru_stime, "rss_kib": usage.ru_maxrss}))
"""


def note(message: str) -> None:
    print(f"[bench-playbook {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def lab_sites(nodes: int) -> list[dict[str, t.Any]]:
    """K3s sites of NODES_PER_SITE lab nodes each: the site's first node is its server, the rest agents."""
    lab = yaml.safe_load(LAB_FLEET.read_text())
    template = next(site for site in lab["sites"] if site["distribution"] == "k3s")
    sites = []
    for first in range(1, nodes + 1, NODES_PER_SITE):
        members = range(first, min(first + NODES_PER_SITE, nodes + 1))
        site = {key: value for key, value in template.items() if key not in ("name", "nodes")}
        site["name"] = f"bench-k3s-{(first - 1) // NODES_PER_SITE + 1}"
        site["nodes"] = [
            {"name": f"node{i}", "address": f"10.231.0.{10 + i}", "role": "server" if i == first else "agent"}
            for i in members
        ]
        sites.append(site)
    return sites


def write_fleet(directory: Path, nodes: int) -> Path:
    """The lab fleet's defaults and overlay rules with sites for nodes 1..nodes, and the lab's group_vars beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    lab = yaml.safe_load(LAB_FLEET.read_text())
    lab["sites"] = lab_sites(nodes)
    shutil.rmtree(directory / "group_vars", ignore_errors=True)
    shutil.copytree(LAB_FLEET.parent / "group_vars", directory / "group_vars")
    fleet = directory / "bench.fleet.yml"
    fleet.write_text("---\n" + yaml.safe_dump(lab, sort_keys=False))
    return fleet


def _env(work: Path, tally: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
        ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).resolve().parent / "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED=CALLBACKS,
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        EDGEFLEET_REPORT=str(work / "report.json"),
        EDGEFLEET_RETRY_FILE=str(work / "retry"),
        EDGEFLEET_BENCH_TALLY=str(tally),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(work / "cp"),
    )


def mux_cpu(control_dir: Path) -> dict[int, float]:
    """CPU seconds (user + sys) so far of each ssh ControlPersist master whose socket is in control_dir.

    The masters detach from ansible-playbook, so RUSAGE_CHILDREN does not see them; they are the controller's
    too (every byte to and from a node is encrypted there). The benchmark gives the run a control directory of
    its own, so no other ssh master on the machine is counted."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            if not cmdline.startswith("ssh: ") or str(control_dir) not in cmdline:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(proc.name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def site_run(fleet: Path, work: Path, label: str) -> dict[str, t.Any]:
    """One `ansible-playbook playbooks/site.yml -i <fleet>` in a fresh wrapper process, with its tally."""
    binary = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    log = work / f"{label}.log"
    tally = work / f"{label}.tally.json"
    tally.unlink(missing_ok=True)
    control_dir = work / "cp"
    control_dir.mkdir(exist_ok=True)
    mux_before = mux_cpu(control_dir)
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(log), binary, "playbooks/site.yml", "-i", str(fleet)],
        capture_output=True,
        text=True,
        env=_env(work, tally),
        cwd=str(REPO),
        check=True,
    )
    result: dict[str, t.Any] = json.loads(proc.stdout)
    mux_after = mux_cpu(control_dir)
    result["ansible_cpu"] = result["cpu"]
    result["mux_cpu"] = sum(cpu - mux_before.get(pid, 0.0) for pid, cpu in mux_after.items())
    result["cpu"] += result["mux_cpu"]
    result["log"] = str(log)
    if tally.exists():
        result.update(json.loads(tally.read_text()))
    if result["rc"] != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise SystemExit(f"site.yml ({label}) failed with rc {result['rc']}; the end of {log}:\n{tail}")
    return result


def lab(script: str, nodes: int | None = None) -> None:
    env = dict(os.environ, NODES=str(nodes)) if nodes else dict(os.environ)
    subprocess.run([str(LAB / script)], env=env, cwd=str(REPO), check=True)


def _mib(result: dict[str, t.Any]) -> float:
    return float(result["rss_kib"]) / 1024


def report(results: dict[int, dict[str, t.Any]]) -> None:
    print("no-op playbooks/site.yml on lab nodes (K3s stand-ins), one run each. CPU = user+sys of ansible-playbook,")
    print("its forks and their ssh clients, plus the run's ssh ControlPersist masters (ssh column, counted in CPU);")
    print("RSS = peak of the largest process of the tree; ratio = CPU per host-task / the smallest size's (flat:")
    print("linear scaling)")
    print(
        f"{'nodes':>5} {'host-tasks':>10} {'first s':>8} {'wall s':>7} {'CPU s':>7} {'ssh s':>6} {'host-tasks/s':>12} "
        f"{'CPU ms/ht':>9} {'RSS MiB':>7} {'ratio':>6}"
    )
    base: float | None = None
    for size in sorted(results):
        row = results[size]
        noop, first = row["noop"], row["first"]
        per_task = noop["cpu"] / noop["host_tasks"]
        base = base or per_task
        print(
            f"{size:>5} {noop['host_tasks']:>10} {first['wall']:>8.1f} {noop['wall']:>7.1f} {noop['cpu']:>7.1f} "
            f"{noop['mux_cpu']:>6.1f} {noop['host_tasks'] / noop['wall']:>12.1f} {per_task * 1000:>9.1f} "
            f"{_mib(noop):>7.0f} {per_task / base:>6.2f}"
        )
    for size in sorted(results):
        counts = results[size]["noop"]["counts"]
        print(f"{size:>5} nodes, no-op results: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    largest = results[max(results)]["noop"]
    top = sorted(largest["tasks"], key=lambda task: -task[2])[:8]
    print(f"tasks of the no-op at {max(results)} nodes that took the most wall time (host results, wall s):")
    for name, hosts, wall in top:
        print(f"  {wall:>6.1f} s {hosts:>4}  {name}")
    bad = {size: row["noop"]["counts"] for size, row in results.items() if not row["noop_clean"]}
    if bad:
        print(f"WARNING: the no-op was not a no-op (changed or failed results) at: {sorted(bad)}; see the logs")
    print(
        f"machine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
        "(a shared machine skews wall time; CPU time is steadier)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,5,10,25", help="comma-separated lab node counts (default 1,5,10,25)")
    parser.add_argument("--json", help="also write every measured figure to this JSON file")
    parser.add_argument("--keep", action="store_true", help="leave the lab up and keep the work directory (logs)")
    parser.add_argument(
        "--fresh", action="store_true", help="remove the lab before each size, so every first converge starts bare"
    )
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    if not sizes or sizes[0] < 1 or sizes[-1] > MAX_NODES:
        parser.error(f"--sizes: whole numbers from 1 to {MAX_NODES}")
    work = Path(tempfile.mkdtemp(prefix="edgefleet-bench-playbook-"))
    results: dict[int, dict[str, t.Any]] = {}
    started = time.perf_counter()
    failure = ""
    try:
        for size in sizes:
            if args.fresh:
                lab("down.sh")
            note(f"[{size} nodes] lab up ...")
            lab("up.sh", size)
            base = work / str(size)
            fleet = write_fleet(base, size)
            note(f"[{size} nodes] first converge ...")
            try:
                first = site_run(fleet, base, "first")
                note(f"[{size} nodes] first converge: {first['wall']:.1f} s, {first.get('host_tasks', '?')} host-tasks")
                note(f"[{size} nodes] no-op (measured) ...")
                noop = site_run(fleet, base, "noop")
            except SystemExit as error:
                # Keep the sizes measured so far: they are printed below.
                failure = f"[{size} nodes] {error}"
                note(failure)
                break
            if "host_tasks" not in noop:
                raise SystemExit(f"the bench_tally callback wrote no tally; see {noop['log']}")
            clean = noop["counts"]["changed"] == 0 and noop["counts"]["failed"] == 0
            if not clean:
                note(f"WARNING [{size} nodes]: the no-op had results {noop['counts']}; see {noop['log']}")
            results[size] = {"first": first, "noop": noop, "noop_clean": clean}
            note(
                f"[{size} nodes] no-op: {noop['host_tasks']} host-tasks, wall {noop['wall']:.1f} s, "
                f"CPU {noop['cpu']:.1f} s, peak RSS {_mib(noop):.0f} MiB"
            )
    finally:
        if not args.keep:
            note("lab down ...")
            lab("down.sh")
            shutil.rmtree(work, ignore_errors=True)
        else:
            note(f"kept the lab and {work}")
    if args.json:
        Path(args.json).write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1, sort_keys=True))
    if results:
        report(results)
    print(f"total benchmark time {time.perf_counter() - started:.0f} s")
    if failure:
        print(f"stopped early: {failure.splitlines()[0]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
