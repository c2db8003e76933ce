# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Structural fuzzer of fleet registry text, through the real loader and the real inventory plugin.

Each case takes one file of the repository's fleets (inventories/lab/lab.fleet.yml, or
inventories/example/example.fleet.yml or one of its site files, YAML or JSON), applies 1-3
mutations to its text (lines deleted, duplicated, swapped or re-indented, anchors, aliases,
recursive aliases and alias bombs, YAML tags, deep nesting, odd scalars, look-alike and
invisible characters, raw bytes, truncation, document markers, reserved names, plugin
options) and runs the fleet through the plugin. Exactly two outcomes are allowed:

* refused: the plugin raises AnsibleParserError with a message (no traceback);
* listed: the plugin accepts it, and the `ansible-inventory --list` code path (inventory
  manager, variable manager, json_inventory, dump; fleet_helpers.list_inventory) prints it
  as JSON.

Anything else (another exception from the plugin, a failure of the --list path) is a
failure, reported with the case number; `--case N` replays it and `--keep DIR` keeps the
mutated files. Cases are numbered and each draws from its own seeded generator, so any
slice of cases is reproducible on its own.

  python tests/unit/plugins/inventory/fleet_fuzz.py --cases 10000    # make fuzz
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ansible.errors import AnsibleParserError
from fleet_helpers import REPO, list_inventory, run_plugin

SEED = 17
Mutation = t.Callable[[list[str], random.Random], list[str]]

_VALUE_LINE = re.compile(r'^(\s*(?:- )?"?[A-Za-z_][A-Za-z0-9_.-]*"?:\s+)(\S.*?)(,?)$')
ODD_SCALARS = (
    "~",
    "null",
    "",
    "''",
    '""',
    "yes",
    "no",
    "on",
    "off",
    "true",
    "0x1F",
    "0o17",
    "1_000",
    "1e400",
    "-1e400",
    ".nan",
    ".inf",
    "-.inf",
    "2024-01-01",
    "2024-01-01T10:00:00Z",
    "12:30:45",
    "190:20:30",
    "0b1010",
    '"ber-01\\n"',
    '"name\\u0000"',
    '"\\ud800"',
    '"\\uD83D\\uDE00"',
    "'{{ lookup(''pipe'', ''id'') }}'",
    '"-oProxyCommand=x"',
    "https://tok3n@git.example.org/x.git",
    "https://u:p@git.example.org/x.git",
    "https://git.example.org/x.git?access_token=abc",
    "*undefined",
    "&",
    "@x",
    "%x",
    "`x`",
    "|",
    ">",
    "? x",
    "- x",
    "[",
    "{",
    "]",
    "}",
    ",",
    "#",
    "!",
    "!!",
    "9" * 30,
    "9" * 5000,
    "0x" + "f" * 40,
    "all",
    "ungrouped",
    "edgefleet",
    "k3s",
    "k0s",
    "servers",
    "agents",
    "[k0s]",
    "[servers, canary]",
    "cluster-x",
    "[region-eu]",
    "'ber-01 '",
    "' ber-01'",
    "b\u0435r-01",
    "ber\u200b-01",
    "\u202eber-01",
    "[]",
    "{}",
    "[[]]",
    "{a: {b: {c: d}}}",
    "!!binary aGVsbG8=",
    "{1: one}",
    "{? [a, b] : c}",
)
TAGS = (
    "!!binary",
    "!!set",
    "!!omap",
    "!!pairs",
    "!!timestamp",
    "!!int",
    "!!float",
    "!!bool",
    "!!null",
    "!!str",
    "!!map",
    "!!seq",
    "!!merge",
    "!!value",
    "!!python/object/apply:os.system",
    "!vault",
    "!unsafe",
    "!custom",
    "!<tag:example.org,2002:x>",
)
CHARACTERS = (
    "\u0430",
    "\u0435",
    "\u043e",
    "\u200b",
    "\u200d",
    "\u202e",
    "\ufeff",
    "\u00a0",
    "\u2028",
    "\u0000",
    "\u007f",
    "\u0085",
    "\t",
    "\r",
    "\U0001f600",
    "\ud7ff",
    "é",
    ":",
    "#",
    "&",
    "*",
    "!",
    "|",
    ">",
    "%",
    "@",
    "`",
    "'",
    '"',
    "{",
    "}",
    "[",
    "]",
    ",",
    "?",
    "-",
    "\\",
)
OPTIONS = (
    "allow_empty: true",
    "allow_empty: maybe",
    "max_depth: 2",
    "max_depth: 128",
    "max_depth: 100000",
    "max_depth: -1",
    "max_file_size: 10",
    "max_file_size: x",
    "max_alias_nodes: 0",
    "sources: [nope.yml]",
    "sources: [{path: .sites/, allow_empty: true}]",
    "sources: [{path: 3}]",
    "sources: 3",
    "sources: [../]",
    "compose: {x: '{{ undefined_var }}'}",
    "compose: {x: 'edgefleet_site | upper'}",
    "strict: true",
    "groups: {bad: '1 +'}",
    "groups: {pilots: 'edgefleet_site == \"ber-01\"'}",
    "groups: [a]",
    "keyed_groups: [1]",
    "keyed_groups: [{key: edgefleet_region}]",
    "keyed_groups: [{key: nothere}]",
    "keyed_groups: [{prefix: x}]",
    "cache: yes",
    "cache: 7",
    "leading_separator: no",
    "use_extra_vars: true",
    "plugin: ansible.builtin.constructed",
    "plugin: [edgefleet.k8s.fleet]",
    "defaults: []",
    "overlays: x",
    "sites: {}",
    "colour: blue",
)


