# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property test: every malformed fleet ends in AnsibleParserError naming each offending key, nothing else.

A valid fleet of 2-4 sites is generated, then 1-3 sites each get one malformation. The
plugin must raise AnsibleParserError (any other exception fails the test) and the message
must name the key path of every malformation.
"""

from __future__ import annotations

import copy
import json
import typing as t
from pathlib import Path

import pytest
from ansible.errors import AnsibleParserError
from fleet_helpers import run_plugin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

Site = dict[str, t.Any]
Mutation = t.Callable[[Site, int, list[Site]], str]  # mutates a site, returns the key path to expect

BAD_LABELS = st.sampled_from(["", "Upper", "under_score", "-lead", "trail-", "a" * 64, "dot.ted", "spa ce"])
BAD_SCALARS = st.one_of(
    st.integers(), st.booleans(), st.none(), st.lists(st.integers(), max_size=2), st.floats(allow_nan=False)
)
UNKNOWN_KEYS = st.sampled_from(["colour", "regoin", "datastor", "servers", "node", "adress", "rol", "labls", "gitop"])


def _node(site: Site, pick: int) -> tuple[int, Site]:
    index = pick % len(site["nodes"])
    return index, site["nodes"][index]


@st.composite
def mutation(draw: t.Callable[..., t.Any]) -> Mutation:
    kind = draw(
        st.sampled_from(
            [
                "site_name",
                "node_name",
                "address",
                "role",
                "arch",
                "node_arch",
                "distribution",
                "datastore",
                "sqlite_ha",
                "k0s_sqlite_ha",
                "dup_node",
                "dup_address",
                "no_server",
                "unknown_site_key",
                "unknown_node_key",
                "version",
                "labels",
                "vars",
                "engine",
                "nodes",
                "missing_region",
                "external",
                "gitops_type",
                "node_type",
                "groups",
            ]
        )
    )
    pick = draw(st.integers(0, 5))  # which node a node-level malformation hits
    if kind == "site_name":
        bad = draw(st.one_of(BAD_LABELS, BAD_SCALARS))

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            site["name"] = bad
            return f"sites[{i}].name"
    elif kind == "node_name":
        bad = draw(st.one_of(st.sampled_from(["Node", "n_1", "-x", "a..b", "x" * 254]), BAD_SCALARS))

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            n, node = _node(site, pick)
            node["name"] = bad
            return f"sites[{i}].nodes[{n}].name"
    elif kind == "address":
        bad = draw(st.one_of(st.sampled_from(["999.1.1.1", "10.0.0", "", "host name", "fe80::zz"]), BAD_SCALARS))

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            n, node = _node(site, pick)
            node["address"] = bad
            return f"sites[{i}].nodes[{n}].address"
    elif kind == "role":
        bad = draw(st.one_of(st.sampled_from(["master", "controller", "worker", "Server", ""]), BAD_SCALARS))

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            n, node = _node(site, pick)
            node["role"] = bad
            return f"sites[{i}].nodes[{n}].role"
    elif kind in ("arch", "node_arch", "distribution", "datastore", "engine"):
        choices = {
            "arch": ["x86_64", "aarch64", "arm", "riscv64"],
            "node_arch": ["x86_64", "aarch64", "i386"],
            "distribution": ["rke2", "k8s", "K3s", "microk8s"],
            "datastore": ["dqlite", "kine", "mysql", "postgres", "etcd3"],
            "engine": ["fluxcd", "argo", "rancher-fleet"],
        }[kind]
        bad = draw(st.one_of(st.sampled_from(choices), BAD_SCALARS))

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            if kind == "node_arch":
                n, node = _node(site, pick)
                node["arch"] = bad
                return f"sites[{i}].nodes[{n}].arch"
            if kind == "engine":
                site["gitops"] = {"engine": bad, "repo": "https://git.example.org/f.git"}
                return f"sites[{i}].gitops.engine"
            site[kind] = bad
            return f"sites[{i}].{kind}"
    elif kind in ("sqlite_ha", "k0s_sqlite_ha"):

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            site["datastore"] = "sqlite"
            if kind == "k0s_sqlite_ha":
                site["distribution"] = "k0s"
                site["version"] = "v1.31.3+k0s.0"
            for node in site["nodes"][:2]:
                node["role"] = "server"
            if len(site["nodes"]) < 2:
                site["nodes"].append({"name": site["name"] + "-extra", "address": "203.0.113.250", "role": "server"})
                site["nodes"][-1]["address"] = f"203.0.113.{200 + i}"
            return f"sites[{i}].datastore"
    elif kind in ("dup_node", "dup_address"):

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            other = copy.deepcopy(site)  # duplicate within the site: other sites may be malformed themselves
            key = "name" if kind == "dup_node" else "address"
            n = len(site["nodes"])
            site["nodes"].append({"name": f"{site['name']}-dup", "address": f"203.0.113.{100 + i}", "role": "agent"})
            site["nodes"][n][key] = other["nodes"][0][key]
            return f".{key}: duplicate"
    elif kind == "no_server":

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            for node in site["nodes"]:
                node["role"] = "agent"
            return f"sites[{i}].nodes: no server"
    elif kind == "unknown_site_key":
        key = draw(UNKNOWN_KEYS)

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            site[key] = "x"
            return f"sites[{i}].{key}: unknown key"
    elif kind == "unknown_node_key":
        key = draw(UNKNOWN_KEYS)

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            n, node = _node(site, pick)
            node[key] = "x"
            return f"sites[{i}].nodes[{n}].{key}: unknown key"
    elif kind == "version":
        bad = draw(st.one_of(st.sampled_from(["1.31.4", "v1.31", "latest", "v1.31.4+k0s.0", ""]), BAD_SCALARS))

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            site["version"] = bad
            return f"sites[{i}].version"
    elif kind == "labels":
        bad = draw(st.sampled_from([{"ring": 1}, {"Bad Key": "x"}, {"k": "v" * 64}, ["a"], "x", {"k": None}]))

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            site["labels"] = bad
            return f"sites[{i}].labels"
    elif kind == "vars":
        bad = draw(
            st.sampled_from([{"bad-name": 1}, {"edgefleet_cluster": "x"}, {"ansible_host": "1.2.3.4"}, ["x"], "x"])
        )

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            site["vars"] = bad
            return f"sites[{i}].vars"
    elif kind == "nodes":
        bad = draw(st.sampled_from([[], None, "node1", {"name": "x"}, 3]))

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            site["nodes"] = bad
            return f"sites[{i}].nodes"
    elif kind == "missing_region":

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            del site["region"]
            return f"sites[{i}].region: missing"
    elif kind == "external":
        bad = draw(st.sampled_from([None, "postgres://k3s:hunter2@db.example.org/k3s"]))

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            site["datastore"] = "external"
            if bad is not None:
                site["datastore_endpoint"] = bad
            return f"sites[{i}].datastore_endpoint"
    elif kind == "gitops_type":
        bad = draw(st.one_of(st.just("flux"), BAD_SCALARS))

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            site["gitops"] = bad
            return f"sites[{i}].gitops"
    elif kind == "node_type":
        bad = draw(st.one_of(st.just("node"), BAD_SCALARS))

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            n = _node(site, pick)[0]
            site["nodes"][n] = bad
            return f"sites[{i}].nodes[{n}]"
    else:  # groups
        bad = draw(st.sampled_from([["Bad_Group"], "canary", [1]]))

        def apply(site: Site, i: int, _all: list[Site]) -> str:
            site["groups"] = bad
            return f"sites[{i}].groups"

    return apply


@st.composite
def valid_sites(draw: t.Callable[..., t.Any]) -> list[Site]:
    count = draw(st.integers(2, 4))
    sites: list[Site] = []
    address = 10
    for i in range(count):
        etcd = draw(st.booleans())
        servers = 3 if etcd else 1
        agents = draw(st.integers(0, 2))
        nodes = []
        for n in range(servers + agents):
            nodes.append(
                {"name": f"s{i}-n{n}", "address": f"192.0.2.{address}", "role": "server" if n < servers else "agent"}
            )
            address += 1
        site: Site = {
            "name": f"s{i}",
            "region": draw(st.sampled_from(["eu-west", "us-east"])),
            "nodes": nodes,
        }
        if etcd:
            site["datastore"] = "etcd"
        sites.append(site)
    return sites


@settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(sites=valid_sites(), mutations=st.lists(mutation(), min_size=1, max_size=3), data=st.data())
def test_malformed_fleets_name_every_offending_key(
    tmp_path_factory: t.Any, sites: list[Site], mutations: list[Mutation], data: st.DataObject
) -> None:
    mutations = mutations[: len(sites)]  # one malformation per site
    targets = data.draw(st.permutations(range(len(sites))))[: len(mutations)]
    expected = [apply(sites[i], i, sites) for apply, i in zip(mutations, targets, strict=True)]
    registry = {
        "defaults": {
            "model": "rpi5",
            "channel": "stable",
            "version": "v1.31.4+k3s1",
            "gitops": {"engine": "flux", "repo": "https://git.example.org/fleet.git"},
        },
        "sites": sites,
    }
    # the registry goes in a JSON source (the YAML path is covered by test_fleet.py); both take the same checks
    directory = Path(tmp_path_factory.getbasetemp()) / "hypothesis-fleet"
    directory.mkdir(exist_ok=True)
    (directory / "registry.json").write_text(json.dumps(registry))
    path = directory / "h.fleet.yml"
    path.write_text("plugin: edgefleet.k8s.fleet\nsources: [registry.json]\n")
    with pytest.raises(AnsibleParserError) as info:  # any other exception fails the test
        run_plugin(path)
    message = str(info.value)
    for key in expected:
        assert key in message, (key, message)
