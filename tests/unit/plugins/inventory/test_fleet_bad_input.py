# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad registry input, through the real loader and plugin: a clean error naming file, site, node and key
(and line), or an inventory that `ansible-inventory --list` prints. Never a crash, never a wrong inventory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
from ansible.errors import AnsibleParserError
from fleet_helpers import REPO, list_inventory, run_plugin

HEAD = """\
plugin: edgefleet.k8s.fleet
defaults:
  region: eu-west
  model: rpi5
  channel: stable
  version: v1.31.4+k3s1
  gitops: {engine: none}
"""
SITE = """\
sites:
  - name: ber-01
    nodes:
      - {name: ber-01-s1, address: 192.0.2.10, role: server}
"""


def fleet(tmp_path: Path, text: str, name: str = "t.fleet.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def site_with(**lines: str) -> str:
    """The one-site fleet with extra site keys given as YAML text (indented under the site)."""
    extra = "".join(f"    {key}: {value}\n" for key, value in lines.items())
    return HEAD + SITE + extra


def refused(path: Path) -> str:
    """The plugin's message; anything but AnsibleParserError (a crash) fails the test."""
    with pytest.raises(AnsibleParserError) as info:
        run_plugin(path)
    message = str(info.value)
    assert message and "Traceback" not in message
    return message


def listed(path: Path) -> dict[str, t.Any]:
    """The plugin accepts the fleet, and `ansible-inventory --list` prints it."""
    run_plugin(path)
    data: dict[str, t.Any] = json.loads(list_inventory(path))
    return data


# --- errors counted over the whole registry -------------------------------------------------------


def test_invalid_default_inherited_by_sites_is_reported_once_with_the_other_errors(tmp_path: Path) -> None:
    text = HEAD.replace("region: eu-west", "region: EU") + SITE
    text += "  - name: par-01\n    datastore: dqlite\n"
    text += "    nodes:\n      - {name: par-01-s1, address: 192.0.2.20, role: server}\n"
    message = refused(fleet(tmp_path, text))
    assert "defaults.region: found 'EU'" in message
    assert "sites[1].datastore: found 'dqlite'" in message
    assert message.count("defaults.region") == 1 and "2 problem(s)" in message, message  # no KeyError, no repeat


@pytest.mark.parametrize(
    ("default", "site_key"),
    [
        ("datastore: dqlite", "datastore: etcd"),  # the site's own valid value wins over an invalid default
        ("gitops: {engine: fluxcd}", "gitops: {engine: none}"),
        ("distribution: rke2", "distribution: k3s"),
    ],
)
def test_invalid_default_is_one_error_and_a_site_overriding_it_is_checked_on_its_own(
    tmp_path: Path, default: str, site_key: str
) -> None:
    head = HEAD.replace("  gitops: {engine: none}\n", "") if default.startswith("gitops") else HEAD
    text = head + f"  {default}\n" + SITE + f"    {site_key}\n"
    text += "  - name: par-01\n    nodes:\n      - {name: par-01-s1, address: 192.0.2.20, role: server}\n"
    message = refused(fleet(tmp_path, text))
    assert "1 problem(s)" in message and f"defaults.{default.split(':')[0]}" in message, message


# --- parsing that cannot escape -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "&loop {again: *loop}",  # a mapping holding an alias to itself
        "&loop [*loop]",  # a list holding itself
        "&loop {a: [1, {b: *loop}]}",
    ],
)
def test_recursive_alias_is_a_clean_error_with_its_line(tmp_path: Path, value: str) -> None:
    message = refused(fleet(tmp_path, site_with(vars=f"{{deep: {value}}}")))
    assert "recursive alias" in message and "t.fleet.yml" in message and "at line 12" in message, message


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    bomb = ['    vars:\n      l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n']
    bomb += [f"      l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10)]
    start = time.monotonic()
    message = refused(fleet(tmp_path, HEAD + SITE + "".join(bomb)))
    assert time.monotonic() - start < 10
    assert "aliases that expand it by" in message and "max_alias_nodes" in message, message


def test_aliases_and_merge_keys_within_limits_are_fine(tmp_path: Path) -> None:
    text = HEAD + "  vars: &common {ntp: [ntp1, ntp2]}\n" + SITE + "    vars:\n      <<: *common\n      ntp: [ntp3]\n"
    data = listed(fleet(tmp_path, text))
    assert data["_meta"]["hostvars"]["ber-01-s1"]["ntp"] == ["ntp3"]


@pytest.mark.parametrize("depth", [300, 1200])
def test_deep_nesting_is_refused_at_the_limit_with_its_line(tmp_path: Path, depth: int) -> None:
    message = refused(fleet(tmp_path, site_with(vars="{deep: " + "[" * depth + "]" * depth + "}")))
    assert "t.fleet.yml" in message and "line 12" in message, message
    assert "nested more than 64 levels" in message or "maximum nesting depth" in message, message


def test_nesting_within_the_limit_is_listed(tmp_path: Path) -> None:
    data = listed(fleet(tmp_path, site_with(vars="{deep: " + "[" * 55 + "]" * 55 + "}")))
    assert "deep" in data["_meta"]["hostvars"]["ber-01-s1"]


def test_deep_json_source_is_refused(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text('{"name": "x", "nodes": ' + "[" * 100 + "]" * 100 + "}")
    (tmp_path / "deeper.json").write_text("[" * 100_000 + "]" * 100_000)
    message = refused(fleet(tmp_path, HEAD + "sources: [deep.json, deeper.json]\n"))
    assert "deep.json: (file): is nested more than 64 levels deep at nodes" in message, message
    assert "deeper.json: (file)" in message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("!!int twelve", "cannot read 'twelve' as tag:yaml.org,2002:int"),
        ("!!float x", "as tag:yaml.org,2002:float"),
        ("!!bool maybe", "as tag:yaml.org,2002:bool"),
        ("!!timestamp 2024-13-45", "as tag:yaml.org,2002:timestamp"),
        ("!!timestamp never", "as tag:yaml.org,2002:timestamp"),
        ("!!int " + "9" * 5000, "as tag:yaml.org,2002:int"),
        ("!!python/object/apply:os.system [id]", "could not determine a constructor"),
        ("!vault x", "could not determine a constructor"),
    ],
)
def test_every_yaml_error_class_is_a_clean_error_with_its_line(tmp_path: Path, value: str, fragment: str) -> None:
    message = refused(fleet(tmp_path, site_with(vars=f"{{x: {value}}}")))
    assert "is not valid YAML at line 12" in message and fragment in message, message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"name": 1' + "2" * 5000 + "}", "cannot be read as JSON"),  # longer than Python converts
        ('{"name": "x",}', "is not valid JSON at line 1, column 14"),
        (b'{"name": "\xff"}', "not UTF-8 text"),
    ],
)
def test_every_json_error_class_is_a_clean_error(tmp_path: Path, text: str | bytes, fragment: str) -> None:
    path = tmp_path / "site.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    message = refused(fleet(tmp_path, HEAD + "sources: [site.json]\n"))
    assert "site.json: (file)" in message and fragment in message, message


