# Copyright: edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publishing a fleet plan into ansible-core's inventory objects (InventoryData, Group, Host), in bulk.

The plan is validated plain data (fleet_schema.build_plan, or the inventory cache). What costs at 100k hosts
is not the plan but ansible-core's per-call bookkeeping: InventoryData.add_host and Group.add_host walk a
group's ancestors and clear host caches on every call (eight group memberships a host), and trusting a
string goes through the generic tagging code. This module does the same work once per host:

* ``direct_publish_ok``: whether the inventory is fresh for this plan (no group or host of the plan exists
  yet, no group waits for reconcile_inventory), the only case where memberships may be written directly;
* ``publish_memberships``: each host created as InventoryData.add_host creates it (inventory_file and
  inventory_dir, then its node vars), in the same groups and the same order as Group.add_host would put it;
* ``attach_to_all``: the new parentless groups linked under ``all`` without ansible-core's quadratic scan;
* ``publish_form``: the plan as it is published (and kept in the inventory cache): the fleet-wide vars once,
  each site's cluster group vars without them, its nodes as [name, vars, index of their role groups];
* ``Truster``: strings marked trusted, once per distinct string, with the tag built once.
"""

from __future__ import annotations

import typing as t

from ansible_collections.edgefleet.k8s.plugins.plugin_utils.fleet_schema import PUBLISHED_VARS, fleet_wide_keys

TEMPLATE_MARKERS = ("{{", "{%", "{#")
# Unique per host by validation: memoising their trusted copies would only grow the memo.
UNIQUE_KEYS = frozenset(("ansible_host",))
# Host names InventoryData.add_host treats specially (the implicit localhost): never published directly.
LOCALHOST_NAMES = frozenset(("127.0.0.1", "localhost", "::1"))


def publish_form(plan: dict[str, t.Any]) -> dict[str, t.Any]:
    """The plan in the form _populate publishes, which the inventory cache keeps too (a cached run skips
    working out the fleet-wide vars and splitting every site's vars again), JSON-safe::

        {"groups": [group, ...], "fleet_vars": {...},
         "sites": [[site groups, cluster group vars, [role groups, ...], [[node, node vars, role index], ...]], ...]}

    Site groups are [edgefleet, cluster_<site>, region_.., model_.., channel_.., distribution, extra...]; the
    role groups of a node are its entry in the site's list of distinct role group lists."""
    sites = plan["sites"]
    fleet_keys = fleet_wide_keys(plan)
    fleet_vars = {k: sites[0]["vars"][k] for k in fleet_keys} if sites else {}
    out: list[list[t.Any]] = []
    for site in sites:
        index: dict[tuple[str, ...], int] = {}
        roles: list[list[str]] = []
        nodes: list[list[t.Any]] = []
        for node in site["nodes"]:
            key = tuple(node["groups"])
            position = index.get(key)
            if position is None:
                position = index[key] = len(roles)
                roles.append(list(key))
            nodes.append([node["name"], node["vars"], position])
        group_vars = {k: v for k, v in site["vars"].items() if k not in fleet_keys}
        out.append([site["groups"], group_vars, roles, nodes])
    return {"groups": plan["groups"], "fleet_vars": fleet_vars, "sites": out}


def is_publish_form(data: object) -> bool:
    """A cheap check of the form's top level (a cache entry of another layout is a miss)."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("groups"), list)
        and isinstance(data.get("fleet_vars"), dict)
        and isinstance(data.get("sites"), list)
    )


def fast_trust(trust: t.Callable[[str], t.Any]) -> t.Callable[[str], t.Any]:
    """``trust`` (ansible.template.trust_as_template) for a plain str, without the generic tagging path.

    trust_as_template builds a TrustedAsTemplate tag and a tag mapping for every string; the result is an
    instance of the tagged str type holding that mapping. Here the mapping of one trusted probe is reused
    (tag mappings are never mutated: tagging again builds a new one). If the tagged type cannot be
    reproduced this way (another ansible-core), ``trust`` itself is returned."""
    probe = trust("edgefleet-probe")
    kind = type(probe)
    mapping = getattr(probe, "_ansible_tags_mapping", None)
    factory = getattr(kind, "_instance_factory", None)
    if kind is str or mapping is None or factory is None:
        return trust

    def trusted(value: str) -> t.Any:
        return factory(value, mapping)

    try:
        check = trusted("edgefleet-check")
        same = (
            check.__class__ is kind  # the very tagged type, not a subclass
            and check == "edgefleet-check"
            and getattr(check, "_ansible_tags_mapping", None) is mapping
            and trust("edgefleet-check").__class__ is kind
        )
    except Exception:  # any change of the internal API: the public function
        same = False
    return trusted if same else trust


class Truster:
    """Marks strings trusted. Fleet facts (templates=False) are trusted only when they hold no template markers,
    so they render as plain strings but can never be templated; vars: values are templates. A string without
    '{' is trusted either way, once per distinct string (memo): fleets repeat them."""

    def __init__(self, trust: t.Callable[[str], t.Any]) -> None:
        self.trust = fast_trust(trust)
        self.memo: dict[str, t.Any] = {}

    def value(self, value: t.Any, templates: bool) -> t.Any:
        kind = type(value)
        if kind is str or (kind is not dict and kind is not list and isinstance(value, str)):
            if "{" not in value:
                trusted = self.memo.get(value)
                if trusted is None:
                    trusted = self.memo[value] = self.trust(value)
                return trusted
            if templates or not any(m in value for m in TEMPLATE_MARKERS):
                return self.trust(value)
            return value
        if kind is dict or isinstance(value, dict):
            return {k: self.value(v, templates) for k, v in value.items()}
        if kind is list or isinstance(value, list):
            return [self.value(v, templates) for v in value]
        return value

    def variables(self, variables: dict[str, t.Any]) -> dict[str, t.Any]:
        """A host's or group's vars: published facts as data, the rest (site and node vars:) as templates."""
        out: dict[str, t.Any] = {}
        trust = self.trust
        for key, value in variables.items():
            if key in UNIQUE_KEYS and isinstance(value, str) and "{" not in value:
                out[key] = trust(value)
            else:
                out[key] = self.value(value, key not in PUBLISHED_VARS)
        return out


def fresh_groups(inv: t.Any) -> set[str] | None:
    """The names of the inventory's groups, if none of them waits for reconcile_inventory to be put under all
    (the usual case: this is the first source); else None."""
    groups = inv.groups
    if all(g.parent_groups or name == "all" for name, g in groups.items()):
        return set(groups)
    return None


def direct_publish_ok(inv: t.Any, form: dict[str, t.Any], before: set[str] | None) -> bool:
    """True when memberships may be written directly: no group of the plan (publish_form) and no host of it
    exists yet, and no host is one InventoryData.add_host treats specially (localhost)."""
    if before is None or any(name in before for name in form["groups"]):
        return False
    hosts = inv.hosts
    for site_groups, _group_vars, _roles, nodes in form["sites"]:
        if any(name in before for name in site_groups):
            return False
        for node in nodes:
            name = node[0]
            if name in hosts or name in LOCALHOST_NAMES:
                return False
    return True


def publish_memberships(
    inv: t.Any,
    host_type: t.Callable[[str], t.Any],
    source_vars: dict[str, t.Any],
    site: list[t.Any],
    truster: Truster,
) -> None:
    """Create the site's hosts and their memberships, as InventoryData.add_host(name, group=cluster), then
    add_child on edgefleet, the site's groups and the node's role groups would, in that order (a group once).

    Only for a fresh inventory (direct_publish_ok): every group here is new, has no parent and no child yet,
    so adding a host to it adds no ancestor, and host_names and the host caches are still unset."""
    groups = inv.groups
    hosts = inv.hosts
    names, _group_vars, roles, nodes = site
    head = [groups[names[1]], groups[names[0]], *(groups[g] for g in names[2:])]
    # Group hashes by identity: dict.fromkeys keeps the first of each group, in order
    memberships = [list(dict.fromkeys([*head, *(groups[g] for g in role)])) for role in roles]
    host_vars = truster.variables
    for name, node_vars, role in nodes:
        host = host_type(name)
        hosts[name] = host
        host.vars.update(source_vars)
        host.vars.update(host_vars(node_vars))
        member_of = memberships[role]
        host.groups.extend(member_of)
        for group in member_of:
            group.hosts.append(host)


def attach_to_all(inv: t.Any, new_groups: list[t.Any]) -> None:
    """Make each new group without parents a child of all, in order, as reconcile_inventory would.

    reconcile_inventory does it through Group.add_child_group, which first scans all's child list for
    the group: quadratic in the number of groups (20,000 cluster groups at 100k hosts). A group this
    parse created is known not to be there yet, so a childless one is linked as add_child_group links
    it (parent, child, depth, its hosts' ancestors) without the scan; one with child groups (a keyed
    group's parent_group) goes through the public add_child. A host gets all as an ancestor once."""
    all_group = inv.groups["all"]
    done: set[int] = set()
    for group in new_groups:
        if group.parent_groups:
            continue
        if group.child_groups:
            inv.add_child("all", group.name)
            continue
        all_group.child_groups.append(group)
        group.parent_groups.append(all_group)
        group.depth = max(all_group.depth + 1, group.depth)
        for host in group.hosts:  # a childless group's hosts are its own
            if id(host) not in done:
                done.add(id(host))
                host.populate_ancestors(additions=(all_group,))
    all_group.clear_hosts_cache()