def _line(lines: list[str], rng: random.Random) -> int:
    return rng.randrange(len(lines)) if lines else 0


def _delete(lines: list[str], rng: random.Random) -> list[str]:
    if lines:
        del lines[_line(lines, rng)]
    return lines


def _duplicate(lines: list[str], rng: random.Random) -> list[str]:
    if lines:
        i = _line(lines, rng)
        j = min(len(lines), i + rng.choice((1, 1, 2, 3, 6)))
        lines[j:j] = lines[i:j]
    return lines


def _swap(lines: list[str], rng: random.Random) -> list[str]:
    if len(lines) > 1:
        i = _line(lines, rng)
        j = min(len(lines) - 1, i + 1) if rng.random() < 0.6 else _line(lines, rng)
        lines[i], lines[j] = lines[j], lines[i]
    return lines


def _reindent(lines: list[str], rng: random.Random) -> list[str]:
    if lines:
        i = _line(lines, rng)
        body = lines[i].lstrip(" ")
        indent = len(lines[i]) - len(body) + rng.choice((-4, -2, -1, 1, 2, 4, 8))
        lines[i] = ("\t" if rng.random() < 0.1 else " " * max(0, indent)) + body
    return lines


def _value_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if _VALUE_LINE.match(line.rstrip("\n"))]


def _set_value(lines: list[str], rng: random.Random, value: str) -> list[str]:
    candidates = _value_lines(lines)
    if candidates:
        i = rng.choice(candidates)
        found = _VALUE_LINE.match(lines[i].rstrip("\n"))
        if found:
            lines[i] = f"{found.group(1)}{value}{found.group(3)}\n"
    return lines


def _odd_scalar(lines: list[str], rng: random.Random) -> list[str]:
    return _set_value(lines, rng, rng.choice(ODD_SCALARS))


def _tag(lines: list[str], rng: random.Random) -> list[str]:
    candidates = _value_lines(lines)
    if candidates:
        i = rng.choice(candidates)
        found = _VALUE_LINE.match(lines[i].rstrip("\n"))
        if found:
            lines[i] = f"{found.group(1)}{rng.choice(TAGS)} {found.group(2)}{found.group(3)}\n"
    return lines


def _anchor_alias(lines: list[str], rng: random.Random) -> list[str]:
    candidates = _value_lines(lines)
    if len(candidates) > 1:
        i, j = sorted(rng.sample(candidates, 2))
        if rng.random() < 0.3:
            i, j = j, i  # alias before its anchor
        first = _VALUE_LINE.match(lines[i].rstrip("\n"))
        second = _VALUE_LINE.match(lines[j].rstrip("\n"))
        if first and second:
            lines[i] = f"{first.group(1)}&a{i} {first.group(2)}{first.group(3)}\n"
            lines[j] = f"{second.group(1)}*a{i}{second.group(3)}\n"
    return lines


def _recursive_alias(lines: list[str], rng: random.Random) -> list[str]:
    return _set_value(lines, rng, rng.choice(("&r [*r]", "&r {x: *r}", "&r {x: [1, {y: *r}]}", "&r *r")))


