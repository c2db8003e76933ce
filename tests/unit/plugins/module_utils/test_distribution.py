# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The distribution layer: the strategies (K3s, K0s), the shared config work (merge, validation,
restart semantics, redaction, token and file handling), the node settings derived from the
inventory, and the interface itself (every strategy fills it; a third one plugs in unchanged)."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import shlex
import stat
import sys
from collections.abc import Mapping
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
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.text import systemd_command_line
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import config as c
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import k3s_flags, registry
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import module as dmodule
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k0s import K0S, KUBELET_CIS_FLAG
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.k3s import K3S
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution.strategy import (
    ROLES,
    Distribution,
    JoinToken,
    NodeIdentity,
    TokenRotation,
    frozen,
)

OWNER = (os.getuid(), os.getgid())
MODULE = dmodule.MODULE_NAME


def _apply(dist: Distribution, tmp_path: Path, check_mode: bool = False, **params: Any) -> dict[str, Any]:
    params.setdefault("path", str(tmp_path / "etc" / "config.yaml"))
    params.setdefault("host", "node1")
    # The token file now defaults to the distribution's own (/etc/...); every write stays under tmp_path.
    params.setdefault("token_file", str(tmp_path / "token"))
    params.setdefault("agent_secret_file", str(tmp_path / "agent-token"))
    result = c.apply_config(dist, params, check_mode, MODULE, root=str(tmp_path), owner=OWNER)
    for key in ("path", "token_file", "agent_secret_file"):
        assert result.get(key) is None or str(result[key]).startswith(str(tmp_path)), result[key]
    return result


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _plan(dist: Distribution, **request: Any) -> c.ConfigPlan:
    return c.plan_config(dist, c.ConfigRequest(**request))


# ----------------------------------------------------------------------------- the strategies


def test_k3s_and_k0s_are_two_strategies_of_one_interface() -> None:
    assert registry.get("k3s") is K3S and registry.get("k0s") is K0S
    assert registry.NAMES == ("k3s", "k0s")
    assert K3S.sqlite_db == "/var/lib/rancher/k3s/server/db/state.db"
    assert K3S.manifests_dir == "/var/lib/rancher/k3s/server/manifests"
    assert K3S.server_token_path == "/var/lib/rancher/k3s/server/token"
    assert K0S.config_path == "/etc/k0s/k0s.yaml"
    assert K0S.sqlite_db == "/var/lib/k0s/db/state.db"
    assert K3S.unit("agent") == "k3s-agent.service"
    assert K0S.unit("worker") == "k0sworker.service"
    assert K0S.role_name("server") == "controller"
    facts = K3S.facts()
    assert facts["cis_files"]["admission"] == "/var/lib/rancher/k3s/server/psa.yaml"


def test_unknown_distribution_names_the_allowed_ones() -> None:
    with pytest.raises(KeyError) as err:
        registry.get("rke2")
    assert err.value.args[0] == "distribution: found 'rke2'; allowed: k3s, k0s"


def test_role_names_and_aliases_come_from_the_strategy() -> None:
    assert K3S.role_choices() == "server, agent"
    assert K0S.role_choices() == "server/controller, agent/worker"
    assert K0S.normalize_role("controller") == "server" and K0S.normalize_role("worker") == "agent"
    assert K3S.normalize_role("controller") == "controller"  # not a K3s name
    assert registry.all_role_names() == ["server", "agent", "controller", "worker"]
    # plan_config takes the distribution's own names as well (same plan as server/agent).
    alias = _plan(K0S, host="c1", role="controller", cluster_servers=("c1",))
    canonical = _plan(K0S, host="c1", role="server", cluster_servers=("c1",))
    assert alias.ok and alias.role == "server" and alias.config == canonical.config
    assert alias.exec_args == canonical.exec_args
    bad = _plan(K3S, host="n1", role="controller")
    assert bad.problems == ["n1: edgefleet_node_role is 'controller'; allowed: server, agent"]


# ----------------------------------------------------------------------------- merge


def test_arg_lists_merge_by_name_and_dicts_merge_deep() -> None:
    merged = deep_merge(
        {"kube-apiserver-arg": ["audit-log-maxage=30", "audit-log-maxsize=100"], "a": {"b": 1, "c": 2}},
        {"kube-apiserver-arg": ["audit-log-maxage=7", "v=2"], "a": {"c": 3}},
        frozenset({"kube-apiserver-arg"}),
    )
    assert merged["kube-apiserver-arg"] == ["audit-log-maxage=7", "audit-log-maxsize=100", "v=2"]
    assert merged["a"] == {"b": 1, "c": 3}


_LAYERS_OVERRIDES = {"kube-apiserver-arg": ["audit-log-maxage=7"], "write-kubeconfig-mode": "0640"}


def test_k3s_layers_cis_then_datastore_then_settings_then_overrides() -> None:
    plan = _plan(
        K3S,
        host="node1",
        role="server",
        datastore="etcd",
        cluster_servers=("node1", "node2", "node3"),
        token_file="/etc/rancher/k3s/token",
        agent_secret_file="/etc/rancher/k3s/agent-token",
        settings={"node-name": "node1"},
        overrides=_LAYERS_OVERRIDES,
    )
    assert plan.ok, plan.problems
    cfg = plan.config
    assert cfg is not None
    assert cfg["cluster-init"] is True and "server" not in cfg
    assert cfg["token-file"] == "/etc/rancher/k3s/token"
    assert cfg["agent-token-file"] == "/etc/rancher/k3s/agent-token"
    assert cfg["secrets-encryption"] is True and cfg["protect-kernel-defaults"] is True
    args = cfg["kube-apiserver-arg"]
    assert "audit-log-maxage=7" in args and "audit-log-maxage=30" not in args
    assert "enable-admission-plugins=NodeRestriction,EventRateLimit,DenyServiceExternalIPs" in args
    assert "admission-control-config-file=/var/lib/rancher/k3s/server/psa.yaml" in args
    assert cfg["write-kubeconfig-mode"] == "0640"
    assert cfg["node-name"] == "node1"
    assert plan.exec_args == ["server"] and plan.unit == "k3s.service"


def test_k3s_node_name_and_token_file_now_come_from_the_params() -> None:
    """The same plan as above, with node-name derived from host and the token file defaulted."""
    req = c.request_from_params(
        K3S,
        {
            "host": "node1",
            "role": "server",
            "datastore": "etcd",
            "cluster_servers": ["node1", "node2", "node3"],
            "overrides": _LAYERS_OVERRIDES,
        },
    )
    assert dict(req.settings) == {"node-name": "node1"} and req.token_file == "/etc/rancher/k3s/token"
    explicit = _plan(
        K3S,
        host="node1",
        role="server",
        datastore="etcd",
        cluster_servers=("node1", "node2", "node3"),
        token_file="/etc/rancher/k3s/token",
        agent_secret_file="/etc/rancher/k3s/agent-token",
        settings={"node-name": "node1"},
        overrides=_LAYERS_OVERRIDES,
    )
    derived = c.plan_config(K3S, req)
    assert derived.ok and derived.config == explicit.config and derived.exec_args == explicit.exec_args


