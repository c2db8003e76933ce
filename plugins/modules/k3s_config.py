#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k3s_config
short_description: Write a validated, hardened K3s config file and token file
version_added: 0.1.0
description:
  - Builds C(/etc/rancher/k3s/config.yaml) for one K3s server or agent by deep-merging, in this order, a base
    profile, the CIS hardening profile (O(cis)), the datastore settings derived from the cluster topology, the
    role's O(settings) and the user's O(overrides). Dicts merge recursively; C(*-arg) lists (C(kube-apiserver-arg),
    C(kubelet-arg)...) merge by argument name, so an override of C(audit-log-maxage=7) replaces the profile's value.
  - Validates before touching anything and lists B(every) problem at once, naming the host and the key, for example
    an unknown key (with a did-you-mean), a server-only key on an agent, a token given inline in O(overrides),
    C(sqlite) with more than one server, C(dqlite), an C(external) datastore without an endpoint.
  - Keeps the cluster token in a C(0600) root token file (O(token_file)) referenced as C(token-file); the token is
    never written to the config file, the unit, argv or the task result. On the init server it can generate the
    token (O(generate_token)) or adopt the one K3s already created (C(/var/lib/rancher/k3s/server/token)).
  - Writes atomically, mode C(0600), owner root. RV(restart_required) is true only when the effective settings
    changed (the existing file is parsed; key order, formatting and comments do not count) or the token changed.
  - Detects the datastore already on disk and reports a SQLite to etcd migration (RV(migration)) so the role can back
    up C(server/db) first; refuses a move from etcd back to SQLite.
  - With O(validate_only=true) it only validates its inputs and reads nothing on the host, so a play can check every
    host from the controller (C(delegate_to=localhost)) before any host is changed.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Secret values (token, datastore-endpoint, S3 keys, vpn-auth) are shown as C(<redacted>).
  platform:
    platforms: posix
