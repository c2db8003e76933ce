# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Overlay assignment: which Kustomize overlays (components) a cluster follows.

Rules match cluster facts (groups, region, model, channel, labels, site, distribution)
and put an overlay into a slot. Slots are ordered by precedence, lowest first:
``base < region < model < channel < site``. The result is the base followed by the
overlays slot by slot, in rule order inside a slot. An exclusive slot takes at most
one overlay; two matching rules naming different overlays there are a conflict.

With ``helm`` set, the same ordered layers also carry Helm values: one values file per
layer, applied base first like the components (see ``module_utils/_gitops/helm.py``); two
overlays of one slot giving one value differently are a conflict.

Used by the ``edgefleet.k8s.fleet`` inventory plugin (per cluster) and by the
``edgefleet.k8s.overlays`` filter (from host vars), so both give the same answer.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.names import is_dns1123_label
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import helm as _helm
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_problems import Ctx, Problems, did_you_mean, text_of

SLOTS: tuple[str, ...] = ("base", "region", "model", "channel", "site")
DEFAULT_EXCLUSIVE: tuple[str, ...] = ("region", "model", "channel")
MATCH_KEYS: tuple[str, ...] = ("groups", "region", "model", "channel", "site", "distribution", "labels")
RULE_KEYS: tuple[str, ...] = ("name", "slot", "match", "overlay")
CONFIG_KEYS: tuple[str, ...] = ("base", "components_dir", "clusters_dir", "exclusive", "rules", "helm")
HELM_KEYS: tuple[str, ...] = ("chart", "release", "namespace", "values")
# Groups that depend on the node's role, not on the cluster: never used for matching.
ROLE_GROUPS = frozenset(("servers", "agents", "k3s_servers", "k3s_agents", "k0s_controllers", "k0s_workers"))

_PATH_RE = re.compile(r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?(/[a-z0-9]([a-z0-9_.-]*[a-z0-9])?)*\Z")  # \Z: no final newline
_KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"


def group_name(value: str) -> str:
    """Group names use `_` where the fleet value has `-` (and `.`)."""
    return value.replace("-", "_").replace(".", "_")


class ClusterFacts(t.NamedTuple):
    cluster: str
    region: str
    model: str
    channel: str
    distribution: str
    labels: dict[str, str]
    groups: frozenset[str]


class Rule(t.NamedTuple):
    position: int
    name: str
    slot: str
    overlay: str
    values: dict[str, frozenset[str]]  # region/model/channel/site/distribution/groups: any-of
    labels: dict[str, frozenset[str]]  # every key must match one of its values


class HelmConfig(t.NamedTuple):
    """The fleet's Helm layering: the chart folder, release, namespace and the values each layer gives."""

    chart: str
    release: str
    namespace: str
    values: dict[str, dict[str, t.Any]]  # layer ("base" or an overlay name) -> its values


class OverlayConfig(t.NamedTuple):
    base: str
    components_dir: str
    clusters_dir: str
    exclusive: frozenset[str]
    rules: tuple[Rule, ...]
    helm: HelmConfig | None = None


class Resolution(t.NamedTuple):
    overlays: list[str]
    gitops_path: str
    kustomization: dict[str, t.Any]
    conflicts: list[str]
    helm: dict[str, t.Any] | None = None  # the Helm settings with the cluster's layers in order (_helm.to_mapping)


DEFAULT_CONFIG = OverlayConfig("base", "components", "clusters", frozenset(DEFAULT_EXCLUSIVE), ())


def derived_groups(cluster: str, region: str, model: str, channel: str, distribution: str) -> list[str]:
    """The cluster-level groups the inventory plugin creates from site facts."""
    return [
        "edgefleet",
        "cluster_" + group_name(cluster),
        "region_" + group_name(region),
        "model_" + group_name(model),
        "channel_" + group_name(channel),
        distribution,
    ]


def _path(ctx: Ctx, key: str, value: object, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not _PATH_RE.match(value) or ".." in value.split("/"):
        ctx.bad_value(key, value, "a relative path of lower-case names separated by '/', e.g. 'components'")
        return default
    return value


def _string_set(ctx: Ctx, key: str, value: object) -> frozenset[str] | None:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, str) and i for i in items):
        ctx.bad_value(key, value, "a non-empty string or a list of non-empty strings")
        return None
    return frozenset(t.cast(list[str], items))