def test_k3s_joiners_and_agents_get_server_url() -> None:
    join = _plan(
        K3S,
        host="node2",
        role="server",
        datastore="etcd",
        cluster_servers=("node1", "node2", "node3"),
        server_address="10.0.0.1",
    )
    assert join.config is not None and join.config["server"] == "https://10.0.0.1:6443"
    assert "cluster-init" not in join.config
    agent = _plan(K3S, host="a1", role="agent", server_address="10.0.0.1", cis=False)
    assert agent.config == {"server": "https://10.0.0.1:6443"}
    assert agent.unit == "k3s-agent.service" and agent.exec_args == ["agent"]


def test_cis_off_leaves_no_hardening_keys() -> None:
    plan = _plan(K3S, host="node1", role="server", cis=False)
    assert plan.config == {"write-kubeconfig-mode": "0600"}


# ----------------------------------------------------------------------------- node settings from the inventory


def test_k3s_node_settings_from_address_labels_and_port() -> None:
    labels = {"ring": "pilot", "edgefleet.io/site": "ber-01"}
    server = c.request_from_params(K3S, {"role": "server", "host": "node1", "address": "10.0.0.1", "labels": labels})
    assert dict(server.settings) == {
        "node-name": "node1",
        "node-label": ["ring=pilot", "edgefleet.io/site=ber-01"],
        "node-ip": "10.0.0.1",
        "tls-san": ["10.0.0.1"],
    }
    # A name is no node-ip but still a TLS SAN; a non-default port is the server's https-listen-port.
    named = c.request_from_params(K3S, {"role": "server", "host": "node1", "address": "node1.lab", "api_port": 7443})
    assert dict(named.settings) == {"node-name": "node1", "tls-san": ["node1.lab"], "https-listen-port": 7443}
    default_port = c.request_from_params(K3S, {"role": "server", "host": "node1", "api_port": 6443})
    assert dict(default_port.settings) == {"node-name": "node1"}
    # An agent: name, labels, node-ip; no tls-san, no listen port; it dials the server on api_port.
    agent = c.request_from_params(
        K3S,
        {
            "role": "agent",
            "host": "a1",
            "address": "10.0.0.5",
            "labels": labels,
            "api_port": 7443,
            "server_address": "10.0.0.1",
        },
    )
    assert dict(agent.settings) == {
        "node-name": "a1",
        "node-label": ["ring=pilot", "edgefleet.io/site=ber-01"],
        "node-ip": "10.0.0.5",
    }
    assert agent.server_url == "https://10.0.0.1:7443"
    plan = c.plan_config(K3S, agent)
    assert plan.ok, plan.problems
    assert plan.config is not None and plan.config["server"] == "https://10.0.0.1:7443"
    assert plan.config["node-ip"] == "10.0.0.5" and plan.config["node-label"] == agent.settings["node-label"]


def test_k3s_settings_win_over_derived_ones_and_can_be_turned_off() -> None:
    params: dict[str, Any] = {
        "role": "server",
        "host": "node1",
        "address": "10.0.0.1",
        "settings": {"node-name": "custom", "tls-san": ["api.lab"]},
    }
    req = c.request_from_params(K3S, params)
    assert dict(req.settings) == {"node-name": "custom", "node-ip": "10.0.0.1", "tls-san": ["api.lab"]}
    off = c.request_from_params(K3S, {**params, "node_settings": False})
    assert dict(off.settings) == {"node-name": "custom", "tls-san": ["api.lab"]}


def test_k0s_node_settings_from_address_and_port() -> None:
    base = {"role": "controller", "host": "c1", "cluster_servers": ["c1"], "address": "10.0.0.1"}
    etcd = c.request_from_params(K0S, {**base, "datastore": "etcd", "api_port": 7443})
    assert dict(etcd.settings) == {
        "spec": {"api": {"address": "10.0.0.1", "port": 7443}, "storage": {"etcd": {"peerAddress": "10.0.0.1"}}}
    }
    plan = c.plan_config(K0S, etcd)
    assert plan.ok, plan.problems
    cfg = plan.config
    assert cfg is not None
    assert cfg["spec"]["storage"] == {"type": "etcd", "etcd": {"peerAddress": "10.0.0.1"}}
    assert cfg["spec"]["api"]["address"] == "10.0.0.1" and cfg["spec"]["api"]["port"] == 7443
    assert (
        cfg["spec"]["api"]["extraArgs"]["enable-admission-plugins"]
        == "NodeRestriction,EventRateLimit,DenyServiceExternalIPs"
    )
    sqlite = c.request_from_params(K0S, base)
    assert dict(sqlite.settings) == {"spec": {"api": {"address": "10.0.0.1"}}}
    named = c.request_from_params(K0S, {**base, "address": "c1.lab", "datastore": "etcd"})
    assert dict(named.settings) == {}
    named_port = c.request_from_params(K0S, {**base, "address": "c1.lab", "api_port": 7443})
    assert dict(named_port.settings) == {"spec": {"api": {"port": 7443}}}
    worker = c.request_from_params(
        K0S, {"role": "worker", "host": "w1", "address": "10.0.0.5", "datastore": "etcd", "api_port": 7443}
    )
    assert dict(worker.settings) == {}
    assert c.plan_config(K0S, worker).config is None


def test_ipv6_server_address_gets_brackets_in_the_url() -> None:
    agent = c.request_from_params(K3S, {"role": "agent", "host": "a1", "server_address": "fd00::1"})
    assert agent.server_url == "https://[fd00::1]:6443"
    plan = c.plan_config(K3S, agent)
    assert plan.config is not None and plan.config["server"] == "https://[fd00::1]:6443"
    bracketed = c.request_from_params(K3S, {"role": "agent", "server_address": "[fd00::1]", "api_port": 7443})
    assert bracketed.server_url == "https://[fd00::1]:7443"
    assert c.ConfigRequest(host="a1", role="agent", server_address="10.0.0.1").server_url == "https://10.0.0.1:6443"
    assert c.ConfigRequest(host="a1", role="agent").server_url is None
    # An IPv6 node address is an IP: node-ip and SAN on K3s, api.address on K0s.
    server = c.request_from_params(K3S, {"role": "server", "host": "n1", "address": "fd00::11"})
    assert server.settings["node-ip"] == "fd00::11" and server.settings["tls-san"] == ["fd00::11"]
    k0s = c.request_from_params(K0S, {"role": "server", "host": "c1", "address": "fd00::11"})
    assert dict(k0s.settings) == {"spec": {"api": {"address": "fd00::11"}}}


def test_default_token_files_follow_the_join_flow() -> None:
    def token_file(dist: Distribution, **params: Any) -> str | None:
        return c.request_from_params(dist, {"host": "n1", **params}).token_file

    assert token_file(K3S, role="server") == "/etc/rancher/k3s/token"  # generated or adopted here
    assert token_file(K3S, role="agent") == "/etc/rancher/k3s/token"
    assert token_file(K0S, role="controller") is None  # the init controller makes join tokens, keeps none
    assert token_file(K0S, role="controller", cluster_servers=["c0", "n1"]) == "/etc/k0s/controller-token"
    assert token_file(K0S, role="worker") == "/etc/k0s/worker-token"
    assert token_file(K3S, role="server", token_file="/tmp/t") == "/tmp/t"
    assert token_file(K3S, role="master") is None


# ----------------------------------------------------------------------------- validation


