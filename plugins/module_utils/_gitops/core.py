# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pull-mode GitOps registration: the objects that bind one cluster to its fleet path.

Everything here is pure data in, data out (no Ansible, no API client), so it is
unit-tested directly. The modules' runners (``module.py``) and the integration
tests call it; the API side lives in ``api.py``, the air-gap engine bundle in
``bundle.py``, the deploy key in ``keys.py``, the modules' options in ``options.py``.

What differs between Flux and Argo CD is data: the settings dataclasses
(:class:`FluxSettings`, :class:`ArgoSettings`, whose field defaults are the
modules' defaults) and one row per engine in :data:`ENGINE_TABLE`.

Field names follow the upstream CRDs: Flux ``source.toolkit.fluxcd.io/v1``
``GitRepository`` and ``kustomize.toolkit.fluxcd.io/v1`` ``Kustomization``;
Argo CD ``argoproj.io/v1alpha1`` ``Application``; the argocd-agent
``argocd-agent-params`` ConfigMap keys.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.names import is_dns1123_label
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.helm import HelmSettings, argocd_source, helmrelease

DISTRIBUTIONS = registry.NAMES
DELIVERIES = ("manifests", "api")
AGENT_MODES = ("autonomous", "managed")
DEFAULT_BRANCH = "main"

FIELD_MANAGER = "edgefleet"
LABEL_PREFIX = "edgefleet.io/"
IDENTITY_NAMESPACE = "edgefleet-system"
IDENTITY_NAME = "cluster-identity"
SUBSTITUTE_NAME = "edgefleet-cluster-vars"
REGISTRATION_FILE = "edgefleet-gitops.yaml"
ENGINE_FILE_PREFIX = "edgefleet-gitops-engine-"

# Where each distribution applies manifests by itself (no API call needed); the strategy knows
# whether its folder takes files directly or one sub-folder per stack.
MANIFESTS_STACK = "edgefleet-gitops"
MANIFEST_DIRS = MappingProxyType(
    {name: dist.manifests_folder(MANIFESTS_STACK) for name, dist in registry.DISTRIBUTIONS.items()}
)

# The keys of a Secret's payload that must never reach output or a diff.
SECRET_KEYS = frozenset({"identity", "sshPrivateKey", "password", "bearerToken", "data", "stringData"})

# \Z, not $: `$` also matches before a final newline, and "name\n" is not a name.
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+\Z")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")
_GIT_URL = re.compile(r"^(ssh://|https://|http://|git@[^:]+:)")
_SSH_URL = re.compile(r"^(ssh://|git@)")
_HOSTPORT = re.compile(r"^[A-Za-z0-9.-]+\Z")


@dataclass(frozen=True)
class ClusterFacts:
    """What the inventory published for one cluster (see docs/architecture.md)."""

    cluster: str
    path: str
    overlays: tuple[str, ...] = ()
    site: str = ""
    region: str = ""
    model: str = ""
    channel: str = ""
    labels: dict[str, str] = field(default_factory=dict)


def is_ssh_url(url: str) -> bool:
    """Whether the agent reaches the repo over SSH (and so needs a deploy key and known_hosts)."""
    return bool(_SSH_URL.match(url or ""))


@dataclass(frozen=True)
class RepoSettings:
    url: str
    branch: str = DEFAULT_BRANCH
    known_hosts: str = ""

    @property
    def is_ssh(self) -> bool:
        return is_ssh_url(self.url)


# The two settings dataclasses below are where the defaults of the modules' ``flux`` and ``argocd``
# suboptions are defined (options.py builds the argument spec from their fields); a field's type
# annotation is its option type.


@dataclass(frozen=True)
class FluxSettings:
    """Flux objects, tuned for links that drop for hours: poll rarely, retry soon."""

    namespace: str = "flux-system"
    name: str = "edgefleet-fleet"
    source_interval: str = "10m"
    source_timeout: str = "60s"
    interval: str = "10m"
    retry_interval: str = "2m"
    timeout: str = "5m"
    prune: bool = True
    wait: bool = False
    substitute: bool = True


