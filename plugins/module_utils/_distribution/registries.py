# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry mirrors and private registries for the node's containerd: validation and the two file formats.

Private to edgefleet.k8s: no stable API. Pure Python (no Ansible import), used on the node by the
``registries_config`` module and on the controller by the fleet schema, so a bad entry is found
before any host is touched, with the same message in both places.

The settings (``edgefleet_registries``) are distribution-neutral::

    mirrors:
      docker.io:
        endpoints: [https://mirror.site.local]
        rewrites: {"^library/(.*)": "mirrored/$1"}
    configs:
      mirror.site.local:
        tls: {ca_file: /etc/ssl/site/ca.pem}

Credentials never come with them: they come from Ansible Vault as a separate mapping
(registry host -> ``username``/``password``) that is ``no_log`` everywhere.

A strategy (:mod:`.k3s`, :mod:`.k0s`) decides which files they become; this module only knows
the two formats: K3s's ``registries.yaml`` and containerd's ``hosts.toml``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ansible_collections.edgefleet.k8s.plugins.module_utils._common.text import did_you_mean

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core and python3-yaml
    HAS_YAML = False

TOP_KEYS: tuple[str, ...] = ("mirrors", "configs")
MIRROR_KEYS: tuple[str, ...] = ("endpoints", "rewrites")
CONFIG_KEYS: tuple[str, ...] = ("tls",)
TLS_KEYS: tuple[str, ...] = ("ca_file", "cert_file", "key_file", "insecure_skip_verify")
AUTH_KEYS: tuple[str, ...] = ("username", "password")
# The registry name every other registry falls back to (K3s ``"*"``, containerd ``_default``).
WILDCARD = "*"
SCHEMES = ("https", "http")
MANAGED_MARK = "Managed by edgefleet.k8s"

_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\]"
)
_PORT = re.compile(r"[0-9]{1,5}")


def registry_name_ok(name: object) -> bool:
    """A registry as images name it: ``host`` or ``host:port`` (IPv6 in brackets), or ``*``."""
    if name == WILDCARD:
        return True
    if not isinstance(name, str) or not name:
        return False
    host, colon, port = name.rpartition(":") if not name.endswith("]") else (name, "", "")
    if not colon:
        host, port = name, ""
    if port and not (_PORT.fullmatch(port) and 0 < int(port) < 65536):
        return False
    return bool(_HOST.fullmatch(host))


def endpoint_problem(value: object) -> str | None:
    """Why ``value`` is not a mirror endpoint URL, or None."""
    if not isinstance(value, str) or not value:
        return f"found {value!r}; allowed: an https:// (or http://) URL such as 'https://mirror.site.local'"
    parts = urlsplit(value)
    if parts.scheme not in SCHEMES:
        return f"found {value!r}: the scheme must be https or http"
    if "@" in parts.netloc:
        return f"found a URL with credentials in it ({parts.scheme}://<redacted>@...); credentials go in Ansible Vault"
    if not parts.hostname or not registry_name_ok(parts.netloc):
        return f"found {value!r}: no valid host[:port] in the URL"
    if parts.query or parts.fragment:
        return f"found {value!r}: a mirror URL has no query or fragment"
    return None


def endpoint_host(url: str) -> str:
    """``host[:port]`` of an endpoint URL: the name its TLS and auth settings are given under."""
    return urlsplit(url).netloc


@dataclass(frozen=True)
class Mirror:
    endpoints: tuple[str, ...]
    rewrites: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Tls:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: v
            for k, v in (("ca_file", self.ca_file), ("cert_file", self.cert_file), ("key_file", self.key_file))
            if v
        }
        if self.insecure_skip_verify:
            out["insecure_skip_verify"] = True
        return out


@dataclass(frozen=True)
class Auth:
    username: str
    password: str = field(repr=False)


@dataclass
class RegistrySpec:
    """The validated settings: mirrors by registry, TLS and auth by registry host."""

    mirrors: dict[str, Mirror] = field(default_factory=dict)
    tls: dict[str, Tls] = field(default_factory=dict)
    auth: dict[str, Auth] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.mirrors or self.tls or self.auth)

    def hosts(self) -> list[str]:
        """Every registry named (mirrored registries, then TLS/auth-only ones), sorted, each once."""
        return sorted(set(self.mirrors) | set(self.tls) | set(self.auth))

    def plain_http_hosts(self) -> set[str]:
        """Registry hosts some mirror reaches over plain http."""
        return {
            endpoint_host(url)
            for mirror in self.mirrors.values()
            for url in mirror.endpoints
            if urlsplit(url).scheme == "http"
        }


