# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet registry schema: validation of every site and node, and the inventory plan.

Input: registry documents (already parsed YAML/JSON, each with the file it came from).
Output: a plan (plain dicts and lists, JSON-safe, cacheable) of groups and host vars,
or FleetError listing every problem found. See docs/fleet-schema.md.
"""

from __future__ import annotations

import ipaddress
import math
import re
import typing as t
from urllib.parse import urlsplit

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.names import (
    is_dns1123_label,
    is_label_name,
    is_label_value,
)
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registries as _registries
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import wasm as _wasm
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops import core as _gitops
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_problems import (
    Ctx,
    FleetError,
    Problem,
    Problems,
    describe,
    did_you_mean,
    text_of,
)
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.overlays import (
    DEFAULT_CONFIG,
    ClusterFacts,
    OverlayConfig,
    derived_groups,
    group_name,
    parse_config,
    resolve,
)

__all__ = ["FleetError", "Problem", "build_plan"]

DISTRIBUTIONS: tuple[str, ...] = registry.NAMES
ARCHES: tuple[str, ...] = ("amd64", "arm64", "armhf")
DATASTORES: tuple[str, ...] = ("sqlite", "etcd", "external")
ENGINES: tuple[str, ...] = ("flux", "argocd", "none")
ROLES: tuple[str, ...] = ("server", "agent")

# Settings that may be given fleet-wide (defaults:) and overridden per site.
SETTING_KEYS: tuple[str, ...] = (
    "region",
    "model",
    "channel",
    "distribution",
    "version",
    "datastore",
    "datastore_endpoint",
    "arch",
    "gitops",
    "labels",
    "vars",
    "registries",
    "wasm",
)
# channels: fleet-wide only, the version each release channel runs, per distribution.
# models: fleet-wide only, what each hardware model runs (MODEL_KEYS); a site's own setting wins.
DEFAULTS_KEYS: tuple[str, ...] = (*SETTING_KEYS, "channels", "models")
MODEL_KEYS: tuple[str, ...] = ("wasm",)
SITE_KEYS: tuple[str, ...] = ("name", "nodes", "groups", *SETTING_KEYS)
NODE_KEYS: tuple[str, ...] = ("name", "address", "role", "arch", "labels", "vars", "wasm")
GITOPS_KEYS: tuple[str, ...] = ("engine", "repo", "branch", "network_policies")
REGISTRY_KEYS: tuple[str, ...] = ("defaults", "overlays", "sites")

# Published vars that describe one cluster: always vars of its cluster_<site> group (fleet_wide_keys).
CLUSTER_VARS = frozenset(
    (
        "edgefleet_cluster",
        "edgefleet_site",
        "edgefleet_distribution",
        "edgefleet_version",
        "edgefleet_datastore",
        "edgefleet_datastore_endpoint",
        "edgefleet_cluster_servers",
        "edgefleet_cluster_agents",
        "edgefleet_cluster_init_server",
        "edgefleet_overlays",
        "edgefleet_gitops_path",
        "edgefleet_kustomization",
        "edgefleet_helm",
        "edgefleet_node_labels",
        "edgefleet_registries",
        "edgefleet_wasm_runtimes",
    )
)
# Host vars the plugin publishes; vars: may not set them.
PUBLISHED_VARS = CLUSTER_VARS | frozenset(
    (
        "ansible_host",
        "edgefleet_region",
        "edgefleet_model",
        "edgefleet_channel",
        "edgefleet_labels",
        "edgefleet_site_labels",
        "edgefleet_node_role",
        "edgefleet_arch",
        "edgefleet_gitops_engine",
        "edgefleet_gitops_repo",
        "edgefleet_gitops_branch",
        "edgefleet_gitops_network_policies",
    )
)

# Every pattern is used with fullmatch: `$` would also match before a final newline ("ber-01\n").
_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NUMERIC_RE = re.compile(r"[0-9.]+")  # looks like an IP address but is not one
_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Upstream tags carry the distribution in their build metadata (v1.31.4+k3s1,
# v1.31.3+k0s.0), and a version must carry build metadata: it names the build
# the bundle holds. Other build metadata (a site's own build, the lab's
# stand-in "+lab") is allowed; a tag that names the other distribution is not.
_VERSION_RE = re.compile(r"v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?\+(?P<build>[0-9A-Za-z.-]+)")


def _version_ok(distribution: str, version: str) -> bool:
    """A release version with build metadata that does not name another distribution."""
    found = _VERSION_RE.fullmatch(version)
    if not found:
        return False
    return not any(found.group("build").startswith(other) for other in DISTRIBUTIONS if other != distribution)


# Groups the plugin publishes (and Ansible's own): no host and no extra group may take these names.
ROLE_GROUPS: tuple[str, ...] = tuple(
    group for d in registry.DISTRIBUTIONS.values() for group in (d.server_group, d.agent_group)
)
RESERVED_GROUPS: tuple[str, ...] = ("all", "ungrouped", "edgefleet", *DISTRIBUTIONS, "servers", "agents", *ROLE_GROUPS)
RESERVED_PREFIXES: tuple[str, ...] = ("cluster_", "region_", "model_", "channel_")
RESERVED_TEXT = ", ".join((*RESERVED_GROUPS, *(p + "*" for p in RESERVED_PREFIXES)))


def is_reserved(group: str) -> bool:
    return group in RESERVED_GROUPS or group.startswith(RESERVED_PREFIXES)


# Credentials in URLs and connection strings. A user name before '@' is a login only where the
# scheme authenticates otherwise (SSH keys, a database's own password file); over HTTP(S) and
# elsewhere a lone user name is how tokens travel (https://<token>@host/). A key=value pair
# anywhere (query string, DSN keyword) whose key names a secret is refused too.
_LOGIN_SCHEMES = frozenset(("ssh", "git+ssh", "ssh+git", "postgres", "postgresql", "mysql"))
_SCP_LIKE_RE = re.compile(r"[A-Za-z0-9._-]+@[^/:@]+:.*", re.DOTALL)  # git@host:org/repo.git
_KEY_VALUE_RE = re.compile(r"([A-Za-z0-9_.-]+)=([^&;#\s]*)")
_WORD_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_SECRET_WORDS = frozenset(
    (
        "token",
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "credential",
        "credentials",
        "signature",
        "sig",
        "key",
        "apikey",
        "auth",
        "authorization",
        "session",
        "jwt",
        "bearer",
    )
)
_SECRET_PARTS = ("token", "passw", "secret", "apikey", "credential")


def is_secret_key(key: str) -> bool:
    """A parameter name that holds a secret: access_token, private_token, X-Amz-Signature, sig, password..."""
    lowered = key.lower()
    if any(part in lowered for part in _SECRET_PARTS):
        return True
    return any(word.lower() in _SECRET_WORDS for word in _WORD_RE.findall(key))


def url_credentials(value: str) -> str:
    """What in a URL or connection string carries a credential ('' if nothing), never the secret itself."""
    found = [key for key, _value in _KEY_VALUE_RE.findall(value) if is_secret_key(key)]
    if found:
        return f"a secret parameter ({', '.join(dict.fromkeys(found))}=)"
    if "@" not in value:
        return ""
    try:
        parts = urlsplit(value)
        netloc, scheme = parts.netloc, parts.scheme.lower()
    except ValueError:  # not a URL urlsplit can take apart: any '@' after '://' may hide a user
        netloc, scheme = (value.split("://", 1)[1].split("/", 1)[0], "") if "://" in value else ("", "")
    if "@" in netloc:
        userinfo = netloc.rpartition("@")[0]
        if ":" in userinfo:
            return "a user name and password before '@'"
        if scheme not in _LOGIN_SCHEMES:
            return (
                f"a user name or token before '@' (in a {scheme or 'schemeless'} URL that is a credential; "
                "only SSH and database URLs may name a user)"
            )
    elif "://" not in value and not _SCP_LIKE_RE.fullmatch(value) and ":" in value.partition("@")[0]:
        return "a user name and password before '@'"
    return ""


def redact(value: str) -> str:
    """The URL with whatever may be a credential replaced by '***', for messages."""
    value = re.sub(r"(://)[^/@]*@", r"\1***@", value)
    return _KEY_VALUE_RE.sub(lambda m: f"{m.group(1)}=***" if is_secret_key(m.group(1)) else m.group(0), value)


def _branch_ok(value: str) -> bool:
    """A Git branch name (git check-ref-format): nothing a command line could take for an option or a range."""
    return (
        bool(value)
        and value.isascii()
        and value.isprintable()
        and not value.startswith(("-", "/", "."))
        and not value.endswith(("/", ".", ".lock"))
        and not any(c in value for c in " ~^:?*[\\")
        and ".." not in value
        and "@{" not in value
        and "//" not in value
        and "/." not in value
        and value != "@"
    )


_JSON_ALLOWED = "JSON data: strings, numbers, true/false, null, lists and mappings with string keys"


def json_problem(value: object) -> tuple[str, str] | None:
    """(key path suffix, what is wrong) for the first value `ansible-inventory --list` and the cache could not
    carry as it is, or None. Dates, binary, sets and pairs from YAML tags, non-string keys, NaN and infinities,
    integers wider than 64 bits and strings that are not valid Unicode are refused."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return (
                    where,
                    f"found a string holding U+{ord(item[exc.start]):04X}, a lone surrogate (not Unicode text)",
                )
        elif item is None or isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not -(2**63) <= item < 2**64:
                return where, f"found {describe(item)}, allowed: integers of at most 64 bits (quote a longer number)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where, f"found {item!r} (float), allowed: a finite number (quote it for a string)"
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"{where}.{text_of(key)}", f"found the key {describe(key)}, allowed: string keys (quote it)"
                stack.append((child, f"{where}.{key}"))
        else:
            return where, f"found {describe(item)}, allowed: {_JSON_ALLOWED}"
    return None


