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
  - With O(state=bundle) it only verifies an engine bundle against its C(sha256sum.txt).
  - With O(state=keypair) it only makes sure an ed25519 deploy key exists at O(deploy_key_path) (generated with
    the Python C(cryptography) library, 0600) and returns its public key; given O(deploy_key), it checks that key
    and returns its public half.
  - The deploy key never appears in output or diffs; a Secret's payload is shown as a digest.
author:
  - edgefleet.k8s contributors (@edgefleet)
requirements:
  - PyYAML on the target
  - cryptography where a key is generated or read (O(state=keypair), O(deploy_key))
  - kubernetes (Python client) for O(delivery=api)
attributes:
  check_mode:
    support: full
    description: Reports what would change; nothing is written, generated or applied (the API is asked with dryRun=All).
  diff_mode:
    support: full
    description: Shows file or object diffs with secret payloads redacted.
options:
  state:
    description:
      - V(present) renders and delivers.
      - V(keypair) only ensures the deploy key at O(deploy_key_path).
      - V(bundle) only verifies O(engine_bundle) for O(engine) and O(engine_components) (read-only), returning
        RV(images); the role runs it on the controller before anything is copied to a node.
    type: str
    choices: [present, keypair, bundle]
    default: present
  engine:
    description: The GitOps engine.
    type: str
    choices: [flux, argocd]
  cluster:
    description: The cluster name (DNS-1123), as published by the fleet inventory (C(edgefleet_cluster)).
    type: str
  path:
    description: The path in the fleet repo the agent follows. Defaults to C(clusters/<cluster>).
    type: str
  overlays:
    description: The ordered overlays (base first), for the identity ConfigMap and labels.
    type: list
    elements: str
    default: []
  site:
    description: The site name. Defaults to O(cluster).
    type: str
  region:
    description: The site's region.
    type: str
  model:
    description: The device model.
    type: str
  channel:
    description: The release channel.
    type: str
  repo_url:
    description: The fleet Git repo URL (C(ssh://), C(git@host:path), C(https://) or C(http://)).
    type: str
  branch:
    description: The branch to follow.
    type: str
    default: main
  known_hosts:
    description: The Git host's SSH public keys in known_hosts format. Required for SSH URLs.
    type: str
  deploy_key:
    description: The private deploy key (OpenSSH ed25519). Takes precedence over O(deploy_key_path).
    type: str
  deploy_key_public:
    description:
      - The public half of O(deploy_key), as O(state=keypair) returned it on the controller. With it the host
        running the module needs no C(cryptography) library (only the key's shape is checked there).
    type: str
  deploy_key_path:
    description: Path of the private deploy key on the host running the module; generated (0600) when missing.
    type: path
  key_comment:
    description: Comment of the public key. Defaults to C(edgefleet-<cluster>).
    type: str
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
    description: Override the manifests folder.
    type: path
  engine_bundle:
    description:
      - A verified engine bundle directory on the host running the module (C(crds.yaml), C(<component>.yaml),
        C(images.txt), C(sha256sum.txt)). Every file used is checked against C(sha256sum.txt).
      - Left out, only the registration objects are delivered.
    type: path
  engine_files:
    description:
      - The engine's bundle files (name to content) as O(state=bundle) returned them on the controller, so the
        node needs no copy of the bundle. Each is checked again against O(engine_sums). Takes precedence over
        O(engine_bundle).
    type: dict
  engine_sums:
    description: The sha256 of each of O(engine_files), from the verified bundle.
    type: dict
  engine_images:
    description: The images of the chosen components, from O(state=bundle).
    type: list
    elements: str
  engine_components:
    description:
      - The engine components to install from the bundle.
      - Defaults to C(source-controller), C(kustomize-controller) (Flux) or C(application-controller),
        C(repo-server), C(redis) (Argo CD).
    type: list
    elements: str
  flux:
    description: Flux settings.
    type: dict
    suboptions:
      namespace: {description: Namespace of the Flux objects., type: str}
      name: {description: Name of the GitRepository and Kustomization., type: str}
      source_interval: {description: How often the source is fetched (default 10m)., type: str}
      source_timeout: {description: Timeout of one fetch (default 60s)., type: str}
      interval: {description: Kustomization reconcile interval (default 10m)., type: str}
      retry_interval: {description: Retry after a failed reconcile (default 2m)., type: str}
      timeout: {description: Timeout of one reconcile (default 5m)., type: str}
      prune: {description: Garbage-collect objects removed from Git (default true)., type: bool}
      wait: {description: Wait for health of applied objects (default false)., type: bool}
      substitute: {description: Add postBuild.substituteFrom the cluster vars (default true)., type: bool}
  argocd:
    description: Argo CD settings.
    type: dict
    suboptions:
      namespace: {description: Namespace of Argo CD (default argocd)., type: str}
      project: {description: AppProject (default default)., type: str}
      destination_namespace: {description: Default namespace of the synced objects., type: str}
      prune: {description: Automated prune (default true)., type: bool}
      self_heal: {description: Automated self-heal (default true)., type: bool}
      retry_limit: {description: Sync retry limit (-1 is unlimited)., type: int}
      backoff_duration: {description: First retry delay (default 30s)., type: str}
      backoff_factor: {description: Backoff factor (default 2)., type: int}
      backoff_max_duration: {description: Longest retry delay (default 10m)., type: str}
      agent_hub: {description: argocd-agent principal address; empty means no agent., type: str}
      agent_hub_port: {description: argocd-agent principal port (default 443)., type: int}
      agent_mode: {description: argocd-agent mode., type: str, choices: [autonomous, managed]}
  kubeconfig:
    description: Kubeconfig for O(delivery=api), on the host running the module.
    type: path
  context:
    description: Kubeconfig context.
    type: str
  nodes:
    description: With O(delivery=api), Node names that get the cluster's C(edgefleet.io/*) labels.
    type: list
    elements: str
    default: []
  wait:
    description: With O(delivery=api), wait until the GitRepository (or Application) is Ready.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait).
    type: int
    default: 300
notes:
  - The Flux and Argo CD field names follow the upstream CRDs; in the lab the CRDs are minimal hand-written stand-ins.
seealso:
  - module: edgefleet.k8s.fleet_repo
"""

EXAMPLES = r"""
- name: Keep the cluster's deploy key on the controller
  edgefleet.k8s.gitops_registration:
    state: keypair
    cluster: "{{ edgefleet_cluster }}"
    deploy_key_path: "~/.cache/edgefleet/gitops-keys/{{ edgefleet_cluster }}"
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
    deploy_key: "{{ lookup('ansible.builtin.file', '~/.cache/edgefleet/gitops-keys/' ~ edgefleet_cluster) }}"
    distribution: k3s
    engine_bundle: /var/lib/edgefleet/gitops-bundle
  no_log: true
"""

RETURN = r"""
public_key:
  description: The deploy key's public half, to add (read-only) to the Git host.
  returned: when a deploy key is used or generated
  type: str
fingerprint:
  description: A short digest of the public key.
  returned: when a deploy key is used or generated
  type: str
path:
  description: The fleet repo path the agent follows.
  returned: state=present
  type: str
objects:
  description: The rendered objects, Secret payloads redacted.
  returned: state=present
  type: list
  elements: dict
refs:
  description: Kind/namespace/name of each object.
  returned: state=present
  type: list
  elements: str
node_labels:
  description: The labels every node of the cluster should carry.
  returned: state=present
  type: dict
images:
  description: The images the chosen engine components need (for the air-gap image bundle).
  returned: state=present or state=bundle
  type: list
  elements: str
engine_files:
  description: The verified bundle files (name to content) for O(engine_files) of a later call.
  returned: state=bundle
  type: dict
engine_sums:
  description: The sha256 of each of RV(engine_files).
  returned: state=bundle
  type: dict
components:
  description: The engine components chosen.
  returned: state=bundle
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
  description: Check mode only; the staged bundle does not exist yet, so the engine files are not compared.
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
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.module import RegistrationError, run


def main() -> None:
    flux_spec = {
        "namespace": {"type": "str"},
        "name": {"type": "str"},
        "source_interval": {"type": "str"},
        "source_timeout": {"type": "str"},
        "interval": {"type": "str"},
        "retry_interval": {"type": "str"},
        "timeout": {"type": "str"},
        "prune": {"type": "bool"},
        "wait": {"type": "bool"},
        "substitute": {"type": "bool"},
    }
    argocd_spec = {
        "namespace": {"type": "str"},
        "project": {"type": "str"},
        "destination_namespace": {"type": "str"},
        "prune": {"type": "bool"},
        "self_heal": {"type": "bool"},
        "retry_limit": {"type": "int"},
        "backoff_duration": {"type": "str"},
        "backoff_factor": {"type": "int"},
        "backoff_max_duration": {"type": "str"},
        "agent_hub": {"type": "str"},
        "agent_hub_port": {"type": "int"},
        "agent_mode": {"type": "str", "choices": ["autonomous", "managed"]},
    }
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["present", "keypair", "bundle"], "default": "present"},
            "engine": {"type": "str", "choices": ["flux", "argocd"]},
            "cluster": {"type": "str"},
            "path": {"type": "str"},
            "overlays": {"type": "list", "elements": "str", "default": []},
            "site": {"type": "str"},
            "region": {"type": "str"},
            "model": {"type": "str"},
            "channel": {"type": "str"},
            "repo_url": {"type": "str"},
            "branch": {"type": "str", "default": "main"},
            "known_hosts": {"type": "str"},
            "deploy_key": {"type": "str", "no_log": True},
            "deploy_key_public": {"type": "str", "no_log": False},  # a public key, shown on purpose
            "deploy_key_path": {"type": "path", "no_log": False},
            "key_comment": {"type": "str"},
            "distribution": {"type": "str", "choices": ["k3s", "k0s"], "default": "k3s"},
            "delivery": {"type": "str", "choices": ["manifests", "api"], "default": "manifests"},
            "manifests_dir": {"type": "path"},
            "engine_bundle": {"type": "path"},
            "engine_components": {"type": "list", "elements": "str"},
            "engine_files": {"type": "dict"},
            "engine_sums": {"type": "dict"},
            "engine_images": {"type": "list", "elements": "str"},
            "flux": {"type": "dict", "options": flux_spec},
            "argocd": {"type": "dict", "options": argocd_spec},
            "kubeconfig": {"type": "path"},
            "context": {"type": "str"},
            "nodes": {"type": "list", "elements": "str", "default": []},
            "wait": {"type": "bool", "default": False},
            "wait_timeout": {"type": "int", "default": 300},
        },
        required_if=[
            ("state", "present", ("engine", "cluster", "repo_url")),
            ("state", "bundle", ("engine", "engine_bundle")),
        ],
        supports_check_mode=True,
    )
    try:
        result = run(dict(module.params), module.check_mode)
    except RegistrationError as exc:
        module.fail_json(msg=str(exc))
    diff = result.pop("diff", [])
    if module._diff and diff:
        result["diff"] = diff
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