def test_every_problem_is_listed_at_once_naming_host_and_key() -> None:
    plan = _plan(
        K3S,
        host="node1",
        role="server",
        datastore="sqlite",
        cluster_servers=("node1", "node2"),
        overrides={"tokn": "x", "token": "s3cret", "secrets-encryption": "yes"},
        overrides_name="edgefleet_k3s_config",
    )
    text = "\n".join(plan.problems)
    assert len(plan.problems) == 4, plan.problems
    assert "node1: edgefleet_k3s_config key 'tokn': is not a known K3s server option; did you mean 'token'?" in text
    assert "node1: edgefleet_k3s_config key 'token': a secret must not be given inline" in text
    assert "key 'secrets-encryption': must be true or false, found 'yes'" in text
    assert "edgefleet_datastore is 'sqlite' but the cluster has 2 servers (node1, node2)" in text
    assert "s3cret" not in text


def test_a_bad_default_service_account_namespace_is_named_with_the_other_problems() -> None:
    plan = _plan(
        K3S,
        host="node1",
        role="server",
        datastore="dqlite",
        default_sa_namespaces=("default", "Kube_Public", "-edge", "x" * 64, "kube-node-lease"),
        default_sa_namespaces_name="edgefleet_distribution_default_sa_namespaces",
    )
    bad = [p for p in plan.problems if "edgefleet_distribution_default_sa_namespaces" in p]
    assert [p.split(" is ")[0] for p in bad] == [
        f"node1: edgefleet_distribution_default_sa_namespaces[{i}]" for i in (1, 2, 3)
    ]
    assert "'Kube_Public'; allowed: a namespace name, 1-63 of a-z, 0-9 and '-'" in bad[0]
    assert len(plan.problems) == 4 and "dqlite" in plan.problems[0]  # listed with the topology's problem
    assert not _plan(K0S, host="c1", role="controller", default_sa_namespaces=("default", "a" * 63)).problems


def test_server_option_on_an_agent_is_named() -> None:
    plan = _plan(K3S, host="a1", role="agent", server_address="s", overrides={"cluster-cidr": "10.0.0.0/16"})
    assert plan.problems == ["a1: overrides key 'cluster-cidr': is a K3s server option, not valid on an agent"]


def test_dqlite_is_explained() -> None:
    plan = _plan(K3S, host="n", role="server", datastore="dqlite")
    assert len(plan.problems) == 1
    assert "v1.19.1" in plan.problems[0] and "'etcd'" in plan.problems[0]


def test_managed_keys_and_missing_endpoint_and_url() -> None:
    plan = _plan(
        K3S,
        host="node2",
        role="server",
        datastore="external",
        cluster_servers=("node1", "node2"),
        overrides={"cluster-init": True, "server": "https://x:6443"},
    )
    text = "\n".join(plan.problems)
    assert "key 'cluster-init': is managed by the role" in text
    assert "key 'server': is managed by the role" in text
    assert "no datastore endpoint is set" in text
    agent = _plan(K3S, host="a1", role="agent")
    assert agent.problems == ["a1: an agent needs the address of a server to join (server_address), none was given"]
    joiner = _plan(K3S, host="node2", role="server", datastore="etcd", cluster_servers=("node1", "node2", "node3"))
    assert joiner.problems == [
        "node2: a joining etcd server needs the address of a server to join (server_address), none was given"
    ]
    # K0s joins with a token alone (the token holds the API address): no server address needed.
    assert _plan(K0S, host="w1", role="worker").ok


def test_roles_must_match_the_cluster_lists() -> None:
    plan = _plan(K3S, host="n9", role="server", cluster_servers=("node1",))
    assert any("not in edgefleet_cluster_servers" in p for p in plan.problems)
    bad = _plan(K3S, host="n1", role="master")
    assert bad.problems == ["n1: edgefleet_node_role is 'master'; allowed: server, agent"]
    k0s_bad = _plan(K0S, host="n1", role="master")
    assert k0s_bad.problems == ["n1: edgefleet_node_role is 'master'; allowed: server/controller, agent/worker"]


def test_even_etcd_members_warn() -> None:
    plan = _plan(K3S, host="node1", role="server", datastore="etcd", cluster_servers=("node1", "node2"))
    assert plan.ok and plan.warnings and "odd number" in plan.warnings[0]


