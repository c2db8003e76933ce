# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The merged host vars of the example, lab and benchmark fleets, as `ansible-inventory --list` resolves them.

The fixture fixtures/merged_hostvars.json was written by this module from the plugin as it was when every
fact was still a host var; test_fleet_levels.py compares the plugin of today against it. To write it anew
(only when the published values change on purpose): python tests/unit/plugins/inventory/merged_hostvars.py
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import typing as t
from pathlib import Path
from unittest import mock

from ansible import constants as C
from fleet_helpers import REPO, list_inventory

FIXTURE = Path(__file__).parent / "fixtures" / "merged_hostvars.json"
BENCH_HOSTS = 200
# Paths of the checkout or temporary directory the fleet was read from, and the facts namespace ansible-core
# adds to every host when inject_facts_as_vars is off (ansible_local, from the fact cache): not part of the
# published values.
_PLACE_VARS = ("inventory_dir", "inventory_file", "ansible_local")


def bench_fleet(directory: Path, size: int = BENCH_HOSTS) -> Path:
    """The benchmark's generated fleet (tests/bench/run.py) of `size` hosts, written under `directory`."""
    spec = importlib.util.spec_from_file_location("edgefleet_bench", REPO / "tests" / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path: Path = module.write_fleet(directory / "fleet", size)
    return path


def merged(source: Path) -> dict[str, dict[str, t.Any]]:
    """Every host's vars as `ansible-inventory -i <source> --list` prints them (group vars merged in), without
    the facts a fact cache may hold for them (the lab's hosts have some, from whatever ran last)."""
    with mock.patch.object(C, "CACHE_PLUGIN", "ansible.builtin.memory"):
        data = json.loads(list_inventory(source))
    hostvars: dict[str, dict[str, t.Any]] = data["_meta"]["hostvars"]
    return {host: {k: v for k, v in sorted(hv.items()) if k not in _PLACE_VARS} for host, hv in hostvars.items()}


def all_fleets(tmp: Path) -> dict[str, dict[str, dict[str, t.Any]]]:
    return {
        # the fleet files (their group_vars/ beside them are read too), not the lab's directory: while the lab is
        # up, its generated connection inventory sits there
        "example": merged(REPO / "inventories" / "example" / "example.fleet.yml"),
        "lab": merged(REPO / "inventories" / "lab" / "lab.fleet.yml"),
        "bench": merged(bench_fleet(tmp)),
    }


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        fleets = all_fleets(Path(tmp))
    lines = []
    for fleet, hosts in sorted(fleets.items()):
        compact = {"sort_keys": True, "separators": (",", ":")}
        rows = (f"{json.dumps(h)}:{json.dumps(v, **compact)}" for h, v in sorted(hosts.items()))
        body = ",\n".join(rows)
        lines.append(f"{json.dumps(fleet)}:{{\n{body}\n}}")
    FIXTURE.write_text("{\n" + ",\n".join(lines) + "\n}\n")  # one host a line
    print(f"{FIXTURE}: {sum(len(f) for f in fleets.values())} hosts", file=sys.stderr)
