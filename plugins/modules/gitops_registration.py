#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: gitops_registration
short_description: Register a cluster with a pull-mode GitOps agent (Flux or Argo CD)
version_added: 0.1.0
description:
  - Renders the objects that bind one cluster to its path in the fleet repo, from the cluster's
    resolved overlays and the engine settings, and delivers them.
  - "Flux: a C(GitRepository) (source.toolkit.fluxcd.io/v1) and a C(Kustomization)
    (kustomize.toolkit.fluxcd.io/v1) with intervals tuned for flaky links, plus the SSH auth Secret
    (C(identity), C(identity.pub), C(known_hosts))."
  - "Argo CD: one C(Application) (argoproj.io/v1alpha1) with automated prune and self-heal and a retry
    backoff, a repository Secret, and optionally the argocd-agent parameters when a hub is given."
  - Always an identity ConfigMap C(edgefleet-system/cluster-identity) with site, region, model, channel and overlays.
  - With O(delivery=manifests) the objects are written to the distribution's auto-apply folder
    (K3s C(/var/lib/rancher/k3s/server/manifests), K0s C(/var/lib/k0s/manifests/edgefleet-gitops)); no API call.
  - With O(delivery=api) they are applied by server-side apply (field manager C(edgefleet)) through O(kubeconfig),
    optionally waiting for the source to become Ready.
  - The module decides from O(repo_url) whether the repo is reached over SSH (C(ssh://), C(git@host:path)). Only
    then is a deploy key used (O(deploy_key), O(deploy_key_path)) and O(known_hosts) required; for any other URL the
    key options are ignored.
  - The engine's own objects come from a bundle verified by M(edgefleet.k8s.gitops_bundle_info) (O(engine_files)),
    or from a bundle folder on the host running the module (O(engine_bundle)). Without either, only the registration
    is delivered.
  - The deploy key never appears in output or diffs; a Secret's payload is shown as a digest. Keep the key with
    M(edgefleet.k8s.gitops_deploy_key).
  - "Each engine has its own settings option, O(flux) or O(argocd); only the one of O(engine) is used. Every
    suboption has its own default, so leave out what you do not change."
author:
  - edgefleet.k8s contributors (@edgefleet)
requirements:
  - PyYAML on the target
  - cryptography where a key is generated or read without O(deploy_key_public)
  - kubernetes (Python client) for O(delivery=api)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  check_mode:
    details: Reports what would change; nothing is written, generated or applied (the API is asked with dryRun=All).
  diff_mode:
    details: Shows file or object diffs with secret payloads redacted.
options:
  engine:
    description: The GitOps engine.
    type: str
    required: true
    choices: [flux, argocd]
  cluster:
    description: The cluster name (DNS-1123), as published by the fleet inventory (C(edgefleet_cluster)).
    type: str
    required: true
  repo_url:
    description: The fleet Git repo URL (C(ssh://), C(git@host:path), C(https://) or C(http://)).
    type: str
    required: true
  path:
    description:
      - The path in the fleet repo the agent follows.
      - V("") (the default) means C(clusters/<cluster>).
    type: str
    default: ""
  overlays:
    description: The ordered overlays (base first), for the identity ConfigMap and labels.
    type: list
    elements: str
    default: []
  site:
    description:
      - The site name.
      - V("") (the default) means O(cluster).
    type: str
    default: ""
  region:
    description: The site's region; V("") means none.
    type: str
    default: ""
  model:
    description: The device model; V("") means none.
    type: str
    default: ""
  channel:
    description: The release channel; V("") means none.
    type: str
    default: ""
  branch:
    description: The branch to follow.
    type: str
    default: main
  known_hosts:
    description: The Git host's SSH public keys in known_hosts format. Required for SSH URLs.
    type: str
    default: ""
  deploy_key:
    description:
      - The private deploy key (OpenSSH ed25519), for an SSH O(repo_url). Takes precedence over O(deploy_key_path).
      - V("") (the default) means the key at O(deploy_key_path).
    type: str
    default: ""
  deploy_key_public:
    description:
      - The public half of O(deploy_key), as M(edgefleet.k8s.gitops_deploy_key) returned it on the controller. With it
        the host running the module needs no C(cryptography) library (only the key's shape is checked there).
      - V("") (the default) means the public half is computed here.
    type: str
    default: ""
  deploy_key_path:
    description:
      - Path of the private deploy key on the host running the module, for an SSH O(repo_url) without O(deploy_key);
        generated (0600) when missing.
      - V("") (the default) means none.
    type: path
    default: ""
  key_comment:
    description:
      - Comment of the public key.
      - V("") (the default) means C(edgefleet-<cluster>).
    type: str
    default: ""
  distribution:
    description: Which distribution's manifests folder to use for O(delivery=manifests).
    type: str
    choices: [k3s, k0s]
    default: k3s
  delivery:
    description: V(manifests) writes files the distribution applies itself; V(api) applies through the API.
    type: str
    choices: [manifests, api]
    default: manifests
  manifests_dir:
    description:
      - Override the manifests folder.
      - V("") (the default) means the distribution's, see O(delivery).
    type: path
    default: ""
  engine_bundle:
    description:
      - A bundle folder on the host running the module, such as C(<root>/gitops/<engine>/<version>) (C(crds.yaml),
        C(<component>.yaml), C(images.txt), C(sha256sum.txt)). Every file used is checked against C(sha256sum.txt).
      - V("") (the default) means none. O(engine_files) takes precedence.
    type: path
    default: ""
  engine_components:
    description:
      - The engine components to install from O(engine_bundle).
      - "V([]) (the default) means the engine's default set: C(source-controller), C(kustomize-controller) (Flux);
        C(application-controller), C(repo-server), C(redis) (Argo CD)."
    type: list
    elements: str
    default: []
  engine_files:
    description:
      - The engine's bundle files (name to content), as M(edgefleet.k8s.gitops_bundle_info) returned them on the
        controller, so the node needs no copy of the bundle. Each is checked again against O(engine_sums).
      - V({}) (the default) means none.
    type: dict
    default: {}
  engine_sums:
    description: The sha256 of each of O(engine_files), from the verified bundle.
    type: dict
    default: {}
  engine_images:
    description: The images of the chosen components, from M(edgefleet.k8s.gitops_bundle_info).
    type: list
    elements: str
    default: []
  flux:
    description: Flux settings, used with O(engine=flux).
    type: dict
    default: {}
    suboptions:
      namespace:
        description: Namespace of the Flux objects.
        type: str
        default: flux-system
      name:
        description: Name of the GitRepository and Kustomization (the auth Secret is C(<name>-auth)).
        type: str
        default: edgefleet-fleet
      source_interval:
        description: How often the source is fetched.
        type: str
        default: 10m
      source_timeout:
        description: Timeout of one fetch.
        type: str
        default: 60s
      interval:
        description: Kustomization reconcile interval.
        type: str
        default: 10m
      retry_interval:
        description: Retry after a failed reconcile.
        type: str
        default: 2m
      timeout:
        description: Timeout of one reconcile.
        type: str
        default: 5m
      prune:
        description: Garbage-collect objects removed from Git.
        type: bool
        default: true
      wait:
        description: Wait for health of applied objects (keep it off on flaky links).
        type: bool
        default: false
      substitute:
        description: Add C(postBuild.substituteFrom) the cluster vars ConfigMap C(edgefleet-cluster-vars).
        type: bool
        default: true
  argocd:
    description: Argo CD settings, used with O(engine=argocd).
    type: dict
    default: {}
    suboptions:
      namespace:
        description: Namespace of Argo CD.
        type: str
        default: argocd
      project:
        description: AppProject of the Application.
        type: str
        default: default
      destination_namespace:
        description: Default namespace of the synced objects.
        type: str
        default: default
      prune:
        description: Automated prune.
        type: bool
        default: true
      self_heal:
        description: Automated self-heal.
        type: bool
        default: true
      retry_limit:
        description: Sync retry limit (-1 is unlimited).
        type: int
        default: -1
      backoff_duration:
        description: First retry delay.
        type: str
        default: 30s
      backoff_factor:
        description: Backoff factor.
        type: int
        default: 2
      backoff_max_duration:
        description: Longest retry delay.
        type: str
        default: 10m
      agent_hub:
        description: argocd-agent principal address; V("") (the default) means no agent.
        type: str
        default: ""
      agent_hub_port:
        description: argocd-agent principal port.
        type: int
        default: 443
      agent_mode:
        description: argocd-agent mode.
        type: str
        choices: [autonomous, managed]
        default: autonomous
  helm:
    description:
      - The Helm layering, as the fleet inventory publishes it in C(edgefleet_helm). The layers are the cluster's
        overlays, base first; each has one values file in its folder of the fleet repo, applied in that order
        (a later layer wins).
      - "Flux: a C(HelmRelease) (helm.toolkit.fluxcd.io/v2) of the chart from the fleet's GitRepository, whose
        C(valuesFrom) names one ConfigMap per layer, C(<release>-values-<layer>), in layer order. The layers'
        kustomizations generate those ConfigMaps (M(edgefleet.k8s.fleet_repo)). Needs Flux's C(helm-controller)."
      - "Argo CD: the Application gets two C(sources), the cluster path and the chart with C(helm.valueFiles),
        the layers' files relative to the chart folder, in layer order."
      - Two layers of one slot that give one value differently are refused, as the inventory refuses them.
      - V({}) (the default) or an empty O(helm.chart) means no Helm layering.
    type: dict
    default: {}
    suboptions:
      chart:
        description: The chart's folder in the fleet repo, e.g. C(charts/edge-app).
        type: str
        default: ""
      release:
        description: The release name (DNS-1123); also the prefix of the values ConfigMaps.
        type: str
        default: edgefleet
      namespace:
        description:
          - The namespace of the HelmRelease and of the values ConfigMaps (Flux).
          - With Argo CD the chart's objects go to the Application's destination namespace
            (O(argocd.destination_namespace)).
        type: str
        default: default
      layers:
        description: The layers in order, base first.
        type: list
        elements: dict
        default: []
        suboptions:
          name:
            description: The overlay (V(base) for the base).
            type: str
            required: true
          slot:
            description: The overlay's slot (V(base), V(region), V(model), V(channel), V(site)).
            type: str
            default: ""
          file:
            description: The layer's values file, relative to the fleet repo root.
            type: str
            required: true
          values:
            description: The values the fleet gives the layer; used to find conflicts inside a slot.
            type: dict
            default: {}
  kubeconfig:
    description: Kubeconfig for O(delivery=api), on the host running the module. Required with O(delivery=api).
    type: path
    default: ""
  context:
    description: Kubeconfig context; V("") (the default) means the kubeconfig's current context.
    type: str
    default: ""
  nodes:
    description: With O(delivery=api), Node names that get the cluster's C(edgefleet.io/*) labels.
    type: list
    elements: str
    default: []
  wait:
    description: With O(delivery=api), wait until the GitRepository (Flux) is Ready or the Application (Argo CD) is
      Synced and Healthy.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait).
    type: int
    default: 300
notes:
  - The Flux and Argo CD field names follow the upstream CRDs; in the lab the CRDs are minimal hand-written stand-ins.
seealso:
  - module: edgefleet.k8s.gitops_deploy_key
  - module: edgefleet.k8s.gitops_bundle_info
  - module: edgefleet.k8s.fleet_repo
"""

EXAMPLES = r"""
- name: Keep the cluster's deploy key on the controller
  edgefleet.k8s.gitops_deploy_key:
    cluster: "{{ edgefleet_cluster }}"
    repo_url: ssh://git@git.example.internal/fleet.git
    path: "~/.local/share/edgefleet/gitops-keys/{{ edgefleet_cluster }}"
  delegate_to: localhost
  register: key

- name: Register the cluster with Flux through the K3s auto-deploy folder
  edgefleet.k8s.gitops_registration:
    engine: flux
    cluster: "{{ edgefleet_cluster }}"
    path: "{{ edgefleet_gitops_path }}"
    overlays: "{{ edgefleet_overlays }}"
    region: "{{ edgefleet_region }}"
    repo_url: ssh://git@git.example.internal/fleet.git
    known_hosts: "{{ lookup('ansible.builtin.file', 'files/known_hosts') }}"
    deploy_key: "{{ lookup('ansible.builtin.file', '~/.local/share/edgefleet/gitops-keys/' ~ edgefleet_cluster) }}"
    deploy_key_public: "{{ key.public_key }}"
    distribution: k3s
    engine_bundle: /var/lib/edgefleet/gitops-bundle
    flux:
      source_interval: 30m
  no_log: true

- name: Register the cluster with Argo CD, with the chart layered by the fleet's Helm values
  edgefleet.k8s.gitops_registration:
    engine: argocd
    cluster: "{{ edgefleet_cluster }}"
    path: "{{ edgefleet_gitops_path }}"
    overlays: "{{ edgefleet_overlays }}"
    repo_url: https://git.example.internal/fleet.git
    helm: "{{ edgefleet_helm | default({}) }}"
"""

RETURN = r"""
public_key:
  description: The deploy key's public half, to add (read-only) to the Git host. Empty for a repo that is not SSH.
  returned: always
  type: str
fingerprint:
  description: A short digest of the public key.
  returned: always
  type: str
engine:
  description: The engine (O(engine)).
  returned: always
  type: str
delivery:
  description: How the objects were delivered (O(delivery)).
  returned: always
  type: str
path:
  description: The fleet repo path the agent follows.
  returned: always
  type: str
objects:
  description: The rendered objects, Secret payloads redacted.
  returned: always
  type: list
  elements: dict
refs:
  description: Kind/namespace/name of each object.
  returned: always
  type: list
  elements: str
node_labels:
  description: The labels every node of the cluster should carry.
  returned: always
  type: dict
images:
  description: The images the chosen engine components need (for the air-gap image bundle).
  returned: always
  type: list
  elements: str
files:
  description: The files in the manifests folder.
  returned: delivery=manifests
  type: list
  elements: str
removed:
  description: Engine files from an earlier run that were removed.
  returned: delivery=manifests
  type: list
  elements: str
engine_pending:
  description: Check mode only; the O(engine_bundle) folder does not exist yet, so the engine files are not compared.
  returned: delivery=manifests
  type: bool
applied:
  description: Which objects changed and which did not.
  returned: delivery=api
  type: dict
ready:
  description: The source's last status when O(wait) succeeded.
  returned: delivery=api and wait
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.module import GitopsError, run_registration
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.options import REGISTRATION


def main() -> None:
    module = AnsibleModule(argument_spec=REGISTRATION, supports_check_mode=True)
    try:
        result = run_registration(dict(module.params), module.check_mode)
    except GitopsError as exc:
        module.fail_json(msg=str(exc))
    diff = result.pop("diff", [])
    if module._diff and diff:
        result["diff"] = diff
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