def test_k0s_validation_walks_the_schema() -> None:
    plan = _plan(
        K0S,
        host="c1",
        role="controller",
        datastore="sqlite",
        cluster_servers=("c1", "c2"),
        overrides={"spec": {"netwrk": {}, "api": {"extraArgs": {"v": 2}, "adress": "x"}, "storage": {"type": "etcd"}}},
        overrides_name="edgefleet_k0s_config",
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
    plan = _plan(K0S, host="c1", role="server", cluster_servers=("c1",))
    assert plan.ok
    cfg = plan.config
    assert cfg is not None
    assert cfg["apiVersion"] == "k0s.k0sproject.io/v1beta1" and cfg["kind"] == "ClusterConfig"
    assert cfg["spec"]["storage"] == {
        "type": "kine",
        "kine": {
            "dataSource": "sqlite://file:/var/lib/k0s/db/state.db?mode=rwc&_journal=WAL&_busy_timeout=30000&_txlock=immediate"
        },
    }
    api = cfg["spec"]["api"]["extraArgs"]
    assert api["encryption-provider-config"] == "/etc/k0s/cis/encryption.yaml"
    assert api["enable-admission-plugins"] == "NodeRestriction,EventRateLimit,DenyServiceExternalIPs"
    assert cfg["spec"]["controllerManager"]["extraArgs"] == {"terminated-pod-gc-threshold": "100"}
    assert plan.exec_args == ["controller", "--config=/etc/k0s/k0s.yaml", "--single", KUBELET_CIS_FLAG]
    two = _plan(K0S, host="c1", role="server", cluster_servers=("c1",), cluster_agents=("w1",))
    assert two.exec_args == ["controller", "--config=/etc/k0s/k0s.yaml"]
    worker = _plan(K0S, host="w1", role="worker")
    assert worker.config is None and worker.exec_args == [
        "worker",
        "--token-file=/etc/k0s/worker-token",
        KUBELET_CIS_FLAG,
    ]
    assert worker.unit == "k0sworker.service"


# ----------------------------------------------------------------------------- apply: files, restart, redaction


def test_first_write_is_0600_and_second_run_is_unchanged(tmp_path: Path) -> None:
    first = _apply(K3S, tmp_path, role="server", token_file=str(tmp_path / "token"), generate_token=True)
    assert first["changed"] and first["restart_required"] and not first.get("failed")
    cfg = tmp_path / "etc" / "config.yaml"
    assert _mode(cfg) == 0o600 and _mode(tmp_path / "token") == 0o600
    token = (tmp_path / "token").read_text().strip()
    assert len(token) == 64
    assert token not in json.dumps(first)
    assert yaml.safe_load(cfg.read_text())["token-file"] == str(tmp_path / "token")
    second = _apply(K3S, tmp_path, role="server", token_file=str(tmp_path / "token"), generate_token=True)
    assert not second["changed"] and not second["restart_required"]
    assert (tmp_path / "token").read_text().strip() == token


def test_reordered_or_reformatted_file_needs_no_restart(tmp_path: Path) -> None:
    _apply(K3S, tmp_path, role="server", cis=True)
    cfg = tmp_path / "etc" / "config.yaml"
    data = yaml.safe_load(cfg.read_text())
    reordered = dict(reversed(list(data.items())))
    reordered["kube-controller-manager-arg"] = reordered["kube-controller-manager-arg"][0]  # one item, no list
    cfg.write_text("# hand edited\n" + yaml.safe_dump(reordered, sort_keys=False, default_flow_style=True))
    os.chmod(cfg, 0o644)
    again = _apply(K3S, tmp_path, role="server", cis=True)
    assert again["changed"] and not again["restart_required"]
    assert _mode(cfg) == 0o600
    changed = _apply(K3S, tmp_path, role="server", cis=True, overrides={"kube-apiserver-arg": ["audit-log-maxage=7"]})
    assert changed["changed"] and changed["restart_required"]


def test_check_mode_writes_nothing_and_reports_diff(tmp_path: Path) -> None:
    res = _apply(K3S, tmp_path, check_mode=True, role="server", token_file=str(tmp_path / "token"), generate_token=True)
    assert res["changed"] and res["restart_required"]
    assert not (tmp_path / "etc").exists() and not (tmp_path / "token").exists()
    assert "secrets-encryption: true" in res["diff"][0]["after"]
    assert res["diff"][1]["after"].startswith("<redacted>")


def test_check_mode_joiner_expects_the_token_the_init_server_makes(tmp_path: Path) -> None:
    """In check mode the init server's token cannot exist yet: a joiner plans the write, writes nothing."""
    params: dict[str, Any] = {"role": "agent", "host": "a1", "server_address": "s"}
    planned = _apply(K3S, tmp_path, check_mode=True, **params)
    assert not planned.get("failed") and planned["changed"] and planned["restart_required"]
    assert planned["diff"][-1]["after"] == "<redacted>\n" and not (tmp_path / "token").exists()
    real = _apply(K3S, tmp_path, **params)
    assert real["failed"] and "does not exist and no token was given" in real["msg"]


def test_bad_input_touches_nothing(tmp_path: Path) -> None:
    res = _apply(
        K3S, tmp_path, role="server", datastore="sqlite", cluster_servers=["node1", "node2"], overrides={"tokn": 1}
    )
    assert res["failed"] and not res["changed"]
    assert "2 problems, nothing was changed" in res["msg"]
    assert "- node1: overrides key 'tokn'" in res["msg"]
    assert not (tmp_path / "etc").exists() and not (tmp_path / "token").exists()


def test_validate_only_reads_nothing(tmp_path: Path) -> None:
    (tmp_path / "var/lib/rancher/k3s/server/db/etcd").mkdir(parents=True)
    res = _apply(K3S, tmp_path, role="server", validate_only=True)
    assert not res.get("failed") and res["datastore_on_disk"] is None and not (tmp_path / "etc").exists()
    assert not (tmp_path / "token").exists()


def test_external_endpoint_is_redacted_everywhere(tmp_path: Path) -> None:
    dsn = "postgres://k3s:hunter2@db:5432/k3s"
    res = _apply(K3S, tmp_path, role="server", datastore="external", datastore_endpoint=dsn)
    assert not res.get("failed"), res.get("msg")
    assert "hunter2" not in json.dumps(res)
    assert res["config"]["datastore-endpoint"] == "<redacted>"
    assert yaml.safe_load((tmp_path / "etc" / "config.yaml").read_text())["datastore-endpoint"] == dsn
    assert c.mask_credentials(f"cannot reach {dsn}") == "cannot reach postgres://<redacted>@db:5432/k3s"


def test_joiner_without_token_is_a_problem_and_token_rotation_restarts(tmp_path: Path) -> None:
    params: dict[str, Any] = {
        "role": "agent",
        "host": "a1",
        "server_address": "s",
        "token_file": str(tmp_path / "token"),
    }
    missing = _apply(K3S, tmp_path, **params)
    assert missing["failed"] and "token file" in missing["msg"] and "does not exist" in missing["msg"]
    first = _apply(K3S, tmp_path, join_token="K10abc::node:one", **params)
    assert first["changed"] and not first["token_changed"]
    assert "K10abc" not in json.dumps(first)
    same = _apply(K3S, tmp_path, join_token="K10abc::node:one", **params)
    assert not same["changed"] and not same["restart_required"]
    rotated = _apply(K3S, tmp_path, join_token="K10abc::node:two", **params)
    assert rotated["token_changed"] and rotated["restart_required"]
    assert (tmp_path / "token").read_text() == "K10abc::node:two\n"


def test_init_server_adopts_the_token_k3s_made(tmp_path: Path) -> None:
    own = tmp_path / "var/lib/rancher/k3s/server/token"
    own.parent.mkdir(parents=True)
    own.write_text("K10deadbeef::server:abc\n")
    _apply(K3S, tmp_path, role="server", token_file=str(tmp_path / "token"), generate_token=True)
    assert (tmp_path / "token").read_text() == "K10deadbeef::server:abc\n"


def test_k3s_servers_derive_one_agent_secret_that_is_not_the_cluster_token(tmp_path: Path) -> None:
    """Every K3s server writes the same agent secret (0600, in agent-token-file), derived from the cluster token it
    holds: not the cluster token, unchanged on a re-run, changed (with a restart) when the cluster token rotates."""
    init_dir, joiner_dir = tmp_path / "s1", tmp_path / "s2"
    init_dir.mkdir()
    joiner_dir.mkdir()
    servers = {"cluster_servers": ["s1", "s2"], "server_address": "10.0.0.1", "datastore": "etcd"}

    def server(where: Path, host: str, check_mode: bool = False, **params: Any) -> dict[str, Any]:
        return _apply(
            K3S,
            where,
            check_mode,
            role="server",
            host=host,
            token_file=str(where / "token"),
            agent_secret_file=str(where / "agent-token"),
            **servers,
            **params,
        )

    dry = server(init_dir, "s1", check_mode=True)
    assert dry["changed"] and not (init_dir / "agent-token").exists() and not (init_dir / "token").exists()
    assert str(init_dir / "agent-token") in [d["after_header"] for d in dry["diff"]]

    first = server(init_dir, "s1")
    cluster_token = (init_dir / "token").read_text().strip()
    agent_secret = (init_dir / "agent-token").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", agent_secret) and agent_secret != cluster_token
    assert cluster_token not in agent_secret and agent_secret not in cluster_token
    assert _mode(init_dir / "agent-token") == 0o600 and first["restart_required"]
    assert first["config"]["agent-token-file"] == str(init_dir / "agent-token")
    assert agent_secret not in json.dumps(first) and cluster_token not in json.dumps(first)

    joined = server(joiner_dir, "s2", join_token=cluster_token)
    assert not joined.get("failed"), joined.get("msg")
    assert (joiner_dir / "agent-token").read_text().strip() == agent_secret
    # The same cluster token in K3s's secure format derives the same secret (its password part is the secret).
    assert c.agent_secret_for(f"K10{'ab' * 32}::server:{cluster_token}".encode()).decode().strip() == agent_secret

    again = server(init_dir, "s1")
    assert not again["changed"] and not again["restart_required"]

    rotated = server(init_dir, "s1", token="a-rotated-cluster-token")
    new_secret = (init_dir / "agent-token").read_text().strip()
    assert new_secret not in (agent_secret, "a-rotated-cluster-token")
    assert rotated["restart_required"] and rotated["changed"]

    (init_dir / "agent-token").write_text("edited by hand\n")
    mended = server(init_dir, "s1", token="a-rotated-cluster-token")
    assert mended["restart_required"] and (init_dir / "agent-token").read_text().strip() == new_secret

    agent = _apply(K3S, tmp_path, role="agent", host="a1", server_address="10.0.0.1", join_token="K10x::node:pw")
    assert agent["agent_secret_file"] is None and "agent-token-file" not in agent["config"]
    assert not (tmp_path / "agent-token").exists()


def test_sqlite_to_etcd_migration_is_reported_and_etcd_to_sqlite_refused(tmp_path: Path) -> None:
    db = tmp_path / "var/lib/rancher/k3s/server/db/state.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"SQLite format 3\0")
    res = _apply(K3S, tmp_path, role="server", datastore="etcd", cluster_servers=["node1"])
    assert res["datastore_on_disk"] == "sqlite" and res["migration"] == "sqlite-to-etcd"
    (tmp_path / "var/lib/rancher/k3s/server/db/etcd").mkdir()
    back = _apply(K3S, tmp_path, role="server", datastore="sqlite", cluster_servers=["node1"])
    assert back["failed"] and "no supported way back from etcd to SQLite" in back["msg"]


def test_unparseable_existing_file_is_kept_aside(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "config.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("key: [unclosed\n")
    res = _apply(K3S, tmp_path, role="server")
    assert res["restart_required"] and any("cannot parse" in w for w in res["warnings"])
    assert (tmp_path / "etc" / "config.yaml.unparsed").read_text() == "key: [unclosed\n"


def test_k0s_string_quoting_does_not_count(tmp_path: Path) -> None:
    params: dict[str, Any] = {
        "role": "controller",
        "cluster_servers": ["node1"],
        "overrides": {"spec": {"api": {"extraArgs": {"v": 2}}}},
    }
    first = _apply(K0S, tmp_path, **params)
    cfg = tmp_path / "etc" / "config.yaml"
    data = yaml.safe_load(cfg.read_text())
    assert data["spec"]["api"]["extraArgs"]["v"] == "2"
    data["spec"]["controllerManager"]["extraArgs"]["terminated-pod-gc-threshold"] = 100  # unquoted by hand
    cfg.write_text(yaml.safe_dump(data))
    again = _apply(K0S, tmp_path, **params)
    assert first["restart_required"] and again["changed"] and not again["restart_required"]


def test_k0s_kubelets_get_the_kubelet_settings_of_k3s_cis_profile(tmp_path: Path) -> None:
    """A K0s kubelet (a worker's, a working controller's) gets the kubelet flags K3s's CIS profile gives K3s's, and
    protect-kernel-defaults, in one --kubelet-extra-args value that the unit's ExecStart keeps as one argument."""
    k3s_kubelet = {f"--{arg}" for arg in K3S.cis_profile("agent")["kubelet-arg"]}
    assert k3s_kubelet >= {"--tls-min-version=VersionTLS12", "--pod-max-pids=4096"}
    worker = _apply(K0S, tmp_path, role="worker", host="w1", join_token="j")
    (extra,) = [a for a in worker["exec_args"] if a.startswith("--kubelet-extra-args=")]
    flags = extra.removeprefix("--kubelet-extra-args=").split()
    assert set(flags) == k3s_kubelet | {"--protect-kernel-defaults=true"} and len(flags) == len(set(flags))
    assert all(flag.startswith("--") and "=" in flag for flag in flags)
    # systemd splits ExecStart as a POSIX shell splits this line (no $, %, backslash or single quote in it).
    assert shlex.split(worker["exec_start"]) == ["/usr/local/bin/k0s", *worker["exec_args"]]
    assert f'"{extra}"' in worker["exec_start"]
    single = _apply(K0S, tmp_path, role="controller", cluster_servers=["node1"])
    assert KUBELET_CIS_FLAG in single["exec_args"]
    ha = _plan(K0S, host="c1", role="server", cluster_servers=("c1",), cluster_agents=("w1",))
    assert not any(arg.startswith("--kubelet-extra-args") for arg in ha.exec_args)
    no_cis = _apply(K0S, tmp_path, role="worker", host="w1", join_token="j", cis=False)
    assert not any(arg.startswith("--kubelet-extra-args") for arg in no_cis["exec_args"])
    k3s = _apply(K3S, tmp_path, role="server", path=str(tmp_path / "k3s.yaml"))
    assert k3s["exec_start"] == f"/usr/local/bin/k3s server --config={tmp_path / 'k3s.yaml'}"


def test_systemd_command_line_keeps_every_argument_whole() -> None:
    assert (
        systemd_command_line(["/bin/k3s", "server", "--config=/etc/x.yaml"]) == "/bin/k3s server --config=/etc/x.yaml"
    )
    assert systemd_command_line(["/bin/x", "--a=b c"]) == '/bin/x "--a=b c"'
    assert systemd_command_line(["/bin/x", "50%", "$HOME"]) == "/bin/x 50%% $$HOME"
    assert systemd_command_line(["/bin/x", 'say "hi"\\']) == '/bin/x "say \\"hi\\"\\\\"'
    assert systemd_command_line(["/bin/x", ";"]) == '/bin/x ";"'


def test_k0s_worker_only_gets_its_token_file(tmp_path: Path) -> None:
    # A K0s worker's token is the join token made for it on the init controller (join_token).
    res = _apply(K0S, tmp_path, role="worker", host="w1", token_file=str(tmp_path / "wt"), join_token="H4sIAAAA-join")
    assert not res.get("failed"), res.get("msg")
    assert res["path"] is None and res["config"] is None
    assert _mode(tmp_path / "wt") == 0o600 and not (tmp_path / "etc").exists()
    assert (tmp_path / "wt").read_text() == "H4sIAAAA-join\n"
    assert "H4sIAAAA" not in json.dumps(res)
    assert res["exec_args"] == ["worker", f"--token-file={tmp_path / 'wt'}", KUBELET_CIS_FLAG]


def test_k0s_nodes_that_run_a_kubelet_get_the_fleet_labels(tmp_path: Path) -> None:
    """K0s has no per-node config file: the labels go on the worker's (or working controller's) command line,
    in the fleet's order, and a controller without a kubelet gets none. K3s has them in its config."""
    labels = {"edgefleet.io/site": "berlin-01", "edgefleet.io/wasm-spin": "true", "rack": 3}
    worker = _apply(K0S, tmp_path, role="worker", host="w1", join_token="j", labels=labels)
    assert worker["exec_args"][-2] == "--labels=edgefleet.io/site=berlin-01,edgefleet.io/wasm-spin=true,rack=3"
    single = _apply(K0S, tmp_path, role="controller", cluster_servers=["node1"], labels=labels)
    assert single["exec_args"][:3] == ["controller", f"--config={tmp_path / 'etc' / 'config.yaml'}", "--single"]
    assert single["exec_args"][-2].startswith("--labels=edgefleet.io/site=berlin-01,")
    ha = _plan(K0S, host="c1", role="server", cluster_servers=("c1",), cluster_agents=("w1",), labels=labels)
    assert ha.ok and not any(arg.startswith("--labels") for arg in ha.exec_args)
    unlabelled = _apply(K0S, tmp_path, role="worker", host="w1", join_token="j", labels=labels, node_settings=False)
    assert not any(arg.startswith("--labels") for arg in unlabelled["exec_args"])
    k3s = _apply(K3S, tmp_path, role="server", labels=labels, path=str(tmp_path / "k3s.yaml"))
    assert yaml.safe_load((tmp_path / "k3s.yaml").read_text())["node-label"][-1] == "rack=3"
    assert not any("label" in arg for arg in k3s["exec_args"])


@pytest.mark.parametrize("dist", [K3S, K0S], ids=["k3s", "k0s"])
def test_bad_labels_stop_before_any_file_is_written(dist: Distribution, tmp_path: Path) -> None:
    """Every bad label is named, with what is allowed; nothing is written."""
    role = "agent" if dist is K3S else "worker"
    bad = {"site,other": "a", "edgefleet.io/x": "a,b", "ok": "fine", "tier": {"nested": 1}, "-x": "y"}
    res = _apply(dist, tmp_path, role=role, host="w1", server_address="s", join_token="j", labels=bad)
    assert res["failed"] and len(res["problems"]) == 4, res["problems"]
    assert "w1: label name 'site,other' is not a Kubernetes label name" in res["msg"]
    assert "w1: label edgefleet.io/x has value 'a,b'; allowed: 0-63 of" in res["msg"]
    assert "label tier has value" in res["msg"] and "label name '-x'" in res["msg"]
    assert not (tmp_path / "token").exists() and not (tmp_path / "etc").exists()


def test_which_token_a_node_writes(tmp_path: Path) -> None:
    """K3s shares the user's token among its servers and gives agents the agent token read back from the init
    server; K0s uses the user's token on the init controller only, else the join token."""
    k0s_worker = {"role": "worker", "host": "w1", "token": "user-token"}
    ignored = _apply(K0S, tmp_path, token_file=str(tmp_path / "wt"), **k0s_worker)
    assert ignored["failed"] and "token file" in ignored["msg"] and not (tmp_path / "wt").exists()
    joined = _apply(K0S, tmp_path, token_file=str(tmp_path / "wt"), join_token="join-token", **k0s_worker)
    assert (tmp_path / "wt").read_text() == "join-token\n" and not joined.get("failed")
    init = _apply(K0S, tmp_path, role="controller", token_file=str(tmp_path / "ct"), token="user-token")
    assert (tmp_path / "ct").read_text() == "user-token\n" and not init.get("failed")
    k3s_agent = {"role": "agent", "host": "a1", "server_address": "s", "token_file": str(tmp_path / "kt")}
    _apply(K3S, tmp_path, token="shared-token", join_token="read-back", **k3s_agent)
    assert (tmp_path / "kt").read_text() == "read-back\n"
    k3s_joiner = {
        "role": "server",
        "host": "s2",
        "cluster_servers": ["s1", "s2"],
        "server_address": "s",
        "datastore": "etcd",
    }
    _apply(K3S, tmp_path, token="shared-token", join_token="read-back", token_file=str(tmp_path / "st"), **k3s_joiner)
    assert (tmp_path / "st").read_text() == "shared-token\n"


def test_k0s_generates_no_token(tmp_path: Path) -> None:
    """K0s had no generate_token option; now there is one, and on K0s it never makes a token."""
    res = _apply(K0S, tmp_path, role="controller", cluster_servers=["node1"], generate_token=True)
    assert not res.get("failed"), res.get("msg")
    assert not (tmp_path / "token").exists()
    assert "--token-file" not in " ".join(res["exec_args"])


def test_k0s_kine_to_etcd_has_no_path(tmp_path: Path) -> None:
    db = tmp_path / "var/lib/k0s/db/state.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"x")
    res = _apply(K0S, tmp_path, role="server", datastore="etcd", cluster_servers=["node1"])
    assert res["failed"] and "no in-place migration from kine to etcd" in res["msg"]
    assert res["problems"] == [
        "node1: edgefleet_datastore is 'etcd' but /var/lib/k0s/db/state.db holds a kine/SQLite cluster; K0s has no "
        "in-place migration from kine to etcd (back up and rebuild the cluster)"
    ]


def test_node_facts_tell_the_role_how_to_join(tmp_path: Path) -> None:
    k3s = _apply(K3S, tmp_path, role="agent", host="a1", server_address="10.0.0.1", validate_only=True)["node"]
    assert k3s["join_token"] == {
        "needed": True,
        "read_file": "/var/lib/rancher/k3s/server/agent-token",
        "create_argv": None,
    }
    joiner = _apply(
        K3S,
        tmp_path,
        role="server",
        host="s2",
        cluster_servers=["s1", "s2"],
        datastore="etcd",
        server_address="s",
        validate_only=True,
    )
    assert joiner["node"]["join_token"]["read_file"] == "/etc/rancher/k3s/token"
    assert k3s["unit"] == "k3s-agent.service" and k3s["env_file"] == "/etc/default/k3s-agent"
    assert k3s["server_url"] == "https://10.0.0.1:6443" and k3s["registers_node"]
    k0s = _apply(K0S, tmp_path, role="worker", host="w1", validate_only=True)["node"]
    assert k0s["join_token"]["read_file"] is None
    assert k0s["join_token"]["create_argv"] == ["/usr/local/bin/k0s", "token", "create", "--role=worker", "--expiry=1h"]
    assert k0s["role_name"] == "worker" and k0s["registers_node"]
    ctl = _apply(K0S, tmp_path, role="controller", cluster_servers=["node1"], cluster_agents=["w1"], validate_only=True)
    assert ctl["node"]["is_init_server"] and not ctl["node"]["join_token"]["needed"]
    assert not ctl["node"]["registers_node"]  # a controller without --single runs no kubelet


def test_node_facts_name_the_certificate_directories_kept_at_0600(tmp_path: Path) -> None:
    """CIS 1.1.20/1.1.21: the role watches these directories; none without the CIS profile."""
    server = _apply(K3S, tmp_path, role="server", host="s1", validate_only=True)["node"]
    assert server["cert_dirs"] == [
        "/var/lib/rancher/k3s/server/tls",
        "/var/lib/rancher/k3s/server/tls/etcd",
        "/var/lib/rancher/k3s/agent",
    ]
    agent = _apply(K3S, tmp_path, role="agent", host="a1", server_address="10.0.0.1", validate_only=True)["node"]
    assert agent["cert_dirs"] == ["/var/lib/rancher/k3s/agent"]
    ctl = _apply(K0S, tmp_path, role="controller", cluster_servers=["node1"], validate_only=True)["node"]
    assert ctl["cert_dirs"] == ["/var/lib/k0s/pki", "/var/lib/k0s/pki/etcd"]
    assert _apply(K0S, tmp_path, role="worker", host="w1", validate_only=True)["node"]["cert_dirs"] == []
    off = _apply(K3S, tmp_path, role="server", host="s1", cis=False, validate_only=True)["node"]
    assert off["cert_dirs"] == []
    # what the unit and the role's sweep give find(1) after the directories: files looser than 0600, one level
    assert server["loose_cert_find"] == [
        *("-maxdepth", "1", "-type", "f", "(", "-name", "*.crt", "-o", "-name", "*.key", "-o", "-name", "*.pem", ")"),
        *("-perm", "/0177"),
    ]


def test_k3s_kubelet_gets_the_tls_floor_and_a_pod_pid_limit_on_every_role() -> None:
    """CIS 4.2.12 and 4.2.13, on servers (which run a kubelet too) and agents."""
    for role, extra in (("server", {}), ("agent", {"server_address": "10.0.0.1"})):
        plan = _plan(K3S, host="n1", role=role, **extra)
        assert plan.config is not None
        kubelet = plan.config["kubelet-arg"]
        assert "tls-min-version=VersionTLS12" in kubelet and "pod-max-pids=4096" in kubelet, (role, kubelet)


def test_the_api_server_takes_tls_12_and_strong_ciphers_only_on_both_distributions() -> None:
    """CIS 1.2.29: kube-bench accepts only its list of strong cipher suites on the API server."""
    strong = {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    }
    k3s = _plan(K3S, host="s1", role="server").config
    assert k3s is not None
    k3s_args = dict(arg.split("=", 1) for arg in k3s["kube-apiserver-arg"])
    k0s = _plan(K0S, host="c1", role="controller", cluster_servers=("c1",)).config
    assert k0s is not None
    k0s_args = k0s["spec"]["api"]["extraArgs"]
    for args in (k3s_args, k0s_args):
        assert args["tls-min-version"] == "VersionTLS12"
        assert set(args["tls-cipher-suites"].split(",")) == strong


# ----------------------------------------------------------------------------- properties

_scalar = st.one_of(st.booleans(), st.integers(-5, 5), st.text("abcxyz=-", min_size=1, max_size=6))
_keys = st.sampled_from(sorted(k3s_flags.SERVER_KEYS))


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(_keys, st.one_of(_scalar, st.lists(_scalar, min_size=1, max_size=3)), max_size=8))
def test_render_then_parse_has_the_same_effective_settings(config: dict[str, Any]) -> None:
    parsed, error = c.parse(c.render(config, "m"))
    assert error is None
    assert not c.effective_changed(K3S, parsed, config)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]), _scalar, max_size=3), max_size=4))