DQLITE_MESSAGE = (
    "found 'dqlite', which no supported distribution offers: K3s's experimental dqlite HA was replaced by "
    "embedded etcd in v1.19.1 with no upgrade path, and K0s never had it. "
    "Use 'sqlite' for a single server, or 'etcd' for HA (an odd number of servers, 3 or more)"
)

Plan = dict[str, t.Any]


def _check_name(ctx: Ctx, key: str, value: object, what: str) -> str | None:
    if is_dns1123_label(value):
        return t.cast(str, value)
    ctx.bad_value(
        key, value, f"a DNS-1123 label for the {what}: 1-63 of a-z, 0-9 and '-', starting and ending alphanumeric"
    )
    return None


def _check_node_name(ctx: Ctx, key: str, value: object) -> str | None:
    if (
        isinstance(value, str)
        and len(value) <= 253
        and _SUBDOMAIN_RE.fullmatch(value)
        and all(len(part) <= 63 for part in value.split("."))
    ):
        if not is_reserved(value):
            return value
        ctx.bad_value(key, value, f"a node name that is not a group name; reserved: {RESERVED_TEXT}")
        return None
    ctx.bad_value(key, value, "a DNS-1123 subdomain for the node name: a-z, 0-9, '-' and '.', at most 253 characters")
    return None


