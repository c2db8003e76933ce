# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A registry file without anchors, aliases, merge keys or explicit tags is built by the plugin's tree
constructor, not by PyYAML's own construction: it must give the same data and the same duplicate-key
problems, and hand anything else back to the loader."""

from __future__ import annotations

import typing as t

import fleet_helpers  # before the collection's modules: it sets up the collection loader
import pytest
from ansible_collections.edgefleet.k8s.plugins.plugin_utils import fleet_sources
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_problems import Problems

PLAIN = b"""\
defaults: {distribution: k3s, version: v1.31.4+k3s1, gitops: {engine: flux}}
sites:
  - name: ber-01
    region: eu-central
    lat: 52.52
    ok: true
    nothing: null
    empty: ~
    when: 2026-12-07
    port: 0o17
    hex: 0x1f
    big: 123456789012345678901234567890
    quoted: "042"
    nodes:
      - {name: ber-01-a1, address: 10.0.0.11, role: server}
      - name: ber-01-a2
        address: 10.0.0.12
        labels: {"1": one, 2: two, null: none, 3.5: x}
    vars: {motd: "{{ inventory_hostname }}", list: [1, [2, [3, {a: b}]]]}
"""


def _slow(raw: bytes) -> tuple[t.Any, list[t.Any]]:
    loader = fleet_sources._Loader(raw, merges=False)
    try:
        data = loader.construct_document(loader.get_single_node())
        return data, [(k, m.line, f.line) for k, m, f in loader.duplicates]
    finally:
        loader.dispose()


def _fast(raw: bytes) -> tuple[t.Any, list[t.Any]]:
    loader = fleet_sources._Loader(raw, merges=False)
    try:
        data = fleet_sources._construct_tree(loader, loader.get_single_node())
        return data, [(k, m.line, f.line) for k, m, f in loader.duplicates]
    finally:
        loader.dispose()


def test_plain_tree_gives_the_loaders_data() -> None:
    assert fleet_sources._plain(PLAIN)
    fast, slow = _fast(PLAIN), _slow(PLAIN)
    assert fast == slow
    assert type(fast[0]["sites"][0]["when"]) is type(slow[0]["sites"][0]["when"])  # a date, not a string
    assert fast[0]["sites"][0]["big"] == 123456789012345678901234567890


def test_the_shipped_fleet_files_build_the_same_both_ways() -> None:
    files = sorted((fleet_helpers.REPO / "inventories").rglob("*.fleet.yml"))
    assert files
    for path in files:
        raw = path.read_bytes()
        if fleet_sources._plain(raw):
            assert _fast(raw) == _slow(raw), path


def test_duplicate_keys_are_recorded_like_the_loader() -> None:
    raw = b"a: 1\nb:\n  c: 1\n  c: 2\n  d: {e: 1, e: 2}\na: 3\n"
    fast, slow = _fast(raw), _slow(raw)
    assert fast[0] == slow[0] == {"a": 3, "b": {"c": 2, "d": {"e": 2}}}
    assert sorted(fast[1]) == sorted(slow[1]) and len(fast[1]) == 3


@pytest.mark.parametrize(
    "raw",
    [
        b"a: !!binary aGVsbG8=\n",  # an explicit tag
        b"a: &x {b: 1}\nc: *x\n",  # anchor and alias
        b"base: {b: 1}\nc: {<<: {b: 2}}\n",  # merge key
        b"? [1, 2]\n: v\n",  # a key that is a collection
    ],
)
def test_anything_else_takes_the_loaders_path(raw: bytes) -> None:
    if fleet_sources._plain(raw):  # the text looks plain, but a node is not: the tree constructor gives it back
        loader = fleet_sources._Loader(raw, merges=False)
        assert fleet_sources._construct_tree(loader, loader.get_single_node()) is fleet_sources._NOT_PLAIN
    problems = Problems()
    data = fleet_sources._load_yaml("t.yml", raw, problems, fleet_sources.Limits())
    if raw.startswith(b"? "):
        assert data is None and "unhashable" in " ".join(map(str, problems.errors)), problems.errors
    elif b"<<" in raw:
        assert data == {"base": {"b": 1}, "c": {"b": 2}}
    else:
        assert data == _slow(raw)[0] and not problems.errors


def test_a_bad_scalar_is_a_clean_problem_with_its_line() -> None:
    problems = Problems()
    assert fleet_sources._load_yaml("t.yml", b"a: 1\nb: 2026-13-45\n", problems, fleet_sources.Limits()) is None
    assert "line 2" in " ".join(map(str, problems.errors)), problems.errors
