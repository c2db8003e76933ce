# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keeping a node's container-runtime files of ours in step with what is wanted: write each file whose bytes,
mode or owner differ (0600, atomically), remove the files of ours that are no longer wanted (a file without our
mark is never touched), and record whether the distribution's unit must restart.

Private to edgefleet.k8s: no stable API. Used by the registries_config and wasm_runtimes modules, which differ
only in what they show of a file in a diff and in which removals need a restart.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import atomic_write, needs_write, read_bytes
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import config
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.registries import MANAGED_MARK, RuntimeFile

FILE_MODE = 0o600
_MARK = MANAGED_MARK.encode()


def is_ours(content: bytes | None) -> bool:
    """A file of ours carries the managed header (config.MANAGED_HEADER) at its top."""
    return content is not None and _MARK in content[:200]


@dataclass
class Synced:
    """What a sync did (or, in check mode, would do): paths written and removed, the diff, and whether a file the
    runtime reads at start changed."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    diff: list[dict[str, str]] = field(default_factory=list)
    restart: bool = False


def sync(
    wanted: Sequence[RuntimeFile],
    managed: Iterable[str],
    show_before: Callable[[bytes | None, bool], str],
    removal_restarts: Callable[[str], bool],
    check_mode: bool,
    root: str = "/",
    owner: tuple[int | None, int | None] = (0, 0),
    after_removal: Callable[[str, str], None] | None = None,
) -> Synced:
    """Write ``wanted``, then remove every path of ``managed`` not wanted that holds a file of ours (is_ours).

    ``show_before(content, removed)`` is the diff's text of a file before it is rewritten (``removed`` false) or
    removed; ``removal_restarts(path)`` says whether removing that file needs a restart; ``after_removal(path,
    target)`` runs after a file is removed (not in check mode), with ``target`` its path under ``root``."""
    done = Synced()
    uid, gid = owner

    def at(path: str) -> str:
        return os.path.join(root, path.lstrip("/"))

    for item in wanted:
        target = at(item.path)
        if not needs_write(target, item.content, FILE_MODE, uid, gid):
            continue
        before = read_bytes(target)
        done.written.append(item.path)
        done.restart = done.restart or (item.restart and before != item.content)
        done.diff.append(
            {
                "before_header": item.path,
                "after_header": item.path,
                "before": show_before(before, False),
                "after": item.shown,
            }
        )
        if not check_mode:
            atomic_write(target, item.content, FILE_MODE, uid, gid, dir_mode=0o700)
    keep = {f.path for f in wanted}
    for path in sorted(set(managed) - keep):
        target = at(path)
        before = read_bytes(target)
        if not is_ours(before):
            continue
        done.removed.append(path)
        done.restart = done.restart or removal_restarts(path)
        done.diff.append(
            {"before_header": path, "after_header": path, "before": show_before(before, True), "after": ""}
        )
        if not check_mode:
            os.unlink(target)
            if after_removal is not None:
                after_removal(path, target)
    return done


def restart_required(
    marker: str, restart: bool, check_mode: bool, root: str = "/", owner: tuple[int | None, int | None] = (0, 0)
) -> bool:
    """Record a needed restart in ``marker`` (a file under ``root``; none when empty), so that a run that stops
    before the restart still restarts next time, and say whether a restart is due: now, or recorded before."""
    if not marker:
        return restart
    target = os.path.join(root, marker.lstrip("/"))
    if restart and not check_mode:
        atomic_write(target, config.RESTART_MARKER_TEXT, 0o600, owner[0], owner[1], dir_mode=0o700)
    return restart or os.path.exists(target)
