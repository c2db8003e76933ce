# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry mirrors: the schema (node side and fleet), the two file formats (K3s registries.yaml,
containerd hosts.toml and K0s's drop-in), and the module's writes, restarts and redaction."""

from __future__ import annotations

import os
import stat
import sys
import tomllib
import typing as t
from pathlib import Path

import pytest
import yaml

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registries as r
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registries_module as m
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k0s import K0S
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k3s import K3S
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_schema import FleetError, build_plan

PASSWORD = "pw-Zq81-never-logged"
MIRRORS: dict[str, t.Any] = {
    "mirrors": {
        "docker.io": {"endpoints": ["https://mirror.site.local", "https://mirror2.site.local:5000"]},
        "*": {"endpoints": ["https://mirror.site.local"]},
    },
    "configs": {
        "mirror.site.local": {"tls": {"ca_file": "/etc/ssl/site/ca.pem"}},
        "registry.site.local": {"tls": {"cert_file": "/etc/ssl/site/c.pem", "key_file": "/etc/ssl/site/k.pem"}},
    },
}
AUTH = {"mirror.site.local": {"username": "edge", "password": PASSWORD}}


def params(**extra: t.Any) -> dict[str, t.Any]:
    return {"host": "n1", "registries": MIRRORS, "auth": AUTH, **extra}


def run(dist: t.Any, root: Path, check: bool = False, **extra: t.Any) -> dict[str, t.Any]:
    return m.apply_registries(dist, params(**extra), check, root=str(root), owner=(None, None))


# --------------------------------------------------------------------------- schema


def test_three_bad_entries_are_three_problems_naming_registry_and_key() -> None:
    bad = {
        "mirrors": {
            "docker.io": {"endpoints": ["ftp://mirror.site.local"]},
            "quay.io": {"endpoint": ["https://mirror.site.local"]},
        },
        "configs": {"mirror.site.local": {"tls": {"insecure_skip_verify": "yes"}}},
    }
    _spec, problems = r.check_settings(bad, context="n1")
    assert len(problems) == 4  # quay.io: the unknown 'endpoint' and the missing 'endpoints'
    assert problems[0].startswith("n1: edgefleet_registries.mirrors.docker.io.endpoints[0]: found 'ftp://")
    assert "mirrors.quay.io.endpoint: unknown key" in problems[1] and "did you mean 'endpoints'" in problems[1]
    assert "mirrors.quay.io.endpoints: must be a non-empty list" in problems[2]
    assert "configs.mirror.site.local.tls.insecure_skip_verify: found 'yes'" in problems[3]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("mirror.site.local", "the scheme must be https or http"),
        ("https://user:secret@mirror.site.local", "credentials go in Ansible Vault"),
        ("https://", "no valid host"),
        ("https://mirror.site.local/?x=1", "no query or fragment"),
    ],
)
def test_bad_endpoint_urls(url: str, why: str) -> None:
    _spec, problems = r.check_settings({"mirrors": {"docker.io": {"endpoints": [url]}}})
    assert len(problems) == 1 and why in problems[0]
    assert "secret" not in problems[0]


def test_auth_without_tls_is_refused() -> None:
    spec, problems = r.check_settings({"mirrors": {"docker.io": {"endpoints": ["http://mirror.site.local"]}}})
    assert problems == []
    problems = r.check_auth(spec, AUTH, context="n1")
    assert len(problems) == 1
    assert problems[0].startswith("n1: edgefleet_registry_auth.mirror.site.local: auth without TLS")
    assert PASSWORD not in problems[0] and spec.auth == {}


def test_auth_with_tls_verification_off_is_refused() -> None:
    spec, _problems = r.check_settings({"configs": {"mirror.site.local": {"tls": {"insecure_skip_verify": True}}}})
    problems = r.check_auth(spec, AUTH)
    assert len(problems) == 1 and "insecure_skip_verify" in problems[0]


def test_credentials_in_the_settings_are_refused() -> None:
    _spec, problems = r.check_settings({"configs": {"mirror.site.local": {"auth": {"password": PASSWORD}}}})
    assert len(problems) == 1 and "Ansible Vault" in problems[0] and PASSWORD not in problems[0]


def test_half_a_client_certificate_and_relative_paths() -> None:
    _spec, problems = r.check_settings(
        {"configs": {"r.site.local": {"tls": {"cert_file": "/c.pem"}}, "s.site.local": {"tls": {"ca_file": "ca.pem"}}}}
    )
    assert len(problems) == 2
    assert "cert_file and key_file" in problems[0] and "an absolute path" in problems[1]


def test_rewrites_are_k3s_only() -> None:
    settings = {"mirrors": {"docker.io": {"endpoints": ["https://m.site.local"], "rewrites": {"^a/(.*)": "b/$1"}}}}
    assert m.plan(K3S, {"registries": settings})[1] == []
    problems = m.plan(K0S, {"host": "w1", "registries": settings})[1]
    assert len(problems) == 1
    assert problems[0].startswith("w1: edgefleet_registries.mirrors.docker.io.rewrites: K0s's containerd")


def test_a_rewrite_must_be_a_regular_expression() -> None:
    settings = {"mirrors": {"docker.io": {"endpoints": ["https://m.site.local"], "rewrites": {"(": "x"}}}}
    problems = m.plan(K3S, {"registries": settings})[1]
    assert len(problems) == 1 and "not a regular expression" in problems[0]


def test_secret_values_mask_password_and_basic_header() -> None:
    values = r.secret_values(AUTH)
    assert PASSWORD in values and r.basic_auth("edge", PASSWORD) in values


def fleet(registries: t.Any, distribution: str = "k3s") -> dict[str, t.Any]:
    version = "v1.31.4+k3s1" if distribution == "k3s" else "v1.31.3+k0s.0"
    return {
        "defaults": {
            "region": "eu",
            "model": "rpi5",
            "channel": "stable",
            "version": version,
            "distribution": distribution,
            "gitops": {"engine": "none"},
        },
        "sites": [
            {
                "name": "ber-01",
                "registries": registries,
                "nodes": [{"name": "ber-01-s1", "address": "192.0.2.10", "role": "server"}],
            }
        ],
    }


def test_fleet_reports_three_bad_mirror_entries_in_one_error() -> None:
    bad = {
        "mirrors": {
            "docker.io": {"endpoints": ["ftp://mirror.site.local"]},
            "ghcr.io": {"endpoints": ["https://mirror.site.local"], "rewrite": {"a": "b"}},
            "quay io": {"endpoints": ["https://mirror.site.local"]},
        }
    }
    with pytest.raises(FleetError) as info:
        build_plan([("fleet.yml", fleet(bad))])
    text = [str(p) for p in info.value.problems]
    assert len(text) == 3, text
    assert all("fleet.yml" in p and "ber-01" in p for p in text)
    assert any("registries.mirrors.docker.io.endpoints[0]" in p for p in text)
    assert any("registries.mirrors.ghcr.io.rewrite" in p and "did you mean 'rewrites'" in p for p in text)
    assert any("registries.mirrors.quay io" in p for p in text)


def test_fleet_refuses_rewrites_on_k0s_and_publishes_registries() -> None:
    settings = {"mirrors": {"docker.io": {"endpoints": ["https://m.site.local"], "rewrites": {"^a": "b"}}}}
    with pytest.raises(FleetError, match=r"registries\.mirrors\.docker\.io\.rewrites: K0s's containerd"):
        build_plan([("fleet.yml", fleet(settings, "k0s"))])
    plan, _warnings = build_plan([("fleet.yml", fleet(settings))])
    assert plan["sites"][0]["vars"]["edgefleet_registries"] == settings


# --------------------------------------------------------------------------- the two formats


def test_k3s_registries_yaml() -> None:
    spec, problems = r.check_settings(MIRRORS)
    problems += r.check_auth(spec, AUTH)
    assert problems == []
    (item,) = K3S.registry_files(spec, "# Managed by edgefleet.k8s (t).\n")
    assert item.path == "/etc/rancher/k3s/registries.yaml" and item.restart
    data = yaml.safe_load(item.content)
    assert data["mirrors"] == {
        "docker.io": {"endpoint": ["https://mirror.site.local", "https://mirror2.site.local:5000"]},
        "*": {"endpoint": ["https://mirror.site.local"]},
    }
    assert data["configs"]["mirror.site.local"] == {
        "auth": {"username": "edge", "password": PASSWORD},
        "tls": {"ca_file": "/etc/ssl/site/ca.pem"},
    }
    assert data["configs"]["registry.site.local"] == {
        "tls": {"cert_file": "/etc/ssl/site/c.pem", "key_file": "/etc/ssl/site/k.pem"}
    }
    assert PASSWORD not in item.shown and "<redacted>" in item.shown


def test_containerd_hosts_toml_and_k0s_dropin() -> None:
    spec, _problems = r.check_settings(MIRRORS)
    r.check_auth(spec, AUTH)
    files = {f.path: f for f in K0S.registry_files(spec, "# Managed by edgefleet.k8s (t).\n")}
    hosts = "/etc/k0s/containerd-hosts.d"
    assert sorted(files) == [
        f"{hosts}/_default/hosts.toml",
        f"{hosts}/docker.io/hosts.toml",
        f"{hosts}/registry.site.local/hosts.toml",
        "/etc/k0s/containerd.d/edgefleet-registries.toml",
    ]
    dropin = tomllib.loads(files["/etc/k0s/containerd.d/edgefleet-registries.toml"].content.decode())
    assert dropin["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"] == hosts
    assert files["/etc/k0s/containerd.d/edgefleet-registries.toml"].restart
    docker = tomllib.loads(files[f"{hosts}/docker.io/hosts.toml"].content.decode())
    assert list(docker["host"]) == ["https://mirror.site.local", "https://mirror2.site.local:5000"]  # order kept
    first = docker["host"]["https://mirror.site.local"]
    assert first["capabilities"] == ["pull", "resolve"] and first["ca"] == "/etc/ssl/site/ca.pem"
    assert first["header"]["Authorization"] == ["Basic " + r.basic_auth("edge", PASSWORD)]
    assert "header" not in docker["host"]["https://mirror2.site.local:5000"]
    assert not files[f"{hosts}/docker.io/hosts.toml"].restart
    assert r.basic_auth("edge", PASSWORD) not in files[f"{hosts}/docker.io/hosts.toml"].shown
    own = tomllib.loads(files[f"{hosts}/registry.site.local/hosts.toml"].content.decode())
    assert own["server"] == "https://registry.site.local"
    assert own["host"]["https://registry.site.local"]["client"] == [["/etc/ssl/site/c.pem", "/etc/ssl/site/k.pem"]]


def test_no_settings_no_files() -> None:
    spec, _problems = r.check_settings({})
    assert K3S.registry_files(spec, "#\n") == [] and K0S.registry_files(spec, "#\n") == []


# --------------------------------------------------------------------------- the module's work


@pytest.mark.parametrize("dist", [K3S, K0S], ids=["k3s", "k0s"])
def test_write_0600_then_nothing_and_check_mode_writes_nothing(dist: t.Any, tmp_path: Path) -> None:
    dry = run(dist, tmp_path, check=True)
    assert dry["changed"] and dry["restart_required"] and not any(tmp_path.iterdir())
    first = run(dist, tmp_path, restart_marker="/var/lib/edgefleet/restart-pending/unit")
    assert first["changed"] and first["restart_required"] and first["written"] == first["files"]
    for path in first["files"]:
        assert stat.S_IMODE(os.stat(tmp_path / path.lstrip("/")).st_mode) == 0o600
    assert all(PASSWORD not in d["after"] for d in first["diff"])
    second = run(dist, tmp_path)
    assert not second["changed"] and second["written"] == [] and not second["restart_required"]


def test_k0s_a_mirror_change_rewrites_only_its_file_without_restart(tmp_path: Path) -> None:
    run(K0S, tmp_path)
    before = {p: os.stat(p).st_mtime_ns for p in tmp_path.rglob("*.toml")}
    changed = {**MIRRORS, "mirrors": {**MIRRORS["mirrors"], "docker.io": {"endpoints": ["https://mirror.site.local"]}}}
    result = m.apply_registries(K0S, params(registries=changed), False, root=str(tmp_path), owner=(None, None))
    assert result["written"] == ["/etc/k0s/containerd-hosts.d/docker.io/hosts.toml"]
    assert not result["restart_required"]
    after = {p: os.stat(p).st_mtime_ns for p in tmp_path.rglob("*.toml")}
    assert [p.parent.name for p in before if before[p] != after[p]] == ["docker.io"]


def test_k3s_a_mirror_change_restarts_and_a_removed_registry_file_goes(tmp_path: Path) -> None:
    run(K3S, tmp_path)
    result = run(K3S, tmp_path, registries={"mirrors": {"docker.io": {"endpoints": ["https://m.site.local"]}}})
    assert result["written"] == ["/etc/rancher/k3s/registries.yaml"] and result["restart_required"]
    emptied = run(K3S, tmp_path, registries={}, auth={})
    assert emptied["removed"] == ["/etc/rancher/k3s/registries.yaml"] and emptied["restart_required"]
    assert not (tmp_path / "etc/rancher/k3s/registries.yaml").exists()


def test_k0s_a_removed_registry_loses_its_hosts_file_and_foreign_files_stay(tmp_path: Path) -> None:
    run(K0S, tmp_path)
    foreign = tmp_path / "etc/k0s/containerd-hosts.d/quay.io/hosts.toml"
    foreign.parent.mkdir(parents=True)
    foreign.write_text('server = "https://quay.io"\n')
    smaller = {"mirrors": {"docker.io": MIRRORS["mirrors"]["docker.io"]}, "configs": MIRRORS["configs"]}
    result = run(K0S, tmp_path, registries=smaller)
    assert result["removed"] == ["/etc/k0s/containerd-hosts.d/_default/hosts.toml"]
    assert not result["restart_required"]
    assert not (tmp_path / "etc/k0s/containerd-hosts.d/_default").exists() and foreign.exists()


def test_bad_input_fails_before_any_write(tmp_path: Path) -> None:
    result = run(K3S, tmp_path, registries={"mirrors": {"docker.io": {"endpoints": ["ftp://x"]}}, "mirorrs": {}})
    assert result["failed"] and len(result["problems"]) == 2
    assert "2 problems, nothing was changed" in result["msg"]
    assert not any(tmp_path.iterdir())


def test_validate_only_reads_and_writes_nothing(tmp_path: Path) -> None:
    result = run(K3S, tmp_path, validate_only=True)
    assert result["files"] == ["/etc/rancher/k3s/registries.yaml"] and not result["changed"]
    assert not any(tmp_path.iterdir())
