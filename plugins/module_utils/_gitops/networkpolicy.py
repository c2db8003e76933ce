# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The NetworkPolicies the fleet repo ships for the namespaces the collection creates (CIS 5.3.2).

Per cluster: the namespace of the registration (``edgefleet-system``, a ConfigMap, no pod) and the namespace of
the GitOps engine (``flux-system`` or ``argocd`` by default). Each gets a default deny of ingress and egress;
the engine's namespace also gets what the engine needs to pull and apply:

- DNS: egress to ``kube-system`` (selected by its ``kubernetes.io/metadata.name`` label), UDP and TCP 53;
- the Kubernetes API server: egress on TCP 6443 and 443 to any address. The API server is no pod (K3s and K0s
  run it in the server's own process, on the host network), so neither a pod nor a namespace selector can
  match it, and its addresses (every server node's, or a load balancer's) are not known to the fleet repo;
  6443 is where ``kubernetes.default.svc:443`` leads after the Service's translation, 443 is the Service port
  and that of an API endpoint behind a load balancer;
- Git: egress on TCP 22 (SSH) and 443 (HTTPS) to any address: the engine pulls the fleet repo from there
  (Git hosts have no fixed address either);
- the engine's own controllers, between the pods of its namespace only: Flux's source-controller serves the
  artifacts it fetched over HTTP on 9090 (the notification-controller, when installed, takes events on 9090
  too); Argo CD's repo-server (8081), redis (6379), server (8080) and Dex (5556, 5557).

Nothing is allowed in from outside the namespace: a pull-mode engine needs no inbound connection. Everything is
plain data, so the tests read the policies back.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.core import ArgoSettings, FluxSettings

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - depends on the host
    HAS_YAML = False

FOLDER = "networkpolicies"
FILE = "edgefleet-networkpolicies.yaml"
ENGINE_NAMESPACES: dict[str, str] = {"flux": FluxSettings().namespace, "argocd": ArgoSettings().namespace}
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
DNS_NAMESPACE = "kube-system"
DNS_PORT = 53
API_PORTS = (6443, 443)
GIT_PORTS = (22, 443)
# TCP ports the engine's controllers serve to each other inside the engine's namespace.
INTERNAL_PORTS: dict[str, tuple[int, ...]] = {
    "flux": (9090,),
    "argocd": (8080, 8081, 6379, 5556, 5557),
}
COMMENT = """\
# NetworkPolicies for CIS 5.3.2 (see docs/gitops.md, "NetworkPolicies"): a default deny in every namespace
# the collection creates, and what the GitOps engine needs: DNS, the API server (by port, to any address:
# no selector matches it), Git over SSH and HTTPS, and its own controllers inside its namespace.
# Add what your cluster needs in an overlay, or turn them off with the fleet's gitops.network_policies: false.
"""


def _tcp(ports: tuple[int, ...]) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _policy(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "edgefleet"}},
        "spec": {"podSelector": {}, **spec},
    }


def default_deny(namespace: str) -> dict[str, Any]:
    return _policy("edgefleet-default-deny", namespace, {"policyTypes": ["Ingress", "Egress"]})


def engine_policies(engine: str, namespace: str) -> list[dict[str, Any]]:
    """What the engine needs, on top of the default deny of its namespace."""
    dns = {
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: DNS_NAMESPACE}}}],
                "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
            }
        ],
    }
    internal = INTERNAL_PORTS[engine]
    return [
        _policy("edgefleet-allow-dns", namespace, dns),
        # no "to": any address (see the module's docstring for why)
        _policy(
            "edgefleet-allow-kube-apiserver",
            namespace,
            {"policyTypes": ["Egress"], "egress": [{"ports": _tcp(API_PORTS)}]},
        ),
        _policy("edgefleet-allow-git", namespace, {"policyTypes": ["Egress"], "egress": [{"ports": _tcp(GIT_PORTS)}]}),
        _policy(
            f"edgefleet-allow-{engine}-internal",
            namespace,
            {
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {}}], "ports": _tcp(internal)}],
                "egress": [{"to": [{"podSelector": {}}], "ports": _tcp(internal)}],
            },
        ),
    ]


def policies(engine: str, engine_namespace: str, own_namespace: str) -> list[dict[str, Any]]:
    """Every policy of a cluster of ``engine``: its own namespace's default deny, then the engine namespace's."""
    out = [] if own_namespace == engine_namespace else [default_deny(own_namespace)]
    return [*out, default_deny(engine_namespace), *engine_policies(engine, engine_namespace)]


def dump(docs: list[dict[str, Any]]) -> str:
    """The policies as one multi-document YAML file, with a comment that says what they are."""
    return COMMENT + yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, explicit_start=True)
