# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release channels in the fleet registry: `defaults.channels` gives the version each channel runs, per
distribution, so moving a channel moves every site on it (and `site.yml` then restarts each on its new binary)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from ansible.errors import AnsibleParserError
from fleet_helpers import merged_vars, run_plugin

CHANNELS = """\
plugin: edgefleet.k8s.fleet
defaults:
  region: eu-west
  model: rpi5
  channel: stable
  gitops: {engine: none}
  channels:
    stable: {k3s: 'v1.31.4+k3s1', k0s: 'v1.31.4+k0s.0'}
    beta: {k3s: 'v1.32.1+k3s1'}
sites:
"""


def site(name: str, address: str, extra: str = "") -> str:
    return f"  - name: {name}\n{extra}    nodes:\n      - {{name: {name}-s1, address: {address}, role: server}}\n"


def versions(path: Path) -> dict[str, t.Any]:
    inventory = run_plugin(path)
    return {h: merged_vars(inventory.get_host(h)).get("edgefleet_version") for h in inventory.hosts}


def refused(path: Path) -> str:
    with pytest.raises(AnsibleParserError) as info:
        run_plugin(path)
    message = str(info.value)
    assert "Traceback" not in message
    return message


def test_each_site_runs_its_channels_version_unless_it_names_its_own(tmp_path: Path) -> None:
    text = CHANNELS + site("ber-01", "192.0.2.10")
    text += site("ber-02", "192.0.2.11", "    channel: beta\n")
    text += site("ber-03", "192.0.2.12", "    distribution: k0s\n")
    text += site("ber-04", "192.0.2.13", "    channel: beta\n    version: 'v1.32.0+k3s1'\n")
    path = tmp_path / "c.fleet.yml"
    path.write_text(text)
    assert versions(path) == {
        "ber-01-s1": "v1.31.4+k3s1",
        "ber-02-s1": "v1.32.1+k3s1",
        "ber-03-s1": "v1.31.4+k0s.0",
        "ber-04-s1": "v1.32.0+k3s1",  # a site's own version wins over its channel
    }
    # Moving the channel moves every site on it, and only those.
    path.write_text(text.replace("stable: {k3s: 'v1.31.4+k3s1'", "stable: {k3s: 'v1.31.5+k3s1'"))
    moved = versions(path)
    assert moved["ber-01-s1"] == "v1.31.5+k3s1"
    assert moved["ber-02-s1"] == "v1.32.1+k3s1" and moved["ber-03-s1"] == "v1.31.4+k0s.0"


def test_a_channel_without_the_sites_distribution_falls_back_to_the_default_version(tmp_path: Path) -> None:
    text = CHANNELS.replace("  gitops: {engine: none}\n", "  gitops: {engine: none}\n  version: 'v1.30.9+k0s.0'\n")
    text += site("par-01", "192.0.2.20", "    channel: beta\n    distribution: k0s\n")
    path = tmp_path / "c.fleet.yml"
    path.write_text(text)
    assert versions(path) == {"par-01-s1": "v1.30.9+k0s.0"}


def test_no_version_anywhere_names_the_site_and_the_channels(tmp_path: Path) -> None:
    text = CHANNELS + site("par-01", "192.0.2.20", "    channel: beta\n    distribution: k0s\n")
    path = tmp_path / "c.fleet.yml"
    path.write_text(text)
    message = refused(path)
    assert "par-01" in message and "version: missing" in message and "defaults.channels" in message, message


def test_every_bad_channel_entry_is_reported_at_once_and_no_site_is_built_on_them(tmp_path: Path) -> None:
    bad = CHANNELS.replace(
        "    stable: {k3s: 'v1.31.4+k3s1', k0s: 'v1.31.4+k0s.0'}\n    beta: {k3s: 'v1.32.1+k3s1'}\n",
        "    stable: {k3s: 'v1.31.4+k0s.0', rke2: 'v1.31.4+rke2r1'}\n    Beta_1: {k3s: 'v1.32.1+k3s1'}\n"
        "    edge: [v1.31.4+k3s1]\n    lts: {k0s: 1.31}\n",
    )
    path = tmp_path / "c.fleet.yml"
    path.write_text(bad + site("ber-01", "192.0.2.10"))
    message = refused(path)
    for fragment in (
        "defaults.channels.stable.k3s: found 'v1.31.4+k0s.0'",  # another distribution's version
        "defaults.channels.stable.rke2: found 'rke2'",  # not a distribution
        "defaults.channels.Beta_1",  # not a DNS label
        "defaults.channels.edge",  # not a mapping
        "defaults.channels.lts.k0s",  # a number, not a quoted version
    ):
        assert fragment in message, (fragment, message)
    assert "5 problem(s)" in message, message  # the site that inherits them adds no error of its own


def test_channels_are_fleet_wide_only(tmp_path: Path) -> None:
    path = tmp_path / "c.fleet.yml"
    path.write_text(CHANNELS + site("ber-01", "192.0.2.10", "    channels: {stable: {k3s: 'v1.31.4+k3s1'}}\n"))
    message = refused(path)
    assert "sites[0].channels" in message and "ber-01" in message, message