def parse_config(data: object, problems: Problems, file: str, prefix: str = "overlays.") -> OverlayConfig:
    """Validate an ``overlays:`` mapping; every problem goes to ``problems``."""
    ctx = Ctx(problems, file, prefix=prefix)
    if data is None:
        return DEFAULT_CONFIG
    if not isinstance(data, dict):
        Ctx(problems, file).bad_value(prefix.rstrip("."), data, "a mapping with keys " + ", ".join(CONFIG_KEYS))
        return DEFAULT_CONFIG
    ctx.check_keys(data, CONFIG_KEYS, "overlays")
    base = _path(ctx, "base", data.get("base"), "base")
    components_dir = _path(ctx, "components_dir", data.get("components_dir"), "components")
    clusters_dir = _path(ctx, "clusters_dir", data.get("clusters_dir"), "clusters")
    exclusive = frozenset(DEFAULT_EXCLUSIVE)
    if "exclusive" in data:
        raw = data["exclusive"]
        if not isinstance(raw, list) or not all(isinstance(s, str) and s in SLOTS for s in raw):
            ctx.bad_value("exclusive", raw, "a list of slots from " + ", ".join(SLOTS))
        else:
            exclusive = frozenset(raw)
    rules: list[Rule] = []
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        ctx.bad_value("rules", raw_rules, "a list of rules (mappings with slot, match, overlay)")
        raw_rules = []
    for index, raw_rule in enumerate(raw_rules):
        rule = _parse_rule(ctx.sub(f"rules[{index}]."), index, raw_rule)
        if rule is not None:
            rules.append(rule)
    helm = _parse_helm(ctx.sub("helm."), data["helm"], rules) if "helm" in data else None
    return OverlayConfig(base, components_dir, clusters_dir, exclusive, tuple(rules), helm)


def _parse_helm(ctx: Ctx, raw: object, rules: list[Rule]) -> HelmConfig | None:
    if not isinstance(raw, dict):
        ctx.bad_value("", raw, "a mapping with keys " + ", ".join(HELM_KEYS))
        return None
    ctx.check_keys(raw, HELM_KEYS, "the Helm layering")
    chart = raw.get("chart")
    if chart is None:
        ctx.error("chart", "missing; the Helm layering needs the chart's folder in the fleet repo, e.g. charts/app")
        chart = ""
    else:
        chart = _path(ctx, "chart", chart, "")
    names: dict[str, str] = {}
    for key, default in (("release", _helm.DEFAULT_RELEASE), ("namespace", _helm.DEFAULT_NAMESPACE)):
        value = raw.get(key, default)
        if not isinstance(value, str) or not is_dns1123_label(value):
            ctx.bad_value(key, value, "a DNS-1123 label (a-z, 0-9, '-', max 63)")
            value = default
        names[key] = value
    values: dict[str, dict[str, t.Any]] = {}
    raw_values = raw.get("values")
    raw_values = {} if raw_values is None else raw_values
    layers = ["base", *dict.fromkeys(rule.overlay for rule in rules)]
    if not isinstance(raw_values, dict):
        ctx.bad_value("values", raw_values, "a mapping of layer (base or an overlay) to its Helm values")
        raw_values = {}
    for layer, layer_values in raw_values.items():
        if layer not in layers:
            hint = did_you_mean(layer, layers) if isinstance(layer, str) else ""
            allowed = "base or an overlay that a rule names: " + ", ".join(layers)
            ctx.bad_value(f"values.{text_of(layer)}", layer, allowed, hint)
        elif layer_values is not None and not isinstance(layer_values, dict):
            ctx.bad_value(f"values.{layer}", layer_values, "a mapping of Helm values")
        else:
            values[layer] = dict(layer_values or {})
    if not chart:
        return None
    return HelmConfig(chart, names["release"], names["namespace"], values)


def _parse_rule(ctx: Ctx, index: int, raw: object) -> Rule | None:
    if not isinstance(raw, dict):
        ctx.bad_value("", raw, "a mapping with keys " + ", ".join(RULE_KEYS))
        return None
    ctx.check_keys(raw, RULE_KEYS, "an overlay rule")
    ok = True
    name = raw.get("name", f"rule {index}")
    if not isinstance(name, str) or not name:
        ctx.bad_value("name", name, "a non-empty string")
        ok = False
    slot = raw.get("slot")
    if slot not in SLOTS:
        hint = ""
        if isinstance(slot, str):
            hint = did_you_mean(slot, SLOTS)
        ctx.bad_value("slot", slot, ", ".join(SLOTS) + " (lowest precedence first)", hint)
        ok = False
    overlay = raw.get("overlay")
    if not isinstance(overlay, str) or not _PATH_RE.match(overlay):
        ctx.bad_value("overlay", overlay, "an overlay name: lower-case letters, digits, '-', '_', '.', '/'")
        ok = False
    match = raw.get("match", {})
    values: dict[str, frozenset[str]] = {}
    labels: dict[str, frozenset[str]] = {}
    if match is None:
        match = {}
    if not isinstance(match, dict):
        ctx.bad_value("match", match, "a mapping with keys " + ", ".join(MATCH_KEYS))
        return None
    mctx = ctx.sub("match.")
    mctx.check_keys(match, MATCH_KEYS, "an overlay rule's match")
    for key in MATCH_KEYS:
        if key not in match:
            continue
        if key == "labels":
            raw_labels = match[key]
            if not isinstance(raw_labels, dict) or not raw_labels:
                mctx.bad_value("labels", raw_labels, "a non-empty mapping of label name to value (or list of values)")
                ok = False
                continue
            for lkey, lval in raw_labels.items():
                if not isinstance(lkey, str):
                    mctx.bad_value("labels", lkey, "string label names")
                    ok = False
                    continue
                parsed = _string_set(mctx, f"labels.{lkey}", lval)
                if parsed is None:
                    ok = False
                else:
                    labels[lkey] = parsed
        else:
            parsed = _string_set(mctx, key, match[key])
            if parsed is None:
                ok = False
            else:
                values[key] = frozenset(group_name(v) for v in parsed) if key == "groups" else parsed
    if not ok:
        return None
    return Rule(index, t.cast(str, name), t.cast(str, slot), t.cast(str, overlay), values, labels)