def _nesting(depth: int, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    return "{a: " * depth + "1" + "}" * depth


def _deep(lines: list[str], rng: random.Random) -> list[str]:
    depth = rng.choice((5, 30, 55, 60, 62, 63, 64, 65, 70, 120, 200, 300, 999, 1001, 3000))
    if rng.random() < 0.5:  # straight into vars, where the plugin passes values through
        return _insert_site_key(lines, rng, f"vars: {{deep: {_nesting(depth, rng)}}}")
    if rng.random() < 0.5 and depth < 400:  # block style: one key per line
        i = _line(lines, rng)
        lines[i:i] = [" " * (2 * d) + "a:\n" for d in range(depth)] + [" " * (2 * depth) + "b: 1\n"]
        return lines
    return _set_value(lines, rng, _nesting(depth, rng))


def _insert_site_key(lines: list[str], rng: random.Random, text: str) -> list[str]:
    """A key at the indentation of a site's `name:` (a sites list item, or a site file's top level)."""
    names = [i for i, line in enumerate(lines) if re.match(r'^\s*(- )?"?name"?:', line)]
    i = rng.choice(names) if names else 0
    line = lines[i] if lines else ""
    indent = len(line) - len(line.lstrip(" -"))
    if line.lstrip().startswith('"'):  # JSON: keep it a JSON member
        key, _sep, value = text.partition(": ")
        lines[i + 1 : i + 1] = [" " * indent + json.dumps(key) + ": " + value + ",\n"]
    else:
        lines[i + 1 : i + 1] = [" " * indent + text + "\n"]
    return lines


def _vars_value(lines: list[str], rng: random.Random) -> list[str]:
    value = rng.choice((*ODD_SCALARS, *(f"{tag} x" for tag in TAGS)))
    return _insert_site_key(lines, rng, f"vars: {{x: {value}}}")


def _json_value(rng: random.Random, depth: int) -> str:
    """Flow-style YAML for valid vars data: what the plugin must pass through and --list must print."""
    roll = rng.random()
    if depth <= 0 or roll < 0.35:
        return rng.choice(
            (
                "1", "-7", "2.5", "1e10", "true", "false", "null", "18446744073709551615", "-9223372036854775808",
                "'text'", '"caf\\u00e9 \\U0001F600"', "'{{ inventory_hostname }}'", "'a: b'", "'- x'", "''",
                '"\\t tab"', "'x' ", "\"{{ '{' }}\"", "'0777'", "'2024-01-01'", "!!str 12",
            )
        )  # fmt: skip
    if roll < 0.65:
        return "[" + ", ".join(_json_value(rng, depth - 1) for _n in range(rng.randrange(4))) + "]"
    keys = ("a", "b_c", "x", '"quoted key"', "'1'", "k8s.io/x")
    items = (f"{rng.choice(keys)}{n}: {_json_value(rng, depth - 1)}" for n in range(rng.randrange(4)))
    return "{" + ", ".join(items) + "}"


def _valid_vars(lines: list[str], rng: random.Random) -> list[str]:
    depth = rng.choice((1, 2, 3, 5, 8, 20, 40, 58))
    if depth > 10:  # a deep straight chain, within the default limit or just past it
        return _insert_site_key(lines, rng, f"vars: {{deep: {'[' * depth}1{']' * depth}}}")
    body = ", ".join(f"v{n}: {_json_value(rng, depth)}" for n in range(rng.randrange(1, 4)))
    if rng.random() < 0.3:
        body += ", s: &s {a: [1, 2]}, t: *s, u: {<<: *s, b: 2}"
    return _insert_site_key(lines, rng, f"vars: {{{body}}}")


def _alias_bomb(lines: list[str], rng: random.Random) -> list[str]:
    levels = rng.choice((3, 5, 7, 9))
    bomb = ['{l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return _insert_site_key(lines, rng, "vars: " + ", ".join(bomb) + "}")


def _merge_key(lines: list[str], rng: random.Random) -> list[str]:
    lines = _insert_site_key(lines, rng, "vars: &m {a: 1, b: [x]}")
    return _insert_site_key(lines, rng, rng.choice(("labels: {<<: *m}", "vars: {<<: *m, a: 2}", "<<: *m")))


def _unicode(lines: list[str], rng: random.Random) -> list[str]:
    if lines:
        i = _line(lines, rng)
        at = rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:at] + rng.choice(CHARACTERS) + lines[i][at:]
    return lines


def _char_edit(lines: list[str], rng: random.Random) -> list[str]:
    if lines:
        i = _line(lines, rng)
        if lines[i]:
            at = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:at] + lines[i][at + 1 :]
    return lines