def test_duplicate_keys_are_refused_in_yaml_and_json_with_lines(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(
        "name: ams-01\nnodes:\n  - {name: ams-01-s1, address: 192.0.2.30, role: server, role: agent}\nname: ams-02\n"
    )
    (tmp_path / "b.json").write_text(
        '{"name": "bos-01",\n "nodes": [{"name": "bos-01-s1", "address": "192.0.2.40",\n'
        '  "role": "server", "role": "agent"}]}'
    )
    text = HEAD + "  region: us-east\n" + "sources: [a.yml, b.json]\n"
    message = refused(fleet(tmp_path, text))
    assert "t.fleet.yml: (file): duplicate key 'region' at line 8, column 3 (first at line 3, column 3)" in message
    # the fleet file's own problems come first; fix them and the sources' are listed, all of them
    message = refused(fleet(tmp_path, HEAD + "sources: [a.yml, b.json]\n"))
    assert "a.yml: (file): duplicate key 'role' at line 3" in message, message
    assert "a.yml: (file): duplicate key 'name' at line 4, column 1 (first at line 1, column 1)" in message
    assert "b.json: (file): duplicate key 'role' in the object starting at line 2" in message, message


@pytest.mark.parametrize(
    "value",
    [
        "!!binary aGVsbG8=",
        "!!set {a, b}",
        "!!omap [{a: 1}]",
        "!!pairs [{a: 1}]",
        "2024-01-01",
        "2024-01-01T10:00:00Z",
        ".nan",
        "-.inf",
        "{1: one}",
        "0x" + "f" * 40,
    ],
)
def test_vars_hold_only_json_data(tmp_path: Path, value: str) -> None:
    message = refused(fleet(tmp_path, site_with(vars=f"{{x: {{y: [{value}]}}}}")))
    assert "site 'ber-01': sites[0].vars.x.y[0]" in message, message


def test_lone_surrogate_in_json_vars_is_refused(tmp_path: Path) -> None:
    site = {
        "name": "ber-01",
        "vars": {"x": "\ud800"},
        "nodes": [{"name": "n1", "address": "192.0.2.1", "role": "server"}],
    }
    (tmp_path / "s.json").write_text(json.dumps(site))
    message = refused(fleet(tmp_path, HEAD + "sources: [s.json]\n"))
    assert "sites" not in message and "vars.x: found a string holding U+D800" in message, message


def test_json_safe_vars_are_listed(tmp_path: Path) -> None:
    data = listed(
        fleet(tmp_path, site_with(vars="{x: [1, 2.5, true, null, 'text', {k: v}], big: 18446744073709551615}"))
    )
    assert data["_meta"]["hostvars"]["ber-01-s1"]["big"] == 2**64 - 1


# --- names and groups -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["all", "ungrouped", "edgefleet", "k3s", "k0s", "servers", "agents"])
def test_node_named_like_a_group_is_refused(tmp_path: Path, name: str) -> None:
    message = refused(fleet(tmp_path, HEAD + SITE.replace("name: ber-01-s1", f"name: {name}")))
    assert f"sites[0].nodes[0].name: found {name!r}, allowed: a node name that is not a group name" in message
    assert "reserved: all, ungrouped, edgefleet, k3s, k0s, servers, agents, k3s_servers" in message
    assert "cluster_*, region_*, model_*, channel_*" in message


def test_node_named_like_an_extra_group_is_refused(tmp_path: Path) -> None:
    text = HEAD + SITE + "    groups: [canary]\n"
    text += "  - name: par-01\n    nodes:\n      - {name: canary, address: 192.0.2.20, role: server}\n"
    message = refused(fleet(tmp_path, text))
    assert "site 'par-01', node 'canary': sites[1].nodes[0].name: found 'canary', which is also a group" in message


@pytest.mark.parametrize(
    "group",
    ["k0s", "k3s", "servers", "agents", "edgefleet", "all", "ungrouped", "k3s-servers", "cluster-x", "region-eu"],
)
def test_extra_groups_may_not_name_the_plugins_groups(tmp_path: Path, group: str) -> None:
    message = refused(fleet(tmp_path, site_with(groups=f"[canary, {group}]")))
    assert f"sites[0].groups[1]: found {group!r}" in message and "a group the fleet plugin publishes" in message
    assert "reserved: all, ungrouped, edgefleet, k3s, k0s, servers, agents" in message


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("sites[0].name", HEAD + SITE.replace("name: ber-01\n", 'name: "ber-01\\n"\n')),
        ("sites[0].nodes[0].name", HEAD + SITE.replace("name: ber-01-s1", 'name: "ber-01-s1\\n"')),
        ("sites[0].nodes[0].address", HEAD + SITE.replace("address: 192.0.2.10", 'address: "node.example\\n"')),
        ("sites[0].region", site_with(region='"eu\\n"')),
        ("sites[0].version", site_with(version='"v1.31.4+k3s1\\n"')),
        ("sites[0].groups[0]", site_with(groups='["canary\\n"]')),
        ("sites[0].labels.ring", site_with(labels='{ring: "pilot\\n"}')),
        ("sites[0].vars.x", site_with(vars='{"x\\n": 1}')),
        ("overlays.rules[0].overlay", HEAD + 'overlays: {rules: [{slot: base, overlay: "hardening\\n"}]}\n' + SITE),
    ],
)
def test_names_are_matched_in_full(tmp_path: Path, where: str, text: str) -> None:
    message = refused(fleet(tmp_path, text))
    assert where in message and "U+000A" in message, message