options:
  role:
    description: The node's role, C(edgefleet_node_role) of the inventory contract.
    type: str
    required: true
    choices: [server, agent]
  path:
    description: The config file. A path other than the default is passed to the unit as C(--config).
    type: path
    default: /etc/rancher/k3s/config.yaml
  host:
    description: The host's inventory name, used in messages and in the topology checks against O(cluster_servers).
    type: str
    default: ''
  datastore:
    description:
      - C(edgefleet_datastore) of the inventory contract. C(sqlite) serves a single server only; C(etcd) sets
        C(cluster-init) on the init server and C(server) on the others; C(external) sets C(datastore-endpoint) from
        O(datastore_endpoint).
      - Any other value (C(dqlite) included, with an explanation) is a problem.
    type: str
    default: sqlite
  cluster_servers:
    description: C(edgefleet_cluster_servers), the ordered server names; the first one is the init server.
    type: list
    elements: str
    default: []
  cluster_agents:
    description: C(edgefleet_cluster_agents), the cluster's agent names.
    type: list
    elements: str
    default: []
  init_server:
    description: Whether this host is the init server. Default is O(host) equals the first of O(cluster_servers).
    type: bool
  server_url:
    description: URL of a running server to join (C(https://<server>:6443)); needed by agents and by joining
      etcd servers.
    type: str
  datastore_endpoint:
    description: The external datastore DSN for O(datastore=external). It may carry credentials, so it is C(no_log)
      and redacted from the diff and the result.
    type: str
  cis:
    description: Apply the CIS hardening profile of the K3s hardening guide (protect-kernel-defaults,
      secrets-encryption, admission/audit/EventRateLimit apiserver args, kubelet and controller-manager args).
      The role writes the files those args name.
    type: bool
    default: true
  settings:
    description: Settings the role computes (node-name, node-label, node-ip, tls-san...). Validated like
      O(overrides) but may not hold secrets either.
    type: dict
    default: {}
  overrides:
    description: The user's config keys, last layer. Keys are the K3s flag names without dashes. Tokens,
      C(datastore-endpoint), C(server) and C(cluster-init) are managed and refused here.
    type: dict
    default: {}
  overrides_name:
    description: The variable name O(overrides) came from, used in messages.
    type: str
    default: overrides
  token_file:
    description: The cluster token file (C(0600) root). Set in the config as C(token-file).
    type: path
  token:
    description: The cluster token to write into O(token_file) (from ansible-vault, or read back from the init
      server). Never logged. Changing it sets RV(restart_required).
    type: str
  generate_token:
    description: On the init server, when O(token_file) does not exist and no O(token) is given, adopt K3s's own
      server token if it exists, else generate a random one.
    type: bool
    default: false
  validate_only:
    description: Only validate the inputs; read and write nothing on the host. Problems fail the task.
    type: bool
    default: false
notes:
  - Keys and defaults are facts of K3s's CLI; the list of known keys is in C(plugins/module_utils/_k3s_flags.py).
seealso:
  - module: edgefleet.k8s.k0s_config
  - name: K3s configuration file
    description: Upstream documentation of the config file and its drop-ins.
    link: https://docs.k3s.io/installation/configuration
"""

EXAMPLES = r"""
- name: Validate every host's K3s settings on the controller before touching any host
  edgefleet.k8s.k3s_config:
    role: "{{ edgefleet_node_role }}"
    host: "{{ inventory_hostname }}"
    datastore: "{{ edgefleet_datastore }}"
    cluster_servers: "{{ edgefleet_cluster_servers }}"
    overrides: "{{ edgefleet_k3s_config }}"
    overrides_name: edgefleet_k3s_config
    server_url: https://10.231.0.11:6443
    validate_only: true
  delegate_to: localhost

- name: Write the init server's config and generate its token
  edgefleet.k8s.k3s_config:
    role: server
    host: "{{ inventory_hostname }}"
    datastore: etcd
    cluster_servers: [node1, node2, node3]
    token_file: /etc/rancher/k3s/token
    generate_token: true
    settings:
      node-name: "{{ inventory_hostname }}"
  register: k3s_cfg

- name: Write an agent's config with the token read back from the server
  edgefleet.k8s.k3s_config:
    role: agent
    host: node2
    server_url: https://10.231.0.11:6443
    token_file: /etc/rancher/k3s/token
    token: "{{ server_token }}"
  no_log: true
"""

RETURN = r"""
path:
  description: The config file written (or that would be written).
  returned: always
  type: str
  sample: /etc/rancher/k3s/config.yaml
config:
  description: The effective config, secrets redacted.
  returned: always
  type: dict
  sample: {"cluster-init": true, "token-file": "/etc/rancher/k3s/token", "secrets-encryption": true}
restart_required:
  description: True when the effective settings or the token changed, so the service must restart.
    False when only formatting, key order, comments, mode or owner changed.
  returned: always
  type: bool
unit:
  description: The systemd unit of this role.
  returned: always
  type: str
  sample: k3s.service
exec_args:
  description: The arguments after the binary for the unit's C(ExecStart); never a secret.
  returned: always
  type: list
  elements: str
  sample: [server]
token_file:
  description: The token file, when O(token_file) was given.
  returned: always
  type: str
token_changed:
  description: Whether an existing token file got a different token.
  returned: always
  type: bool
datastore_on_disk:
  description: What the data dir holds already, C(sqlite), C(etcd) or C(none); null with O(validate_only).
  returned: always
  type: str
migration:
  description: C(sqlite-to-etcd) when a single SQLite server is being turned into an etcd cluster, else null.
  returned: always
  type: str
problems:
  description: Every problem found; the task fails when the list is not empty.
  returned: always
  type: list
  elements: str
warnings:
  description: Non-fatal findings (an even number of etcd servers, an ignored endpoint...).
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
    distribution.run_module(AnsibleModule, distribution.K3S, "edgefleet.k8s.k3s_config")


if __name__ == "__main__":
    main()
