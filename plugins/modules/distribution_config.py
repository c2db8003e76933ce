#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: distribution_config
short_description: Write a validated, hardened K3s or K0s config file and token file
version_added: 0.2.0
description:
  - One module for every distribution the collection knows (K3s, K0s). What differs between them (paths, units,
    config schema, flags, token handling, join flow, datastore handling) is a strategy in
    C(plugins/module_utils/_distribution/); this module only asks the strategy of O(distribution).
  - Builds the node's config file (K3s C(/etc/rancher/k3s/config.yaml), K0s C(/etc/k0s/k0s.yaml)) by deep-merging,
    in this order, a base profile, the CIS hardening profile (O(cis)), the datastore settings derived from the
    cluster topology, the node settings derived from O(host), O(address), O(labels) and O(api_port), the role's
    O(settings) and the user's O(overrides). K3s C(*-arg) lists merge by argument name; K0s C(extraArgs) values
    are rendered as strings.
  - Validates before touching anything and lists B(every) problem at once, naming the host and the key, for example
    an unknown key (with a did-you-mean), a server-only key on an agent, a token given inline in O(overrides),
    C(sqlite) with more than one server, C(dqlite), an C(external) datastore without an endpoint.
  - Keeps tokens in C(0600) root token files, never in the config file, the unit, argv or the task result. K3s
    servers share one cluster token (generated or adopted on the init server, read back for the others). K3s agents
    join with the agent token instead, which lets a node join as an agent and nothing more. Each server derives the
    agent secret from the cluster token (HMAC-SHA256, so the same on every server and no way back to the cluster
    token) into O(agent_secret_file), K3s's C(agent-token-file), and agents read K3s's C(server/agent-token) back
    from the init server. K0s makes one join token per node on the init controller. RV(node.join_token) tells the
    role which.
  - Writes atomically, mode C(0600), owner root. RV(restart_required) is true only when the effective settings
    changed (key order, formatting and comments do not count) or a token or the agent secret changed.
  - Detects the datastore already on disk and reports a SQLite to etcd migration (RV(migration)) where the
    distribution has one, so the role can back up the datastore first; refuses moves with no supported path.
  - With O(validate_only=true) it only validates its inputs and reads nothing on the host, so a play can check every
    host from the controller (C(delegate_to=localhost)) before any host is changed.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  diff_mode:
    details: Secret values (tokens, datastore endpoints, kine data sources, S3 keys) are shown as C(<redacted>).