@dataclass(frozen=True)
class ArgoSettings:
    """The Argo CD Application: automated, self-healing, retrying without limit with a capped backoff."""

    namespace: str = "argocd"
    project: str = "default"
    destination_namespace: str = "default"
    prune: bool = True
    self_heal: bool = True
    retry_limit: int = -1
    backoff_duration: str = "30s"
    backoff_factor: int = 2
    backoff_max_duration: str = "10m"
    agent_hub: str = ""
    agent_hub_port: int = 443
    agent_mode: str = "autonomous"


@dataclass(frozen=True)
class Engine:
    """What differs between the GitOps engines, as data: one row of :data:`ENGINE_TABLE` per engine."""

    name: str
    title: str
    settings: type[FluxSettings] | type[ArgoSettings]  # its settings, the module option named ``name``
    components: tuple[str, ...]  # every component a bundle may hold
    default_components: tuple[str, ...]  # what is installed when none are chosen
    required_components: tuple[str, ...]  # without these the engine cannot reconcile
    source_kind: str  # the object that ``wait`` watches


ENGINE_TABLE: Mapping[str, Engine] = MappingProxyType(
    {
        "flux": Engine(
            name="flux",
            title="Flux",
            settings=FluxSettings,
            components=(
                "source-controller",
                "kustomize-controller",
                "helm-controller",
                "notification-controller",
                "image-reflector-controller",
                "image-automation-controller",
            ),
            # trimmed for 2-4 GB nodes: what it takes to pull and apply, nothing else
            default_components=("source-controller", "kustomize-controller"),
            required_components=("source-controller", "kustomize-controller"),
            source_kind="GitRepository",
        ),
        "argocd": Engine(
            name="argocd",
            title="Argo CD",
            settings=ArgoSettings,
            components=(
                "application-controller",
                "repo-server",
                "redis",
                "applicationset-controller",
                "server",
                "dex-server",
                "notifications-controller",
            ),
            # Argo CD "core": no API server, UI or Dex
            default_components=("application-controller", "repo-server", "redis"),
            required_components=("application-controller", "repo-server"),
            source_kind="Application",
        ),
    }
)
ENGINES = tuple(ENGINE_TABLE)


def components_for(engine: str, chosen: list[str] | tuple[str, ...] | None) -> list[str]:
    """The components to install: the ones chosen, or (none chosen) the engine's default set."""
    if chosen:
        return list(chosen)
    row = ENGINE_TABLE.get(engine)
    return list(row.default_components) if row else []


@dataclass(frozen=True)
class DeployKey:
    """An SSH deploy key: OpenSSH private key text and its one-line public key."""

    private_openssh: str
    public_openssh: str

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hashlib.sha256(self.public_openssh.encode()).hexdigest()[:16]

    @property
    def ssh_fingerprint(self) -> str:
        """The fingerprint Git hosts and ``ssh-keygen -l`` show: SHA256 of the key blob, base64 without padding."""
        return ssh_fingerprint(self.public_openssh)


def ssh_fingerprint(public_openssh: str) -> str:
    """``SHA256:...`` of a one-line OpenSSH public key; "" when it is not one."""
    import base64
    import binascii

    parts = public_openssh.split()
    if len(parts) < 2:
        return ""
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return ""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


# ---------------------------------------------------------------- validation


