# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet
short_description: Edge fleet registry as inventory, with validation and overlay assignment
version_added: 0.1.0
author: edgefleet.k8s contributors (@edgefleet)
description:
  - Reads a fleet registry of edge sites (each site is one K3s or K0s cluster) from a C(*.fleet.yml) or
    C(*.fleet.yaml) configuration file. The registry is inline in that file, or in YAML/JSON files and
    directories of site files named by O(sources), relative to the configuration file.
  - Validates the whole registry before anything runs and raises one error that lists every problem, each
    naming the file, site, node and key, what was found and what is allowed.
  - Publishes groups (V(edgefleet), V(cluster_<site>), V(region_<r>), V(model_<m>), V(channel_<c>), V(k3s), V(k0s),
    V(servers), V(agents), V(k3s_servers), V(k3s_agents), V(k0s_controllers), V(k0s_workers)) and the vars of the
    edgefleet.k8s inventory contract, including the resolved Kustomize overlays and the GitOps path of each cluster.
  - Each fact is published once, at its level. Node facts are host vars, a cluster's facts (and its site's C(vars))
    are vars of its V(cluster_<site>) group, and a value every site holds alike is a var of the V(edgefleet) group.
    Every host resolves the same merged values; see C(docs/architecture.md), "Inventory contract".
  - Registry files are parsed with the libyaml safe loader (or JSON) directly, not through Ansible's data loader.
    Fleet facts are data, and a fact holding template markers is never templated. Strings under a site's or node's
    C(vars) are trusted as templates, like values in a YAML inventory.
  - Reading is bounded (O(max_file_size), O(max_depth), O(max_alias_nodes)); duplicate keys, recursive aliases and
    C(vars) values that are not JSON data are errors.
  - Enable only the inventory plugins you use, C(edgefleet.k8s.fleet) first. Each enabled plugin that accepts the
    file name also tries a fleet file this plugin refused and prints its own warning; C(ansible.builtin.auto)
    repeats this plugin's message and C(ansible.builtin.ini) may even read an empty fleet file as an empty
    inventory. See C(docs/fleet-schema.md) for the recommended C(ansible.cfg).
  - The schema is described in the collection's C(docs/fleet-schema.md), overlay rules in C(docs/overlays.md).