def _check_address(ctx: Ctx, key: str, value: object) -> str | None:
    if isinstance(value, str) and value:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            if len(value) <= 253 and _SUBDOMAIN_RE.fullmatch(value) and not _NUMERIC_RE.fullmatch(value):
                return value
    ctx.bad_value(key, value, "an IPv4/IPv6 address or a DNS-1123 host name")
    return None


def _check_choice(ctx: Ctx, key: str, value: object, allowed: tuple[str, ...]) -> str | None:
    if isinstance(value, str) and value in allowed:
        return value
    hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
    ctx.bad_value(key, value, ", ".join(allowed), hint)
    return None


def _check_labels(ctx: Ctx, key: str, value: object) -> dict[str, str] | None:
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.bad_value(key, value, "a mapping of label name to string value")
        return None
    ok = True
    for lkey, lval in value.items():
        if not is_label_name(lkey):
            ctx.bad_value(
                f"{key}.{text_of(lkey)}",
                lkey,
                "a Kubernetes label name (optional 'prefix/' then 1-63 of A-Z a-z 0-9 - _ .)",
            )
            ok = False
        elif not is_label_value(lval):
            ctx.bad_value(
                f"{key}.{lkey}", lval, "a string Kubernetes label value (0-63 of A-Z a-z 0-9 - _ .); quote numbers"
            )
            ok = False
    return t.cast(dict[str, str], value) if ok else None


def _check_vars(ctx: Ctx, key: str, value: object) -> dict[str, t.Any] | None:
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.bad_value(key, value, "a mapping of variable name to value")
        return None
    ok = True
    for vkey, vval in value.items():
        if not isinstance(vkey, str) or not _VAR_RE.fullmatch(vkey):
            ctx.bad_value(f"{key}.{text_of(vkey)}", vkey, "a valid Ansible variable name (letters, digits, '_')")
            ok = False
        elif vkey in PUBLISHED_VARS:
            ctx.error(
                f"{key}.{vkey}", "is published by the fleet plugin and cannot be set through vars:; set the fleet key"
            )
            ok = False
        else:
            problem = json_problem(vval)
            if problem is not None:
                ctx.error(f"{key}.{vkey}{problem[0]}", problem[1])
                ok = False
    return t.cast(dict[str, t.Any], value) if ok else None


def _check_text(ctx: Ctx, key: str, value: object, what: str, instead: str) -> str | None:
    """A free-form string (URL, endpoint): printable, not an option (leading '-'), no credentials."""
    if not isinstance(value, str) or not value:
        ctx.bad_value(key, value, f"a non-empty string: {what}")
        return None
    credentials = url_credentials(value)
    if credentials:
        ctx.error(
            key,
            f"found {redact(value)!r}, which holds {credentials}; allowed: {what} without credentials ({instead})",
        )
        return None
    if not value.isprintable() or value.startswith("-"):
        ctx.bad_value(key, value, f"{what}: printable characters, not starting with '-'")
        return None
    return value