def _is_path(value: object) -> bool:
    return isinstance(value, str) and value.startswith("/") and "\n" not in value


def check_settings(
    settings: object,
    where: str = "edgefleet_registries",
    rewrites: bool = True,
    context: str = "",
    runtime: str = "this distribution's containerd",
) -> tuple[RegistrySpec, list[str]]:
    """Validate the settings; every problem names the registry and the key (``<where>.mirrors.<registry>.<key>``).

    ``rewrites`` is False where the distribution's runtime has no image-name rewrites.
    """
    spec, found = settings_problems(settings, rewrites, runtime)
    prefix = f"{context}: " if context else ""
    return spec, [f"{prefix}{where}{'.' + key if key else ''}: {text}" for key, text in found]


def settings_problems(
    settings: object, rewrites: bool = True, runtime: str = "this distribution's containerd"
) -> tuple[RegistrySpec, list[tuple[str, str]]]:
    """:func:`check_settings`, each problem as (key below the settings, message), for the fleet schema."""
    spec = RegistrySpec()
    found: list[tuple[str, str]] = []

    def bad(key: str, text: str) -> None:
        found.append((key, text))

    if settings in (None, {}):
        return spec, found
    if not isinstance(settings, Mapping):
        bad("", f"found {type(settings).__name__}; allowed: a mapping with keys mirrors, configs")
        return spec, found
    for key in settings:
        if key not in TOP_KEYS:
            bad(str(key), f"unknown key; allowed: {', '.join(TOP_KEYS)}{did_you_mean(str(key), TOP_KEYS)}")
    mirrors = settings.get("mirrors") or {}
    if not isinstance(mirrors, Mapping):
        bad("mirrors", "must be a mapping of registry (such as docker.io) to {endpoints, rewrites}")
        mirrors = {}
    for name, raw in mirrors.items():
        key = f"mirrors.{name}"
        if not registry_name_ok(name):
            bad(key, f"found registry {name!r}; allowed: host or host:port (such as docker.io), or '*'")
            continue
        if not isinstance(raw, Mapping):
            bad(key, "must be a mapping with keys " + ", ".join(MIRROR_KEYS))
            continue
        ok = True
        for sub in raw:
            if sub not in MIRROR_KEYS:
                bad(
                    f"{key}.{sub}",
                    f"unknown key; allowed: {', '.join(MIRROR_KEYS)}{did_you_mean(str(sub), MIRROR_KEYS)}",
                )
                ok = False
        endpoints = raw.get("endpoints")
        if not isinstance(endpoints, list) or not endpoints:
            bad(f"{key}.endpoints", "must be a non-empty list of mirror URLs (such as https://mirror.site.local)")
            ok = False
            endpoints = []
        for index, url in enumerate(endpoints):
            problem = endpoint_problem(url)
            if problem:
                bad(f"{key}.endpoints[{index}]", problem)
                ok = False
        pairs: list[tuple[str, str]] = []
        raw_rewrites = raw.get("rewrites")
        if raw_rewrites is not None:
            if not rewrites:
                bad(
                    f"{key}.rewrites",
                    f"{runtime} (hosts.toml) has no image-name rewrites; "
                    "mirror the images under their upstream names instead",
                )
                ok = False
            elif not isinstance(raw_rewrites, Mapping) or not raw_rewrites:
                bad(f"{key}.rewrites", "must be a mapping of regular expression to replacement")
                ok = False
            else:
                for pattern, replacement in raw_rewrites.items():
                    if not isinstance(pattern, str) or not isinstance(replacement, str):
                        bad(f"{key}.rewrites", f"found {pattern!r}: {replacement!r}; both must be strings")
                        ok = False
                        continue
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        bad(f"{key}.rewrites", f"found {pattern!r}, not a regular expression ({exc})")
                        ok = False
                        continue
                    pairs.append((pattern, replacement))
        if ok:
            spec.mirrors[str(name)] = Mirror(tuple(str(u) for u in endpoints), tuple(pairs))
    configs = settings.get("configs") or {}
    if not isinstance(configs, Mapping):
        bad("configs", "must be a mapping of registry host to {tls}")
        configs = {}
    for name, raw in configs.items():
        key = f"configs.{name}"
        if name == WILDCARD or not registry_name_ok(name):
            bad(key, f"found registry host {name!r}; allowed: host or host:port (such as mirror.site.local)")
            continue
        if not isinstance(raw, Mapping):
            bad(key, "must be a mapping with key tls")
            continue
        for sub in raw:
            if sub == "auth":
                bad(
                    f"{key}.auth",
                    "credentials are not given here: put them in Ansible Vault "
                    "(edgefleet_registry_auth: {<registry>: {username, password}})",
                )
            elif sub not in CONFIG_KEYS:
                bad(
                    f"{key}.{sub}",
                    f"unknown key; allowed: {', '.join(CONFIG_KEYS)}{did_you_mean(str(sub), CONFIG_KEYS)}",
                )
        tls = raw.get("tls")
        if tls is None:
            continue
        if not isinstance(tls, Mapping):
            bad(f"{key}.tls", "must be a mapping with keys " + ", ".join(TLS_KEYS))
            continue
        ok = True
        for sub, value in tls.items():
            if sub not in TLS_KEYS:
                bad(
                    f"{key}.tls.{sub}", f"unknown key; allowed: {', '.join(TLS_KEYS)}{did_you_mean(str(sub), TLS_KEYS)}"
                )
                ok = False
            elif sub == "insecure_skip_verify" and not isinstance(value, bool):
                bad(f"{key}.tls.{sub}", f"found {value!r}; allowed: true or false")
                ok = False
            elif sub != "insecure_skip_verify" and not _is_path(value):
                bad(f"{key}.tls.{sub}", f"found {value!r}; allowed: an absolute path on the node")
                ok = False
        if bool(tls.get("cert_file")) != bool(tls.get("key_file")):
            bad(f"{key}.tls", "cert_file and key_file (a client certificate) go together; give both or neither")
            ok = False
        if ok:
            spec.tls[str(name)] = Tls(
                tls.get("ca_file"), tls.get("cert_file"), tls.get("key_file"), bool(tls.get("insecure_skip_verify"))
            )
    return spec, found


