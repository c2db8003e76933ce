# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Problem collection for fleet validation: every problem names file, site, node and key."""

from __future__ import annotations

import datetime
import typing as t
import unicodedata

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.text import did_you_mean as _did_you_mean


class Problem:
    """One thing wrong (or worth a warning) in a fleet registry."""

    __slots__ = ("file", "key", "message", "node", "site")

    def __init__(self, file: str, site: str | None, node: str | None, key: str, message: str) -> None:
        self.file = file
        self.site = site
        self.node = node
        self.key = key
        self.message = message

    def __str__(self) -> str:
        where = [self.file or "<fleet>"]
        if self.site is not None:
            where.append(f"site {self.site!r}")
        if self.node is not None:
            where.append(f"node {self.node!r}")
        return f"{', '.join(where)}: {self.key}: {self.message}"


class FleetError(Exception):
    """Raised with every error found; the caller turns it into AnsibleParserError."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [f"{len(problems)} problem(s) in the fleet registry:"]
        lines.extend(f"  - {p}" for p in problems)
        super().__init__("\n".join(lines))


def text_of(value: object) -> str:
    """str() that cannot fail: an integer too long to print in decimal is shown by its size."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"<an integer of {value.bit_length()} bits>"
    return str(value)


def describe(value: object) -> str:
    """A short, safe rendering of a found value for messages."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        text = text_of(value)
    elif value is None:
        text = "null"
    elif isinstance(value, (bool, int, float)):
        # the base type: option values from Ansible carry tagged subclasses of int and str
        kind = next((k for k in (bool, int, float) if isinstance(value, k)), type(value)).__name__
        text = f"{value!r} ({kind})"
    elif isinstance(value, dict):
        text = f"a mapping with keys {sorted(text_of(k) for k in value)[:8]}"
    elif isinstance(value, list):
        text = f"a list of {len(value)} item(s)"
    elif isinstance(value, (datetime.date, datetime.datetime)):
        text = f"{value.isoformat()} (a {type(value).__name__}: YAML reads an unquoted date as a timestamp)"
    elif isinstance(value, bytes):
        text = f"binary data of {len(value)} byte(s) (a !!binary value)"
    elif isinstance(value, set):
        text = f"a set of {len(value)} item(s) (a !!set value)"
    elif isinstance(value, tuple):
        text = f"a pair {describe(value[0]) if value else ''} (an entry of a !!omap or !!pairs value)"
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= 120 else text[:117] + "..."


# Control characters have no name in the Unicode database; these are the ones met in files.
_CONTROL_NAMES = {
    0x00: "NULL",
    0x09: "CHARACTER TABULATION",
    0x0A: "LINE FEED",
    0x0D: "CARRIAGE RETURN",
    0x7F: "DELETE",
}


def _char_name(char: str) -> str:
    return unicodedata.name(char, "") or _CONTROL_NAMES.get(ord(char), "(a control character)")


def odd_characters(value: str, limit: int = 3) -> str:
    """Where a string holds characters outside printable ASCII, which a repr may show as look-alikes.

    ``"b\u0430r"`` gives ``" (U+0430 CYRILLIC SMALL LETTER A at position 2)"``; positions count from 1.
    """
    found = [(i, c) for i, c in enumerate(value, 1) if not " " <= c <= "~"]
    if not found:
        return ""
    parts = [f"U+{ord(c):04X} {_char_name(c)} at position {i}" for i, c in found[:limit]]
    if len(found) > limit:
        parts.append(f"{len(found) - limit} more")
    return f" ({', '.join(parts)})"


def did_you_mean(word: str, choices: t.Iterable[str]) -> str:
    """The fleet messages' form of the suggestion: ``" (did you mean 'x'?)"``."""
    return _did_you_mean(word, choices, parenthesised=True)


class Problems:
    """Collects errors and warnings; raise_if_errors() ends validation with all of them."""

    def __init__(self) -> None:
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, file: str, site: str | None, node: str | None, key: str, message: str) -> None:
        self.errors.append(Problem(file, site, node, key, message))

    def warning(self, file: str, site: str | None, node: str | None, key: str, message: str) -> None:
        self.warnings.append(Problem(file, site, node, key, message))

    def raise_if_errors(self) -> None:
        if self.errors:
            raise FleetError(self.errors)


class Ctx:
    """Where we are while validating: file, site, node and the key path prefix."""

    __slots__ = ("file", "node", "prefix", "problems", "site")

    def __init__(
        self, problems: Problems, file: str, site: str | None = None, node: str | None = None, prefix: str = ""
    ):
        self.problems = problems
        self.file = file
        self.site = site
        self.node = node
        self.prefix = prefix

    def key(self, key: str) -> str:
        if not key:
            return self.prefix.rstrip(".") or "(document)"
        return f"{self.prefix}{key}" if self.prefix else key

    def sub(self, prefix: str, site: str | None = None, node: str | None = None) -> Ctx:
        return Ctx(
            self.problems,
            self.file,
            self.site if site is None else site,
            self.node if node is None else node,
            self.key(prefix),
        )

    def error(self, key: str, message: str) -> None:
        self.problems.error(self.file, self.site, self.node, self.key(key), message)

    def warning(self, key: str, message: str) -> None:
        self.problems.warning(self.file, self.site, self.node, self.key(key), message)

    def bad_value(self, key: str, found: object, allowed: str, hint: str = "") -> None:
        odd = odd_characters(found) if isinstance(found, str) else ""
        self.error(key, f"found {describe(found)}{odd}, allowed: {allowed}{hint}")

    def check_keys(self, data: dict[t.Any, t.Any], allowed: t.Collection[str], what: str) -> None:
        for key in data:
            if key not in allowed:
                name = text_of(key)
                self.error(
                    name,
                    f"unknown key in {what}{did_you_mean(name, allowed)}; allowed: {', '.join(sorted(allowed))}",
                )
