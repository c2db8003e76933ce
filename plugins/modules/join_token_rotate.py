#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: join_token_rotate
short_description: Rotate a K3s or K0s cluster's join token the distribution's own way, on one running server
version_added: 0.2.0
description:
  - Runs on one running server of the cluster (the distribution role uses the init server). What differs between
    distributions is the strategy's C(token_rotation()) in C(plugins/module_utils/_distribution/).
  - B(K3s) shares one cluster token among its nodes. The new token (O(new_token), or 256 random bits) is first
    written beside the token file as C(<token_file>.rotating) (0600); then C(k3s token rotate) runs with the current
    and the new token in its environment only (C(K3S_TOKEN), C(K3S_NEW_TOKEN)), never on its command line; then the
    new token replaces the token file (0600, atomic) and a restart is recorded at O(restart_marker). The servers
    must then restart with it, one at a time, and every agent gets it in its token file (the distribution role
    does both). Until a server restarts it still accepts the old token.
  - A run that died after the server took the new token but before the token file was written finishes the
    rotation with the token kept in C(<token_file>.rotating).
  - B(K0s) gives each joining node a join token of its own. Every join token still valid (C(k0s token list
    --role=worker), C(--role=controller)) is invalidated with C(k0s token invalidate). Nodes already joined keep
    their own credentials; nothing restarts.
  - Each rotation has an ID (O(rotation_id)). A record of it, with times and token fingerprints and never a token,
    is kept on the server in C(/var/lib/edgefleet/token-rotations/<rotation_id>.json) (0600). With K3s a second
    run with the same ID, on a token file that still holds the token it made, changes nothing.
  - A fingerprint is C(sha256:) and the first 16 hex digits of the token's sha256; tokens never appear in the
    result, the diff or an error message.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  check_mode:
    details: K3s reports the rotation it would make; K0s lists the join tokens it would invalidate.
  diff_mode:
    details: The token file's fingerprints before and after (K3s); no token value.
options:
  distribution:
    description: The distribution, C(edgefleet_distribution) of the inventory contract.
    type: str
    required: true
    choices: [k3s, k0s]
  rotation_id:
    description:
      - Names this rotation, for example C(decommission-node7) or C(planned-2026-12). Letters, digits, C(.), C(_),
        C(-).
      - A second run with the same ID does not rotate again (K3s).
    type: str
    required: true
  token_file:
    description: The server's token file. Default, the distribution's (K3s C(/etc/rancher/k3s/token)).
    type: path
    default: ''
  new_token:
    description:
      - The new token (K3s), for example from ansible-vault. V("") (the default) generates one.
      - Ignored by K0s, whose join tokens are made per node when a node joins.
    type: str
    default: ''
  restart_marker:
    description: Where to record that the server unit must restart to load the new token (the distribution role's
      restart marker); V("") records nothing.
    type: path
    default: ''
seealso:
  - module: edgefleet.k8s.distribution_config
"""

EXAMPLES = r"""
- name: Rotate the join token on the init server
  edgefleet.k8s.join_token_rotate:
    distribution: "{{ edgefleet_distribution }}"
    rotation_id: "decommission-{{ node }}"
    restart_marker: /var/lib/edgefleet/restart-pending/k3s.service
  become: true
  register: rotated
"""

RETURN = r"""
shared:
  description: Whether the cluster shares one token (K3s), which every node must now get.
  returned: success
  type: bool
rotation_id:
  description: The rotation's ID.
  returned: success
  type: str
rotated_at:
  description: When the rotation was made (UTC, ISO 8601); for a rotation already done, when it was.
  returned: when a rotation was made or recorded
  type: str
  sample: "2026-12-06T14:30:00Z"
old_fingerprint:
  description: The fingerprint of the token replaced (K3s).
  returned: K3s
  type: str
  sample: "sha256:3f5e0c1a9b2d4e6f"
new_fingerprint:
  description: The fingerprint of the token now in the token file (K3s).
  returned: K3s, unless in check mode
  type: str
token_file:
  description: The token file rotated (K3s).
  returned: K3s
  type: str
restart_required:
  description: Whether the server unit must restart to load the new token.
  returned: success
  type: bool
invalidated:
  description: The IDs of the join tokens invalidated (K0s); bootstrap token IDs are public, the secrets are not.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import rotation_module


def main() -> None:
    rotation_module.run_module(AnsibleModule)


if __name__ == "__main__":
    main()
