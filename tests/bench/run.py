#!/usr/bin/env python3
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory benchmark: edgefleet.k8s.fleet against the builtin YAML + constructed inventory and a raw floor.

For each size (hosts; 5 nodes a site) it generates, in a temporary directory:
  * fleet/bench.fleet.yml + fleet/registry.yml: our plugin's registry (YAML, one file); the inventory
    source is the fleet file (a directory source would also hand registry.yml to the yaml/ini plugins);
  * fleet/cached.fleet.yml: the same registry with `cache: true` and the jsonfile cache plugin;
  * builtin/00-hosts.yml + builtin/99-constructed.yml: the same inventory written the usual
    way: one group per cluster holding the site's vars, hosts with their node vars, and
    `constructed` keyed_groups deriving region/model/channel/distribution/role groups.
Then it runs `ansible-inventory --graph`, `--list` and `--list --export` on each (with the repo's
ansible.cfg), each in a fresh wrapper process so that RUSAGE_CHILDREN gives that run's CPU time and
peak RSS, checks that both `--list` outputs hold the same hosts and groups, and prints wall time,
CPU time, peak RSS and the ratios. It also measures:
  * the raw floor: registry.yml read with yaml.CSafeLoader and the same hosts, groups and vars put into
    an InventoryData with add_group/add_host/add_child/set_variable, nothing else (no validation, no
    output); our `--graph` is compared with it;
  * the cache: `--graph` on cached.fleet.yml twice, the second run reading the plan from the cache.

The builtin side runs at every size by default, side by side with ours in the same run (the acceptance
figures are ratios of one run). It is slow at 100k hosts (about half an hour of CPU for `--list` alone);
--builtin-sizes limits it to some sizes for a quick look, and a result is stored (--builtin-store) and
shown again, marked "*", at a size where it did not run (such a ratio is not side by side).

Usage: python tests/bench/run.py [--sizes 10000,100000] [--builtin-sizes all|10000] [--modes list] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
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
MODES: dict[str, tuple[str, ...]] = {
    "graph": ("--graph",),
    "list": ("--list",),
    "export": ("--list", "--export"),
}

# A wrapper that runs one command and reports its wall time, CPU time and the peak RSS of its process tree.
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

