# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hash record: a file is read again only when its identity changed, a file changed too recently
to be told apart is never trusted, and a damaged record costs a read, never a wrong hash."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._common import hash_record
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.hash_record import HashRecord


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def written(path: Path, data: bytes) -> Path:
    """A file written now; a test that needs it recorded sets RACY_NS to 0 (a ctime cannot be set back)."""
    path.write_bytes(data)
    return path


def test_a_file_is_read_once_then_again_only_after_it_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hash_record, "RACY_NS", 0)
    target = written(tmp_path / "binary", b"one")
    record_path = str(tmp_path / "state" / "record.json")
    first = HashRecord(record_path)
    assert first.sha256(str(target)) == sha(b"one") and first.read == 1
    first.save()
    assert (tmp_path / "state" / "record.json").stat().st_mode & 0o777 == 0o600

    again = HashRecord(record_path)
    assert again.sha256(str(target)) == sha(b"one") and again.read == 0

    before = target.stat()
    target.write_bytes(b"two")  # same size, mtime put back: only the ctime tells
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    changed = HashRecord(record_path)
    assert changed.sha256(str(target)) == sha(b"two") and changed.read == 1


def test_a_file_changed_within_the_racy_window_is_not_recorded(tmp_path: Path) -> None:
    target = tmp_path / "fresh"
    target.write_bytes(b"just written")
    record_path = tmp_path / "record.json"
    record = HashRecord(str(record_path))
    assert record.sha256(str(target)) == sha(b"just written")
    record.save()
    assert not record_path.exists()
    assert HashRecord(str(record_path)).sha256(str(target)) == sha(b"just written")


@pytest.mark.parametrize("content", ["not json", "[]", '{"/x": [1, 2]}', '{"/x": "abc"}'])
def test_a_damaged_record_is_an_empty_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str) -> None:
    monkeypatch.setattr(hash_record, "RACY_NS", 0)
    target = written(tmp_path / "binary", b"data")
    record_path = tmp_path / "record.json"
    record_path.write_text(content.replace("/x", str(target)))
    record = HashRecord(str(record_path))
    assert record.sha256(str(target)) == sha(b"data") and record.read == 1


def test_save_drops_the_entries_of_files_gone_since(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hash_record, "RACY_NS", 0)
    kept, gone = written(tmp_path / "kept", b"k"), written(tmp_path / "gone", b"g")
    record_path = tmp_path / "record.json"
    record = HashRecord(str(record_path))
    record.sha256(str(kept))
    record.sha256(str(gone))
    gone.unlink()
    record.save()
    assert list(json.loads(record_path.read_text())) == [str(kept)]


def test_a_missing_file_raises_as_reading_it_would(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        HashRecord(None).sha256(str(tmp_path / "absent"))
