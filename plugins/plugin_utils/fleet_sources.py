# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding and reading fleet registry sources: YAML (libyaml safe loader) or JSON files, or directories of them.

Reads files directly, without Ansible's DataLoader: registry data is plain data (no
templates, no vault), and skipping origin tagging and deep copies is what makes the
plugin fast on large fleets.

Reading cannot escape: every error a file can cause while it is read becomes a problem
naming the file (and, for YAML, the line), and every file is bounded in size, nesting
depth and alias expansion (see ``Limits``). Duplicate keys are refused, in YAML and JSON.
"""

from __future__ import annotations

import contextlib
import gc
import json
import json.decoder
import json.scanner
import os
import typing as t

from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_problems import Problems, describe, text_of

try:
    import yaml
    from yaml.constructor import ConstructorError
    from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False

SOURCE_EXTENSIONS: tuple[str, ...] = (".yml", ".yaml", ".json")
REGISTRY_KEYS: tuple[str, ...] = ("defaults", "overlays", "sites")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
# Scalar tags the resolver gives a plain or quoted scalar; a document holding only these (and str, map, seq)
# is built by _construct_tree. Any other tag (an explicit one such as !!binary or !!set) takes the loader's
# own path.
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp"))
# Constructors of scalars that can fail on a value the resolver or an explicit tag sends them
# (`!!int x`, `!!timestamp 2024-13-45`, a 5000-digit integer): their errors get the node's line.
_GUARDED_TAGS = tuple(
    f"tag:yaml.org,2002:{name}"
    for name in ("null", "bool", "int", "float", "binary", "timestamp", "omap", "pairs", "set")
)


class Limits(t.NamedTuple):
    """Bounds on one registry file. Defaults are the plugin options' defaults (docs/fleet-schema.md)."""

    max_file_size: int = 64 * 1024 * 1024  # bytes
    max_depth: int = 64  # nesting levels of mappings and sequences, aliases expanded
    max_alias_nodes: int = 100_000  # nodes aliases may add, or as many as the file holds if that is more


# Highest max_depth accepted: deeper data makes ansible-inventory and the templating recurse out of stack.
MAX_DEPTH_CEILING = 128


class Source(t.NamedTuple):
    path: str
    allow_empty: bool


if HAS_YAML:
    _BaseLoader: t.Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

    def _guarded(constructor: t.Callable[[t.Any, t.Any], t.Any]) -> t.Callable[[t.Any, t.Any], t.Any]:
        def construct(loader: t.Any, node: t.Any) -> t.Any:
            try:
                return constructor(loader, node)
            except yaml.YAMLError:
                raise
            except Exception as exc:  # a constructor's own failure: give it the node's line
                shown = describe(node.value) if isinstance(node.value, str) else "this value"
                raise ConstructorError(
                    None, None, f"cannot read {shown} as {node.tag}: {type(exc).__name__}: {exc}", node.start_mark
                ) from None

        return construct

    class _Loader(_BaseLoader):  # type: ignore[misc]
        """The libyaml safe loader, recording duplicate keys instead of letting the last one win."""

        yaml_constructors: t.ClassVar[dict[t.Any, t.Any]] = dict(_BaseLoader.yaml_constructors)
        for _tag in _GUARDED_TAGS:
            yaml_constructors[_tag] = _guarded(yaml_constructors[_tag])
        del _tag

        def __init__(self, stream: bytes, merges: bool) -> None:
            super().__init__(stream)
            self.merges = merges
            self.duplicates: list[tuple[t.Any, t.Any, t.Any]] = []  # (key, mark, first mark)

        def construct_mapping(self, node: t.Any, deep: bool = False) -> t.Any:
            own = None
            if self.merges:  # merged keys may be overridden; only the mapping's own keys must be unique
                own = [pair for pair in node.value if pair[0].tag != _MERGE_TAG]
                if len(own) == len(node.value):
                    own = None
            mapping = super().construct_mapping(node, deep=deep)
            if own is None:
                if len(mapping) == len(node.value):
                    return mapping
                own = node.value
            _record_duplicates(self.duplicates, own, self.construct_object)  # keys already constructed: cached
            return mapping