# The raw floor: the registry read with the C YAML loader and published into an InventoryData with the
# same hosts, groups and vars as our plugin (node facts on the host, site facts on the cluster group),
# with nothing else: no validation, no overlay resolution, no output.
_FLOOR = r"""
import sys
import yaml
from ansible.inventory.data import InventoryData

with open(sys.argv[1], "rb") as handle:
    data = yaml.load(handle, Loader=yaml.CSafeLoader)
defaults = data["defaults"]
inv = InventoryData()
for group in ("edgefleet", "servers", "agents"):
    inv.add_group(group)
roles = {"k3s": ("k3s_servers", "k3s_agents"), "k0s": ("k0s_controllers", "k0s_workers")}
for site in data["sites"]:
    cluster = "cluster_" + site["name"]
    groups = [cluster, "region_" + site["region"], "model_" + site["model"], "channel_" + site["channel"],
              site["distribution"]]
    for group in groups + list(roles[site["distribution"]]):
        inv.add_group(group)
    for key in ("region", "model", "channel", "distribution", "version", "datastore"):
        inv.set_variable(cluster, "edgefleet_" + key, site[key])
    inv.set_variable(cluster, "edgefleet_gitops_engine", site["gitops"]["engine"])
    inv.set_variable(cluster, "edgefleet_gitops_repo", defaults["gitops"]["repo"])
    for node in site["nodes"]:
        name = node["name"]
        inv.add_host(name, group=cluster)
        server = node["role"] == "server"
        for group in ["edgefleet", *groups[1:], "servers" if server else "agents",
                      roles[site["distribution"]][0 if server else 1]]:
            inv.add_child(group, name)
        inv.set_variable(name, "ansible_host", node["address"])
        inv.set_variable(name, "edgefleet_node_role", node["role"])
        inv.set_variable(name, "edgefleet_arch", defaults["arch"])
inv.reconcile_inventory()
print(len(inv.hosts), "hosts", len(inv.groups), "groups")
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


def _env() -> dict[str, str]:
    collections = str(REPO / "collections")
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=collections)


def _wrapped(command: list[str], output: Path) -> dict[str, t.Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(output), *command],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=str(REPO),
        check=True,
    )
    result: dict[str, t.Any] = json.loads(proc.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result['stderr']}")
    return result


def measure(source: Path, output: Path, mode: str = "list") -> dict[str, t.Any]:
    """One `ansible-inventory -i <source> <mode>` run in a fresh process."""
    binary = shutil.which("ansible-inventory", path=str(Path(sys.executable).parent)) or "ansible-inventory"
    return _wrapped([binary, "-i", str(source), *MODES[mode]], output)


def measure_floor(registry: Path, output: Path) -> dict[str, t.Any]:
    return _wrapped([sys.executable, "-c", _FLOOR, str(registry)], output)


def write_cached_fleet(directory: Path, cache_dir: Path) -> Path:
    """A fleet file over the same registry, with the inventory cache on (jsonfile)."""
    plain = (directory / "bench.fleet.yml").read_text()
    config = directory / "cached.fleet.yml"
    config.write_text(
        plain + f"cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {json.dumps(str(cache_dir))}\n"
    )
    return config


def summary(output: Path) -> tuple[int, set[str]]:
    data = json.loads(output.read_text())
    groups = {g for g in data if g not in ("_meta", "all", "ungrouped")}
    return len(data["_meta"]["hostvars"]), groups


def _builtin_key(size: int, mode: str, builtin: Path) -> str:
    """A stored builtin result stands for this size, mode, ansible-core and generated inventory only."""
    from ansible.release import __version__ as core_version

    digest = hashlib.sha256()
    for name in sorted(os.listdir(builtin)):
        digest.update((builtin / name).read_bytes())
    return f"{size}:{mode}:{core_version}:{digest.hexdigest()[:16]}"


def _load_store(path: Path) -> dict[str, t.Any]:
    try:
        data: dict[str, t.Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _mib(result: dict[str, t.Any] | None) -> float:
    return result["rss_kib"] / 1024 if result else float("nan")


def _cells(result: dict[str, t.Any] | None) -> str:
    if not result:
        return f"{'-':>8} {'-':>8} {'-':>6}"
    mark = "*" if result.get("stored") else " "
    return f"{result['wall']:>8.1f} {result['cpu']:>7.1f}{mark} {_mib(result):>6.0f}"


def _ratio(ours: dict[str, t.Any], theirs: dict[str, t.Any] | None, key: str) -> str:
    return f"{ours[key] / theirs[key]:>6.3f}" if theirs else f"{'-':>6}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated host counts (default 10000,100000)")
    parser.add_argument(
        "--builtin-sizes",
        default="all",
        help="sizes at which the builtin side runs (default all: side by side at every size; e.g. 10000)",
    )
    parser.add_argument(
        "--builtin-store",
        default=str(Path.home() / ".cache" / "edgefleet" / "bench" / "builtin.json"),
        help="where builtin results are stored and read back at sizes where the builtin side does not run",
    )
    parser.add_argument("--modes", default="graph,list,export", help="comma-separated: graph, list, export")
    parser.add_argument("--json", help="also write every measured figure to this JSON file")
    parser.add_argument("--keep", help="generate into this directory and keep it")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    builtin_sizes = set(sizes) if args.builtin_sizes == "all" else {int(s) for s in args.builtin_sizes.split(",") if s}
    modes = [m for m in args.modes.split(",") if m]
    store_path = Path(args.builtin_store)
    store = _load_store(store_path)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="edgefleet-bench-"))
    results: dict[int, dict[str, t.Any]] = {}

    def note(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        for size in sizes:
            base = work / str(size)
            if base.exists():
                shutil.rmtree(base)
            fleet = write_fleet(base / "fleet", size)
            cached = write_cached_fleet(base / "fleet", base / "cache")
            builtin = write_builtin(base / "builtin", size)
            row: dict[str, t.Any] = results.setdefault(size, {"ours": {}, "builtin": {}})
            note(f"[{size} hosts] raw floor ...")
            row["floor"] = measure_floor(base / "fleet" / "registry.yml", base / "floor.txt")
            for mode in modes:
                out = base / f"fleet-{mode}.out"
                note(f"[{size} hosts] edgefleet.k8s.fleet {' '.join(MODES[mode])} ...")
                row["ours"][mode] = ours = measure(fleet, out, mode)  # the fleet file: registry.yml is no inventory
                key = _builtin_key(size, mode, builtin)
                theirs_out = base / f"builtin-{mode}.out"
                if size in builtin_sizes:
                    note(f"[{size} hosts] builtin yaml + constructed {' '.join(MODES[mode])} ...")
                    theirs = measure(builtin, theirs_out, mode)
                    store[key] = {k: theirs[k] for k in ("wall", "cpu", "rss_kib")}
                    store_path.parent.mkdir(parents=True, exist_ok=True)
                    store_path.write_text(json.dumps(store, indent=1, sort_keys=True))
                    row["builtin"][mode] = theirs
                    if mode == "list":
                        ours_hosts, ours_groups = summary(out)
                        their_hosts, their_groups = summary(theirs_out)
                        if ours_hosts != size or their_hosts != size or ours_groups != their_groups:
                            raise SystemExit(
                                f"outputs differ at {size}: hosts {ours_hosts}/{their_hosts}, "
                                f"groups only ours {sorted(ours_groups - their_groups)[:5]}, "
                                f"only builtin {sorted(their_groups - ours_groups)[:5]}"
                            )
                elif key in store:
                    row["builtin"][mode] = dict(store[key], stored=True)
                if mode == "list" and size not in builtin_sizes and summary(out)[0] != size:
                    raise SystemExit(f"ours lists {summary(out)[0]} hosts at {size}")
                note(f"[{size} hosts] {mode}: ours {_cells(ours)} | builtin {_cells(row['builtin'].get(mode))}")
                for path in (out, theirs_out):
                    path.unlink(missing_ok=True)
            note(f"[{size} hosts] cached --graph, first run (fills the cache), then the measured second run ...")
            row["cache_fill"] = measure(cached, base / "cached.out", "graph")
            row["cached"] = measure(cached, base / "cached.out", "graph")
            if not any((base / "cache").iterdir()):
                raise SystemExit(f"the inventory cache at {size} is empty after a run with cache: true")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1, sort_keys=True))
    report(results, modes)
    return 0


def report(results: dict[int, dict[str, t.Any]], modes: list[str]) -> None:
    print("ansible-inventory, one run each: wall time (s), CPU time (user+sys, s), peak RSS (MiB) of the process tree")
    print("* = builtin figure stored from an earlier run (--builtin-store), not measured in this one")
    header = f"{'wall':>8} {'cpu':>8} {'MiB':>6}"
    print(
        f"{'hosts':>7} {'mode':>15} | ours {header} | builtin {header} | {'cpu':>6} {'wall':>6} {'rss':>6} "
        f"| {'cpu/floor':>9}"
    )
    for size, row in results.items():
        floor = row["floor"]
        for mode in modes:
            ours, theirs = row["ours"][mode], row["builtin"].get(mode)
            print(
                f"{size:>7} {' '.join(MODES[mode]):>15} | ours {_cells(ours)} | builtin {_cells(theirs)} | "
                f"{_ratio(ours, theirs, 'cpu')} {_ratio(ours, theirs, 'wall')} {_ratio(ours, theirs, 'rss_kib')} "
                f"| {ours['cpu'] / floor['cpu']:>9.2f}"
            )
        print(f"{size:>7} {'raw floor':>15} | {_cells(floor)} (CSafeLoader + InventoryData calls, in one process)")
        if "graph" in row["ours"]:
            uncached, fill = row["ours"]["graph"], row["cache_fill"]
            print(
                f"{size:>7} {'cached --graph':>15} | {_cells(row['cached'])} (first run {fill['cpu']:.1f} s "
                f"CPU); cached/uncached CPU {row['cached']['cpu'] / uncached['cpu']:.3f}, wall "
                f"{row['cached']['wall'] / uncached['wall']:.3f}"
            )
    sizes = sorted(results)
    if len(sizes) > 1:
        low, high = sizes[0], sizes[-1]
        growth = ", ".join(
            f"{mode} {results[high]['ours'][mode]['cpu'] / results[low]['ours'][mode]['cpu']:.1f}x" for mode in modes
        )
        print(f"our CPU from {low} to {high} hosts ({high / low:.0f}x the hosts): {growth}")
    print(
        "targets: --list CPU <= 0.100 and RSS <= 0.500 of builtin; --graph CPU <= 3x the floor; CPU growth from "
        "10k to 100k <= 11x; cached --graph <= 0.2 of uncached"
    )
    print(
        f"machine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
        "(a shared machine skews wall time; CPU time is steadier)"
    )


if __name__ == "__main__":
    sys.exit(main())