options:
  distribution:
    description: The distribution, C(edgefleet_distribution) of the inventory contract.
    type: str
    required: true
    choices: [k3s, k0s]
  role:
    description:
      - The node's role, C(edgefleet_node_role) of the inventory contract.
      - K0s also accepts its own names C(controller) and C(worker).
    type: str
    required: true
    choices: [server, agent, controller, worker]
  path:
    description:
      - The config file. Default, the distribution's (C(config_path) in RV(distribution)).
      - On K3s a path other than the default is passed to the unit as C(--config).
    type: path
  host:
    description: The host's inventory name, used as the node name, in messages and in the topology checks.
    type: str
    default: ''
  address:
    description:
      - The node's address (C(ansible_host)). An IP address becomes the node IP (K3s C(node-ip), K0s
        C(spec.api.address) and, with etcd, the peer address); any address becomes a server's TLS SAN on K3s.
    type: str
    default: ''
  labels:
    description: Node labels (the fleet's C(edgefleet_node_labels)), set where the distribution takes them.
    type: dict
    default: {}
  api_port:
    description: The API server port. Written into the config only when it is not the default 6443; joining nodes
      dial it on O(server_address).
    type: int
    default: 6443
  node_settings:
    description: Derive the node settings from O(host), O(address), O(labels) and O(api_port). Off, only
      O(settings) and O(overrides) apply.
    type: bool
    default: true
  datastore:
    description:
      - C(edgefleet_datastore) of the inventory contract. C(sqlite) serves a single server only; C(etcd) is
        embedded etcd; C(external) uses O(datastore_endpoint).
      - Any other value (C(dqlite) included, with an explanation) is a problem.
    type: str
    default: sqlite
  cluster_servers:
    description: C(edgefleet_cluster_servers), the ordered server names; the first one is the init server.
    type: list
    elements: str
    default: []
  cluster_agents:
    description: C(edgefleet_cluster_agents), the cluster's agent names. A lone K0s controller without workers runs
      with C(--single).
    type: list
    elements: str
    default: []
  init_server:
    description: Whether this host is the init server. Default, O(host) equals the first of O(cluster_servers).
    type: bool
  server_address:
    description: The init server's address; joining nodes dial C(https://<server_address>:<api_port>) where the
      distribution needs a URL (K3s agents and joining etcd servers).
    type: str
  datastore_endpoint:
    description: The external datastore DSN for O(datastore=external). It may carry credentials, so it is C(no_log)
      and redacted from the diff and the result.
    type: str
  cis:
    description: Apply the CIS hardening profile (protect-kernel-defaults, secrets encryption, admission, audit and
      EventRateLimit API server arguments, kubelet and controller-manager arguments). The role writes the files
      those arguments name.
    type: bool
    default: true
  settings:
    description: Extra settings from the role, merged over the derived node settings. Validated like O(overrides)
      but may not hold secrets either.
    type: dict
    default: {}
  overrides:
    description: The user's config keys, last layer (K3s flag names without dashes, or a K0s ClusterConfig
      fragment). Tokens, datastore endpoints and the keys the topology decides are managed and refused here.
    type: dict
    default: {}
  overrides_name:
    description: The variable name O(overrides) came from, used in messages.
    type: str
    default: overrides
  token_file:
    description: The token file (C(0600) root). Default, the distribution's for the role (RV(token_file)); the init
      server of a distribution that makes per-node join tokens has none.
    type: path
  agent_secret_file:
    description: Where a server keeps the secret agents join with (C(0600) root), for a distribution that has one
      (K3s's C(agent-token-file)). Default, the distribution's (K3s C(/etc/rancher/k3s/agent-token)). Its content is
      derived from the cluster token; it is never set by hand. Ignored on agents.
    type: path
  token:
    description: The user's cluster token (from ansible-vault). Used on every server where the distribution shares
      one token, else only on the init server. Never logged. Changing it sets RV(restart_required).
    type: str
  join_token:
    description: The join token the role fetched from the init server (RV(node.join_token)), used when O(token)
      does not apply. Never logged.
    type: str
  generate_token:
    description: On the init server, when the token file does not exist and no O(token) is given, adopt the
      distribution's own server token if it exists, else generate a random one (where the distribution shares one).
    type: bool
    default: true
  validate_only:
    description: Only validate the inputs; read and write nothing on the host. Problems fail the task.
    type: bool
    default: false
  restart_marker:
    description:
      - A file that records a needed restart on disk. When the effective settings or the token change, it is written
        (mode C(0600), directory C(0700)) before the config and token files, and while it exists RV(restart_required)
        stays true. The caller removes it once the unit has restarted, so a run killed between writing the files and
        restarting the unit still restarts it on the next run.
      - Not written in check mode. Without it, RV(restart_required) only reflects this call's changes.
    type: path
  default_sa_namespaces:
    description:
      - The namespaces whose C(default) ServiceAccount the caller stops from mounting API tokens (CIS 5.1.5; the
        C(edgefleet.k8s.distribution) role does that on the init server once the cluster is up).
      - The module writes nothing for them; it validates the names with the other inputs, so a name the API server
        would refuse stops every host before any is changed. Each must be a namespace name (an RFC 1123 label).
    type: list
    elements: str
    default: []
  default_sa_namespaces_name:
    description: The variable name O(default_sa_namespaces) came from, used in messages.
    type: str
    default: default_sa_namespaces
notes:
  - The known K3s keys are the table in C(plugins/module_utils/_distribution/k3s_flag_table.py); the known K0s keys
    are in C(plugins/module_utils/_distribution/k0s_schema.py).
seealso:
  - name: K3s configuration file
    description: Upstream documentation of the config file and its drop-ins.
    link: https://docs.k3s.io/installation/configuration
  - name: k0s configuration
    description: Upstream documentation of k0s.yaml.
    link: https://docs.k0sproject.io/stable/configuration/
"""

EXAMPLES = r"""
- name: Validate every host's settings on the controller before touching any host
  edgefleet.k8s.distribution_config:
    distribution: "{{ edgefleet_distribution }}"
    role: "{{ edgefleet_node_role }}"
    host: "{{ inventory_hostname }}"
    address: "{{ ansible_host }}"
    datastore: "{{ edgefleet_datastore }}"
    cluster_servers: "{{ edgefleet_cluster_servers }}"
    server_address: "{{ hostvars[edgefleet_cluster_init_server].ansible_host }}"
    overrides: "{{ edgefleet_distribution_config }}"
    overrides_name: edgefleet_distribution_config
    validate_only: true
  delegate_to: localhost

- name: Write a K3s init server's config and generate its token
  edgefleet.k8s.distribution_config:
    distribution: k3s
    role: server
    host: node1
    address: 10.231.0.11
    datastore: etcd
    cluster_servers: [node1, node2, node3]
  register: node_config

- name: Write a K0s worker's token file with the token made on the controller
  edgefleet.k8s.distribution_config:
    distribution: k0s
    role: agent
    host: node5
    cluster_servers: [node4]
    join_token: "{{ worker_join_token }}"
  no_log: true
"""

RETURN = r"""
path:
  description: The config file written (or that would be written); null for a role with no config file (a K0s
    worker).
  returned: always
  type: str
  sample: /etc/rancher/k3s/config.yaml
config:
  description: The effective config, secrets redacted.
  returned: always
  type: dict
  sample: {"cluster-init": true, "token-file": "/etc/rancher/k3s/token", "secrets-encryption": true}
restart_required:
  description: True when the effective settings or the token changed, so the service must restart, or when
    O(restart_marker) holds a restart that an earlier run recorded and did not carry out.
    False when only formatting, key order, comments, mode or owner changed.
  returned: always
  type: bool
restart_pending:
  description: True when O(restart_marker) existed before this call (an earlier run changed the files and did not
    restart the unit).
  returned: success
  type: bool
unit:
  description: The systemd unit of this node's role.
  returned: always
  type: str
  sample: k3s.service
exec_args:
  description: The arguments after the binary for the unit's C(ExecStart); never a secret.
  returned: always
  type: list
  elements: str
  sample: [controller, --config=/etc/k0s/k0s.yaml, --single]
exec_start:
  description: The binary and RV(exec_args) as the unit's C(ExecStart=) value, quoted so that systemd splits it back
    into the same arguments (an argument with white space in double quotes, C(%) and C($) doubled).
  returned: always
  type: str
  sample: /usr/local/bin/k0s worker "--kubelet-extra-args=--tls-min-version=VersionTLS12 --pod-max-pids=4096"
token_file:
  description: The token file of this node, or null where it needs none.
  returned: always
  type: str
agent_secret_file:
  description: The file of the secret agents join with, on a server of a distribution that has one; else null.
  returned: always
  type: str
  sample: /etc/rancher/k3s/agent-token
token_changed:
  description: Whether an existing token file got a different token.
  returned: always
  type: bool
files_changed:
  description:
    - Whether the config or token file was written (in check mode, would be). The same as C(changed) here, but a
      task's C(changed_when) does not override it, so a check-mode plan step tells whether its write step is needed.
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
node:
  description: What the role needs to run this node, decided by the strategy.
  returned: always
  type: dict
  contains:
    is_server:
      description: Whether the node is a server (controller).
      type: bool
    is_init_server:
      description: Whether the node is its cluster's init server.
      type: bool
    unit:
      description: The node's systemd unit.
      type: str
    env_file:
      description: The unit's environment file.
      type: str
    role_name:
      description: The distribution's own name of the role (K0s C(controller), C(worker)).
      type: str
    registers_node:
      description: Whether the node appears as a Node object (a K0s controller without a worker does not).
      type: bool
    server_url:
      description: The URL joining nodes dial, from O(server_address) and O(api_port).
      type: str
    join_token:
      description: How a joining node gets its token; C(read_file) (a file read back from the init server) or
        C(create_argv) (a command run on the init server once per node without a token file).
      type: dict
distribution:
  description: The facts of the distribution (paths, units, CIS file paths, kubectl and version commands).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import module


def main() -> None:
    module.run_module(AnsibleModule)


if __name__ == "__main__":
    main()