def validate(
    engine: str,
    facts: ClusterFacts,
    repo: RepoSettings,
    flux: FluxSettings,
    argo: ArgoSettings,
) -> list[str]:
    """Every problem with the inputs, each naming the key, what was found and what is allowed."""
    problems: list[str] = []
    if engine not in ENGINES:
        problems.append(f"engine: found {engine!r}, allowed: {', '.join(ENGINES)}")
    if not is_dns1123_label(facts.cluster):
        problems.append(f"cluster: found {facts.cluster!r}, allowed: a DNS-1123 label (a-z, 0-9, '-', max 63)")
    path = facts.path or ""
    if not path or path.startswith("/") or ".." in path.split("/"):
        problems.append(f"path: found {path!r}, allowed: a relative path in the fleet repo, e.g. clusters/<cluster>")
    if not _GIT_URL.match(repo.url or ""):
        problems.append(f"repo_url: found {repo.url!r}, allowed: an ssh://, git@host:, https:// or http:// Git URL")
    if not repo.branch or any(c in repo.branch for c in " ~^:?*[\\"):
        problems.append(f"branch: found {repo.branch!r}, allowed: a Git branch name")
    for key, value in (
        ("flux.source_interval", flux.source_interval),
        ("flux.source_timeout", flux.source_timeout),
        ("flux.interval", flux.interval),
        ("flux.retry_interval", flux.retry_interval),
        ("flux.timeout", flux.timeout),
        ("argocd.backoff_duration", argo.backoff_duration),
        ("argocd.backoff_max_duration", argo.backoff_max_duration),
    ):
        if not _DURATION.match(value or ""):
            problems.append(f"{key}: found {value!r}, allowed: a Go duration such as 30s, 2m, 1h")
    names = (("flux.namespace", flux.namespace), ("flux.name", flux.name), ("argocd.namespace", argo.namespace))
    for key, value in names:
        if not is_dns1123_label(value):
            problems.append(f"{key}: found {value!r}, allowed: a DNS-1123 label")
    if argo.agent_mode not in AGENT_MODES:
        problems.append(f"argocd.agent_mode: found {argo.agent_mode!r}, allowed: {', '.join(AGENT_MODES)}")
    if argo.agent_hub and not _HOSTPORT.match(argo.agent_hub):
        problems.append(f"argocd.agent_hub: found {argo.agent_hub!r}, allowed: a host name or address")
    if not 1 <= argo.agent_hub_port <= 65535:
        problems.append(f"argocd.agent_hub_port: found {argo.agent_hub_port}, allowed: 1-65535")
    if argo.backoff_factor < 1:
        problems.append(f"argocd.backoff_factor: found {argo.backoff_factor}, allowed: an integer >= 1")
    for name in facts.overlays:
        if not is_dns1123_label(name):
            problems.append(f"overlays: found {name!r}, allowed: DNS-1123 overlay names")
    return problems


# ---------------------------------------------------------------- identity and labels


def label_safe(value: str) -> str:
    """A Kubernetes label value for ``value``: kept when valid, else cleaned and, if long, hashed."""
    if len(value) <= 63 and _LABEL_VALUE.match(value):
        return value
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-_.")
    if len(cleaned) > 63:
        digest = hashlib.sha256(value.encode()).hexdigest()[:10]
        cleaned = cleaned[:52].rstrip("-_.") + "-" + digest
    return cleaned


def node_labels(facts: ClusterFacts) -> dict[str, str]:
    """The labels every node of the cluster carries, so workloads and ApplicationSets can select them.

    Overlays go in as one label-safe value joined with ``.`` (base first); the
    identity ConfigMap holds the exact list.
    """
    labels = {
        f"{LABEL_PREFIX}cluster": label_safe(facts.cluster),
        f"{LABEL_PREFIX}site": label_safe(facts.site or facts.cluster),
    }
    for key, value in (("region", facts.region), ("model", facts.model), ("channel", facts.channel)):
        if value:
            labels[f"{LABEL_PREFIX}{key}"] = label_safe(value)
    if facts.overlays:
        labels[f"{LABEL_PREFIX}overlays"] = label_safe(".".join(facts.overlays))
    return labels


def identity_data(facts: ClusterFacts, repo: RepoSettings) -> dict[str, str]:
    return {
        "cluster": facts.cluster,
        "site": facts.site or facts.cluster,
        "region": facts.region,
        "model": facts.model,
        "channel": facts.channel,
        "overlays": ",".join(facts.overlays),
        "path": facts.path,
        "repo": repo.url,
        "branch": repo.branch,
    }


def _meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/managed-by": "edgefleet", **(labels or {})}
    return meta


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name)}


def default_service_account(namespace: str) -> dict[str, Any]:
    """The ``default`` ServiceAccount of a namespace we create, handing no API token to a pod that names no
    account of its own (CIS 5.1.5). The engines' controllers run under accounts of their own."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta("default", namespace),
        "automountServiceAccountToken": False,
    }


def _with_default_accounts(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``objects`` with each Namespace followed by its ``default`` ServiceAccount."""
    out: list[dict[str, Any]] = []
    for obj in objects:
        out.append(obj)
        if obj["kind"] == "Namespace":
            out.append(default_service_account(obj["metadata"]["name"]))
    return out


def identity_configmap(facts: ClusterFacts, repo: RepoSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(IDENTITY_NAME, IDENTITY_NAMESPACE, node_labels(facts)),
        "data": identity_data(facts, repo),
    }