def check_auth(
    spec: RegistrySpec, auth: object, where: str = "edgefleet_registry_auth", context: str = ""
) -> list[str]:
    """Validate the credentials and add them to ``spec``; a value is never quoted in a problem."""
    problems: list[str] = []
    prefix = f"{context}: " if context else ""
    if auth in (None, {}):
        return problems
    if not isinstance(auth, Mapping):
        return [f"{prefix}{where}: must be a mapping of registry host to {{username, password}}"]
    plain = spec.plain_http_hosts()
    for name, raw in auth.items():
        key = f"{prefix}{where}.{name}"
        if name == WILDCARD or not registry_name_ok(name):
            problems.append(f"{key}: not a registry host; allowed: host or host:port (such as mirror.site.local)")
            continue
        if not isinstance(raw, Mapping):
            problems.append(f"{key}: must be a mapping with keys username, password")
            continue
        unknown = [str(k) for k in raw if k not in AUTH_KEYS]
        for sub in unknown:
            problems.append(f"{key}.{sub}: unknown key; allowed: {', '.join(AUTH_KEYS)}")
        missing = [k for k in AUTH_KEYS if not isinstance(raw.get(k), str) or not raw.get(k)]
        for sub in missing:
            problems.append(f"{key}.{sub}: missing or empty; give a string (from Ansible Vault)")
        if name in plain:
            problems.append(
                f"{key}: auth without TLS: a mirror reaches {name} over http://, so the password would cross the "
                "network in clear; use an https:// endpoint"
            )
            continue
        tls = spec.tls.get(str(name))
        if tls is not None and tls.insecure_skip_verify:
            problems.append(
                f"{key}: auth without TLS verification: edgefleet_registries.configs.{name}.tls.insecure_skip_verify "
                "is true, so the password could go to anyone; give the registry's CA (ca_file) instead"
            )
            continue
        if not unknown and not missing:
            spec.auth[str(name)] = Auth(str(raw["username"]), str(raw["password"]))
    return problems


def secret_values(auth: object) -> set[str]:
    """Every password in the credentials (for Ansible's no_log masking), valid or not."""
    found: set[str] = set()
    if isinstance(auth, Mapping):
        for raw in auth.values():
            if isinstance(raw, Mapping) and isinstance(raw.get("password"), str) and raw["password"]:
                found.add(raw["password"])
                found.add(basic_auth(str(raw.get("username") or ""), raw["password"]))
    return found