def _matches(rule: Rule, facts: ClusterFacts) -> bool:
    for key, wanted in rule.values.items():
        if key == "groups":
            if wanted.isdisjoint(facts.groups):
                return False
        else:
            have = facts.cluster if key == "site" else getattr(facts, key)
            if have not in wanted:
                return False
    return all(facts.labels.get(lkey) in lwanted for lkey, lwanted in rule.labels.items())


def resolve(config: OverlayConfig, facts: ClusterFacts) -> Resolution:
    """Ordered overlays (base first), the GitOps path and the kustomization for one cluster."""
    by_slot: dict[str, list[tuple[str, str]]] = {}
    for rule in config.rules:
        if _matches(rule, facts):
            by_slot.setdefault(rule.slot, []).append((rule.overlay, rule.name))
    overlays = [config.base]
    slots: list[tuple[str, str]] = []  # (overlay, slot) after the base, in order
    conflicts: list[str] = []
    for slot in SLOTS:
        found = by_slot.get(slot)
        if not found:
            continue
        names = list(dict.fromkeys(overlay for overlay, _rule in found))
        if slot in config.exclusive and len(names) > 1:
            detail = ", ".join(f"rule {r!r} -> {o!r}" for o, r in found)
            conflicts.append(f"exclusive slot {slot!r} gets {len(names)} different overlays: {detail}")
            names = names[:1]
        for name in names:
            if name not in overlays:
                overlays.append(name)
                slots.append((name, slot))
    gitops_path = f"{config.clusters_dir}/{facts.cluster}"
    up = "../" * (gitops_path.count("/") + 1)
    kustomization: dict[str, t.Any] = {
        "apiVersion": _KUSTOMIZE_API,
        "kind": "Kustomization",
        "resources": [up + config.base],
        "components": [f"{up}{config.components_dir}/{name}" for name in overlays[1:]],
    }
    helm: dict[str, t.Any] | None = None
    if config.helm is not None:
        layers = _helm.ordered_layers(config.base, config.components_dir, slots, config.helm.values)
        conflicts.extend(_helm.slot_conflicts(layers))
        settings = _helm.HelmSettings(config.helm.chart, config.helm.release, config.helm.namespace, layers)
        helm = _helm.to_mapping(settings)
    return Resolution(overlays, gitops_path, kustomization, conflicts, helm)


def facts_from_hostvars(hostvars: t.Mapping[str, t.Any]) -> ClusterFacts:
    """Cluster facts from a host's vars as published by the inventory plugin.

    Groups are the cluster-level groups derived from the facts, plus the host's
    ``group_names`` without the role groups (servers, agents, ...).
    """
    missing = [
        k
        for k in ("edgefleet_cluster", "edgefleet_region", "edgefleet_model", "edgefleet_channel")
        if not isinstance(hostvars.get(k), str)
    ]
    if missing:
        raise ValueError(f"host vars lack {', '.join(missing)} (are they from the edgefleet.k8s.fleet inventory?)")
    cluster = str(hostvars["edgefleet_cluster"])
    region = str(hostvars["edgefleet_region"])
    model = str(hostvars["edgefleet_model"])
    channel = str(hostvars["edgefleet_channel"])
    distribution = str(hostvars.get("edgefleet_distribution", "k3s"))
    labels_raw = hostvars.get("edgefleet_site_labels", hostvars.get("edgefleet_labels", {}))
    labels = {str(k): str(v) for k, v in labels_raw.items()} if isinstance(labels_raw, t.Mapping) else {}
    groups = set(derived_groups(cluster, region, model, channel, distribution))
    names = hostvars.get("group_names", [])
    if isinstance(names, (list, tuple)):
        groups.update(str(g) for g in names if str(g) not in ROLE_GROUPS)
    return ClusterFacts(cluster, region, model, channel, distribution, labels, frozenset(groups))
