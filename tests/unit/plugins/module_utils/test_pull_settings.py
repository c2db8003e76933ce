# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pull-mode settings checked on the controller (plugin_utils/pull_settings.py, filter pull_problems)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.filter import pull_problems as flt
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.pull_settings import pull_problems

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake"


@pytest.fixture
def good(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "requirements.txt").write_text("ansible-core==2.19.14 --hash=sha256:" + "a" * 64 + "\n")
    return {
        "edgefleet_pull_mode": True,
        "edgefleet_cluster": "shop-17",
        "edgefleet_cluster_servers": ["shop-17-a"],
        "edgefleet_cluster_agents": [],
        "edgefleet_pull_repo": "ssh://git@git.example.invalid/fleet/site.git",
        "edgefleet_pull_known_hosts": "git.example.invalid " + KEY,
        "edgefleet_pull_inventory": "inventory/site.fleet.yml",
        "edgefleet_pull_allowed_signers": f"admin@example.invalid {KEY}",
        "edgefleet_pull_wheelhouse": str(tmp_path),
    }


def test_good_settings_and_pull_mode_off_have_no_problem(good: dict[str, Any]) -> None:
    assert pull_problems(good, "shop-17-a", "sites/shop.fleet.yml") == []
    assert pull_problems({"edgefleet_pull_mode": False, "edgefleet_cluster_agents": ["x"]}, "h") == []
    assert pull_problems({}, "h") == []


def test_a_multi_node_cluster_is_refused_naming_file_host_key_and_what_is_allowed(good: dict[str, Any]) -> None:
    good.update(edgefleet_cluster_servers=["shop-17-a"], edgefleet_cluster_agents=["shop-17-b"])
    (problem,) = pull_problems(good, "shop-17-a", "sites/shop.fleet.yml")
    assert problem.startswith("sites/shop.fleet.yml, host shop-17-a: edgefleet_pull_mode:")
    assert "cluster shop-17 has servers [shop-17-a] and agents [shop-17-b]" in problem
    assert "only for a cluster whose one node is its server" in problem


def test_every_problem_is_listed_at_once(good: dict[str, Any]) -> None:
    good.update(
        edgefleet_pull_repo="https://user:secret@git.example.invalid/site.git",
        edgefleet_pull_inventory="/etc/fleet.yml",
        edgefleet_pull_allowed_signers="admin@example.invalid not-a-key",
        edgefleet_pull_interval="soon",
        edgefleet_pull_backoff_base=0,
        edgefleet_pull_wheelhouse="",
    )
    problems = pull_problems(good, "shop-17-a")
    keys = [p.split(": ")[1] for p in problems]
    assert keys == [
        "edgefleet_pull_repo",
        "edgefleet_pull_inventory",
        "edgefleet_pull_allowed_signers",
        "edgefleet_pull_interval",
        "edgefleet_pull_backoff_base",
        "edgefleet_pull_wheelhouse",
    ]
    assert "secret" not in problems[0]  # the password in the URL is never echoed


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("edgefleet_pull_mode", "yes", "allowed: true or false"),
        ("edgefleet_pull_repo", "", "allowed: a Git URL"),
        ("edgefleet_pull_known_hosts", "", "known_hosts format"),
        ("edgefleet_pull_allowed_signers", "", "is empty"),
        ("edgefleet_pull_allowed_signers", KEY, "is not 'principals [options] keytype key'"),
        ("edgefleet_pull_branch", "../main", "a Git branch name"),
        ("edgefleet_pull_inventory", "../inventory", "relative, no '..'"),
        ("edgefleet_pull_backoff_max", True, "a whole number of seconds"),
    ],
)
def test_each_bad_value_is_named(good: dict[str, Any], key: str, value: Any, needle: str) -> None:
    good[key] = value
    problems = pull_problems(good, "shop-17-a")
    assert len(problems) == 1 and key in problems[0] and needle in problems[0], problems


def test_an_unpinned_wheelhouse_is_refused_on_the_controller_only(good: dict[str, Any]) -> None:
    Path(good["edgefleet_pull_wheelhouse"], "requirements.txt").write_text("ansible-core==2.19.14\n")
    (problem,) = pull_problems(good, "shop-17-a")
    assert "lines without --hash=sha256: ansible-core==2.19.14" in problem
    assert pull_problems(good, "shop-17-a", local_run=True) == []


def test_git_urls_without_ssh_need_no_known_hosts(good: dict[str, Any]) -> None:
    good.update(edgefleet_pull_repo="git://10.0.0.2/site.git", edgefleet_pull_known_hosts="")
    assert pull_problems(good, "shop-17-a") == []


def test_the_filter_is_the_plugin_utils_function() -> None:
    assert flt.FilterModule().filters() == {"pull_problems": pull_problems}