def _truncate(lines: list[str], rng: random.Random) -> list[str]:
    text = "".join(lines)
    cut = rng.choice((0, 1, rng.randrange(len(text) + 1)))
    return text[:cut].splitlines(keepends=True)


def _markers(lines: list[str], rng: random.Random) -> list[str]:
    marker = rng.choice(("---\n", "...\n", "--- |\n", "%YAML 1.1\n---\n", "%YAML 2.0\n---\n", "%TAG ! tag:x,1:\n---\n"))
    i = rng.choice((0, _line(lines, rng), len(lines)))
    lines[i:i] = [marker]
    return lines


def _reshape(lines: list[str], rng: random.Random) -> list[str]:
    how = rng.choice(("list", "scalar", "nested", "empty-list", "null"))
    if how == "list":
        return ["- " + line if n == 0 else "  " + line for n, line in enumerate(lines)]
    if how == "nested":
        return ["wrapped:\n", *("  " + line for line in lines)]
    return [{"scalar": "just text\n", "empty-list": "[]\n", "null": "null\n"}[how]]


def _option(lines: list[str], rng: random.Random) -> list[str]:
    lines.insert(rng.choice((0, len(lines), _line(lines, rng))), rng.choice(OPTIONS) + "\n")
    return lines


# Mutations by name, each with its weight: structural damage mostly, and enough valid data (valid-vars,
# merge keys, anchors) that a good share of cases reach the --list path.
MUTATIONS: dict[str, Mutation] = {
    "delete": _delete,
    "duplicate": _duplicate,
    "swap": _swap,
    "reindent": _reindent,
    "odd-scalar": _odd_scalar,
    "tag": _tag,
    "anchor-alias": _anchor_alias,
    "recursive-alias": _recursive_alias,
    "deep": _deep,
    "vars-value": _vars_value,
    "alias-bomb": _alias_bomb,
    "merge-key": _merge_key,
    "unicode": _unicode,
    "char": _char_edit,
    "truncate": _truncate,
    "markers": _markers,
    "reshape": _reshape,
    "option": _option,
    "valid-vars": _valid_vars,
}
WEIGHTS: dict[str, int] = {name: 1 for name in MUTATIONS} | {"valid-vars": 6, "odd-scalar": 2, "vars-value": 2}


class Corpus:
    """A private copy of the repository's fleets; each case mutates one file and puts it back."""

    def __init__(self, work: Path) -> None:
        shutil.copytree(REPO / "inventories" / "example", work / "example")
        (work / "lab").mkdir()
        shutil.copy(REPO / "inventories" / "lab" / "lab.fleet.yml", work / "lab" / "lab.fleet.yml")
        example = work / "example" / "example.fleet.yml"
        lab = work / "lab" / "lab.fleet.yml"
        sites = sorted((work / "example" / ".sites").iterdir())
        # (file to mutate, fleet file to run, weight): the inline lab fleet is cheapest to list, the example
        # fleet file holds the overlays, the site files are what scripts write (one is JSON)
        self.targets: list[tuple[Path, Path]] = [(lab, lab)] * 6 + [(example, example)] * 2
        self.targets += [(site, example) for site in sites if site.suffix == ".json"] * 2
        self.targets += [(site, example) for site in sites]
        self.originals = {path: path.read_bytes() for path, _fleet in self.targets}


class Outcome(t.NamedTuple):
    index: int
    mutations: tuple[str, ...]
    target: str
    kind: str  # refused, listed, crash (the plugin), list-crash (ansible-inventory --list)
    detail: str
    seconds: float


