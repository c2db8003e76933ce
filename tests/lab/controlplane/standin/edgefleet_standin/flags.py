"""K3s CLI flag names for the stand-in, derived from the collection's flag table (no list of our own).

The table is plugins/module_utils/_distribution/k3s_flag_table.py, the file the collection's validation
reads too. In the bundle, bundle.sh puts a copy of it beside this file (``edgefleet_standin.k3s_flag_table``);
run from a checkout, it is loaded from the collection's tree. Config-file keys are the flag names without
the leading dashes; a key ending in `+` appends to a list.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TABLE_NAME = "k3s_flag_table"
# Where the table is in a checkout, from the collection root; flags.py is at
# tests/lab/controlplane/standin/edgefleet_standin/flags.py, five directories below that root.
TABLE_IN_COLLECTION = Path("plugins", "module_utils", "_distribution", f"{TABLE_NAME}.py")


def checkout_table() -> Path | None:
    parents = Path(__file__).resolve().parents
    return parents[5] / TABLE_IN_COLLECTION if len(parents) > 5 else None


def _load_table() -> ModuleType:
    name = f"{__package__}.{TABLE_NAME}"
    if importlib.util.find_spec(name) is not None:  # the copy bundle.sh ships
        return importlib.import_module(name)
    path = checkout_table()
    spec = importlib.util.spec_from_file_location(name, path) if path and path.is_file() else None
    if spec is None or spec.loader is None:
        raise ImportError(f"the K3s flag table is missing: neither {name} (bundle) nor {path} (checkout)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


table = _load_table()

SERVER: frozenset[str] = frozenset(f.name for f in table.FLAGS if table.SERVER in f.roles)
AGENT: frozenset[str] = frozenset(f.name for f in table.FLAGS if table.AGENT in f.roles)
LISTS: frozenset[str] = frozenset(f.name for f in table.FLAGS if f.kind == table.LIST)
BOOLS: frozenset[str] = frozenset(f.name for f in table.FLAGS if f.kind == table.BOOL)
SHORT: dict[str, str] = {f.short: f.name for f in table.FLAGS if f.short}