def _where(mark: t.Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def expand_sources(
    base_dir: str, entries: t.Sequence[object], problems: Problems, config_file: str, allow_empty: bool = False
) -> list[Source]:
    """The files of the `sources` entries, directories expanded (sorted, recursive, no hidden).

    An entry is a path, or a mapping ``{path: ..., allow_empty: true|false}``; ``allow_empty``
    (default: the plugin option) lets the entry's files be empty and a directory hold none.
    """
    files: list[Source] = []
    for index, entry in enumerate(entries):
        key = f"sources[{index}]"
        empty_ok = allow_empty
        if isinstance(entry, dict):
            unknown = sorted(text_of(k) for k in entry if k not in ("path", "allow_empty"))
            if unknown:
                problems.error(
                    config_file,
                    None,
                    None,
                    f"{key}.{unknown[0]}",
                    "unknown key in a source; allowed: allow_empty, path",
                )
                continue
            flag = entry.get("allow_empty", allow_empty)
            if not isinstance(flag, bool):
                problems.error(
                    config_file, None, None, f"{key}.allow_empty", f"found {describe(flag)}, allowed: true, false"
                )
                continue
            empty_ok = flag
            entry = entry.get("path")
        if not isinstance(entry, str) or not entry or "\x00" in entry:
            problems.error(
                config_file,
                None,
                None,
                key,
                f"found {describe(entry)}, allowed: a file or directory path, or a mapping with path and allow_empty",
            )
            continue
        path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(entry)))
        if os.path.isdir(path):
            found: list[str] = []
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(
                    os.path.join(root, n) for n in names if not n.startswith(".") and n.endswith(SOURCE_EXTENSIONS)
                )
            if not found and not empty_ok:
                problems.error(
                    config_file,
                    None,
                    None,
                    key,
                    f"directory {path} holds no *.yml, *.yaml or *.json file (allow_empty: true accepts that)",
                )
            files.extend(Source(f, empty_ok) for f in sorted(found))
        elif os.path.isfile(path):
            files.append(Source(path, empty_ok))
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


