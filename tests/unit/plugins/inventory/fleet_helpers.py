# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the fleet inventory plugin tests: the real plugin loader, a real InventoryData."""

from __future__ import annotations

import contextlib
import os
import sys
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
_COLLECTIONS = REPO / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))
os.environ.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))

from ansible import context
from ansible.cli.inventory import InventoryCLI
from ansible.inventory.data import InventoryData
from ansible.inventory.helpers import get_group_vars
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, inventory_loader
from ansible.utils.vars import combine_vars
from ansible.vars.manager import VariableManager

init_plugin_loader([str(_COLLECTIONS)])


def merged_vars(host: t.Any) -> dict[str, t.Any]:
    """A host's inventory vars as a play sees them: its groups' vars (edgefleet, cluster_<site>) under its own."""
    merged: dict[str, t.Any] = combine_vars(get_group_vars(host.get_groups()), host.get_vars())
    return merged


def run_plugin(path: str | Path, cache: bool = False) -> InventoryData:
    """Parse one fleet file with the real plugin into a fresh InventoryData."""
    plugin = inventory_loader.get("edgefleet.k8s.fleet")
    inventory = InventoryData()
    inventory.current_source = str(path)  # as InventoryManager does
    plugin.parse(inventory, DataLoader(), str(path), cache=cache)
    with contextlib.suppress(AttributeError):  # as InventoryManager does after parse (no cache configured)
        plugin.update_cache_if_changed()
    inventory.reconcile_inventory()
    return inventory


@contextlib.contextmanager
def _inventory_cli(path: str | Path) -> t.Iterator[InventoryCLI]:
    """An `ansible-inventory -i <path> --list` CLI object with its global arguments set, restored afterwards."""
    cli = InventoryCLI(["ansible-inventory", "-i", str(path), "--list"])
    saved = context.CLIARGS
    try:
        cli.parse()  # sets context.CLIARGS, as the command does
        yield cli
    finally:
        context.CLIARGS = saved


def list_inventory(path: str | Path) -> str:
    """What `ansible-inventory -i <path> --list` prints, in-process: the CLI's own run() path (the inventory
    manager with the enabled plugins, the variable manager, json_inventory and dump) minus the printing.
    Vault secrets are not set up: the CLI does that once per process and a fleet holds no vault data."""
    with _inventory_cli(path) as cli:
        loader = DataLoader()
        inventory = InventoryManager(loader=loader, sources=[str(path)])
        cli.loader, cli.inventory = loader, inventory
        cli.vm = VariableManager(loader=loader, inventory=inventory)
        text: str = cli.dump(cli.json_inventory(cli._get_group("all")))
        return text
