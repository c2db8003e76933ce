"""Entry point: python3 -m edgefleet_standin <k3s|k0s> <argv0> [args...] (called by the self-extracting header)."""

from __future__ import annotations

import os
import sys

from . import k0s, k3s
from .core import StandinError, Terminated, log


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] not in {"k3s", "k0s"}:
        print("usage: python3 -m edgefleet_standin <k3s|k0s> <argv0> [args...]", file=sys.stderr)
        return 2
    flavor, argv = sys.argv[1], sys.argv[2:]
    version = os.environ.get("EDGEFLEET_STANDIN_VERSION", "v0.0.0+lab")
    try:
        return (k3s.main if flavor == "k3s" else k0s.main)(argv, version)
    except StandinError as exc:
        log(f"ERROR: {exc}")
        return 1
    except Terminated:
        log("stopped")
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