def basic_auth(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass(frozen=True)
class RuntimeFile:
    """One file of the runtime's configuration: its bytes, a redacted text for diffs, and whether a
    change of it needs the distribution's unit restarted (else the runtime reloads it by itself)."""

    path: str
    content: bytes = field(repr=False)
    shown: str
    restart: bool


# --------------------------------------------------------------------------- K3s registries.yaml


def k3s_registries(spec: RegistrySpec, redact: bool = False) -> dict[str, Any]:
    """The content of K3s's ``registries.yaml`` (mirrors: endpoint/rewrite; configs: tls/auth)."""
    out: dict[str, Any] = {}
    mirrors: dict[str, Any] = {}
    for name in sorted(spec.mirrors):
        mirror = spec.mirrors[name]
        entry: dict[str, Any] = {"endpoint": list(mirror.endpoints)}
        if mirror.rewrites:
            entry["rewrite"] = dict(mirror.rewrites)
        mirrors[name] = entry
    configs: dict[str, Any] = {}
    for name in sorted(set(spec.tls) | set(spec.auth)):
        entry = {}
        if name in spec.auth:
            auth = spec.auth[name]
            entry["auth"] = {"username": auth.username, "password": "<redacted>" if redact else auth.password}
        if name in spec.tls and spec.tls[name].as_dict():
            entry["tls"] = spec.tls[name].as_dict()
        configs[name] = entry
    if mirrors:
        out["mirrors"] = mirrors
    if configs:
        out["configs"] = configs
    return out


def registries_yaml(spec: RegistrySpec, header: str, redact: bool = False) -> str:
    body = yaml.safe_dump(k3s_registries(spec, redact), default_flow_style=False, sort_keys=True)
    return header + body


# --------------------------------------------------------------------------- containerd hosts.toml


def _toml(value: Any) -> str:
    """A TOML value: strings as basic strings (JSON's escapes are TOML's), booleans, arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def hosts_dir_name(registry: str) -> str:
    """The directory containerd looks in for ``registry`` (``_default`` for the wildcard)."""
    return "_default" if registry == WILDCARD else registry


def _host_table(url: str, spec: RegistrySpec, capabilities: Sequence[str], redact: bool) -> list[str]:
    lines = [f"[host.{_toml(url)}]", f"  capabilities = {_toml(list(capabilities))}"]
    host = endpoint_host(url)
    tls = spec.tls.get(host)
    if tls is not None:
        if tls.ca_file:
            lines.append(f"  ca = {_toml(tls.ca_file)}")
        if tls.cert_file and tls.key_file:
            lines.append(f"  client = [{_toml([tls.cert_file, tls.key_file])}]")
        if tls.insecure_skip_verify:
            lines.append("  skip_verify = true")
    auth = spec.auth.get(host)
    if auth is not None:
        value = "<redacted>" if redact else basic_auth(auth.username, auth.password)
        lines += [f"  [host.{_toml(url)}.header]", f"    Authorization = {_toml(['Basic ' + value])}"]
    return lines


def hosts_toml(spec: RegistrySpec, registry: str, header: str, redact: bool = False) -> str:
    """containerd's ``hosts.toml`` for one registry: its mirrors (pull, resolve) in order, else the
    registry itself with its TLS and auth settings. The registry's own endpoint stays the fallback."""
    lines = [header.rstrip("\n")]
    mirror = spec.mirrors.get(registry)
    if mirror is None:
        url = f"https://{registry}"
        lines += ["", f"server = {_toml(url)}", "", *_host_table(url, spec, ("pull", "resolve", "push"), redact)]
    else:
        for url in mirror.endpoints:
            lines += ["", *_host_table(url, spec, ("pull", "resolve"), redact)]
    return "\n".join(lines) + "\n"


def hosts_registries(spec: RegistrySpec) -> list[str]:
    """The registries that get a ``hosts.toml``: each mirrored one, and each one with settings of its own
    that no mirror's endpoint carries already."""
    mirrored_hosts = {endpoint_host(u) for m in spec.mirrors.values() for u in m.endpoints}
    own = [name for name in spec.hosts() if name not in spec.mirrors and name not in mirrored_hosts]
    return sorted(set(spec.mirrors) | set(own))


def containerd_dropin(header: str, hosts_dir: str) -> str:
    """A containerd (config version 2) drop-in that points the CRI plugin's registry at ``hosts_dir``."""
    return (
        "\n".join(
            [
                header.rstrip("\n"),
                "version = 2",
                "",
                '[plugins."io.containerd.grpc.v1.cri".registry]',
                f"  config_path = {_toml(hosts_dir)}",
            ]
        )
        + "\n"
    )