def run_case(corpus: Corpus, seed: int, index: int, keep: Path | None = None) -> Outcome:
    rng = random.Random(f"{seed}:{index}")
    target, fleet = rng.choice(corpus.targets)
    order = sorted(MUTATIONS)
    names = tuple(rng.choices(order, [WEIGHTS[n] for n in order], k=rng.choice((1, 1, 2, 3))))
    lines = corpus.originals[target].decode("utf-8").splitlines(keepends=True)
    for name in names:
        lines = MUTATIONS[name](lines, rng)
    data = "".join(lines).encode("utf-8", "surrogatepass")
    if rng.random() < 0.03:  # bytes that are not UTF-8 at all
        at = rng.randrange(len(data) + 1)
        data = data[:at] + rng.choice((b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80")) + data[at:]
    target.write_bytes(data)
    if keep is not None:
        (keep / f"case-{index}{target.suffix}").write_bytes(data)
    start = time.monotonic()
    try:
        try:
            run_plugin(fleet)
        except AnsibleParserError as exc:
            message = str(exc)
            if not message.strip() or "Traceback" in message:
                return Outcome(index, names, target.name, "crash", f"unclean message: {message!r}", 0.0)
            return Outcome(index, names, target.name, "refused", message, time.monotonic() - start)
        except Exception:  # every other escape is what the fuzzer looks for
            return Outcome(index, names, target.name, "crash", traceback.format_exc(), time.monotonic() - start)
        try:
            json.loads(list_inventory(fleet))
        except Exception:
            return Outcome(index, names, target.name, "list-crash", traceback.format_exc(), time.monotonic() - start)
        return Outcome(index, names, target.name, "listed", "", time.monotonic() - start)
    finally:
        target.write_bytes(corpus.originals[target])


def _category(message: str) -> str:
    """A refusal's first problem without file, site, node, values and positions: what the fuzzer ran into."""
    first = message.splitlines()[1] if "\n" in message else message
    first = re.sub(r"^\s*- [^:]*: ", "", first)  # file, site, node
    key, _sep, what = first.partition(": ")
    key = re.sub(r"\[[0-9]+\]", "[]", key)
    what = re.split(r" at line| \(|;|, allowed|: |'", what, maxsplit=1)[0]
    return re.sub(r"[0-9]+", "N", f"{key}: {what}")[:70]


def run(cases: int, seed: int = SEED, start: int = 0, keep: Path | None = None) -> dict[str, t.Any]:
    """Run cases start..start+cases-1; the report counts outcomes and holds every failure."""
    begin = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fleet-fuzz-") as tmp:
        corpus = Corpus(Path(tmp))
        outcomes = [run_case(corpus, seed, index, keep) for index in range(start, start + cases)]
    kinds = collections.Counter(o.kind for o in outcomes)
    refusals = collections.Counter(_category(o.detail) for o in outcomes if o.kind == "refused")
    slowest = max(outcomes, key=lambda o: o.seconds)
    return {
        "cases": cases,
        "seed": seed,
        "seconds": time.monotonic() - begin,
        "outcomes": dict(kinds),
        "refusals": refusals.most_common(12),
        "slowest": (slowest.index, round(slowest.seconds, 2), slowest.mutations),
        "failures": [o for o in outcomes if o.kind not in ("refused", "listed")],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--start", type=int, default=0, help="first case number")
    parser.add_argument("--case", type=int, help="replay this one case and show its outcome in full")
    parser.add_argument("--keep", help="write every mutated file to this directory")
    args = parser.parse_args()
    keep = Path(args.keep) if args.keep else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    start, cases = (args.case, 1) if args.case is not None else (args.start, args.cases)
    # The plugin's and Ansible's warnings go to stderr; the report is what matters here.
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    os.dup2(devnull, 2)
    try:
        report = run(cases, args.seed, start, keep)
    finally:
        os.dup2(saved, 2)
    if args.case is not None:
        with tempfile.TemporaryDirectory() as tmp:
            outcome = run_case(Corpus(Path(tmp)), args.seed, args.case)
        print(f"case {outcome.index}: {outcome.kind} ({', '.join(outcome.mutations)} on {outcome.target})")
        print(outcome.detail)
    print(
        f"fleet fuzz: {report['cases']} cases (seed {report['seed']}, from case {start}) in {report['seconds']:.0f} s"
    )
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(report["outcomes"].items())))
    print("most frequent refusals:")
    for category, count in report["refusals"]:
        print(f"  {count:6d}  {category}")
    print(f"slowest case: {report['slowest'][0]} ({report['slowest'][1]} s, {', '.join(report['slowest'][2])})")
    for failure in report["failures"]:
        print(f"\nFAILED case {failure.index} ({failure.kind}; {', '.join(failure.mutations)} on {failure.target}):")
        print(failure.detail)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