def test_merging_a_layer_twice_changes_nothing(layers: list[dict[str, Any]]) -> None:
    once = merge_layers(layers)
    assert merge_layers([*layers, once]) == once


@pytest.mark.parametrize("role", ["server", "agent"])
def test_argument_spec_matches_roles(role: str) -> None:
    spec = dmodule.argument_spec()
    assert role in spec["role"]["choices"]
    assert spec["token"]["no_log"] and spec["datastore_endpoint"]["no_log"] and spec["join_token"]["no_log"]
    assert spec["distribution"]["choices"] == list(registry.NAMES)
    # One spec for both: generate_token is there for K0s too, but only a strategy that generates uses it.
    assert K3S.generates_token() and not K0S.generates_token()


# ----------------------------------------------------------------------------- the interface


def _raises_not_implemented(function: Any) -> bool:
    tree = ast.parse(inspect.getsource(function).strip())
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                return True
    return False


ABSTRACT = sorted(
    name
    for name, member in vars(Distribution).items()
    if inspect.isfunction(member) and _raises_not_implemented(member)
)
STRATEGIES = sorted(registry.DISTRIBUTIONS.values(), key=lambda dist: dist.name)
_IDS = [dist.name for dist in STRATEGIES]


def _node(role: str = "server") -> NodeIdentity:
    return NodeIdentity(host="n1", role=role, address="10.0.0.1", labels={"ring": "pilot"}, datastore="etcd")