def substitution_vars(facts: ClusterFacts, repo: RepoSettings) -> dict[str, str]:
    """Flux postBuild variables: names must be shell-style identifiers."""
    return {f"EDGEFLEET_{key.upper()}": value for key, value in identity_data(facts, repo).items()}


def kustomize_path(path: str) -> str:
    """Flux and Argo paths are relative to the repo root; Flux wants ./ in front."""
    clean = path.strip("/")
    return clean if clean.startswith("./") else "./" + clean


# ---------------------------------------------------------------- Flux


def flux_objects(
    facts: ClusterFacts,
    repo: RepoSettings,
    flux: FluxSettings,
    key: DeployKey | None,
    helm: HelmSettings | None = None,
) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [_namespace(flux.namespace)]
    secret_name = f"{flux.name}-auth"
    source_spec: dict[str, Any] = {
        "url": repo.url,
        "ref": {"branch": repo.branch},
        "interval": flux.source_interval,
        "timeout": flux.source_timeout,
    }
    if key is not None and repo.is_ssh:
        string_data = {"identity": key.private_openssh, "identity.pub": key.public_openssh}
        if repo.known_hosts:
            string_data["known_hosts"] = repo.known_hosts
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": _meta(secret_name, flux.namespace),
                "type": "Opaque",
                "stringData": string_data,
            }
        )
        source_spec["secretRef"] = {"name": secret_name}
    if flux.substitute:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(SUBSTITUTE_NAME, flux.namespace),
                "data": substitution_vars(facts, repo),
            }
        )
    objects.append(
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": _meta(flux.name, flux.namespace),
            "spec": source_spec,
        }
    )
    kustomization_spec: dict[str, Any] = {
        "sourceRef": {"kind": "GitRepository", "name": flux.name},
        "path": kustomize_path(facts.path),
        "prune": flux.prune,
        "interval": flux.interval,
        "retryInterval": flux.retry_interval,
        "timeout": flux.timeout,
        "wait": flux.wait,
    }
    if flux.substitute:
        kustomization_spec["postBuild"] = {"substituteFrom": [{"kind": "ConfigMap", "name": SUBSTITUTE_NAME}]}
    objects.append(
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": _meta(flux.name, flux.namespace),
            "spec": kustomization_spec,
        }
    )
    if helm is not None:
        objects.append(helmrelease(helm, flux.name, flux.namespace, flux.interval, node_labels(facts)))
    return objects


# ---------------------------------------------------------------- Argo CD


def argocd_objects(
    facts: ClusterFacts,
    repo: RepoSettings,
    argo: ArgoSettings,
    key: DeployKey | None,
    helm: HelmSettings | None = None,
) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [_namespace(argo.namespace)]
    repo_data: dict[str, str] = {"type": "git", "url": repo.url}
    if key is not None and repo.is_ssh:
        repo_data["sshPrivateKey"] = key.private_openssh
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta("edgefleet-fleet-repo", argo.namespace, {"argocd.argoproj.io/secret-type": "repository"}),
            "type": "Opaque",
            "stringData": repo_data,
        }
    )
    if repo.known_hosts and repo.is_ssh:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta("argocd-ssh-known-hosts-cm", argo.namespace, {"app.kubernetes.io/part-of": "argocd"}),
                "data": {"ssh_known_hosts": repo.known_hosts},
            }
        )
    retry: dict[str, Any] = {
        "limit": argo.retry_limit,
        "backoff": {
            "duration": argo.backoff_duration,
            "factor": argo.backoff_factor,
            "maxDuration": argo.backoff_max_duration,
        },
    }
    source = {"repoURL": repo.url, "targetRevision": repo.branch, "path": facts.path.strip("/")}
    # with Helm layering: two sources, the cluster's Kustomize path and the chart with the values layers
    sources = {"source": source} if helm is None else {"sources": [source, argocd_source(helm, repo.url, repo.branch)]}
    objects.append(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": _meta(facts.cluster, argo.namespace, node_labels(facts)),
            "spec": {
                "project": argo.project,
                **sources,
                "destination": {"server": "https://kubernetes.default.svc", "namespace": argo.destination_namespace},
                "syncPolicy": {
                    "automated": {"prune": argo.prune, "selfHeal": argo.self_heal},
                    "retry": retry,
                    "syncOptions": ["CreateNamespace=true"],
                },
            },
        }
    )
    if argo.agent_hub:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta("argocd-agent-params", argo.namespace),
                "data": {
                    "agent.server.address": argo.agent_hub,
                    "agent.server.port": str(argo.agent_hub_port),
                    "agent.mode": argo.agent_mode,
                    "agent.namespace": argo.namespace,
                },
            }
        )
    return objects


