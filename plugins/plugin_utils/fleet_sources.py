# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding and reading fleet registry sources: YAML (libyaml safe loader) or JSON files, or directories of them.

Reads files directly, without Ansible's DataLoader: registry data is plain data (no
templates, no vault), and skipping origin tagging and deep copies is what makes the
plugin fast on large fleets.
"""

from __future__ import annotations

import json
import os
import typing as t

from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_problems import Problems

try:
    import yaml

    _YAML_LOADER: t.Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False

SOURCE_EXTENSIONS: tuple[str, ...] = (".yml", ".yaml", ".json")


def expand_sources(base_dir: str, entries: t.Sequence[object], problems: Problems, config_file: str) -> list[str]:
    """Absolute file paths for the `sources` entries, directories expanded (sorted, recursive, no hidden)."""
    files: list[str] = []
    for index, entry in enumerate(entries):
        key = f"sources[{index}]"
        if not isinstance(entry, str) or not entry:
            problems.error(config_file, None, None, key, f"found {entry!r}, allowed: a file or directory path")
            continue
        path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(entry)))
        if os.path.isdir(path):
            found: list[str] = []
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(
                    os.path.join(root, n) for n in names if not n.startswith(".") and n.endswith(SOURCE_EXTENSIONS)
                )
            if not found:
                problems.error(config_file, None, None, key, f"directory {path} holds no *.yml, *.yaml or *.json file")
            files.extend(sorted(found))
        elif os.path.isfile(path):
            files.append(path)
        else:
            problems.error(config_file, None, None, key, f"found {entry!r}: no such file or directory ({path})")
    return files


def stamp(paths: t.Iterable[str]) -> dict[str, list[int]]:
    """mtime (ns) and size of every path, for cache invalidation."""
    out: dict[str, list[int]] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out[path] = [-1, -1]
        else:
            out[path] = [st.st_mtime_ns, st.st_size]
    return out


def load_file(path: str, problems: Problems) -> t.Any:
    """Parse one YAML or JSON file; a parse error becomes a problem naming file and line."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        problems.error(path, None, None, "(file)", f"cannot be read: {exc.strerror or exc}")
        return None
    if path.endswith(".json"):
        try:
            return json.loads(raw)
        except ValueError as exc:
            problems.error(path, None, None, "(file)", f"is not valid JSON: {exc}")
            return None
    if not HAS_YAML:  # pragma: no cover
        problems.error(path, None, None, "(file)", "PyYAML is needed to read YAML registry files")
        return None
    try:
        return yaml.load(raw, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        problems.error(path, None, None, "(file)", f"is not valid YAML{where}: {problem}")
        return None