@contextlib.contextmanager
def gc_paused() -> t.Iterator[None]:
    """No cyclic garbage collection while a fleet is read and published: that work allocates millions of
    objects and frees almost none, and each full collection would walk all of them again. The collector's
    previous state is restored afterwards, after every object alive then is frozen (gc.freeze): the hosts
    and groups live as long as the run does, and without the freeze the first collection after the parse
    would walk all of them, as would every full collection of the playbook run after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


# Version of the cache entry's layout; an entry of another version is a miss.
CACHE_FORMAT = 3


def cache_entry(plan: dict[str, t.Any], source_stamp: dict[str, list[int]]) -> dict[str, t.Any]:
    """The inventory cache entry of a plan (in the plugin's publish form): the plan as one JSON text, so that
    the cache plugin's own encoder and decoder, which visit every value in Python, see a single string."""
    return {"format": CACHE_FORMAT, "stamp": source_stamp, "plan": json.dumps(plan, separators=(",", ":"))}


def plan_from_cache(entry: object, source_stamp: dict[str, list[int]]) -> dict[str, t.Any] | None:
    """The plan of a cache entry written for these very sources (same files, mtimes and sizes), else None."""
    if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT or entry.get("stamp") != source_stamp:
        return None
    text = entry.get("plan")
    if not isinstance(text, str):
        return None
    try:
        plan = json.loads(text)
    except ValueError:
        return None
    return plan if isinstance(plan, dict) else None


def is_empty(data: object) -> bool:
    """True for a document that holds nothing: null, an empty list or mapping, or only empty registry keys."""
    if data is None or data == [] or data == {}:
        return True
    return isinstance(data, dict) and all(k in REGISTRY_KEYS and v in (None, [], {}) for k, v in data.items())


DEFAULT_LIMITS = Limits()


def load_file(path: str, problems: Problems, limits: Limits = DEFAULT_LIMITS) -> t.Any:
    """Parse one YAML or JSON file; every problem becomes an error naming the file (and line), result None."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limits.max_file_size + 1)
    except OSError as exc:
        problems.error(path, None, None, "(file)", f"cannot be read: {exc.strerror or exc}")
        return None
    if len(raw) > limits.max_file_size:
        problems.error(
            path,
            None,
            None,
            "(file)",
            f"is larger than {limits.max_file_size} bytes, the limit for a registry file (option max_file_size)",
        )
        return None
    if path.endswith(".json"):
        return _load_json(path, raw, problems, limits)
    if not HAS_YAML:  # pragma: no cover
        problems.error(path, None, None, "(file)", "PyYAML is needed to read YAML registry files")
        return None
    return _load_yaml(path, raw, problems, limits)


def _load_yaml(path: str, raw: bytes, problems: Problems, limits: Limits) -> t.Any:
    def fail(message: str) -> None:
        problems.error(path, None, None, "(file)", message)

    loader = _Loader(raw, merges=b"<<" in raw)
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            # Without an anchor ('&') there is no alias: the nodes form a tree and one walk finds the depth.
            problem = _check_graph(node, limits) if b"&" in raw else _check_tree(node, limits)
            if problem:
                fail(problem)
                return None
            data = _construct_tree(loader, node) if _plain(raw) else _NOT_PLAIN
            if data is _NOT_PLAIN:
                data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at {_where(mark)}" if mark is not None else ""
        problem = exc.problem or exc.context or str(exc)
        fail(f"is not valid YAML{where}: {problem}")
        return None
    except yaml.YAMLError as exc:  # ReaderError: bytes that are not UTF-8/16 text, control characters
        fail(f"is not valid YAML: {exc}")
        return None
    except RecursionError:
        fail(f"is not valid YAML: nested too deeply to be read (the limit is {limits.max_depth} levels)")
        return None
    except Exception as exc:  # anything else the parser or a constructor raises is still a clean error
        fail(f"cannot be read as YAML: {type(exc).__name__}: {exc}")
        return None
    for key, mark, first in loader.duplicates:
        fail(f"duplicate key {describe(key)} at {_where(mark)} (first at {_where(first)}); keys must be unique")
    return None if loader.duplicates else data


_COLLECTIONS: frozenset[type] = frozenset((MappingNode, SequenceNode)) if HAS_YAML else frozenset()
_NOT_PLAIN = object()


def _plain(raw: bytes) -> bool:
    """No anchor, alias, merge key or explicit tag can be in the text: its nodes form a plain tree."""
    return b"&" not in raw and b"*" not in raw and b"<<" not in raw and b"!" not in raw


def _construct_tree(loader: t.Any, root: t.Any) -> t.Any:
    """The document of a plain tree (see _plain), built as the safe loader builds it, in one recursion with no
    per-node bookkeeping: the loader's own construction keeps state for aliases and recursive structures,
    which a tree has none of, and that state was most of its cost. Scalars other than strings go through the
    loader's (guarded) constructors; duplicate keys are recorded as the loader records them, and the last
    one wins, as there. Returns _NOT_PLAIN for anything else (a key that is a collection, a tag outside
    _PLAIN_TAGS): the caller then uses the loader's own path. Depth is bounded by _check_tree before."""
    constructors = loader.yaml_constructors

    def build(node: t.Any) -> t.Any:
        kind = type(node)
        tag = node.tag
        if kind is ScalarNode:
            if tag == _STR_TAG:
                return node.value
            if tag in _PLAIN_TAGS:
                return constructors[tag](loader, node)
            raise _Fallback
        if kind is SequenceNode and tag == _SEQ_TAG:
            return [build(item) for item in node.value]
        if kind is not MappingNode or tag != _MAP_TAG:
            raise _Fallback
        mapping: dict[t.Any, t.Any] = {}
        pairs = node.value
        for key_node, value_node in pairs:
            if not isinstance(key_node, ScalarNode):
                raise _Fallback
            mapping[build(key_node)] = build(value_node)
        if len(mapping) != len(pairs):
            _record_duplicates(loader.duplicates, pairs, build)
        return mapping

    try:
        return build(root)
    except _Fallback:
        del loader.duplicates[:]
        return _NOT_PLAIN


def _record_duplicates(
    duplicates: list[tuple[t.Any, t.Any, t.Any]], pairs: t.Sequence[t.Any], key_of: t.Callable[[t.Any], t.Any]
) -> None:
    """Append (key, mark, first mark) for each key of a mapping's (key node, value node) pairs seen before."""
    first: dict[t.Any, t.Any] = {}
    for key_node, _value in pairs:
        key = key_of(key_node)
        if key in first:
            duplicates.append((key, key_node.start_mark, first[key]))
        else:
            first[key] = key_node.start_mark


class _Fallback(Exception):
    """Raised inside _construct_tree for a node it does not build."""


def _children(node: t.Any) -> t.Iterator[t.Any]:
    kind = type(node)
    if kind is MappingNode:
        for key, value in node.value:
            yield key
            yield value
    elif kind is SequenceNode:
        yield from node.value


def _too_deep(node: t.Any, limits: Limits) -> str:
    return (
        f"is nested more than {limits.max_depth} levels deep at {_where(node.start_mark)} "
        "(the limit for mappings and lists inside each other, option max_depth)"
    )


def _check_tree(root: Node, limits: Limits) -> str:
    """Depth of an alias-free document (a tree), without recursion: collections inside collections."""
    stack: list[tuple[t.Any, int]] = [(root, 1)] if type(root) in _COLLECTIONS else []
    while stack:
        node, depth = stack.pop()
        children = [part for pair in node.value for part in pair] if isinstance(node, MappingNode) else node.value
        for child in children:
            if type(child) in _COLLECTIONS:
                if depth >= limits.max_depth:
                    return _too_deep(child, limits)
                stack.append((child, depth + 1))
    return ""


def _check_graph(root: Node, limits: Limits) -> str:
    """Cycles, depth and expanded size of a document with anchors and aliases (a graph), without recursion.

    Each node's expanded size and height are computed once (post-order), so a document whose
    aliases would expand to billions of nodes costs one pass over the nodes it really holds.
    """
    info: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height)
    on_path: set[int] = set()
    shared: tuple[int, t.Any] = (0, None)  # the largest node referenced more than once
    stack: list[tuple[t.Any, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            on_path.discard(key)
            size, height = 1, 0
            for child in _children(node):
                child_size, child_height = info[id(child)]
                size += child_size
                height = max(height, child_height)
            info[key] = (size, height + 1 if type(node) in _COLLECTIONS else 0)
            continue
        if key in info:
            if info[key][0] > shared[0]:
                shared = (info[key][0], node)
            continue
        if key in on_path:
            return (
                f"is not valid YAML at {_where(node.start_mark)}: the node anchored there holds an alias to itself "
                "(a recursive alias)"
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    size, height = info[id(root)]
    if height > limits.max_depth:
        node, depth = root, 1
        while depth <= limits.max_depth:  # follow the deepest branch to the first node past the limit
            node = max(_children(node), key=lambda child: info[id(child)][1])
            depth += 1
        return _too_deep(node, limits)
    allowed = max(limits.max_alias_nodes, len(info))
    if size - len(info) > allowed:
        where = f" (the node anchored at {_where(shared[1].start_mark)} holds {shared[0]})" if shared[1] else ""
        return (
            f"has aliases that expand it by {size - len(info)} nodes{where}; the limit is {allowed} "
            "(option max_alias_nodes, or as many nodes as the file holds if that is more)"
        )
    return ""


def _load_json(path: str, raw: bytes, problems: Problems, limits: Limits) -> t.Any:
    def fail(message: str) -> None:
        problems.error(path, None, None, "(file)", message)

    duplicates = False

    def pairs_hook(pairs: list[tuple[str, t.Any]]) -> dict[str, t.Any]:
        nonlocal duplicates
        result = dict(pairs)
        if len(result) != len(pairs):
            duplicates = True
        return result

    try:
        text = raw.decode("utf-8-sig")
        data = json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError as exc:
        fail(f"is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
        return None
    except UnicodeDecodeError as exc:
        fail(f"is not valid JSON: not UTF-8 text (byte {exc.start + 1}: {exc.reason})")
        return None
    except RecursionError:
        fail(f"is not valid JSON: nested too deeply to be read (the limit is {limits.max_depth} levels)")
        return None
    except Exception as exc:  # ValueError (a number too long to convert) and anything else: still clean
        fail(f"cannot be read as JSON: {type(exc).__name__}: {exc}")
        return None
    if duplicates:
        for key, line in _json_duplicates(text):
            fail(f"duplicate key {describe(key)} in the object starting at line {line}; keys must be unique")
        return None
    where = _json_too_deep(data, limits.max_depth)
    if where is not None:
        fail(
            f"is nested more than {limits.max_depth} levels deep at {where} "
            "(the limit for objects and arrays inside each other, option max_depth)"
        )
        return None
    return data


def _json_duplicates(text: str) -> list[tuple[str, int]]:
    """Duplicate keys with the line of their object: a second, slower parse that knows positions (errors only)."""
    found: list[tuple[str, int]] = []
    decoder: t.Any = json.JSONDecoder()
    json_object: t.Any = getattr(json.decoder, "JSONObject")  # noqa: B009 - not in the type stubs either

    def parse_object(s_and_end: tuple[str, int], *args: t.Any) -> t.Any:
        text_, start = s_and_end

        def pairs_hook(pairs: list[tuple[str, t.Any]]) -> dict[str, t.Any]:
            seen: set[str] = set()
            for key, _value in pairs:
                if key in seen:
                    found.append((key, text_.count("\n", 0, start) + 1))
                seen.add(key)
            return dict(pairs)

        strict, scan_once, object_hook = args[:3]
        return json_object(s_and_end, strict, scan_once, object_hook, pairs_hook, *args[4:])

    decoder.parse_object = parse_object
    decoder.scan_once = getattr(json.scanner, "py_make_scanner")(decoder)  # noqa: B009 - the scanner that calls parse_object
    decoder.decode(text)
    return found


def _json_too_deep(data: object, max_depth: int) -> str | None:
    """The key path of the first value nested deeper than max_depth (JSON data is a tree), or None."""
    stack: list[tuple[object, int, str]] = [(data, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, dict):
            items: t.Iterable[tuple[str, object]] = ((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
        else:
            continue
        for child_where, child in items:
            if isinstance(child, (dict, list)):
                if depth >= max_depth:
                    return child_where if len(child_where) <= 120 else child_where[:117] + "..."
                stack.append((child, depth + 1, child_where))
    return None


def limits_from(options: t.Mapping[str, t.Any], problems: Problems, config_file: str) -> Limits:
    """Limits from the plugin options; an out-of-range value is a problem (and the default is used)."""
    values: dict[str, int] = {}
    ranges = {
        "max_file_size": (1, None),
        "max_depth": (2, MAX_DEPTH_CEILING),
        "max_alias_nodes": (0, None),
    }
    for key, (low, high) in ranges.items():
        value = options.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            allowed = f"an integer from {low}" + (f" to {high}" if high is not None else "")
            problems.error(config_file, None, None, key, f"found {describe(value)}, allowed: {allowed}")
        else:
            values[key] = value
    return DEFAULT_LIMITS._replace(**values)


def read_fleet_file(path: str, problems: Problems, limits: Limits, plugin_names: t.Sequence[str]) -> dict[str, t.Any]:
    """The fleet file itself, read with the registry's loader so its problems carry lines; {} on a problem."""
    before = len(problems.errors)
    data = load_file(path, problems, limits)
    if len(problems.errors) != before:
        return {}
    if data is None:
        problems.error(path, None, None, "(file)", f"is empty; a fleet file starts with 'plugin: {plugin_names[0]}'")
        return {}
    if not isinstance(data, dict):
        message = f"found {describe(data)}, allowed: a mapping with 'plugin: {plugin_names[0]}'"
        problems.error(path, None, None, "(document)", message)
        return {}
    if data.get("plugin") not in plugin_names:
        found = describe(data.get("plugin")) if "plugin" in data else "nothing"
        problems.error(path, None, None, "plugin", f"found {found}, allowed: {plugin_names[0]}")
        return {}
    return data


def _emptiness(data: object) -> str:
    if data is None:
        return "nothing, or null"
    if data == []:
        return "an empty list"
    if data == {}:
        return "an empty mapping"
    return "only empty keys"


def read_sources(sources: t.Sequence[Source], problems: Problems, limits: Limits) -> list[tuple[str, t.Any]]:
    """(file, data) of every source file that holds something; an empty one is a problem unless allowed."""
    documents: list[tuple[str, t.Any]] = []
    for source in sources:
        before = len(problems.errors)
        data = load_file(source.path, problems, limits)
        if len(problems.errors) != before:
            continue
        if is_empty(data):
            if not source.allow_empty:
                problems.error(
                    source.path,
                    None,
                    None,
                    "(file)",
                    f"is empty (found {_emptiness(data)}): it holds no site, defaults or overlays; "
                    "allow_empty: true on the source (or the plugin option) accepts that",
                )
            continue
        documents.append((source.path, data))
    return documents
