"""Every Molecule scenario owns its own lab addresses, and the address plan in docs/lab.md says so."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MOLECULE = REPO / "extensions" / "molecule"
LAB_NET = ipaddress.ip_network("10.231.0.0/24")


def scenario_addresses() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for mfile in sorted(MOLECULE.glob("*/molecule.yml")):
        data = yaml.safe_load(mfile.read_text()) or {}
        addrs = [p["address"] for p in data.get("platforms") or [] if isinstance(p, dict) and "address" in p]
        if addrs:
            out[mfile.parent.name] = addrs
    return out


def test_addresses_are_unique_across_scenarios_and_outside_the_lab_nodes() -> None:
    owner: dict[str, str] = {}
    problems = []
    for scenario, addrs in scenario_addresses().items():
        for a in addrs:
            ip = ipaddress.ip_address(a)
            last = int(a.rsplit(".", 1)[1])
            if ip not in LAB_NET or not 61 <= last <= 254:
                problems.append(f"{scenario}: {a} is outside 10.231.0.61-254")
            if a in owner:
                problems.append(f"{scenario}: {a} is already used by scenario {owner[a]}")
            owner.setdefault(a, scenario)
    assert not problems, "\n".join(problems)


def test_address_plan_in_docs_lists_every_scenario_block() -> None:
    doc = (REPO / "docs" / "lab.md").read_text()
    rows = dict(re.findall(r"^\| 10\.231\.0\.(\d+(?:-\d+)?) \| Molecule `([a-z0-9-]+)`", doc, re.M))
    documented: dict[str, range] = {}
    for block, name in rows.items():
        lo, _, hi = block.partition("-")
        documented[name] = range(int(lo), int(hi or lo) + 1)
    missing = []
    for scenario, addrs in scenario_addresses().items():
        for a in addrs:
            if int(a.rsplit(".", 1)[1]) not in documented.get(scenario, range(0)):
                missing.append(f"{scenario}: {a} is not in its block in docs/lab.md")
    assert not missing, "\n".join(missing)


def test_scenarios_file_names_existing_scenarios() -> None:
    names = [
        line.strip()
        for line in (REPO / "tests" / "lab" / "scenarios.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert names, "tests/lab/scenarios.txt lists no scenario"
    for name in names:
        assert (MOLECULE / name / "molecule.yml").is_file(), f"tests/lab/scenarios.txt: no extensions/molecule/{name}"


def test_awx_job_test_addresses_are_its_documented_block_and_no_scenario_uses_them() -> None:
    """test_awx_runner.py and test_awx_ee.py create their own nodes, the EE container and one absent address
    in .206-210."""
    used: set[str] = set()
    for name in ("test_awx_runner.py", "test_awx_ee.py", "awx.py"):
        src = (REPO / "tests" / "integration" / name).read_text()
        used |= set(re.findall(r'"(10\.231\.0\.\d+)"', src))
    assert len(used) >= 4, f"the AWX tests name fewer lab addresses than expected: {used}"
    doc = (REPO / "docs" / "lab.md").read_text()
    block = re.search(r"^\| 10\.231\.0\.(\d+)-(\d+) \| AWX tests", doc, re.M)
    assert block, "docs/lab.md has no row for the AWX tests"
    documented = range(int(block[1]), int(block[2]) + 1)
    scenario = {a for addrs in scenario_addresses().values() for a in addrs}
    for a in sorted(used):
        assert int(a.rsplit(".", 1)[1]) in documented, f"{a} is outside the AWX block in docs/lab.md"
        assert a not in scenario, f"{a} is also a Molecule scenario's"