options:
  plugin:
    description: Marks this file as a configuration for this plugin.
    required: true
    type: str
    choices: ["edgefleet.k8s.fleet"]
  sources:
    description:
      - Registry files (C(.yml), C(.yaml), C(.json)) and directories of them, relative to this file.
      - A directory is read recursively in sorted order; hidden files and directories are skipped.
      - A source document is a registry mapping (C(defaults), C(overlays), C(sites)), one site (a mapping
        with C(name) and C(nodes)), or a list of sites.
      - "An entry is a path, or a mapping with C(path) and C(allow_empty) (a boolean, default O(allow_empty)):
        C({path: sites/, allow_empty: true}) accepts empty files in, and no file at all under, that path."
    type: list
    elements: raw
    default: []
  allow_empty:
    description:
      - Accept empty registry files (nothing, C(null), C([]) or C({})), source directories holding no file,
        and a fleet with no sites at all. Without it each is an error naming the file, so that sites cannot
        vanish unnoticed.
      - For a registry still being filled; per source, give C(allow_empty) on the O(sources) entry instead.
    type: bool
    default: false
  max_file_size:
    description:
      - The largest registry file (the fleet file and each source file) in bytes.
      - The fleet file itself is read with the value from C(ansible.cfg) or the environment, the sources with
        the value from the fleet file.
    type: int
    default: 67108864
    env:
      - name: EDGEFLEET_FLEET_MAX_FILE_SIZE
    ini:
      - section: edgefleet.k8s.fleet
        key: max_file_size
  max_depth:
    description:
      - The deepest nesting of mappings and lists in a registry file (the document itself is level 1),
        counted with aliases expanded. At most 128, which C(ansible-inventory) and templating can still handle.
    type: int
    default: 64
    env:
      - name: EDGEFLEET_FLEET_MAX_DEPTH
    ini:
      - section: edgefleet.k8s.fleet
        key: max_depth
  max_alias_nodes:
    description:
      - How many nodes YAML aliases may add to a registry file when expanded, or as many as the file holds
        itself if that is more, so expansion stays linear in the size of the file. Bounds alias "bombs".
      - A recursive alias (an anchor used inside itself) is always an error.
    type: int
    default: 100000
    env:
      - name: EDGEFLEET_FLEET_MAX_ALIAS_NODES
    ini:
      - section: edgefleet.k8s.fleet
        key: max_alias_nodes
  defaults:
    description:
      - Fleet-wide settings that every site inherits and may override
        (region, model, channel, distribution, version, datastore, datastore_endpoint, arch, gitops, labels, vars,
        registries, wasm).
      - Also C(channels), fleet-wide only, the version each release channel runs per distribution, a mapping
        of channel name to a mapping of distribution to version. A site without its own C(version) runs its
        channel's version for its distribution, else the default C(version).
      - Also C(models), fleet-wide only, what each hardware model runs, a mapping of model name to its settings
        (today C(wasm), the WASM runtimes). A site without its own C(wasm) runs its model's, else the default
        C(wasm).
      - May be given once, here or in one source document.
    type: dict
  overlays:
    description:
      - Overlay rules (base, components_dir, clusters_dir, exclusive, rules, helm). May be given once, here or in one
        source.
    type: dict
  sites:
    description: Sites given inline, in addition to those from O(sources).
    type: list
    elements: dict
extends_documentation_fragment:
  - constructed
  - inventory_cache
"""

EXAMPLES = r"""
# inventories/prod/prod.fleet.yml: registry in a directory of site files
plugin: edgefleet.k8s.fleet
sources:
  - sites/
defaults:
  distribution: k3s
  version: v1.31.4+k3s1
  datastore: sqlite
  arch: arm64
  gitops:
    engine: flux
    repo: ssh://git@git.example.internal/fleet/clusters.git
    branch: main
overlays:
  rules:
    - slot: region
      match: {region: eu-west}
      overlay: region-eu-west
    - slot: model
      match: {model: [rpi4, rpi5]}
      overlay: model-raspberry

---
# the same, inline, with a constructed group on top
plugin: edgefleet.k8s.fleet
defaults:
  version: v1.31.4+k3s1
  region: eu-west
  model: rpi4
  channel: stable
  gitops: {engine: none}
sites:
  - name: berlin-01
    nodes:
      - {name: berlin-01-a, address: 192.0.2.10, role: server}
      - {name: berlin-01-b, address: 192.0.2.11, role: agent}
groups:
  pilots: edgefleet_labels.ring | default('') == 'pilot'