def _check_settings(ctx: Ctx, data: dict[str, t.Any]) -> tuple[dict[str, t.Any], set[str]]:
    """Validate the setting keys present in `data` (defaults or a site).

    Returns the valid settings and the keys given with an invalid value (``gitops.repo`` for a
    key inside gitops): a site must not be built on them, nor checked against them.
    """
    out: dict[str, t.Any] = {}
    bad: set[str] = set()

    def keep(key: str, value: t.Any) -> None:
        if value is None:
            bad.add(key)
        else:
            out[key] = value

    for key in ("region", "model", "channel"):
        if key in data:
            keep(key, _check_name(ctx, key, data[key], key))
    if "distribution" in data:
        keep("distribution", _check_choice(ctx, "distribution", data["distribution"], DISTRIBUTIONS))
    if "version" in data:
        value = data["version"]
        if isinstance(value, str) and value:
            out["version"] = value
        else:
            ctx.bad_value("version", value, "a version string such as 'v1.31.4+k3s1' (quote it)")
            bad.add("version")
    if "datastore" in data:
        raw = data["datastore"]
        if isinstance(raw, str) and raw.lower() == "dqlite":
            ctx.error("datastore", DQLITE_MESSAGE)
            bad.add("datastore")
        elif raw == "kine":
            ctx.bad_value("datastore", raw, ", ".join(DATASTORES), " (K0s's kine over SQLite is written 'sqlite')")
            bad.add("datastore")
        else:
            keep("datastore", _check_choice(ctx, "datastore", raw, DATASTORES))
    if "datastore_endpoint" in data:
        keep(
            "datastore_endpoint",
            _check_text(
                ctx,
                "datastore_endpoint",
                data["datastore_endpoint"],
                "an endpoint reference",
                "the datastore's credentials go in ansible-vault",
            ),
        )
    if "arch" in data:
        keep("arch", _check_choice(ctx, "arch", data["arch"], ARCHES))
    if "gitops" in data:
        gitops = data["gitops"]
        if not isinstance(gitops, dict):
            ctx.bad_value("gitops", gitops, "a mapping with keys " + ", ".join(GITOPS_KEYS))
            bad.add("gitops")
        else:
            gctx = ctx.sub("gitops.")
            gctx.check_keys(gitops, GITOPS_KEYS, "gitops")
            good: dict[str, t.Any] = {}
            if "engine" in gitops:
                value = _check_choice(gctx, "engine", gitops["engine"], ENGINES)
                if value is None:
                    bad.add("gitops.engine")
                else:
                    good["engine"] = value
            if "repo" in gitops:
                value = _check_text(
                    gctx, "repo", gitops["repo"], "a Git URL", "use an SSH deploy key, or a token from ansible-vault"
                )
                if value is None:
                    bad.add("gitops.repo")
                else:
                    good["repo"] = value
            if "branch" in gitops:
                value = gitops["branch"]
                if isinstance(value, str) and _branch_ok(value):
                    good["branch"] = value
                else:
                    gctx.bad_value(
                        "branch",
                        value,
                        "a Git branch name (no spaces, control characters, '..', ~^:?*[\\, "
                        "and not starting with '-', '/' or '.')",
                    )
                    bad.add("gitops.branch")
            if "network_policies" in gitops:
                value = gitops["network_policies"]
                if isinstance(value, bool):
                    good["network_policies"] = value
                else:
                    gctx.bad_value(
                        "network_policies",
                        value,
                        "true or false",
                        " (false: no NetworkPolicies in the fleet repo for the site; for a CNI that enforces none,"
                        " or policies of your own)",
                    )
                    bad.add("gitops.network_policies")
            out["gitops"] = good
    if "labels" in data:
        keep("labels", _check_labels(ctx, "labels", data["labels"]))
    if "vars" in data:
        keep("vars", _check_vars(ctx, "vars", data["vars"]))
    if "registries" in data:
        keep("registries", _check_registries(ctx, data["registries"]))
    if "wasm" in data:
        names, problems = _wasm.check_runtimes(data["wasm"])
        for index, message in problems:
            ctx.error(f"wasm{index}", message)
        keep("wasm", None if problems else names)
    return out, bad


def _check_registries(ctx: Ctx, raw: object) -> dict[str, t.Any] | None:
    """Mirrors and TLS settings, checked by the node side's own rules: every bad entry is reported."""
    _spec, found = _registries.settings_problems(raw)
    for key, message in found:
        ctx.error(f"registries.{key}" if key else "registries", message)
    if found:
        return None
    return dict(raw) if isinstance(raw, dict) else {}


def _check_channels(ctx: Ctx, raw: object) -> dict[str, dict[str, str]] | None:
    """``channels: {<channel>: {<distribution>: <version>}}``: every problem is reported; None if any."""
    shape = "a mapping of channel name to {distribution: version}, e.g. {stable: {k3s: 'v1.31.4+k3s1'}}"
    if not isinstance(raw, dict) or not raw:
        ctx.bad_value("channels", raw, shape)
        return None
    out: dict[str, dict[str, str]] = {}
    ok = True
    for channel, versions in raw.items():
        if _check_name(ctx, f"channels.{text_of(channel)}", channel, "channel") is None:
            ok = False
            continue
        key = f"channels.{channel}"
        if not isinstance(versions, dict) or not versions:
            ctx.bad_value(key, versions, "a mapping of distribution to version, e.g. {k3s: 'v1.31.4+k3s1'}")
            ok = False
            continue
        for distribution, version in versions.items():
            dkey = f"{key}.{text_of(distribution)}"
            if _check_choice(ctx, dkey, distribution, DISTRIBUTIONS) is None:
                ok = False
            elif not (isinstance(version, str) and _version_ok(distribution, version)):
                example = registry.get(distribution).version_example
                ctx.bad_value(dkey, version, f"a {distribution} version such as {example!r} (quote it)")
                ok = False
            else:
                out.setdefault(channel, {})[distribution] = version
    return out if ok else None


