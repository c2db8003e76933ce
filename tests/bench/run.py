#!/usr/bin/env python3
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory benchmark: edgefleet.k8s.fleet against the builtin YAML + constructed inventory.

For each size (hosts; 5 nodes a site) it generates, in a temporary directory:
  * fleet/bench.fleet.yml + fleet/registry.yml: our plugin's registry (YAML, one file); the inventory
    source is the fleet file (a directory source would also hand registry.yml to the yaml/ini plugins);
  * builtin/00-hosts.yml + builtin/99-constructed.yml: the same inventory written the usual
    way: one group per cluster holding the site's vars, hosts with their node vars, and
    `constructed` keyed_groups deriving region/model/channel/distribution/role groups.
Then it runs `ansible-inventory --list` on each (with the repo's ansible.cfg), each in a
fresh wrapper process so that RUSAGE_CHILDREN gives that run's peak RSS, checks that both
outputs hold the same hosts and groups, and prints wall time, peak RSS and the ratios.

Usage: python tests/bench/run.py [--sizes 10000,100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODES_PER_SITE = 5
REGIONS = ("r1", "r2", "r3", "r4")
MODELS = ("rpi5", "rpi4", "nuc13", "orin")
CHANNELS = ("stable", "beta", "edge")
REPO_URL = "https://git.example.org/edge/fleet-config.git"

# A wrapper that runs one command and reports its wall time and the peak RSS of its process tree.
_WRAPPER = r"""
import json, resource, subprocess, sys, time
out = open(sys.argv[1], "wb")
start = time.perf_counter()
proc = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.PIPE)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": proc.returncode, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                  "rss_kib": usage.ru_maxrss, "stderr": proc.stderr.decode()[-2000:]}))
"""


def site_facts(i: int) -> dict[str, str]:
    distribution = "k0s" if i % 4 == 3 else "k3s"
    return {
        "name": f"s{i:06d}",
        "region": REGIONS[i % len(REGIONS)],
        "model": MODELS[(i // 3) % len(MODELS)],
        "channel": CHANNELS[(i // 7) % len(CHANNELS)],
        "distribution": distribution,
        "version": "v1.31.3+k0s.0" if distribution == "k0s" else "v1.31.4+k3s1",
        "datastore": "etcd" if i % 2 else "sqlite",
        "engine": "argocd" if distribution == "k0s" else "flux",
    }


def nodes_of(i: int, facts: dict[str, str]) -> list[tuple[str, str, str]]:
    servers = 3 if facts["datastore"] == "etcd" else 1
    out = []
    for n in range(NODES_PER_SITE):
        k = i * NODES_PER_SITE + n
        address = f"10.{(k >> 16) & 255}.{(k >> 8) & 255}.{k & 255}"
        out.append((f"{facts['name']}n{n}", address, "server" if n < servers else "agent"))
    return out


OVERLAY_RULES = [
    {"slot": "base", "overlay": "cis-hardening"},
    *({"slot": "region", "match": {"region": r}, "overlay": f"region-{r}"} for r in REGIONS),
    {"slot": "model", "match": {"model": ["rpi4", "rpi5"]}, "overlay": "model-raspberry-pi"},
    {"slot": "channel", "match": {"channel": "beta"}, "overlay": "channel-beta"},
]


def overlays_for(facts: dict[str, str]) -> list[str]:
    """What the rules above give (for the builtin inventory, where someone precomputed it)."""
    out = ["base", "cis-hardening", f"region-{facts['region']}"]
    if facts["model"] in ("rpi4", "rpi5"):
        out.append("model-raspberry-pi")
    if facts["channel"] == "beta":
        out.append("channel-beta")
    return out


def write_fleet(directory: Path, size: int) -> Path:
    directory.mkdir(parents=True)
    config = directory / "bench.fleet.yml"
    config.write_text(
        "plugin: edgefleet.k8s.fleet\nsources: [registry.yml]\n"
        + "overlays:\n  rules:\n"
        + "".join(f"    - {json.dumps(rule)}\n" for rule in OVERLAY_RULES)
    )
    with open(directory / "registry.yml", "w") as out:
        out.write(f"defaults:\n  arch: arm64\n  gitops: {{repo: {REPO_URL}, branch: main}}\nsites:\n")
        for i in range(size // NODES_PER_SITE):
            f = site_facts(i)
            out.write(
                f"  - name: {f['name']}\n    region: {f['region']}\n    model: {f['model']}\n"
                f"    channel: {f['channel']}\n    distribution: {f['distribution']}\n    version: {f['version']}\n"
                f"    datastore: {f['datastore']}\n    gitops: {{engine: {f['engine']}}}\n    nodes:\n"
            )
            for name, address, role in nodes_of(i, f):
                out.write(f"      - {{name: {name}, address: {address}, role: {role}}}\n")
    return config


def write_builtin(directory: Path, size: int) -> Path:
    directory.mkdir(parents=True)
    with open(directory / "00-hosts.yml", "w") as out:
        out.write("all:\n  children:\n")
        for i in range(size // NODES_PER_SITE):
            f = site_facts(i)
            nodes = nodes_of(i, f)
            servers = [n for n, _, r in nodes if r == "server"]
            agents = [n for n, _, r in nodes if r == "agent"]
            overlays = overlays_for(f)
            kustomization = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["../../base"],
                "components": [f"../../components/{o}" for o in overlays[1:]],
            }
            out.write(f"    cluster_{f['name']}:\n      hosts:\n")
            for name, address, role in nodes:
                out.write(
                    f"        {name}: {{ansible_host: {address}, edgefleet_node_role: {role}, edgefleet_arch: arm64}}\n"
                )
            site_vars = {
                "edgefleet_cluster": f["name"],
                "edgefleet_site": f["name"],
                "edgefleet_region": f["region"],
                "edgefleet_model": f["model"],
                "edgefleet_channel": f["channel"],
                "edgefleet_labels": {},
                "edgefleet_site_labels": {},
                "edgefleet_distribution": f["distribution"],
                "edgefleet_version": f["version"],
                "edgefleet_datastore": f["datastore"],
                "edgefleet_cluster_servers": servers,
                "edgefleet_cluster_agents": agents,
                "edgefleet_cluster_init_server": servers[0],
                "edgefleet_gitops_engine": f["engine"],
                "edgefleet_gitops_repo": REPO_URL,
                "edgefleet_gitops_branch": "main",
                "edgefleet_overlays": overlays,
                "edgefleet_gitops_path": f"clusters/{f['name']}",
                "edgefleet_kustomization": kustomization,
            }
            out.write(f"      vars: {json.dumps(site_vars)}\n")
    role_groups = (
        "{'k3s': {'server': 'k3s_servers', 'agent': 'k3s_agents'}, "
        "'k0s': {'server': 'k0s_controllers', 'agent': 'k0s_workers'}}[edgefleet_distribution][edgefleet_node_role]"
    )
    (directory / "99-constructed.yml").write_text(
        "plugin: ansible.builtin.constructed\nstrict: true\n"
        "groups:\n  edgefleet: true\n"
        "keyed_groups:\n"
        "  - {key: edgefleet_region, prefix: region}\n"
        "  - {key: edgefleet_model, prefix: model}\n"
        "  - {key: edgefleet_channel, prefix: channel}\n"
        "  - {key: edgefleet_distribution, prefix: '', separator: ''}\n"
        "  - {key: \"edgefleet_node_role ~ 's'\", prefix: '', separator: ''}\n"
        f"  - {{key: \"{role_groups}\", prefix: '', separator: ''}}\n"
    )
    return directory


def measure(source: Path, output: Path) -> dict[str, t.Any]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"))
    binary = shutil.which("ansible-inventory", path=str(Path(sys.executable).parent)) or "ansible-inventory"
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(output), binary, "-i", str(source), "--list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        check=True,
    )
    result: dict[str, t.Any] = json.loads(proc.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"ansible-inventory failed on {source}:\n{result['stderr']}")
    return result


def summary(output: Path) -> tuple[int, set[str]]:
    data = json.loads(output.read_text())
    groups = {g for g in data if g not in ("_meta", "all", "ungrouped")}
    return len(data["_meta"]["hostvars"]), groups


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated host counts (default 10000,100000)")
    parser.add_argument("--keep", help="generate into this directory and keep it")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="edgefleet-bench-"))
    rows = []
    try:
        for size in sizes:
            base = work / str(size)
            if base.exists():
                shutil.rmtree(base)
            fleet = write_fleet(base / "fleet", size)
            builtin = write_builtin(base / "builtin", size)
            print(f"[{size} hosts] edgefleet.k8s.fleet ...", file=sys.stderr, flush=True)
            ours = measure(fleet, base / "fleet.json")  # the fleet file itself: registry.yml is not an inventory
            print(f"[{size} hosts] builtin yaml + constructed ...", file=sys.stderr, flush=True)
            theirs = measure(builtin, base / "builtin.json")
            ours_hosts, ours_groups = summary(base / "fleet.json")
            their_hosts, their_groups = summary(base / "builtin.json")
            if ours_hosts != size or their_hosts != size or ours_groups != their_groups:
                raise SystemExit(
                    f"outputs differ at {size}: hosts {ours_hosts}/{their_hosts}, "
                    f"groups only ours {sorted(ours_groups - their_groups)[:5]}, "
                    f"only builtin {sorted(their_groups - ours_groups)[:5]}"
                )
            rows.append((size, ours, theirs, len(ours_groups)))
            print(
                f"[{size} hosts] fleet {ours['wall']:.1f} s (cpu {ours['cpu']:.1f} s) "
                f"{ours['rss_kib'] / 1024:.0f} MiB, "
                f"builtin {theirs['wall']:.1f} s (cpu {theirs['cpu']:.1f} s) {theirs['rss_kib'] / 1024:.0f} MiB",
                file=sys.stderr,
                flush=True,
            )
            (base / "fleet.json").unlink()
            (base / "builtin.json").unlink()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("ansible-inventory --list, one run each: wall time, CPU time (user+sys) and peak RSS of the process tree")
    print(
        f"{'hosts':>8} {'groups':>7} | {'fleet wall':>10} {'cpu':>7} {'MiB':>6} | {'builtin wall':>12} {'cpu':>7} "
        f"{'MiB':>6} | {'wall ratio':>10} {'cpu ratio':>9} {'mem ratio':>9}"
    )
    for size, ours, theirs, groups in rows:
        print(
            f"{size:>8} {groups:>7} | {ours['wall']:>10.1f} {ours['cpu']:>7.1f} {ours['rss_kib'] / 1024:>6.0f} | "
            f"{theirs['wall']:>12.1f} {theirs['cpu']:>7.1f} {theirs['rss_kib'] / 1024:>6.0f} | "
            f"{ours['wall'] / theirs['wall']:>10.3f} {ours['cpu'] / theirs['cpu']:>9.3f} "
            f"{ours['rss_kib'] / theirs['rss_kib']:>9.3f}"
        )
    print("ratios are fleet / builtin; the goal at 100k hosts is time <= 0.100 and memory <= 0.500")
    print(
        f"machine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
        "(a shared machine skews wall time; CPU time is steadier)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