def test_homoglyph_and_invisible_characters_are_pointed_at(tmp_path: Path) -> None:
    text = HEAD + SITE.replace("name: ber-01\n", "name: b\u0435r-01\n").replace("ber-01-s1", "ber\u200b-01-s1")
    message = refused(fleet(tmp_path, text))
    assert "(U+0435 CYRILLIC SMALL LETTER IE at position 2)" in message, message
    assert "(U+200B ZERO WIDTH SPACE at position 4)" in message, message


# --- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "secret"),
    [
        ("repo", "https://ghp_abcdef0123456789@github.com/org/fleet.git", "ghp_abcdef0123456789"),
        ("repo", "https://deploy:hunter2@git.example.org/fleet.git", "hunter2"),
        ("repo", "http://oauth2:glpat-xyz@gitlab.example.org/fleet.git", "glpat-xyz"),
        ("repo", "https://git.example.org/fleet.git?access_token=s3cr3t", "s3cr3t"),
        ("repo", "https://git.example.org/fleet.git?private_token=s3cr3t&ref=main", "s3cr3t"),
        ("repo", "https://bucket.example.org/fleet.git?X-Amz-Signature=abc123", "abc123"),
        ("repo", "https://git.example.org/fleet.git?apiKey=abc123", "abc123"),
        ("repo", "ssh://git:hunter2@git.example.org/fleet.git", "hunter2"),
        ("endpoint", "postgres://k3s:hunter2@db.example.org/k3s", "hunter2"),
        ("endpoint", "mysql://k3s:hunter2@tcp(db.example.org:3306)/k3s", "hunter2"),
        ("endpoint", "postgres://db.example.org/k3s?sslmode=require&password=hunter2", "hunter2"),
        ("endpoint", "host=db user=k3s password=hunter2 dbname=k3s", "hunter2"),
        ("endpoint", "nats://s3cr3ttoken@nats.example.org:4222", "s3cr3ttoken"),
        ("endpoint", "https://s3cr3ttoken@etcd.example.org:2379", "s3cr3ttoken"),
    ],
)
def test_credentials_in_any_url_form_are_refused_and_never_echoed(
    tmp_path: Path, key: str, value: str, secret: str
) -> None:
    if key == "repo":
        text = site_with(gitops=json.dumps({"engine": "flux", "repo": value}))
    else:
        text = site_with(datastore="external", datastore_endpoint=json.dumps(value))
    message = refused(fleet(tmp_path, text))
    assert ("gitops.repo" if key == "repo" else "datastore_endpoint") in message and "credentials" in message, message
    assert secret not in message, message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("repo", "ssh://git@git.example.org/fleet.git"),
        ("repo", "git@github.com:org/fleet.git"),
        ("repo", "https://git.example.org/fleet.git?ref=main"),
        ("endpoint", "postgres://k3s@db.example.org/k3s?sslmode=require"),
        ("endpoint", "https://etcd.example.org:2379"),
    ],
)
def test_urls_without_credentials_are_accepted(tmp_path: Path, key: str, value: str) -> None:
    if key == "repo":
        text = site_with(gitops=json.dumps({"engine": "flux", "repo": value}))
    else:
        text = site_with(datastore="external", datastore_endpoint=json.dumps(value))
    run_plugin(fleet(tmp_path, text))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("branch", "--upload-pack=touch /tmp/x"),
        ("branch", "main\n"),
        ("branch", "a..b"),
        ("repo", "--upload-pack=touch /tmp/x"),
        ("repo", "https://git.example.org/x.git\n  secretRef: {name: x}"),
    ],
)
def test_git_options_and_control_characters_cannot_ride_in(tmp_path: Path, key: str, value: str) -> None:
    gitops = {"engine": "flux", "repo": "https://git.example.org/fleet.git", key: value}
    message = refused(fleet(tmp_path, site_with(gitops=json.dumps(gitops))))
    assert f"sites[0].gitops.{key}: found" in message, message


