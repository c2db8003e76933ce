#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k0s_config
short_description: Write a validated, hardened k0s.yaml and the join token file
version_added: 0.1.0
description:
  - Builds C(/etc/k0s/k0s.yaml) (a C(k0s.k0sproject.io/v1beta1) C(ClusterConfig)) for a K0s controller by
    deep-merging, in this order, a base profile (telemetry off), the CIS hardening profile (O(cis)), the storage
    settings derived from the cluster topology, the role's O(settings) and the user's O(overrides).
  - The CIS profile is the K0s equivalent of the K3s hardening guide, through C(spec.api.extraArgs)
    (admission plugins C(NodeRestriction,EventRateLimit), admission config, audit log and policy,
    C(encryption-provider-config)) and C(spec.controllerManager.extraArgs). The role writes the files they name,
    the EncryptionConfiguration with mode C(0600).
  - Storage C(sqlite) is kine on C(/var/lib/k0s/db/state.db), single controller only (controllers cannot join a
    SQLite-backed cluster); C(etcd) is embedded etcd; C(external) is kine on O(datastore_endpoint).
  - A worker has no k0s.yaml; for it the module only writes the join token file and returns the unit's arguments.
  - Validates before touching anything and lists B(every) problem at once, naming the host and the key (unknown
    keys with a did-you-mean, managed storage keys in O(overrides), SQLite with several controllers...).
  - Join tokens (from C(k0s token create) on the init controller) go only into a C(0600) root file
    (O(token_file)) that the unit reads with C(--token-file); never argv, the unit, or the task result.
  - Writes atomically, mode C(0600), owner root. RV(restart_required) is true only when the effective settings
    changed (key order, formatting, quoting of extraArgs values do not count) or the token changed.
  - With O(validate_only=true) it only validates its inputs and reads nothing on the host.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The kine C(dataSource) and the token are shown as C(<redacted>).
  platform:
    platforms: posix
options:
  role:
    description: The node's role; C(server)/C(controller) or C(agent)/C(worker) (the inventory contract uses
      C(server)/C(agent)).
    type: str
    required: true
    choices: [server, agent, controller, worker]
  path:
    description: The k0s.yaml file of a controller.
    type: path
    default: /etc/k0s/k0s.yaml
  host:
    description: The host's inventory name, used in messages and in the topology checks.
    type: str
    default: ''
  datastore:
    description: C(edgefleet_datastore); C(sqlite) (kine), C(etcd) or C(external) (kine on an external DSN).
    type: str
    default: sqlite
  cluster_servers:
    description: The ordered controller names; the first one is the init controller.
    type: list
    elements: str
    default: []
  cluster_agents:
    description: The worker names. A lone controller without workers runs with C(--single).
    type: list
    elements: str
    default: []
  init_server:
    description: Whether this host is the init controller. Default is O(host) equals the first of O(cluster_servers).
    type: bool
  server_url:
    description: Not used by K0s (the join token carries the API address); accepted for symmetry with k3s_config.
    type: str
  datastore_endpoint:
    description: The kine DSN for O(datastore=external); C(no_log) and redacted.
    type: str
  cis:
    description: Apply the CIS hardening profile.
    type: bool
    default: true
  settings:
    description: ClusterConfig fragments the role computes (C(spec.api.address), C(spec.storage.etcd.peerAddress)...).
    type: dict
    default: {}
  overrides:
    description:
      - "The user's ClusterConfig fragment, last layer (for example C({spec: {network: {provider: calico}}}))."
      - C(spec.storage.type) and the kine C(dataSource) are managed and refused here.
    type: dict
    default: {}
  overrides_name:
    description: The variable name O(overrides) came from, used in messages.
    type: str
    default: overrides
  token_file:
    description: The join token file (C(0600) root) of a joining controller or a worker.
    type: path
  token:
    description: The join token to write into O(token_file). Never logged.
    type: str
  validate_only:
    description: Only validate the inputs; read and write nothing on the host. Problems fail the task.
    type: bool
    default: false
notes:
  - The known keys are in C(plugins/module_utils/_k0s_schema.py); sections such as C(extraArgs), C(images),
    C(extensions) and C(workerProfiles) are passed through unchecked.
seealso:
  - module: edgefleet.k8s.k3s_config
  - name: k0s configuration
    description: Upstream reference of the ClusterConfig.
    link: https://docs.k0sproject.io/stable/configuration/
"""

EXAMPLES = r"""
- name: Write a single controller's k0s.yaml (kine/SQLite)
  edgefleet.k8s.k0s_config:
    role: server
    host: "{{ inventory_hostname }}"
    datastore: sqlite
    cluster_servers: ["{{ inventory_hostname }}"]
    settings:
      spec:
        api:
          address: "{{ ansible_host }}"
  register: k0s_cfg

- name: Hand a worker its join token through a 0600 file
  edgefleet.k8s.k0s_config:
    role: worker
    host: "{{ inventory_hostname }}"
    token_file: /etc/k0s/worker-token
    token: "{{ worker_join_token }}"
  no_log: true
"""

RETURN = r"""
path:
  description: The k0s.yaml written; null for a worker.
  returned: always
  type: str
  sample: /etc/k0s/k0s.yaml
config:
  description: The effective ClusterConfig, kine dataSource redacted; null for a worker.
  returned: always
  type: dict
restart_required:
  description: True when the effective settings or the token changed.
  returned: always
  type: bool
unit:
  description: The systemd unit of this role.
  returned: always
  type: str
  sample: k0scontroller.service
exec_args:
  description: The arguments after the binary for the unit's C(ExecStart); never a secret.
  returned: always
  type: list
  elements: str
  sample: [controller, --config=/etc/k0s/k0s.yaml, --single]
token_file:
  description: The token file, when O(token_file) was given.
  returned: always
  type: str
token_changed:
  description: Whether an existing token file got a different token.
  returned: always
  type: bool
datastore_on_disk:
  description: C(sqlite), C(etcd) or C(none); null with O(validate_only).
  returned: always
  type: str
migration:
  description: Always null for K0s (there is no in-place kine to etcd migration; that is reported as a problem).
  returned: always
  type: str
problems:
  description: Every problem found; the task fails when the list is not empty.
  returned: always
  type: list
  elements: str
warnings:
  description: Non-fatal findings.
  returned: always
  type: list
  elements: str
distribution:
  description: The facts of the distribution model (paths, units, CIS file paths) for the role to use.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import core as distribution


def main() -> None:
    distribution.run_module(AnsibleModule, distribution.K0S, "edgefleet.k8s.k0s_config")


if __name__ == "__main__":
    main()