def _check_models(ctx: Ctx, raw: object) -> dict[str, dict[str, t.Any]] | None:
    """``models: {<model>: {wasm: [<runtime>, ...]}}``: every problem is reported; None if any."""
    shape = "a mapping of hardware model name to its settings, e.g. {rpi5: {wasm: [spin]}}"
    if not isinstance(raw, dict) or not raw:
        ctx.bad_value("models", raw, shape)
        return None
    out: dict[str, dict[str, t.Any]] = {}
    ok = True
    for model, entry in raw.items():
        if _check_name(ctx, f"models.{text_of(model)}", model, "model") is None:
            ok = False
            continue
        mctx = ctx.sub(f"models.{model}.")
        if not isinstance(entry, dict) or not entry:
            ctx.bad_value(f"models.{model}", entry, "a mapping with keys " + ", ".join(MODEL_KEYS))
            ok = False
            continue
        if any(key not in MODEL_KEYS for key in entry):
            mctx.check_keys(entry, MODEL_KEYS, f"model {model!r}")
            ok = False
        if "wasm" in entry:
            names, problems = _wasm.check_runtimes(entry["wasm"])
            for index, message in problems:
                mctx.error(f"wasm{index}", message)
            ok = ok and not problems
            out.setdefault(model, {})["wasm"] = names
    return out if ok else None


class _Registry:
    """Everything gathered from the documents before per-site validation."""

    def __init__(self) -> None:
        self.defaults: dict[str, t.Any] = {}
        # channels: {channel: {distribution: version}}; None when given but invalid (reported once).
        self.channels: dict[str, dict[str, str]] | None = {}
        # models: {model: {wasm: [runtime, ...]}}; None when given but invalid (reported once).
        self.models: dict[str, dict[str, t.Any]] | None = {}
        self.defaults_file: str | None = None
        self.defaults_given: frozenset[str] = frozenset()
        self.defaults_bad: frozenset[str] = frozenset()  # given in defaults, but invalid
        self.overlays: OverlayConfig = DEFAULT_CONFIG
        self.overlays_file: str | None = None
        self.sites: list[tuple[str, str, t.Any]] = []  # (file, key prefix, raw site)


def _collect(documents: t.Iterable[tuple[str, t.Any]], problems: Problems) -> _Registry:
    reg = _Registry()
    for file, data in documents:
        ctx = Ctx(problems, file)
        if data is None:
            continue
        if isinstance(data, list):
            reg.sites.extend((file, f"sites[{i}].", site) for i, site in enumerate(data))
            continue
        if not isinstance(data, dict):
            ctx.bad_value(
                "(document)", data, "a registry mapping (defaults, overlays, sites), a site or a list of sites"
            )
            continue
        if "name" in data or "nodes" in data:
            reg.sites.append((file, "", data))
            continue
        ctx.check_keys(data, REGISTRY_KEYS, "a registry document")
        if "defaults" in data:
            if reg.defaults_file is not None:
                ctx.error("defaults", f"fleet-wide defaults are already set in {reg.defaults_file}; give them once")
            else:
                reg.defaults_file = file
                raw = data["defaults"]
                if isinstance(raw, dict):
                    given = {text_of(k) for k in raw}
                    if isinstance(raw.get("gitops"), dict) and "repo" in raw["gitops"]:
                        given.add("gitops.repo")
                    reg.defaults_given = frozenset(given)
                    dctx = ctx.sub("defaults.")
                    dctx.check_keys(raw, DEFAULTS_KEYS, "defaults")
                    reg.defaults, bad = _check_settings(dctx, raw)
                    if "channels" in raw:
                        reg.channels = _check_channels(dctx, raw["channels"])
                    if "models" in raw:
                        reg.models = _check_models(dctx, raw["models"])
                    reg.defaults_bad = frozenset(bad)
                elif raw is not None:
                    ctx.bad_value("defaults", raw, "a mapping with keys " + ", ".join(DEFAULTS_KEYS))
        if "overlays" in data:
            if reg.overlays_file is not None:
                ctx.error("overlays", f"overlay rules are already set in {reg.overlays_file}; give them once")
            else:
                reg.overlays_file = file
                reg.overlays = parse_config(data["overlays"], problems, file)
        if "sites" in data:
            raw_sites = data["sites"]
            if isinstance(raw_sites, list):
                reg.sites.extend((file, f"sites[{i}].", site) for i, site in enumerate(raw_sites))
            elif raw_sites is not None:
                ctx.bad_value("sites", raw_sites, "a list of sites")
    return reg


def build_plan(documents: t.Iterable[tuple[str, t.Any]], allow_empty: bool = False) -> tuple[Plan, list[Problem]]:
    """Validate the registry and return (plan, warnings), or raise FleetError with every error.

    The plan is JSON-safe: ``{"groups": [...], "sites": [{"groups", "vars", "nodes": [{"name", "groups", "vars"}]}]}``.
    Host vars of a node are the site's ``vars`` updated with the node's ``vars``; values may be shared.
    The inventory plugin publishes the site's ``vars`` on the site's cluster group (those in ``fleet_wide_keys``
    on the edgefleet group) and the node's ``vars`` on the host.
    A registry without sites is an error unless ``allow_empty``.
    """
    problems = Problems()
    reg = _collect(documents, problems)
    seen = _Seen()
    plan_sites: list[dict[str, t.Any]] = []
    all_groups: dict[str, None] = dict.fromkeys(["edgefleet", "servers", "agents", *DISTRIBUTIONS, *ROLE_GROUPS])
    extra_groups: dict[str, tuple[str, str | None, str]] = {}  # group -> (file, site, key) of its first site
    for file, prefix, raw in reg.sites:
        ctx = Ctx(problems, file, prefix=prefix)
        site = _build_site(ctx, raw, reg, seen)
        if isinstance(raw, dict) and isinstance(raw.get("groups"), list):
            for group in raw["groups"]:
                if is_dns1123_label(group):
                    extra_groups.setdefault(group_name(group), (file, ctx.site, ctx.key("groups")))
        if site is not None:
            plan_sites.append(site)
            all_groups.update(dict.fromkeys(site["groups"]))
    # A host and a group of the same name would be one name for two things in every pattern.
    for group, (file, site_name, key) in extra_groups.items():
        if group in seen.nodes:
            node_file, node_site, node_key = seen.nodes[group]
            problems.error(
                node_file,
                node_site,
                group,
                node_key,
                f"found {group!r}, which is also a group: site {site_name!r} puts its nodes in group {group!r} "
                f"({file}, {key}); host and group names must differ",
            )
    if not reg.sites and not allow_empty:
        problems.error(
            reg.defaults_file or "",
            None,
            None,
            "sites",
            "the fleet has no sites; give at least one (or allow_empty: true for a registry still being filled)",
        )
    problems.raise_if_errors()
    return {"groups": list(all_groups), "sites": plan_sites}, problems.warnings


