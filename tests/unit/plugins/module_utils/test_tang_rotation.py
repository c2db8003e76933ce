# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tang key rotation on the server's key directory: new keys, old ones hidden (not deleted) until retired,
once per rotation ID; and which clevis slots a rotation rebinds. The rebinding itself (clevis luks regen on a
LUKS device) needs the VM lane."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._disk import tang

KEYGEN = ["/usr/libexec/tangd-keygen"]


def _server(tmp_path: Path) -> Path:
    db = tmp_path / "tang"
    db.mkdir()
    (db / "oldsig.jwk").write_text("{}")
    (db / "oldexc.jwk").write_text("{}")
    return db


def _keygen(calls: list[list[str]]):  # type: ignore[no-untyped-def]
    def run(argv: Sequence[str]) -> tuple[int, str, str]:
        calls.append(list(argv))
        target = Path(argv[-1])
        (target / f"new{len(calls)}sig.jwk").write_text("{}")
        (target / f"new{len(calls)}exc.jwk").write_text("{}")
        return 0, "", ""

    return run


def test_rotation_hides_the_old_keys_then_retirement_deletes_them_once(tmp_path: Path) -> None:
    db = _server(tmp_path)
    calls: list[list[str]] = []
    rotated = tang.rotate(str(db), "decommission-a3", KEYGEN, _keygen(calls))
    assert rotated["changed"] and rotated["old_keys"] == ["oldexc.jwk", "oldsig.jwk"]
    assert rotated["new_keys"] == ["new1exc.jwk", "new1sig.jwk"] and calls == [[*KEYGEN, str(db)]]
    # Old keys hidden, not gone: clients bound to them still recover until every one is rebound.
    assert tang.advertised(str(db)) == ["new1exc.jwk", "new1sig.jwk"]
    assert (db / ".oldsig.jwk").exists() and (db / ".oldexc.jwk").exists()
    record = Path(tang.record_path(str(db), "decommission-a3"))
    assert stat.S_IMODE(record.stat().st_mode) == 0o600 and json.loads(record.read_text())["retired"] is False

    again = tang.rotate(str(db), "decommission-a3", KEYGEN, _keygen(calls))
    assert not again["changed"] and len(calls) == 1

    retired = tang.retire(str(db), "decommission-a3")
    assert retired["changed"] and retired["retired"] and not (db / ".oldsig.jwk").exists()
    assert tang.advertised(str(db)) == ["new1exc.jwk", "new1sig.jwk"]
    assert not tang.retire(str(db), "decommission-a3")["changed"]


def test_check_mode_and_refusals(tmp_path: Path) -> None:
    db = _server(tmp_path)
    calls: list[list[str]] = []
    check = tang.rotate(str(db), "r1", KEYGEN, _keygen(calls), check_mode=True)
    assert check["changed"] and not calls and tang.advertised(str(db)) == ["oldexc.jwk", "oldsig.jwk"]
    assert tang.retire(str(db), "r1")["failed"]
    assert tang.rotate(str(tmp_path / "empty"), "r1", KEYGEN, _keygen(calls))["failed"]

    def broken(argv: Sequence[str]) -> tuple[int, str, str]:
        return 1, "", "no jose"

    failed = tang.rotate(str(db), "r1", KEYGEN, broken)
    assert failed["failed"] and "no jose" in failed["msg"] and tang.advertised(str(db)) == ["oldexc.jwk", "oldsig.jwk"]


def test_the_slots_to_rebind_are_the_tang_ones() -> None:
    listing = (
        '1: tpm2 \'{"hash":"sha256","key":"ecc"}\'\n'
        '2: tang \'{"url":"http://tang.site-a:7500"}\'\n'
        '3: sss \'{"t":1,"pins":{"tpm2":{},"tang":[{"url":"http://tang.site-a:7500"}]}}\'\n'
        '4: sss \'{"t":1,"pins":{"tpm2":{}}}\'\n'
    )
    assert tang.tang_slots(listing) == [2, 3]
    assert tang.tang_slots("") == []
