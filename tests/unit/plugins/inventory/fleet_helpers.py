# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the fleet inventory plugin tests: the real plugin loader, a real InventoryData."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
_COLLECTIONS = REPO / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))
os.environ.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))

from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, inventory_loader

init_plugin_loader([str(_COLLECTIONS)])


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