def _same(a: object, b: object) -> bool:
    """Equal and of the same types all the way down (``1 == True`` and ``1 == 1.0`` are not the same value)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        other = t.cast(dict[t.Any, t.Any], b)
        return a.keys() == other.keys() and all(_same(v, other[k]) for k, v in a.items())
    if isinstance(a, list):
        items = t.cast(list[t.Any], b)
        return len(a) == len(items) and all(_same(x, y) for x, y in zip(a, items, strict=True))
    return a == b


def fleet_wide_keys(plan: Plan) -> frozenset[str]:
    """The site vars every site of the plan holds with the same value: published once, on the edgefleet group.

    The facts that name or describe one cluster (CLUSTER_VARS) stay on its cluster group even when every
    site has the same value; so do all other site vars, node vars go on the host. No key is on both the
    edgefleet group and a cluster group, so the order Ansible merges those sibling groups in never matters.
    """
    sites = plan["sites"]
    if not sites:
        return frozenset()
    first = sites[0]["vars"]
    keys = set(first) - CLUSTER_VARS
    for site in sites[1:]:  # a cheap == first; it drops almost every key that is not fleet-wide
        site_vars = site["vars"]
        keys = {k for k in keys if k in site_vars and site_vars[k] == first[k]}
        if not keys:
            return frozenset()
    return frozenset(k for k in keys if all(_same(site["vars"][k], first[k]) for site in sites))


class _Seen:
    """Names and addresses taken so far, across the whole registry: (file, site, key path) of the first."""

    def __init__(self) -> None:
        self.sites: dict[str, str] = {}
        self.nodes: dict[str, tuple[str, str | None, str]] = {}
        self.addresses: dict[str, str] = {}


def _given(settings: dict[str, t.Any], key: str) -> bool:
    """Whether `settings` holds a valid value for `key` (``gitops.repo``: a key inside gitops)."""
    head, _dot, sub = key.partition(".")
    value = settings.get(head)
    return value is not None if not sub else isinstance(value, dict) and sub in value


def _build_site(ctx: Ctx, raw: t.Any, reg: _Registry, seen: _Seen) -> dict[str, t.Any] | None:
    if not isinstance(raw, dict):
        ctx.bad_value("", raw, "a site mapping with keys " + ", ".join(SITE_KEYS))
        return None
    file = ctx.file
    errors_before = len(ctx.problems.errors)
    raw_name = raw.get("name")
    name = _check_name(ctx, "name", raw_name, "site (cluster) name")
    if name is not None:
        ctx.site = name
        if name in seen.sites:
            ctx.error("name", f"duplicate site {name!r}; it is also defined in {seen.sites[name]}")
        else:
            seen.sites[name] = file
    elif isinstance(raw_name, str):
        ctx.site = raw_name
    ctx.check_keys(raw, SITE_KEYS, "a site")
    own, bad = _check_settings(ctx, raw)
    # An invalid default is reported once, where it is given; a site that sets the key itself is unaffected,
    # one that inherits it is not built, and nothing is checked against the invalid value.
    bad |= {key for key in reg.defaults_bad if not _given(own, key)}
    defaults = reg.defaults
    settings = {**defaults, **own}
    distribution = None if "distribution" in bad else settings.get("distribution", DISTRIBUTIONS[0])
    # The version: the site's own, else its channel's for its distribution, else the fleet default.
    channel_version = None
    channels = reg.channels
    if "version" not in raw and channels is None:
        bad.add("version")  # the channels are invalid (reported once, in defaults); nothing is built on them
    elif "version" not in raw and channels and distribution is not None and isinstance(settings.get("channel"), str):
        channel_version = channels.get(settings["channel"], {}).get(distribution)
    if channel_version is not None:
        settings["version"] = channel_version
        bad.discard("version")
    for key in ("region", "model", "channel", "version"):
        if key == "version" and (channel_version or channels is None):
            continue  # from the channel; or the channels are invalid, reported once in defaults
        if key not in raw and key not in reg.defaults_given:
            where = (
                "the site, in the fleet defaults or in defaults.channels"
                if key == "version"
                else "the site or in the fleet defaults"
            )
            ctx.error(key, f"missing; set it on {where}")
            bad.add(key)
    datastore = None if "datastore" in bad else settings.get("datastore", "sqlite")
    version = None if "version" in bad else settings.get("version")
    if isinstance(version, str) and distribution is not None and not _version_ok(distribution, version):
        example = registry.get(distribution).version_example
        ctx.bad_value("version", version, f"a {distribution} version such as {example!r}")
    endpoint = settings.get("datastore_endpoint")
    if datastore == "external" and not endpoint and "datastore_endpoint" not in raw and "datastore_endpoint" not in bad:
        ctx.error("datastore_endpoint", "missing; datastore 'external' needs an endpoint reference (no password)")
    gitops = {**defaults.get("gitops", {}), **own.get("gitops", {})}
    engine = None if bad & {"gitops", "gitops.engine"} else gitops.get("engine", "flux")
    raw_gitops = raw.get("gitops")
    repo_given = "gitops.repo" in reg.defaults_given or (isinstance(raw_gitops, dict) and "repo" in raw_gitops)
    if engine is not None and engine != "none" and not repo_given:
        ctx.error("gitops.repo", f"missing; the {engine} engine needs the fleet Git repo (or set engine: none)")
    registries = settings.get("registries", {})
    # The WASM runtimes: the site's own, else its model's (defaults.models), else the fleet default.
    model = settings.get("model")
    model_settings = (reg.models or {}).get(model, {}) if isinstance(model, str) and "wasm" not in own else {}
    runtimes = model_settings.get("wasm", settings.get("wasm", []))
    if distribution is not None and not registry.get(distribution).registry_rewrites:
        for mirror, entry in (registries.get("mirrors") or {}).items():
            if isinstance(entry, dict) and "rewrites" in entry:
                ctx.error(
                    f"registries.mirrors.{mirror}.rewrites",
                    f"{registry.get(distribution).title}'s containerd (hosts.toml) has no image-name rewrites; "
                    "mirror the images under their upstream names instead",
                )
    site_arch = settings.get("arch", "amd64")
    base_labels = defaults.get("labels", {})
    base_vars = defaults.get("vars", {})
    site_labels = {**base_labels, **own["labels"]} if own.get("labels") else base_labels
    site_vars = {**base_vars, **own["vars"]} if own.get("vars") else base_vars
    extra_groups: list[str] = []
    if "groups" in raw:
        raw_groups = raw["groups"]
        if not isinstance(raw_groups, list):
            ctx.bad_value("groups", raw_groups, "a list of DNS-1123 labels (extra groups for the site's nodes)")
        for index, group in enumerate(raw_groups if isinstance(raw_groups, list) else []):
            if not is_dns1123_label(group):
                ctx.bad_value(
                    f"groups[{index}]", group, "a DNS-1123 label (an extra group for the site's nodes; '-' becomes '_')"
                )
            elif is_reserved(group_name(group)):
                ctx.error(
                    f"groups[{index}]",
                    f"found {group!r} (group {group_name(group)!r}), a group the fleet plugin publishes itself; "
                    f"reserved: {RESERVED_TEXT}",
                )
            else:
                extra_groups.append(group_name(group))

    raw_nodes = raw.get("nodes")
    nodes: list[dict[str, t.Any]] = []
    if not isinstance(raw_nodes, list) or not raw_nodes:
        ctx.bad_value("nodes", raw_nodes, "a non-empty list of nodes (name, address, role, arch, labels, vars)")
        raw_nodes = []
    servers: list[str] = []
    agents: list[str] = []
    for index, raw_node in enumerate(raw_nodes):
        node = _build_node(ctx.sub(f"nodes[{index}]."), raw_node, site_arch, seen)
        if node is not None:
            nodes.append(node)
            (servers if node["role"] == "server" else agents).append(node["name"])

    if raw_nodes and not servers and len(nodes) == len(raw_nodes):
        ctx.error("nodes", "no server: every cluster needs at least one node with role 'server'")
    if len(servers) > 1 and datastore == "sqlite" and distribution in DISTRIBUTIONS:
        ctx.error("datastore", registry.get(distribution).sqlite_servers_problem(servers))
    if datastore == "etcd" and servers and len(servers) % 2 == 0:
        ctx.warning(
            "datastore",
            f"etcd with an even number of servers ({len(servers)}) tolerates no more failures than "
            f"{len(servers) - 1}; use an odd number",
        )

    if len(ctx.problems.errors) != errors_before or name is None or bad or distribution is None or datastore is None:
        return None

    region, model, channel = settings["region"], settings["model"], settings["channel"]
    groups = derived_groups(name, region, model, channel, distribution)
    facts = ClusterFacts(name, region, model, channel, distribution, site_labels, frozenset(groups + extra_groups))
    resolution = resolve(reg.overlays, facts)
    for conflict in resolution.conflicts:
        ctx.error("overlays", conflict)
    if resolution.conflicts:
        return None
    # The identity labels every node of the cluster carries (edgefleet.io/site, region, model,
    # channel, overlays), over the fleet's own labels: the distribution roles set them as node
    # labels, so workloads and ApplicationSets can select on them with no API call at all.
    identity = _gitops.node_labels(
        _gitops.ClusterFacts(
            cluster=name,
            path=resolution.gitops_path,
            overlays=tuple(resolution.overlays),
            site=name,
            region=region,
            model=model,
            channel=channel,
        )
    )
    site_vars_out: dict[str, t.Any] = dict(site_vars)
    site_vars_out.update(
        {
            "edgefleet_cluster": name,
            "edgefleet_site": name,
            "edgefleet_region": region,
            "edgefleet_model": model,
            "edgefleet_channel": channel,
            "edgefleet_labels": site_labels,
            "edgefleet_site_labels": site_labels,
            "edgefleet_distribution": distribution,
            "edgefleet_version": version,
            "edgefleet_datastore": datastore,
            "edgefleet_cluster_servers": servers,
            "edgefleet_cluster_agents": agents,
            "edgefleet_cluster_init_server": servers[0],
            "edgefleet_gitops_engine": engine,
            "edgefleet_gitops_repo": gitops.get("repo", ""),
            "edgefleet_gitops_branch": gitops.get("branch", "main"),
            "edgefleet_overlays": resolution.overlays,
            "edgefleet_gitops_path": resolution.gitops_path,
            "edgefleet_kustomization": resolution.kustomization,
            "edgefleet_node_labels": {**site_labels, **identity},
        }
    )
    # Published only when set, so a fleet without mirrors or WASM keeps exactly its host vars.
    if registries:
        site_vars_out["edgefleet_registries"] = registries
    if runtimes:
        site_vars_out["edgefleet_wasm_runtimes"] = runtimes
    if gitops.get("network_policies") is False:
        site_vars_out["edgefleet_gitops_network_policies"] = False
    if resolution.helm is not None:
        site_vars_out["edgefleet_helm"] = resolution.helm
    if datastore == "external":
        site_vars_out["edgefleet_datastore_endpoint"] = endpoint
    strategy = registry.get(distribution)
    server_groups = ["servers", strategy.server_group]
    agent_groups = ["agents", strategy.agent_group]
    for node in nodes:
        node["groups"] = server_groups if node.pop("role") == "server" else agent_groups
        node_labels = node.pop("labels")
        # A WASM-capable node (every node of a site with runtimes, unless it says wasm: false) carries one
        # label per runtime: the RuntimeClass objects select on it.
        wasm_labels = _wasm.node_labels(runtimes) if node.pop("wasm") else {}
        if node_labels:
            node["vars"]["edgefleet_labels"] = {**site_labels, **node_labels}
        if node_labels or wasm_labels:
            node["vars"]["edgefleet_node_labels"] = {**site_labels, **node_labels, **identity, **wasm_labels}
    return {"groups": groups + extra_groups, "vars": site_vars_out, "nodes": nodes}


def _build_node(ctx: Ctx, raw: t.Any, site_arch: str, seen: _Seen) -> dict[str, t.Any] | None:
    if not isinstance(raw, dict):
        ctx.bad_value("", raw, "a node mapping with keys " + ", ".join(NODE_KEYS))
        return None
    file = ctx.file
    errors_before = len(ctx.problems.errors)
    ctx.check_keys(raw, NODE_KEYS, "a node")
    raw_name = raw.get("name")
    name = _check_node_name(ctx, "name", raw_name)
    if name is not None:
        ctx.node = name
        if name in seen.nodes:
            other_file, other_site, _key = seen.nodes[name]
            ctx.error("name", f"duplicate node {name!r}; it is also in {other_file}, site {other_site!r}")
        else:
            seen.nodes[name] = (file, ctx.site, ctx.key("name"))
    elif isinstance(raw_name, str):
        ctx.node = raw_name
    address = _check_address(ctx, "address", raw.get("address"))
    if address is not None:
        if address in seen.addresses:
            ctx.error("address", f"duplicate address {address!r}; it is also used by {seen.addresses[address]}")
        else:
            seen.addresses[address] = f"node {name!r} ({file})"
    role = raw.get("role")
    if role not in ROLES:
        hint = ""
        if role == "controller":
            hint = " (a K0s controller is role 'server')"
        elif role == "worker":
            hint = " (a K0s worker is role 'agent')"
        elif isinstance(role, str):
            hint = did_you_mean(role, ROLES)
        ctx.bad_value("role", role, ", ".join(ROLES), hint)
    arch = site_arch
    if "arch" in raw:
        arch = _check_choice(ctx, "arch", raw["arch"], ARCHES) or site_arch
    labels = _check_labels(ctx, "labels", raw.get("labels"))
    variables = _check_vars(ctx, "vars", raw.get("vars"))
    wasm_capable = raw.get("wasm", True)
    if not isinstance(wasm_capable, bool):
        ctx.bad_value("wasm", wasm_capable, "true or false (false: the node runs none of the site's WASM runtimes)")
    if len(ctx.problems.errors) != errors_before:
        return None
    node_vars: dict[str, t.Any] = dict(variables) if variables else {}
    node_vars["ansible_host"] = address
    node_vars["edgefleet_node_role"] = role
    node_vars["edgefleet_arch"] = arch
    return {"name": name, "role": role, "labels": labels, "vars": node_vars, "wasm": wasm_capable}
