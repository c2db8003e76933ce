#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_repo
short_description: Scaffold the fleet Git repo (base, overlays, one folder per cluster) from the inventory
version_added: 0.1.0
description:
  - In a local checkout of the fleet repo, writes or updates C(base/kustomization.yaml),
    C(overlays/<name>/kustomization.yaml) (a Kustomize C(Component), C(kustomize.config.k8s.io/v1alpha1)) and
    C(clusters/<cluster>/kustomization.yaml) (C(resources) the base, C(components) the cluster's overlays in order).
  - The base and every overlay carry a marker ConfigMap (C(edgefleet-base), C(edgefleet-overlay-<name>)), so a
    rendered cluster shows which overlays apply to it.
  - With Helm layering (O(clusters[].helm)), every layer (the base and each overlay) also gets a C(values.yaml) with
    the values the fleet gives it (C({}) when none), and its kustomization generates the ConfigMap
    C(<release>-values-<layer>) from that file, which the Flux C(HelmRelease) of
    M(edgefleet.k8s.gitops_registration) reads through C(valuesFrom). Take a values file over by hand by deleting
    its header line.
  - Every generated file starts with a header comment. A file without it is hand-written and is never changed;
    it is reported in RV(hand_written).
  - Generated files that the inventory no longer implies are reported in RV(orphans) and removed only with O(prune).
  - For a cluster with an engine, a NetworkPolicy component under the base (see O(clusters[].network_policies)).
  - The module does not commit or push; review the changes with C(git diff) and commit them yourself.
author:
  - edgefleet.k8s contributors (@edgefleet)
requirements:
  - PyYAML
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  check_mode:
    details: Reports what would be written; nothing is.
  diff_mode:
    details: Shows each file's diff.
options:
  root:
    description: The fleet repo checkout.
    type: path
    required: true
  clusters:
    description: One entry per cluster, as the fleet inventory publishes them.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The cluster name (C(edgefleet_cluster)).
        type: str
        required: true
      path:
        description: The cluster's folder (C(edgefleet_gitops_path)). Defaults to C(clusters/<name>).
        type: str
      overlays:
        description: The ordered overlays, base first (C(edgefleet_overlays)). The base entry is not a component.
        type: list
        elements: str
        default: []
      kustomization:
        description:
          - The cluster kustomization the inventory resolved (C(edgefleet_kustomization)). When given, its
            C(resources) and C(components), relative to the cluster folder, decide where the base and the
            overlays live, so the scaffold matches the inventory's overlay settings.
        type: dict
      helm:
        description:
          - The cluster's Helm layering as the inventory publishes it (C(edgefleet_helm)), with C(chart),
            C(release), C(namespace) and C(layers) (base first; each C(name), C(slot), C(file), C(values)).
          - Omitted or without C(chart) means no Helm layering (no values files).
        type: dict
      nodes:
        description:
          - The cluster's nodes (C(edgefleet_cluster_servers) and C(edgefleet_cluster_agents)). When given,
            C(<cluster folder>/edgefleet-nodes.yaml) lists them, sorted; a record for review, not a resource of the
            kustomization. A node left out (decommissioned) disappears from it.
        type: list
        elements: str
        default: []
      engine:
        description:
          - The cluster's GitOps engine (C(edgefleet_gitops_engine)). With C(flux) or C(argocd) and
            O(clusters[].network_policies), the cluster gets its engine's NetworkPolicy component.
        type: str
        choices: [flux, argocd, none]
        default: none
      engine_namespace:
        description:
          - The engine's namespace when it is not the engine's default (C(flux-system), C(argocd)), that is the
            C(namespace) of C(edgefleet_gitops_flux) or C(edgefleet_gitops_argocd). Empty means the default.
        type: str
        default: ""
      network_policies:
        description:
          - Ship the NetworkPolicies (CIS 5.3.2) of the namespaces the collection creates on this cluster
            (C(edgefleet-system) and the engine's) as a Component C(<base>/networkpolicies/<engine>)
            (C(<engine>-<namespace>) for a namespace other than the default), listed first in the cluster's
            C(components). It holds a default deny of ingress and egress in each namespace, and lets the engine
            reach DNS in C(kube-system), the API server (TCP 6443 and 443), Git (TCP 22 and 443) and its own
            controllers inside its namespace.
          - The fleet option C(gitops.network_policies) (C(edgefleet_gitops_network_policies)) sets it;
            C(false) for a cluster whose CNI enforces no NetworkPolicy or that brings its own.
          - Nothing is shipped for engine C(none).
        type: bool
        default: true
  components_dir:
    description: The folder of the overlays (Kustomize Components) when a cluster has no O(clusters[].kustomization).
    type: str
    default: overlays
  base:
    description: The name (and folder) of the base.
    type: str
    default: base
  prune:
    description: Remove generated files that no cluster needs any more.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Scaffold the fleet repo for every cluster of the inventory
  edgefleet.k8s.fleet_repo:
    root: "{{ playbook_dir }}/../fleet-repo"
    clusters:
      - name: ams-01
        path: clusters/ams-01
        overlays: [base, region-eu, model-rpi4]
        engine: flux
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
written:
  description: Files written (or that would be, in check mode), relative to O(root).
  returned: always
  type: list
  elements: str
unchanged:
  description: Generated files already up to date.
  returned: always
  type: list
  elements: str
hand_written:
  description: Files the scaffold would generate but that are hand-written; left alone.
  returned: always
  type: list
  elements: str
orphans:
  description: Generated files no cluster needs any more.
  returned: always
  type: list
  elements: str
removed:
  description: Orphans removed (with O(prune)).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.fleet_repo import (
    HAS_YAML,
    ClusterEntry,
    FleetRepoError,
    apply,
    plan,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "clusters": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "path": {"type": "str"},
                    "overlays": {"type": "list", "elements": "str", "default": []},
                    "kustomization": {"type": "dict"},
                    "helm": {"type": "dict"},
                    "nodes": {"type": "list", "elements": "str", "default": []},
                    "engine": {"type": "str", "choices": ["flux", "argocd", "none"], "default": "none"},
                    "engine_namespace": {"type": "str", "default": ""},
                    "network_policies": {"type": "bool", "default": True},
                },
            },
            "base": {"type": "str", "default": "base"},
            "components_dir": {"type": "str", "default": "overlays"},
            "prune": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg="PyYAML is needed on the host running edgefleet.k8s.fleet_repo")
    entries = [
        ClusterEntry(
            name=c["name"],
            path=c.get("path") or f"clusters/{c['name']}",
            overlays=tuple(c["overlays"] or ()),
            kustomization=c.get("kustomization"),
            helm=c.get("helm"),
            nodes=tuple(c["nodes"] or ()),
            engine=c["engine"],
            engine_namespace=c["engine_namespace"] or "",
            network_policies=c["network_policies"],
        )
        for c in module.params["clusters"]
    ]
    try:
        p = module.params
        result = plan(p["root"], entries, p["base"], p["prune"], p["components_dir"])
    except FleetRepoError as exc:
        module.fail_json(msg=str(exc))
    if not module.check_mode:
        apply(module.params["root"], result)
    for rel in result.hand_written:
        module.warn(f"{rel} is hand-written (no edgefleet header); left alone")
    output = {
        "changed": result.changed,
        "written": sorted(result.write),
        "unchanged": result.unchanged,
        "hand_written": result.hand_written,
        "orphans": result.orphans,
        "removed": result.remove,
    }
    if module._diff:
        output["diff"] = result.diffs
    module.exit_json(**output)


if __name__ == "__main__":
    main()
