#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: gitops_bundle_info
short_description: Verify an air-gapped GitOps engine bundle and return the files to install
version_added: 0.1.0
description:
  - Reads the bundle of one engine version, C(<root>/gitops/<engine>/<version>/) (C(crds.yaml), one
    C(<component>.yaml) per controller, C(images.txt), C(sha256sum.txt)), and checks every file it uses against
    C(sha256sum.txt). A file that is not listed or does not match fails the module, with every such problem listed.
  - Only the chosen O(components) are read; RV(images) lists just their images, for the air-gap image bundle.
  - "The default components, per engine: Flux C(source-controller), C(kustomize-controller); Argo CD
    C(application-controller), C(repo-server), C(redis). Without the controllers that reconcile (Flux
    C(source-controller) and C(kustomize-controller), Argo CD C(application-controller) and C(repo-server)) the set
    is refused."
  - Read-only. The verified files come back as RV(engine_files) and RV(engine_sums), to pass to the options of the
    same names of M(edgefleet.k8s.gitops_registration). The node then needs no copy of the bundle, and hashes each
    file again before writing it.
  - With no O(root) there is no bundle; nothing is read and the results are empty. Use this when the engine comes
    some other way.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes.read_only
options:
  engine:
    description: The GitOps engine whose bundle is read.
    type: str
    required: true
    choices: [flux, argocd]
  root:
    description:
      - The bundle root on the host running the module; the bundle is C(<root>/gitops/<engine>/<version>/).
      - V("") (the default) means no bundle.
    type: path
    default: ""
  version:
    description:
      - The engine version, the bundle's folder name under C(<root>/gitops/<engine>/). Required with O(root).
    type: str
    default: ""
  components:
    description:
      - The engine components to install.
      - V([]) (the default) means the engine's default set (see above).
    type: list
    elements: str
    default: []
seealso:
  - module: edgefleet.k8s.gitops_registration
"""

EXAMPLES = r"""
- name: Verify the Flux bundle on the controller before anything reaches the node
  edgefleet.k8s.gitops_bundle_info:
    engine: flux
    root: /srv/edgefleet/bundles
    version: v2.4.0
  delegate_to: localhost
  register: bundle

- name: Deliver the registration with the verified engine files
  edgefleet.k8s.gitops_registration:
    engine: flux
    cluster: "{{ edgefleet_cluster }}"
    repo_url: https://git.example.internal/fleet.git
    engine_files: "{{ bundle.engine_files }}"
    engine_sums: "{{ bundle.engine_sums }}"
    engine_images: "{{ bundle.images }}"
"""

RETURN = r"""
path:
  description: The bundle folder that was verified; empty without O(root).
  returned: always
  type: str
components:
  description: The engine components chosen.
  returned: always
  type: list
  elements: str
images:
  description: The images the chosen components need (for the air-gap image bundle).
  returned: always
  type: list
  elements: str
engine_files:
  description: The verified bundle files, name to content, for O(edgefleet.k8s.gitops_registration#module:engine_files).
  returned: always
  type: dict
engine_sums:
  description: The sha256 of each of RV(engine_files).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.module import GitopsError, run_bundle_info
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.options import BUNDLE_INFO


def main() -> None:
    module = AnsibleModule(argument_spec=BUNDLE_INFO, supports_check_mode=True)
    try:
        result = run_bundle_info(dict(module.params))
    except GitopsError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