def test_the_abstract_methods_are_found() -> None:
    # Guards the detection itself: an empty list would make the next test pass for nothing.
    assert {"node_settings", "plan", "join_token", "release_binary", "image_archives"} <= set(ABSTRACT)


def test_the_registry_lists_each_strategy_under_its_name() -> None:
    assert STRATEGIES and all(registry.DISTRIBUTIONS[dist.name] is dist for dist in STRATEGIES)
    assert all(dist.__class__ is not Distribution and isinstance(dist, Distribution) for dist in STRATEGIES)


@pytest.mark.parametrize("dist", STRATEGIES, ids=_IDS)
def test_every_strategy_implements_every_abstract_method(dist: Distribution) -> None:
    missing = [name for name in ABSTRACT if getattr(type(dist), name) is getattr(Distribution, name)]
    assert not missing, f"{dist.name} does not implement {missing}"
    # And they run: nothing raises NotImplementedError on ordinary input.
    assert dist.release_binary("v1.30.2", "arm64")
    assert dist.image_archives("v1.30.2", "arm64")
    for role in ROLES:
        assert isinstance(dist.node_settings(_node(role)), dict)
        assert isinstance(dist.join_token(role), JoinToken)
        req = c.ConfigRequest(host="n1", role=role, cluster_servers=("n1",), server_address="10.0.0.1")
        assert isinstance(dist.plan(req), c.ConfigPlan)


