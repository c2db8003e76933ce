# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Delivery through the distribution's manifests folder (K3s auto-deploy, K0s stacks).

The registration objects go into one file, the engine into one file per bundle
file. Every file is written atomically, 0600 (the registration holds the deploy
key). Engine files we wrote earlier for components no longer chosen are removed.
Diffs show a Secret's payload as a digest, never the key.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import (
    atomic_write,
    needs_write,
    read_bytes,
    text_diff,
)
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.core import redact_object

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - depends on the host
    HAS_YAML = False

HEADER = "# Managed by edgefleet.k8s (gitops role); changes here are overwritten.\n"
FILE_MODE = 0o600


def dump_objects(objects: list[dict[str, Any]]) -> str:
    body = yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False, explicit_start=True)
    return HEADER + body


def load_all(content: bytes) -> list[Any]:
    return list(yaml.safe_load_all(content.decode(errors="replace")))


def redacted_text(content: bytes | None) -> str:
    """The file as shown in a diff: Secrets' payloads replaced by digests."""
    if content is None:
        return ""
    try:
        docs = [d for d in yaml.safe_load_all(content.decode(errors="replace")) if isinstance(d, dict)]
    except yaml.YAMLError:
        return "<unparseable YAML, content not shown>\n"
    return dump_objects([redact_object(d) for d in docs])


@dataclass
class FilePlan:
    write: dict[str, bytes] = field(default_factory=dict)  # absolute path -> content
    remove: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    diffs: list[dict[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.write or self.remove)


def plan(
    directory: str, desired: dict[str, bytes], owned_prefix: str, secret_files: frozenset[str] = frozenset()
) -> FilePlan:
    """Compare ``desired`` (file name -> content) with ``directory``.

    Files whose name starts with ``owned_prefix`` and that are not desired are
    ours from an earlier run and are removed. ``secret_files`` are diffed redacted.
    """
    result = FilePlan()
    for name, content in sorted(desired.items()):
        path = os.path.join(directory, name)
        if needs_write(path, content, FILE_MODE):
            result.write[path] = content
            before = read_bytes(path)
            if name in secret_files:
                result.diffs.append(text_diff(path, redacted_text(before), redacted_text(content)))
            else:
                result.diffs.append(
                    text_diff(path, (before or b"").decode(errors="replace"), content.decode(errors="replace"))
                )
        else:
            result.unchanged.append(path)
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            if name.startswith(owned_prefix) and name not in desired:
                path = os.path.join(directory, name)
                result.remove.append(path)
                result.diffs.append(text_diff(path, "<file we wrote earlier>\n", ""))
    return result


def apply(result: FilePlan) -> None:
    for path, content in result.write.items():
        atomic_write(path, content, mode=FILE_MODE, dir_mode=0o700)
    for path in result.remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
