"""Tests for tests/lab/containers_conf.py (the host fix that must not clobber containers.conf)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from containers_conf import set_key

SCRIPT = Path(__file__).parent / "containers_conf.py"


def run(path: Path, *settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(path), *settings], capture_output=True, text=True)


def test_creates_missing_file_and_sections(tmp_path: Path) -> None:
    conf = tmp_path / "containers.conf"
    res = run(conf, 'containers.default_ulimits=["nofile=20000:20000"]', 'engine.runtime="runc"')
    assert res.returncode == 0, res.stderr
    text = conf.read_text()
    assert '[containers]\ndefault_ulimits = ["nofile=20000:20000"]\n' in text
    assert '[engine]\nruntime = "runc"\n' in text


def test_keeps_other_settings_and_comments(tmp_path: Path) -> None:
    conf = tmp_path / "containers.conf"
    conf.write_text(
        '# site policy\n[containers]\nlog_driver = "journald"\ndefault_ulimits = [\n  "nofile=1024:1024",\n]\n'
        '\n[engine]\n# keep me\nevents_logger = "file"\nruntime = "crun"\n\n[network]\ndns_bind_port = 53\n'
    )
    res = run(conf, 'containers.default_ulimits=["nofile=20000:20000"]', 'engine.runtime="runc"')
    assert res.returncode == 0, res.stderr
    assert conf.read_text() == (
        '# site policy\n[containers]\nlog_driver = "journald"\ndefault_ulimits = ["nofile=20000:20000"]\n'
        '\n[engine]\n# keep me\nevents_logger = "file"\nruntime = "runc"\n\n[network]\ndns_bind_port = 53\n'
    )


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    conf = tmp_path / "containers.conf"
    run(conf, 'engine.runtime="runc"')
    before = conf.stat().st_mtime_ns
    res = run(conf, 'engine.runtime="runc"')
    assert res.returncode == 0
    assert res.stdout == ""
    assert conf.stat().st_mtime_ns == before


def test_commented_key_is_not_taken_for_the_setting() -> None:
    lines = ["[engine]\n", '#runtime = "crun"\n']
    assert set_key(lines, "engine", "runtime", '"runc"')
    assert lines == ["[engine]\n", 'runtime = "runc"\n', '#runtime = "crun"\n']


@pytest.mark.parametrize("bad", ["runtime=runc", "noequals"])
def test_bad_setting_is_refused(tmp_path: Path, bad: str) -> None:
    res = run(tmp_path / "c.conf", bad)
    assert res.returncode == 2
    assert "bad setting" in res.stderr
    assert not (tmp_path / "c.conf").exists()