# --- empty input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "null\n", "- a\n- b\n", "just text\n", "42\n"])
def test_fleet_file_that_is_empty_or_not_a_mapping_is_an_error_naming_it(tmp_path: Path, text: str) -> None:
    message = refused(fleet(tmp_path, text))
    assert "t.fleet.yml: (" in message and "plugin: edgefleet.k8s.fleet" in message, message


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "null\n", "~\n", "[]\n", "{}\n", "sites: []\n"])
def test_empty_source_is_an_error_unless_allowed(tmp_path: Path, text: str) -> None:
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "new.yml").write_text(text)
    message = refused(fleet(tmp_path, HEAD + SITE + "sources: [sites/]\n"))
    assert "new.yml: (file): is empty" in message and "allow_empty" in message, message
    run_plugin(fleet(tmp_path, HEAD + SITE + "sources: [{path: sites/, allow_empty: true}]\n"))
    run_plugin(fleet(tmp_path, HEAD + SITE + "allow_empty: true\nsources: [sites/]\n"))


def test_empty_directory_and_no_sites_only_when_allowed(tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    message = refused(fleet(tmp_path, HEAD + "sources: [sites/]\n"))
    assert "holds no *.yml" in message
    inventory = run_plugin(fleet(tmp_path, HEAD + "allow_empty: true\nsources: [sites/]\n"))
    assert not inventory.hosts
    message = refused(fleet(tmp_path, HEAD + "sources: [{path: sites/, allow_empty: yes please}]\n"))
    assert "sources[0].allow_empty: found 'yes please', allowed: true, false" in message


# --- limits are options ---------------------------------------------------------------------------


def test_limits_are_configurable_and_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "site.yml").write_text(
        "name: ber-01\nvars: {deep: "
        + "[" * 80
        + "]" * 80
        + "}\nnodes: [{name: n1, address: 192.0.2.1, role: server}]\n"
    )
    message = refused(fleet(tmp_path, HEAD + "sources: [site.yml]\n"))
    assert "site.yml: (file): is nested more than 64 levels deep at line 2" in message
    run_plugin(fleet(tmp_path, HEAD + "max_depth: 100\nsources: [site.yml]\n"))
    message = refused(fleet(tmp_path, HEAD + "max_depth: 100000\nsources: [site.yml]\n"))
    assert "max_depth: found 100000 (int), allowed: an integer from 2 to 128" in message
    message = refused(fleet(tmp_path, HEAD + "max_file_size: 100\nsources: [site.yml]\n"))
    assert "site.yml: (file): is larger than 100 bytes" in message
    monkeypatch.setenv("EDGEFLEET_FLEET_MAX_FILE_SIZE", "50")  # ansible.cfg/environment bound the fleet file too
    message = refused(fleet(tmp_path, HEAD + "sources: [site.yml]\n"))
    assert "t.fleet.yml: (file): is larger than 50 bytes" in message


