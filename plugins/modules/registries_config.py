#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registries_config
short_description: Give a K3s or K0s node's containerd registry mirrors, TLS settings and credentials
version_added: 0.3.0
description:
  - Writes the container runtime's registry configuration from distribution-neutral settings (O(registries)) and
    credentials from Ansible Vault (O(auth)). Which files they become is the distribution strategy's choice in
    C(plugins/module_utils/_distribution/).
  - K3s gets C(/etc/rancher/k3s/registries.yaml) (mirrors with endpoints and rewrites; configs with TLS and auth).
  - K0s gets one containerd C(hosts.toml) per registry under C(/etc/k0s/containerd-hosts.d/<registry>/), and a
    drop-in C(/etc/k0s/containerd.d/edgefleet-registries.toml) in K0s's containerd import directory that points
    containerd's CRI registry C(config_path) at that directory. Credentials become an C(Authorization) header of
    the mirror's host entry. containerd's C(hosts.toml) has no image-name rewrites, so rewrites are refused for K0s.
  - Validates before touching anything and lists B(every) problem at once, naming the host, the registry and the key,
    for example a bad endpoint URL, an unknown key, credentials for a registry reached over plain C(http://) or with
    TLS verification off (auth without TLS), credentials given in O(registries) instead of O(auth).
  - Every file is written atomically, mode C(0600) (it may hold credentials), only when its bytes differ. Files of ours
    that are no longer wanted (a registry removed from the settings) are removed; files without our header are never
    touched.
  - RV(restart_required) is true only when a file that the runtime reads at start changed (K3s C(registries.yaml),
    the K0s drop-in); containerd reads C(hosts.toml) at each pull, so a change there needs no restart.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  diff_mode:
    details: The new content is shown with credentials as C(<redacted>); the old content is never shown.
options:
  distribution:
    description: The distribution, C(edgefleet_distribution) of the inventory contract.
    type: str
    required: true
    choices: [k3s, k0s]
  host:
    description: The host's inventory name, used in messages.
    type: str
    default: ''
  registries:
    description:
      - The mirrors and per-registry TLS settings (the fleet's C(registries), published as C(edgefleet_registries)).
      - C(mirrors) maps a registry (C(host[:port]) such as C(docker.io), or C(*) for every registry) to C(endpoints),
        a list of C(https://) or C(http://) URLs tried in order, and (K3s only) C(rewrites), a mapping of regular
        expression to replacement applied to image names pulled through the mirror.
      - C(configs) maps a registry host (C(host[:port])) to C(tls), with C(ca_file), C(cert_file) and C(key_file)
        (absolute paths on the node) and C(insecure_skip_verify).
    type: dict
    default: {}
  registries_name:
    description: The variable O(registries) came from, used in messages.
    type: str
    default: edgefleet_registries
  auth:
    description:
      - Credentials by registry host (a C(username) and a C(password) under each host name), from Ansible Vault.
        Never logged, never on a command line; written only into the C(0600) files.
      - A registry reached over C(http://) or with C(insecure_skip_verify) may not have credentials.
    type: dict
    default: {}
  auth_name:
    description: The variable O(auth) came from, used in messages.
    type: str
    default: edgefleet_registry_auth
  validate_only:
    description: Only validate the inputs; read and write nothing on the host. Problems fail the task.
    type: bool
    default: false
  restart_marker:
    description:
      - A file that records a needed restart on disk (mode C(0600), directory C(0700)), written when a file the runtime
        reads at start changed. While it exists RV(restart_required) stays true; the caller removes it after the
        restart. Not written in check mode.
    type: path
notes:
  - Sources of the formats are listed in C(docs/registries.md) of the collection.
seealso:
  - name: K3s private registry configuration
    description: The C(registries.yaml) format.
    link: https://docs.k3s.io/installation/private-registry
  - name: containerd registry host configuration
    description: The C(hosts.toml) format.
    link: https://github.com/containerd/containerd/blob/main/docs/hosts.md
  - name: k0s runtime
    description: K0s's containerd import directory.
    link: https://docs.k0sproject.io/stable/runtime/
"""

EXAMPLES = r"""
- name: Check the registry settings on the controller before touching any host
  edgefleet.k8s.registries_config:
    distribution: "{{ edgefleet_distribution }}"
    host: "{{ inventory_hostname }}"
    registries: "{{ edgefleet_registries }}"
    auth: "{{ edgefleet_registry_auth }}"
    validate_only: true
  delegate_to: localhost

- name: Pull docker.io images through the site's mirror
  edgefleet.k8s.registries_config:
    distribution: k3s
    registries:
      mirrors:
        docker.io:
          endpoints: [https://mirror.site.local]
      configs:
        mirror.site.local:
          tls:
            ca_file: /etc/ssl/site/ca.pem
    auth:
      mirror.site.local:
        username: edge
        password: "{{ vault_mirror_password }}"
  register: registry_files
"""

RETURN = r"""
files:
  description: The files the settings make on this node (none when the settings are empty).
  returned: success
  type: list
  elements: str
  sample: [/etc/rancher/k3s/registries.yaml]
written:
  description: The files written (in check mode, that would be written) because their bytes, mode or owner differed.
  returned: success, unless O(validate_only)
  type: list
  elements: str
removed:
  description: Files of ours no longer wanted, removed (in check mode, that would be removed).
  returned: success
  type: list
  elements: str
restart_required:
  description: True when a file the runtime reads at start changed, or O(restart_marker) holds an earlier one.
  returned: success
  type: bool
problems:
  description: Every problem found; the task fails when the list is not empty.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registries_module


def main() -> None:
    registries_module.run_module(AnsibleModule)


if __name__ == "__main__":
    main()