# ---------------------------------------------------------------- all together


def registration_objects(
    engine: str,
    facts: ClusterFacts,
    repo: RepoSettings,
    flux: FluxSettings,
    argo: ArgoSettings,
    key: DeployKey | None,
    helm: HelmSettings | None = None,
) -> list[dict[str, Any]]:
    """The ordered objects for one cluster: namespaces first (each with its ``default`` ServiceAccount, which
    mounts no API token), then identity, auth, source, sync.

    With ``helm``, the release's namespace too (its values ConfigMaps come from the Kustomize path), and the
    chart with its values layers: a Flux HelmRelease, or a second source of the Argo CD Application."""
    objects = [_namespace(IDENTITY_NAMESPACE)]
    engine_namespace = flux.namespace if engine == "flux" else argo.namespace
    if helm is not None and helm.namespace not in (IDENTITY_NAMESPACE, engine_namespace):
        objects.append(_namespace(helm.namespace))
    objects.append(identity_configmap(facts, repo))
    if engine == "flux":
        objects.extend(flux_objects(facts, repo, flux, key, helm))
    elif engine == "argocd":
        objects.extend(argocd_objects(facts, repo, argo, key, helm))
    else:
        raise ValueError(f"engine: found {engine!r}, allowed: {', '.join(ENGINES)}")
    return _with_default_accounts(objects)


def redact_object(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy fit for output and diffs: a Secret's payload values become a short digest."""
    if obj.get("kind") != "Secret":
        return obj
    copy = dict(obj)
    for section in ("stringData", "data"):
        payload = obj.get(section)
        if isinstance(payload, dict):
            copy[section] = {
                k: f"<redacted sha256:{hashlib.sha256(str(v).encode()).hexdigest()[:12]}>" for k, v in payload.items()
            }
    return copy


def object_ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{obj.get('kind', '?')}/{namespace + '/' if namespace else ''}{name}"


# The objects whose presence in the API shows that a cluster is registered (the upgrade's GitOps gate): the
# identity ConfigMap and the engine's source and sync objects; not namespaces or secrets.
GATE_KINDS = ("GitRepository", "Kustomization", "Application")
_GATE_REPO = RepoSettings(url="https://registration.invalid/fleet.git")  # names do not depend on the repo


def gate_refs(engine: str, cluster: str, overrides: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
    """For ``kubectl get -n <namespace> <ref>``: the registration's identity ConfigMap and its engine's source and
    sync objects, named as :func:`registration_objects` names them with the engine's settings ``overrides`` (the
    ``flux``/``argocd`` option; unknown keys ignored). Empty for the engine ``none``."""
    if engine == "none":
        return []
    if engine not in ENGINE_TABLE:
        raise ValueError(f"engine: found {engine!r}, allowed: {', '.join((*ENGINES, 'none'))}")
    chosen = ENGINE_TABLE[engine].settings
    known = {f.name for f in fields(chosen)}
    tuned = {k: v for k, v in (overrides or {}).items() if k in known}
    flux = FluxSettings(**tuned) if chosen is FluxSettings else FluxSettings()
    argo = ArgoSettings(**tuned) if chosen is ArgoSettings else ArgoSettings()
    refs = []
    for obj in registration_objects(engine, ClusterFacts(cluster=cluster, path="."), _GATE_REPO, flux, argo, None):
        meta = obj["metadata"]
        if obj["kind"] in GATE_KINDS or (obj["kind"] == "ConfigMap" and meta["name"] == IDENTITY_NAME):
            group = str(obj["apiVersion"]).rpartition("/")[0]
            resource = obj["kind"].lower() + (f".{group}" if group else "")  # kubectl takes the singular kind
            refs.append({"namespace": str(meta.get("namespace", "")), "ref": f"{resource}/{meta['name']}"})
    return refs
