# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The distribution model: merge, validation, restart semantics, redaction, token and file handling."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

_COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.merge import deep_merge, merge_layers
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import core as d

OWNER = (os.getuid(), os.getgid())


def _apply(dist: d.Distribution, tmp_path: Path, check_mode: bool = False, **params: Any) -> dict[str, Any]:
    params.setdefault("path", str(tmp_path / "etc" / "config.yaml"))
    params.setdefault("host", "node1")
    return d.apply_config(
        dist, params, check_mode, f"edgefleet.k8s.{dist.name}_config", root=str(tmp_path), owner=OWNER
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ----------------------------------------------------------------------------- the model


def test_k3s_and_k0s_are_two_instances_of_one_model() -> None:
    assert d.get("k3s") is d.K3S and d.get("k0s") is d.K0S
    assert d.K3S.sqlite_db == "/var/lib/rancher/k3s/server/db/state.db"
    assert d.K3S.manifests_dir == "/var/lib/rancher/k3s/server/manifests"
    assert d.K3S.server_token_path == "/var/lib/rancher/k3s/server/token"
    assert d.K0S.config_path == "/etc/k0s/k0s.yaml"
    assert d.K0S.sqlite_db == "/var/lib/k0s/db/state.db"
    assert d.K3S.unit("agent") == "k3s-agent.service"
    assert d.K0S.unit("worker") == "k0sworker.service"
    assert d.K0S.role_name("server") == "controller"
    facts = d.K3S.as_dict()
    assert facts["cis_files"]["admission"] == "/var/lib/rancher/k3s/server/psa.yaml"


# ----------------------------------------------------------------------------- merge


def test_arg_lists_merge_by_name_and_dicts_merge_deep() -> None:
    merged = deep_merge(
        {"kube-apiserver-arg": ["audit-log-maxage=30", "audit-log-maxsize=100"], "a": {"b": 1, "c": 2}},
        {"kube-apiserver-arg": ["audit-log-maxage=7", "v=2"], "a": {"c": 3}},
        frozenset({"kube-apiserver-arg"}),
    )
    assert merged["kube-apiserver-arg"] == ["audit-log-maxage=7", "audit-log-maxsize=100", "v=2"]
    assert merged["a"] == {"b": 1, "c": 3}


def test_k3s_layers_cis_then_datastore_then_settings_then_overrides() -> None:
    plan = d.plan_k3s(
        d.ConfigRequest(
            host="node1",
            role="server",
            datastore="etcd",
            cluster_servers=("node1", "node2", "node3"),
            token_file="/etc/rancher/k3s/token",
            settings={"node-name": "node1"},
            overrides={"kube-apiserver-arg": ["audit-log-maxage=7"], "write-kubeconfig-mode": "0640"},
        )
    )
    assert plan.ok, plan.problems
    cfg = plan.config
    assert cfg is not None
    assert cfg["cluster-init"] is True and "server" not in cfg
    assert cfg["token-file"] == "/etc/rancher/k3s/token"
    assert cfg["secrets-encryption"] is True and cfg["protect-kernel-defaults"] is True
    args = cfg["kube-apiserver-arg"]
    assert "audit-log-maxage=7" in args and "audit-log-maxage=30" not in args
    assert "enable-admission-plugins=NodeRestriction,EventRateLimit" in args
    assert "admission-control-config-file=/var/lib/rancher/k3s/server/psa.yaml" in args
    assert cfg["write-kubeconfig-mode"] == "0640"
    assert cfg["node-name"] == "node1"
    assert plan.exec_args == ["server"] and plan.unit == "k3s.service"


def test_k3s_joiners_and_agents_get_server_url() -> None:
    join = d.plan_k3s(
        d.ConfigRequest(
            host="node2",
            role="server",
            datastore="etcd",
            cluster_servers=("node1", "node2", "node3"),
            server_url="https://10.0.0.1:6443",
        )
    )
    assert join.config is not None and join.config["server"] == "https://10.0.0.1:6443"
    assert "cluster-init" not in join.config
    agent = d.plan_k3s(d.ConfigRequest(host="a1", role="agent", server_url="https://10.0.0.1:6443", cis=False))
    assert agent.config == {"server": "https://10.0.0.1:6443"}
    assert agent.unit == "k3s-agent.service" and agent.exec_args == ["agent"]


def test_cis_off_leaves_no_hardening_keys() -> None:
    plan = d.plan_k3s(d.ConfigRequest(host="node1", role="server", cis=False))
    assert plan.config == {"write-kubeconfig-mode": "0600"}


# ----------------------------------------------------------------------------- validation


def test_every_problem_is_listed_at_once_naming_host_and_key() -> None:
    plan = d.plan_k3s(
        d.ConfigRequest(
            host="node1",
            role="server",
            datastore="sqlite",
            cluster_servers=("node1", "node2"),
            overrides={"tokn": "x", "token": "s3cret", "secrets-encryption": "yes"},
            overrides_name="edgefleet_k3s_config",
        )
    )
    text = "\n".join(plan.problems)
    assert len(plan.problems) == 4, plan.problems
    assert "node1: edgefleet_k3s_config key 'tokn': is not a known K3s server option; did you mean 'token'?" in text
    assert "node1: edgefleet_k3s_config key 'token': a secret must not be given inline" in text
    assert "key 'secrets-encryption': must be true or false, found 'yes'" in text
    assert "edgefleet_datastore is 'sqlite' but the cluster has 2 servers (node1, node2)" in text
    assert "s3cret" not in text


def test_server_option_on_an_agent_is_named() -> None:
    plan = d.plan_k3s(
        d.ConfigRequest(host="a1", role="agent", server_url="https://s:6443", overrides={"cluster-cidr": "10.0.0.0/16"})
    )
    assert plan.problems == ["a1: overrides key 'cluster-cidr': is a K3s server option, not valid on an agent"]


def test_dqlite_is_explained() -> None:
    plan = d.plan_k3s(d.ConfigRequest(host="n", role="server", datastore="dqlite"))
    assert len(plan.problems) == 1
    assert "v1.19.1" in plan.problems[0] and "'etcd'" in plan.problems[0]


def test_managed_keys_and_missing_endpoint_and_url() -> None:
    plan = d.plan_k3s(
        d.ConfigRequest(
            host="node2",
            role="server",
            datastore="external",
            cluster_servers=("node1", "node2"),
            overrides={"cluster-init": True, "server": "https://x:6443"},
        )
    )
    text = "\n".join(plan.problems)
    assert "key 'cluster-init': is managed by the role" in text
    assert "key 'server': is managed by the role" in text
    assert "no datastore endpoint is set" in text
    agent = d.plan_k3s(d.ConfigRequest(host="a1", role="agent"))
    assert agent.problems == ["a1: an agent needs the URL of a server to join (server_url), none was given"]


def test_roles_must_match_the_cluster_lists() -> None:
    plan = d.plan_k3s(d.ConfigRequest(host="n9", role="server", cluster_servers=("node1",)))
    assert any("not in edgefleet_cluster_servers" in p for p in plan.problems)
    bad = d.plan_k3s(d.ConfigRequest(host="n1", role="master"))
    assert bad.problems == ["n1: edgefleet_node_role is 'master'; allowed: server, agent"]


def test_even_etcd_members_warn() -> None:
    plan = d.plan_k3s(
        d.ConfigRequest(host="node1", role="server", datastore="etcd", cluster_servers=("node1", "node2"))
    )
    assert plan.ok and plan.warnings and "odd number" in plan.warnings[0]


def test_k0s_validation_walks_the_schema() -> None:
    plan = d.plan_k0s(
        d.ConfigRequest(
            host="c1",
            role="controller",
            datastore="sqlite",
            cluster_servers=("c1", "c2"),
            overrides={
                "spec": {"netwrk": {}, "api": {"extraArgs": {"v": 2}, "adress": "x"}, "storage": {"type": "etcd"}}
            },
            overrides_name="edgefleet_k0s_config",
        )
    )
    text = "\n".join(plan.problems)
    assert (
        "c1: edgefleet_k0s_config key 'spec.netwrk': is not a known K0s ClusterConfig key; did you mean 'network'?"
        in text
    )
    assert "key 'spec.api.adress': is not a known K0s ClusterConfig key; did you mean 'address'?" in text
    assert "key 'spec.storage.type': is managed by the role" in text
    assert "edgefleet_datastore is 'sqlite' but the cluster has 2 controllers (c1, c2)" in text
    assert len(plan.problems) == 4


def test_k0s_controller_profile_and_args() -> None:
    plan = d.plan_k0s(d.ConfigRequest(host="c1", role="server", cluster_servers=("c1",)))
    assert plan.ok
    cfg = plan.config
    assert cfg is not None
    assert cfg["apiVersion"] == "k0s.k0sproject.io/v1beta1" and cfg["kind"] == "ClusterConfig"
    assert cfg["spec"]["storage"] == {
        "type": "kine",
        "kine": {"dataSource": "sqlite://file:/var/lib/k0s/db/state.db?mode=rwc&_journal=WAL&cache=shared"},
    }
    api = cfg["spec"]["api"]["extraArgs"]
    assert api["encryption-provider-config"] == "/etc/k0s/cis/encryption.yaml"
    assert api["enable-admission-plugins"] == "NodeRestriction,EventRateLimit"
    assert cfg["spec"]["controllerManager"]["extraArgs"] == {"terminated-pod-gc-threshold": "10"}
    assert plan.exec_args == ["controller", "--config=/etc/k0s/k0s.yaml", "--single"]
    two = d.plan_k0s(d.ConfigRequest(host="c1", role="server", cluster_servers=("c1",), cluster_agents=("w1",)))
    assert two.exec_args == ["controller", "--config=/etc/k0s/k0s.yaml"]
    worker = d.plan_k0s(d.ConfigRequest(host="w1", role="worker"))
    assert worker.config is None and worker.exec_args == ["worker", "--token-file=/etc/k0s/worker-token"]
    assert worker.unit == "k0sworker.service"


# ----------------------------------------------------------------------------- apply: files, restart, redaction


def test_first_write_is_0600_and_second_run_is_unchanged(tmp_path: Path) -> None:
    first = _apply(d.K3S, tmp_path, role="server", token_file=str(tmp_path / "token"), generate_token=True)
    assert first["changed"] and first["restart_required"] and not first.get("failed")
    cfg = tmp_path / "etc" / "config.yaml"
    assert _mode(cfg) == 0o600 and _mode(tmp_path / "token") == 0o600
    token = (tmp_path / "token").read_text().strip()
    assert len(token) == 64
    assert token not in json.dumps(first)
    assert yaml.safe_load(cfg.read_text())["token-file"] == str(tmp_path / "token")
    second = _apply(d.K3S, tmp_path, role="server", token_file=str(tmp_path / "token"), generate_token=True)
    assert not second["changed"] and not second["restart_required"]
    assert (tmp_path / "token").read_text().strip() == token


def test_reordered_or_reformatted_file_needs_no_restart(tmp_path: Path) -> None:
    _apply(d.K3S, tmp_path, role="server", cis=True)
    cfg = tmp_path / "etc" / "config.yaml"
    data = yaml.safe_load(cfg.read_text())
    reordered = dict(reversed(list(data.items())))
    reordered["kube-controller-manager-arg"] = reordered["kube-controller-manager-arg"][0]  # one item, no list
    cfg.write_text("# hand edited\n" + yaml.safe_dump(reordered, sort_keys=False, default_flow_style=True))
    os.chmod(cfg, 0o644)
    again = _apply(d.K3S, tmp_path, role="server", cis=True)
    assert again["changed"] and not again["restart_required"]
    assert _mode(cfg) == 0o600
    changed = _apply(d.K3S, tmp_path, role="server", cis=True, overrides={"kube-apiserver-arg": ["audit-log-maxage=7"]})
    assert changed["changed"] and changed["restart_required"]


def test_check_mode_writes_nothing_and_reports_diff(tmp_path: Path) -> None:
    res = _apply(
        d.K3S, tmp_path, check_mode=True, role="server", token_file=str(tmp_path / "token"), generate_token=True
    )
    assert res["changed"] and res["restart_required"]
    assert not (tmp_path / "etc").exists() and not (tmp_path / "token").exists()
    assert "secrets-encryption: true" in res["diff"][0]["after"]
    assert res["diff"][1]["after"].startswith("<redacted>")


def test_bad_input_touches_nothing(tmp_path: Path) -> None:
    res = _apply(
        d.K3S, tmp_path, role="server", datastore="sqlite", cluster_servers=["node1", "node2"], overrides={"tokn": 1}
    )
    assert res["failed"] and not res["changed"]
    assert "2 problems, nothing was changed" in res["msg"]
    assert "- node1: overrides key 'tokn'" in res["msg"]
    assert not (tmp_path / "etc").exists()


def test_validate_only_reads_nothing(tmp_path: Path) -> None:
    (tmp_path / "var/lib/rancher/k3s/server/db/etcd").mkdir(parents=True)
    res = _apply(d.K3S, tmp_path, role="server", validate_only=True)
    assert not res.get("failed") and res["datastore_on_disk"] is None and not (tmp_path / "etc").exists()


def test_external_endpoint_is_redacted_everywhere(tmp_path: Path) -> None:
    dsn = "postgres://k3s:hunter2@db:5432/k3s"
    res = _apply(d.K3S, tmp_path, role="server", datastore="external", datastore_endpoint=dsn)
    assert not res.get("failed"), res.get("msg")
    assert "hunter2" not in json.dumps(res)
    assert res["config"]["datastore-endpoint"] == "<redacted>"
    assert yaml.safe_load((tmp_path / "etc" / "config.yaml").read_text())["datastore-endpoint"] == dsn
    assert d.mask_credentials(f"cannot reach {dsn}") == "cannot reach postgres://<redacted>@db:5432/k3s"


def test_joiner_without_token_is_a_problem_and_token_rotation_restarts(tmp_path: Path) -> None:
    params: dict[str, Any] = {
        "role": "agent",
        "host": "a1",
        "server_url": "https://s:6443",
        "token_file": str(tmp_path / "token"),
    }
    missing = _apply(d.K3S, tmp_path, **params)
    assert missing["failed"] and "token file" in missing["msg"] and "does not exist" in missing["msg"]
    first = _apply(d.K3S, tmp_path, token="K10abc::server:one", **params)
    assert first["changed"] and not first["token_changed"]
    assert "K10abc" not in json.dumps(first)
    same = _apply(d.K3S, tmp_path, token="K10abc::server:one", **params)
    assert not same["changed"] and not same["restart_required"]
    rotated = _apply(d.K3S, tmp_path, token="K10abc::server:two", **params)
    assert rotated["token_changed"] and rotated["restart_required"]
    assert (tmp_path / "token").read_text() == "K10abc::server:two\n"


def test_init_server_adopts_the_token_k3s_made(tmp_path: Path) -> None:
    own = tmp_path / "var/lib/rancher/k3s/server/token"
    own.parent.mkdir(parents=True)
    own.write_text("K10deadbeef::server:abc\n")
    _apply(d.K3S, tmp_path, role="server", token_file=str(tmp_path / "token"), generate_token=True)
    assert (tmp_path / "token").read_text() == "K10deadbeef::server:abc\n"


def test_sqlite_to_etcd_migration_is_reported_and_etcd_to_sqlite_refused(tmp_path: Path) -> None:
    db = tmp_path / "var/lib/rancher/k3s/server/db/state.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"SQLite format 3\0")
    res = _apply(d.K3S, tmp_path, role="server", datastore="etcd", cluster_servers=["node1"])
    assert res["datastore_on_disk"] == "sqlite" and res["migration"] == "sqlite-to-etcd"
    (tmp_path / "var/lib/rancher/k3s/server/db/etcd").mkdir()
    back = _apply(d.K3S, tmp_path, role="server", datastore="sqlite", cluster_servers=["node1"])
    assert back["failed"] and "no supported way back from etcd to SQLite" in back["msg"]


def test_unparseable_existing_file_is_kept_aside(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "config.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("key: [unclosed\n")
    res = _apply(d.K3S, tmp_path, role="server")
    assert res["restart_required"] and any("cannot parse" in w for w in res["warnings"])
    assert (tmp_path / "etc" / "config.yaml.unparsed").read_text() == "key: [unclosed\n"


def test_k0s_string_quoting_does_not_count(tmp_path: Path) -> None:
    params: dict[str, Any] = {
        "role": "controller",
        "cluster_servers": ["node1"],
        "overrides": {"spec": {"api": {"extraArgs": {"v": 2}}}},
    }
    first = _apply(d.K0S, tmp_path, **params)
    cfg = tmp_path / "etc" / "config.yaml"
    data = yaml.safe_load(cfg.read_text())
    assert data["spec"]["api"]["extraArgs"]["v"] == "2"
    data["spec"]["controllerManager"]["extraArgs"]["terminated-pod-gc-threshold"] = 10  # unquoted by hand
    cfg.write_text(yaml.safe_dump(data))
    again = _apply(d.K0S, tmp_path, **params)
    assert first["restart_required"] and again["changed"] and not again["restart_required"]


def test_k0s_worker_only_gets_its_token_file(tmp_path: Path) -> None:
    res = _apply(d.K0S, tmp_path, role="worker", host="w1", token_file=str(tmp_path / "wt"), token="H4sIAAAA-join")
    assert res["path"] is None and res["config"] is None
    assert _mode(tmp_path / "wt") == 0o600 and not (tmp_path / "etc").exists()
    assert "H4sIAAAA" not in json.dumps(res)
    assert res["exec_args"] == ["worker", f"--token-file={tmp_path / 'wt'}"]


def test_k0s_kine_to_etcd_has_no_path(tmp_path: Path) -> None:
    db = tmp_path / "var/lib/k0s/db/state.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"x")
    res = _apply(d.K0S, tmp_path, role="server", datastore="etcd", cluster_servers=["node1"])
    assert res["failed"] and "no in-place migration from kine to etcd" in res["msg"]


# ----------------------------------------------------------------------------- properties

_scalar = st.one_of(st.booleans(), st.integers(-5, 5), st.text("abcxyz=-", min_size=1, max_size=6))
_keys = st.sampled_from(sorted(d.k3s_flags.SERVER_KEYS))


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(_keys, st.one_of(_scalar, st.lists(_scalar, min_size=1, max_size=3)), max_size=8))
def test_render_then_parse_has_the_same_effective_settings(config: dict[str, Any]) -> None:
    parsed, error = d.parse(d.render(d.K3S, config, "m"))
    assert error is None
    assert not d.effective_changed(d.K3S, parsed, config)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]), _scalar, max_size=3), max_size=4))
def test_merging_a_layer_twice_changes_nothing(layers: list[dict[str, Any]]) -> None:
    once = merge_layers(layers)
    assert merge_layers([*layers, once]) == once


@pytest.mark.parametrize("role", ["server", "agent"])
def test_argument_spec_matches_roles(role: str) -> None:
    spec = d.argument_spec(d.K3S)
    assert role in spec["role"]["choices"]
    assert spec["token"]["no_log"] and spec["datastore_endpoint"]["no_log"]
    assert "generate_token" not in d.argument_spec(d.K0S)