@pytest.mark.parametrize("dist", STRATEGIES, ids=_IDS)
def test_every_strategy_declares_its_facts(dist: Distribution) -> None:
    for name in ("name", "title", "binary", "config_path", "data_dir", "sqlite_db", "etcd_dir", "token_file"):
        assert getattr(dist, name), f"{dist.name}: {name} is empty"
    assert set(dist.units) == set(ROLES) and set(dist.role_names) == set(ROLES)
    assert set(dist.role_aliases.values()) == set(ROLES)
    assert all(dist.role_aliases.get(role) == role for role in ROLES)
    assert dist.server_group and dist.agent_group


def test_facts_have_the_same_keys_for_every_strategy() -> None:
    keys = {dist.name: set(dist.facts()) for dist in STRATEGIES}
    first = STRATEGIES[0].name
    assert all(found == keys[first] for found in keys.values()), keys
    assert keys[first] == set(Distribution().facts())
    nested = {dist.name: {k: set(v) for k, v in dist.facts().items() if isinstance(v, Mapping)} for dist in STRATEGIES}
    assert all(found == nested[first] for found in nested.values()), nested
    for dist in STRATEGIES:
        assert json.loads(json.dumps(dist.facts())) == dist.facts()  # plain data: a module returns it


_ROLE_TEXT = st.one_of(
    st.sampled_from([*registry.all_role_names(), "master", "", "Server", "etcd", "leader"]),
    st.text(max_size=8),
)


@settings(max_examples=60, deadline=None)
@given(role=_ROLE_TEXT)
def test_no_plan_has_a_config_for_a_role_outside_roles(role: str) -> None:
    for dist in STRATEGIES:
        plan = c.plan_config(dist, c.ConfigRequest(host="n1", role=role, server_address="10.0.0.1"))
        assert plan.role in ROLES or plan.config is None, (dist.name, role, plan)
        if dist.normalize_role(role) not in ROLES:
            assert plan.config is None and not plan.ok
            assert plan.problems == [f"n1: edgefleet_node_role is '{role}'; allowed: {dist.role_choices()}"]
        else:
            assert plan.role == dist.normalize_role(role)


@pytest.mark.parametrize("dist", STRATEGIES, ids=_IDS)
def test_join_token_is_exactly_one_way(dist: Distribution) -> None:
    for role in dist.role_aliases:
        token = dist.join_token(role)
        assert (token.read_file is None) != (token.create_argv is None), (dist.name, role, token)
        if token.read_file is not None:
            assert token.read_file.startswith("/")
        if token.create_argv is not None:
            assert token.create_argv and all(isinstance(arg, str) and arg for arg in token.create_argv)


def test_config_py_never_asks_which_distribution_it_is() -> None:
    tree = ast.parse(Path(inspect.getsourcefile(c) or "").read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported = {(node.module or "").rsplit(".", 1)[-1] for node in imports}
    imported |= {alias.name for node in imports for alias in node.names}
    assert not imported & {"k3s", "k0s", "registry", "K3S", "K0S"}
    names = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(isinstance(part, ast.Attribute) and part.attr == "name" for part in [node.left, *node.comparators])
    ]
    assert not names, "config.py compares a distribution's name"