# --- one message per failure ----------------------------------------------------------------------


def _ansible_inventory(path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    binary = Path(sys.executable).with_name("ansible-inventory")
    return subprocess.run(
        [str(binary), "-i", str(path), "--list"], capture_output=True, text=True, env=env, cwd=REPO, check=False
    )


def test_a_rejected_fleet_file_shows_the_fleet_message_once_with_its_line(tmp_path: Path) -> None:
    result = _ansible_inventory(fleet(tmp_path, HEAD + SITE + "    labels: {ring: [\n"))
    assert result.returncode != 0
    assert result.stderr.count("is not valid YAML at line 13") == 1, result.stderr
    assert result.stderr.count("edgefleet.k8s.plugins.inventory.fleet") == 1, result.stderr
    assert "ansible.builtin.plugins.inventory.auto" not in result.stderr
    result = _ansible_inventory(fleet(tmp_path, HEAD + SITE.replace("role: server", "role: master")))
    assert result.stderr.count("sites[0].nodes[0].role: found 'master'") == 1, result.stderr


def test_an_empty_fleet_file_fails_the_run(tmp_path: Path) -> None:
    result = _ansible_inventory(fleet(tmp_path, ""))
    assert result.returncode != 0, result.stdout
    assert "t.fleet.yml: (file): is empty" in result.stderr, result.stderr
