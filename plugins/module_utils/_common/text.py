# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wording helpers for messages that name what was found and what is allowed."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The allowed value closest to ``word``, when one is close enough to be a typo."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str], parenthesised: bool = False) -> str:
    """``"; did you mean 'x'?"`` (or ``" (did you mean 'x'?)"``) for the closest choice, else ``""``."""
    match = closest(word, choices)
    if match is None:
        return ""
    return f" (did you mean {match!r}?)" if parenthesised else f"; did you mean {match!r}?"


_SYSTEMD_PLAIN = re.compile(r"""[^\s"'\\;]+""")


def systemd_command_line(argv: Sequence[str]) -> str:
    """``argv`` as a unit's ``ExecStart=`` value that systemd splits back into the same arguments: ``%`` and ``$``
    doubled (no specifier or variable expands), and an argument with white space, a quote, a backslash or a
    semicolon in double quotes with its backslashes and double quotes escaped."""
    words = []
    for arg in argv:
        word = arg.replace("%", "%%").replace("$", "$$")
        if not _SYSTEMD_PLAIN.fullmatch(word):
            word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(word)
    return " ".join(words)
