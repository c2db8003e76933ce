"""The K3s/K0s stand-ins' CLI contract that needs no binaries: config validation, tokens, labelling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CP_DIR
from edgefleet_standin import core, k0s, k3s, k3s_journal

pytestmark = pytest.mark.controlplane

STANDIN = CP_DIR / "standin"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(STANDIN), EDGEFLEET_STANDIN_VERSION="v9.9.9+lab")
    return subprocess.run(
        [sys.executable, "-m", "edgefleet_standin", *args], capture_output=True, text=True, env=env, check=False
    )


def test_every_start_says_stand_in() -> None:
    for argv in (["k3s", "k3s", "--version"], ["k0s", "k0s", "version"], ["k3s", "k3s", "no-such-command"]):
        res = _run(*argv)
        assert core.BANNER in res.stderr
    res = _run("k3s", "k3s", "--version")
    assert res.returncode == 0
    assert res.stdout.splitlines()[0].startswith("k3s version v9.9.9+lab")


def test_unknown_keys_rejected_all_named(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("write-kubeconfig-mode: '0600'\nno-such-flag: 1\n")
    dropins = tmp_path / "config.yaml.d"
    dropins.mkdir()
    (dropins / "10-extra.yaml").write_text("tls-san: [a.example]\nkube-apiserver-args: [x=y]\n")
    with pytest.raises(core.StandinError) as err:
        k3s.load_config("server", ["--config", str(cfg)])
    text = str(err.value)
    assert f'{cfg}: unknown key "no-such-flag"' in text
    assert f'{dropins / "10-extra.yaml"}: unknown key "kube-apiserver-args"' in text
    assert "tls-san" not in text.replace("kube-apiserver-args", "")


def test_unknown_key_makes_server_exit_nonzero(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("cluster-init: true\nbogus-key: yes\n")
    res = _run("k3s", "k3s", "server", "--config", str(cfg))
    assert res.returncode != 0
    assert 'unknown key "bogus-key"' in res.stderr
    assert core.BANNER in res.stderr


def test_server_only_key_rejected_for_agent(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("server: https://10.0.0.1:6443\ncluster-init: true\n")
    with pytest.raises(core.StandinError, match='unknown key "cluster-init" \\(not a k3s agent flag\\)'):
        k3s.load_config("agent", ["--config", str(cfg)])


def test_dropins_override_and_append(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("node-label: [a=1]\nhttps-listen-port: 6443\n")
    dropins = tmp_path / "config.yaml.d"
    dropins.mkdir()
    (dropins / "20-b.yaml").write_text("node-label+: [b=2]\nhttps-listen-port: 7443\n")
    (dropins / "10-a.yaml").write_text("tls-san: x.example\n")
    got = k3s.load_config("server", ["--config", str(cfg), "--node-label", "c=3"])
    assert got["node-label"] == ["a=1", "b=2", "c=3"]
    assert got["https-listen-port"] == 7443
    assert got["tls-san"] == ["x.example"]


def test_token_format_roundtrip() -> None:
    tok = core.Token.parse("K10abcdef::server:s3cret")
    assert (tok.ca_hash, tok.user, tok.password) == ("abcdef", "server", "s3cret")
    assert tok.full("abcdef") == "K10abcdef::server:s3cret"
    boot = core.Token.parse("K10ff::abcdef.0123456789abcdef")
    assert boot.bearer == "abcdef.0123456789abcdef"
    assert core.Token.parse("plain-passphrase").password == "plain-passphrase"


def test_k0s_unknown_spec_key(tmp_path: Path) -> None:
    cfg = tmp_path / "k0s.yaml"
    cfg.write_text(
        "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n"
        "  storage: {type: sqlite}\n  apii: {}\n  api: {adress: 1.2.3.4}\n"
    )
    with pytest.raises(core.StandinError) as err:
        k0s.load_config(cfg)
    text = str(err.value)
    for needle in ('"spec.apii"', '"spec.api.adress"', "spec.storage.type 'sqlite'"):
        assert needle in text


def test_k0s_join_token_roundtrip() -> None:
    raw = k0s._encode_token(core.kubeconfig("https://10.0.0.4:6443", "CA", token="abcdef.0123456789abcdef"))
    doc = k0s._decode_token(raw)
    assert doc["users"][0]["user"]["token"] == "abcdef.0123456789abcdef"
    with pytest.raises(core.StandinError):
        k0s._decode_token("not-a-token")


def test_k3s_journal_lines_sorted_with_passthrough(tmp_path: Path) -> None:
    """The `Running <component>` lines kube-bench reads: flags sorted as K3s prints them, `*-arg` overrides the
    defaults, and a component the stand-in does not run is marked as such."""
    line = k3s_journal.running_line(
        "kube-apiserver", ["/x/kube-apiserver", "--secure-port=6443", "--anonymous-auth=false"]
    )
    assert line == "Running kube-apiserver --anonymous-auth=false --secure-port=6443"
    cfg = {"kubelet-arg": ["read-only-port=10255", "pod-max-pids=4096"], "cluster-dns": ["10.53.0.10"]}
    argv = k3s_journal.kubelet_argv(cfg, tmp_path, "n1", "10.0.0.5")
    assert "--read-only-port=10255" in argv and "--read-only-port=0" not in argv
    assert {"--pod-max-pids=4096", "--cluster-dns=10.53.0.10", "--node-ip=10.0.0.5"} <= set(argv)
    assert k3s_journal.NOT_RUN.startswith("[stand-in: not run")
    k3s_journal.write_server_layout(tmp_path, "https://127.0.0.1:6443", "CA")
    k3s_journal.write_agent_layout(tmp_path, "https://127.0.0.1:6443", "CA", "CLIENT-CA")
    for rel in ("server/cred/controller.kubeconfig", "server/cred/scheduler.kubeconfig", "agent/kubelet.kubeconfig",
                "agent/kubeproxy.kubeconfig", "agent/client-ca.crt"):  # fmt: skip
        assert (tmp_path / rel).stat().st_mode & 0o777 == 0o600, rel