# ----------------------------------------------------------------------------- a third strategy plugs in


class Fake(Distribution):
    """A distribution that exists only here: the extension point, with config.py unchanged."""

    name = "fake"
    title = "Fake"
    binary = "/usr/local/bin/fake"
    config_path = "/etc/fake/config.yaml"
    data_dir = "/var/lib/fake"
    sqlite_db = "/var/lib/fake/db/state.db"
    etcd_dir = "/var/lib/fake/db/etcd"
    token_file = "/etc/fake/token"
    agent_token_file = "/etc/fake/agent-token"
    units = frozen({"server": "fake-leader.service", "agent": "fake-follower.service"})
    role_names = frozen({"server": "leader", "agent": "follower"})
    role_aliases = frozen({"server": "server", "leader": "server", "agent": "agent", "follower": "agent"})
    cis_dir = "/etc/fake/cis"
    audit_log = "/var/log/fake/audit.log"
    secret_keys = frozenset({"password"})
    server_group = "fake_leaders"
    agent_group = "fake_followers"

    def release_binary(self, version: str, arch: str) -> str:
        return f"fake-{arch}"

    def image_archives(self, version: str, arch: str) -> list[str]:
        return [f"fake-images-{version}-{arch}.tar"]

    def node_settings(self, node: NodeIdentity) -> dict[str, Any]:
        return {"name": node.host, **({"ip": node.address} if node.address_is_ip else {})}

    def needs_server_url(self, role: str, is_init_server: bool, datastore: str) -> bool:
        return not is_init_server

    def plan(self, req: c.ConfigRequest) -> c.ConfigPlan:
        role = self.normalize_role(req.role)
        plan = c.ConfigPlan(self, role, None, self.unit(role), [self.role_name(role)])
        unknown = sorted(set(req.overrides) - {"password", "log-level"})
        plan.problems.extend(f"{req.host}: {req.overrides_name} key '{key}': unknown to Fake" for key in unknown)
        layers = [
            {"role": self.role_name(role), "datastore": req.datastore},
            {"join": req.server_url} if req.server_url and not req.is_init_server else {},
            {"token-file": req.token_file} if req.token_file else {},
            dict(req.settings),
            dict(req.overrides),
        ]
        plan.config = merge_layers(layers)
        return plan

    def join_token(self, role: str) -> JoinToken:
        return JoinToken(read_file=self.token_file)

    def generates_token(self) -> bool:
        return True

    def registry_files(self, spec: Any, header: str, redact: bool = False) -> list[Any]:
        return []  # a runtime without registry settings of its own

    def registry_managed_paths(self, root: str = "/") -> list[str]:
        return []

    def token_rotation(self) -> TokenRotation:
        return TokenRotation(shared=True, rotate_argv=(self.binary, "rotate"), current_env="OLD", new_env="NEW")


FAKE = Fake()


def test_a_third_strategy_fills_the_interface() -> None:
    assert not [name for name in ABSTRACT if getattr(Fake, name) is getattr(Distribution, name)]
    assert set(FAKE.facts()) == set(K3S.facts())
    assert FAKE.role_choices() == "server/leader, agent/follower"
    assert "fake" not in registry.NAMES  # nothing registered: config.py works with any strategy handed to it


def test_a_third_strategy_is_planned_and_applied_through_config(tmp_path: Path) -> None:
    leader = {
        "role": "leader",
        "host": "f1",
        "address": "10.0.0.1",
        "cluster_servers": ["f1"],
        "path": str(tmp_path / "etc" / "fake.yaml"),
        "token_file": str(tmp_path / "token"),
        "overrides": {"password": "hunter2", "log-level": "debug"},
    }
    first = c.apply_config(FAKE, leader, False, MODULE, root=str(tmp_path), owner=OWNER)
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] and first["restart_required"]
    assert first["unit"] == "fake-leader.service" and first["exec_args"] == ["leader"]
    assert first["distribution"]["name"] == "fake" and first["node"]["role_name"] == "leader"
    assert first["config"]["password"] == "<redacted>" and "hunter2" not in json.dumps(first)
    written = yaml.safe_load((tmp_path / "etc" / "fake.yaml").read_text())
    assert written == {
        "role": "leader",
        "datastore": "sqlite",
        "token-file": str(tmp_path / "token"),
        "name": "f1",
        "ip": "10.0.0.1",
        "password": "hunter2",
        "log-level": "debug",
    }
    token = (tmp_path / "token").read_text().strip()
    assert len(token) == 64 and _mode(tmp_path / "token") == 0o600  # generated: the strategy says it can
    again = c.apply_config(FAKE, leader, False, MODULE, root=str(tmp_path), owner=OWNER)
    assert not again["changed"] and not again["restart_required"]

    follower = {
        "role": "follower",
        "host": "f2",
        "cluster_servers": ["f1"],
        "server_address": "fd00::1",
        "api_port": 7443,
        "path": str(tmp_path / "etc" / "follower.yaml"),
        "token_file": str(tmp_path / "follower-token"),
        "token": token,
    }
    checked = c.apply_config(FAKE, follower, True, MODULE, root=str(tmp_path), owner=OWNER)
    assert checked["changed"] and not (tmp_path / "etc" / "follower.yaml").exists()
    joined = c.apply_config(FAKE, follower, False, MODULE, root=str(tmp_path), owner=OWNER)
    assert not joined.get("failed"), joined.get("msg")
    assert joined["config"]["join"] == "https://[fd00::1]:7443" and joined["node"]["join_token"]["needed"]
    assert (tmp_path / "follower-token").read_text().strip() == token


def test_a_third_strategy_gets_the_shared_checks(tmp_path: Path) -> None:
    bad = {"role": "master", "host": "f1", "path": str(tmp_path / "f.yaml")}
    bad_role = c.apply_config(FAKE, bad, False, MODULE, root=str(tmp_path), owner=OWNER)
    assert bad_role["problems"] == ["f1: edgefleet_node_role is 'master'; allowed: server/leader, agent/follower"]
    lost = c.plan_config(FAKE, c.ConfigRequest(host="f2", role="agent"))
    assert lost.problems == ["f2: an agent needs the address of a server to join (server_address), none was given"]
    two = c.plan_config(FAKE, c.ConfigRequest(host="f1", role="server", cluster_servers=("f1", "f2")))
    assert any("the cluster has 2 leaders (f1, f2); Fake sqlite serves a single leader" in p for p in two.problems)
    db = tmp_path / "var/lib/fake/db/state.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"x")
    params = {"role": "server", "host": "f1", "datastore": "etcd", "path": str(tmp_path / "f.yaml")}
    params["token_file"] = str(tmp_path / "t")
    moved = c.apply_config(FAKE, params, False, MODULE, root=str(tmp_path), owner=OWNER)
    assert moved["failed"] and moved["problems"] == [
        "f1: edgefleet_datastore is 'etcd' but /var/lib/fake/db/state.db holds a SQLite cluster; Fake has no "
        "in-place migration from SQLite to etcd (back up and rebuild the cluster)"
    ]
    typo = c.plan_config(FAKE, c.ConfigRequest(host="f1", role="server", overrides={"pasword": "x"}))
    assert typo.problems == ["f1: overrides key 'pasword': unknown to Fake"]