"""

import os
import typing as t

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.host import Host
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.path import basedir
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_problems import (
    FleetError,
    Problems,
    did_you_mean,
    text_of,
)
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_publish import (
    Truster,
    attach_to_all,
    direct_publish_ok,
    fresh_groups,
    is_publish_form,
    publish_form,
    publish_memberships,
)
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_schema import (
    build_plan,
)
from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_sources import (
    Limits,
    Source,
    cache_entry,
    expand_sources,
    gc_paused,
    limits_from,
    plan_from_cache,
    read_fleet_file,
    read_sources,
    stamp,
)

try:
    from ansible.template import trust_as_template as _trust_str
except ImportError:  # ansible-core < 2.19: no template trust

    def _trust_str(value: t.Any) -> t.Any:
        return value


_REGISTRY_OPTIONS = ("defaults", "overlays", "sites")
_LIMIT_OPTIONS = ("max_file_size", "max_depth", "max_alias_nodes")


class FleetParserError(AnsibleParserError):  # type: ignore[misc]
    """The plugin's error. Its message names file, site, node and key (and line) itself, so it carries no
    source context: Ansible then prints the message once, not once as a summary and again under it."""

    @property
    def _formatted_source_context(self) -> str | None:
        return None


def _fail(problems: Problems) -> None:
    if problems.errors:
        raise FleetParserError(str(FleetError(problems.errors)))


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):  # type: ignore[misc]
    NAME = "edgefleet.k8s.fleet"

    def verify_file(self, path: str) -> bool:
        return bool(super().verify_file(path)) and path.endswith((".fleet.yml", ".fleet.yaml"))

    def parse(self, inventory: t.Any, loader: t.Any, path: str, cache: bool = True) -> None:
        with gc_paused():
            self._parse(inventory, loader, path, cache)

    def _parse(self, inventory: t.Any, loader: t.Any, path: str, cache: bool) -> None:
        super().parse(inventory, loader, path, cache=cache)
        problems = Problems()
        try:
            # ansible.cfg, environment, defaults: the limits for reading the fleet file itself
            self.set_options(direct={"plugin": self.NAME}, var_options=self._vars)
        except AnsibleError as exc:
            raise FleetParserError(f"{path}: {exc.message}") from None
        limits = limits_from({k: self.get_option(k) for k in _LIMIT_OPTIONS}, problems, "ansible.cfg/environment")
        _fail(problems)
        raw = read_fleet_file(path, problems, limits, getattr(self, "_redirected_names", None) or [self.NAME])
        _fail(problems)
        try:
            self._read_config_data(path)
        except AnsibleError as exc:  # an option of the wrong type: Ansible's message, with the file
            raise FleetParserError(f"{path}: {exc.message}") from None
        for key in raw:
            if key != "plugin" and key not in self._options:
                name = text_of(key)
                problems.error(
                    path,
                    None,
                    None,
                    name,
                    f"unknown key in the fleet file{did_you_mean(name, self._options)}; allowed: plugin, "
                    + ", ".join(sorted(self._options)),
                )
        limits = limits_from({k: self.get_option(k) for k in _LIMIT_OPTIONS}, problems, path)
        allow_empty = bool(self.get_option("allow_empty"))
        sources = self.get_option("sources") or []
        files = expand_sources(os.path.dirname(os.path.abspath(path)), sources, problems, path, allow_empty)
        _fail(problems)

        cache_key = self.get_cache_key(path)
        use_cache = bool(self.get_option("cache"))
        # The cache is valid while the fleet file and every source file keep their mtime (ns) and size, and
        # no source file comes or goes; a refresh (cache=False) or the cache plugin's timeout rebuilds it.
        source_stamp = stamp([os.path.abspath(path), *(f.path for f in files)])
        plan: dict[str, t.Any] | None = None
        if use_cache and cache:
            try:
                plan = plan_from_cache(self._cache[cache_key], source_stamp)
                if not is_publish_form(plan):
                    plan = None
            except KeyError:
                plan = None
        if plan is None:
            plan = self._build(path, raw, files, limits, allow_empty)
            if use_cache:
                self._cache[cache_key] = cache_entry(plan, source_stamp)
        self._populate(plan)

    def _build(
        self, path: str, raw: dict[str, t.Any], files: list[Source], limits: Limits, allow_empty: bool
    ) -> dict[str, t.Any]:
        problems = Problems()
        documents: list[tuple[str, t.Any]] = []
        inline = {k: raw[k] for k in _REGISTRY_OPTIONS if raw.get(k) is not None}
        if inline:  # the registry part of the fleet file, as read by the registry's loader (plain data)
            documents.append((path, inline))
        documents.extend(read_sources(files, problems, limits))
        try:
            _fail(problems)
            plan, warnings = build_plan(documents, allow_empty)
            form = publish_form(plan)
        except FleetError as exc:
            raise FleetParserError(str(exc)) from None
        for warning in warnings:
            self.display.warning(f"edgefleet.k8s.fleet: {warning}")
        return form

    def _populate(self, plan: dict[str, t.Any]) -> None:
        """Publish a plan in publish_form: groups, the edgefleet and cluster group vars, hosts and memberships."""
        # Bypass the per-variable inspection proxy: the plan is validated plain data, and copying and
        # tagging every value of 100k hosts is what makes generic inventories slow.
        inv: t.Any = getattr(self.inventory, "__wrapped__", self.inventory)
        # No group waits for reconcile_inventory to make it a child of all (the usual case: this is the first
        # source): the groups this parse creates can be put under all here, in the same order, and cheaply.
        before = fresh_groups(inv)
        compose = self.get_option("compose")
        cgroups = self.get_option("groups")
        keyed = self.get_option("keyed_groups")
        strict = self.get_option("strict")
        construct = bool(compose or cgroups or keyed)
        # A fresh inventory and no constructed groups: hosts and memberships are written directly, once per host.
        direct = not construct and direct_publish_ok(inv, plan, before)
        for group in plan["groups"]:
            inv.add_group(group)
        hosts = inv.hosts
        groups = inv.groups
        truster = Truster(_trust_str)
        # Each fact is published once, at its level: fleet-wide values on the edgefleet group, the rest of a
        # site's facts on its cluster group, node facts on the host. A host resolves the same merged values.
        fleet_vars = truster.variables(plan["fleet_vars"])
        groups["edgefleet"].vars.update(fleet_vars)
        source = inv.current_source
        # what InventoryData.add_host sets on a new host first
        source_vars = {"inventory_file": source, "inventory_dir": basedir(source) if source else None}
        for site in plan["sites"]:
            site_groups_names, group_vars, roles, nodes = site
            site_vars = truster.variables(group_vars)
            cluster_group = site_groups_names[1]
            for group in site_groups_names:
                inv.add_group(group)
            groups[cluster_group].vars.update(site_vars)
            if direct:
                publish_memberships(inv, Host, source_vars, site, truster)
                continue
            # Group objects are looked up once per site; membership goes through Group.add_host, which keeps
            # host and group in step. One public add_child per host keeps InventoryData's own caches right.
            site_groups = [groups[g] for g in site_groups_names[2:]]
            role_groups = [[groups[g] for g in role] for role in roles]
            for name, node_vars, role in nodes:
                inv.add_host(name, group=cluster_group)
                host = hosts[name]
                host_vars = host.vars
                host_vars.update(truster.variables(node_vars))
                inv.add_child("edgefleet", name)
                for group_obj in site_groups:
                    group_obj.add_host(host)
                for group_obj in role_groups[role]:
                    group_obj.add_host(host)
                if construct:
                    merged = {**fleet_vars, **site_vars, **host_vars}
                    self._construct(compose, cgroups, keyed, strict, merged, host_vars, name)
        if direct:
            inv._groups_dict_cache = {}  # as InventoryData.add_host leaves it
        if before is not None:
            attach_to_all(inv, [g for name, g in groups.items() if name not in before])

    def _construct(
        self, compose: t.Any, cgroups: t.Any, keyed: t.Any, strict: bool, merged: t.Any, host_vars: t.Any, name: str
    ) -> None:
        """compose, groups and keyed_groups on one host, over its merged vars (group vars under host vars);
        a failure of these templates is a clean error too."""
        try:
            self._set_composite_vars(compose, merged, name, strict=strict)
            if compose:  # what compose set is a host var now: the group templates see it
                merged.update(host_vars)
            self._add_host_to_composed_groups(cgroups, merged, name, strict=strict)
            self._add_host_to_keyed_groups(keyed, merged, name, strict=strict)
        except AnsibleError:
            raise
        except Exception as exc:
            raise FleetParserError(
                f"compose, groups or keyed_groups failed on host {name!r}: {type(exc).__name__}: {exc}"
            ) from None
