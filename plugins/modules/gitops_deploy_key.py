#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: gitops_deploy_key
short_description: Keep the SSH deploy key a cluster's GitOps agent reads its fleet repo with
version_added: 0.1.0
description:
  - Makes sure an ed25519 deploy key exists at O(path) and returns its public half, to add (read-only) to the
    Git host. A missing key is generated with the Python C(cryptography) library, in OpenSSH format, mode 0600 in a
    0700 folder, with C(<path>.pub) beside it. An existing key is always reused, never regenerated (rotating is
    deleting the file); its mode is repaired to 0600.
  - Given O(private_key) (for example from ansible-vault), that key is only checked and its public half returned;
    nothing is written.
  - Given O(repo_url), the module decides whether the repo needs a key at all. An SSH URL (C(ssh://), C(git@host:path))
    does; any other (C(https://), C(http://)) does not, and then nothing is read or written and RV(needed) is false.
  - The private key never appears in output, and no diff is shown.
  - Run it where the key is kept; the C(edgefleet.k8s.gitops) role runs it on the controller, then hands the key and
    RV(public_key) to M(edgefleet.k8s.gitops_registration).
author:
  - edgefleet.k8s contributors (@edgefleet)
requirements:
  - cryptography
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  check_mode:
    details: A missing key is reported as a change and not generated; a wrong mode is reported and not repaired.
  diff_mode:
    support: none
    details: The key is a secret; C(changed) and RV(public_key) say what happened.
options:
  cluster:
    description: The cluster name, as published by the fleet inventory (C(edgefleet_cluster)).
    type: str
    required: true
  repo_url:
    description:
      - The fleet Git repo URL. A URL that is not SSH needs no key, and nothing is done.
      - V("") (the default) means the key is kept whatever the repo.
    type: str
    default: ""
  path:
    description:
      - The private key file on the host running the module; C(<path>.pub) holds the public key.
      - Required unless O(private_key) is given.
    type: path
    default: ""
  private_key:
    description:
      - A private ed25519 key in OpenSSH format that you keep yourself (ansible-vault). It is only checked, and
        O(path) is not used.
      - V("") (the default) means the key at O(path) is used, or generated.
    type: str
    default: ""
  comment:
    description:
      - The comment at the end of the public key.
      - V("") (the default) means C(edgefleet-<cluster>).
    type: str
    default: ""
  rotation_id:
    description:
      - Replace the key at O(path) with a new one, once for this ID (for example C(decommission-node7)). The record
        C(<path>.rotations.json) (0600) keeps each rotation's time and the old and new keys' fingerprints, never a
        key; a second run with the same ID keeps the key it made.
      - The old private key is gone once the new one is written; RV(old_public_key) and RV(old_fingerprint) name
        the key to remove at the Git host.
      - Refused with O(private_key) (a key kept in ansible-vault is rotated there).
      - V("") (the default) keeps the existing key.
    type: str
    default: ""
seealso:
  - module: edgefleet.k8s.gitops_registration
  - module: edgefleet.k8s.gitops_bundle_info
"""

EXAMPLES = r"""
- name: Keep the cluster's deploy key on the controller
  edgefleet.k8s.gitops_deploy_key:
    cluster: "{{ edgefleet_cluster }}"
    repo_url: "{{ edgefleet_gitops_repo }}"
    path: "~/.local/share/edgefleet/gitops-keys/{{ edgefleet_cluster }}"
  delegate_to: localhost
  register: key

- name: Show the key to add to the Git host
  ansible.builtin.debug:
    msg: "{{ key.public_key }}"
  when: key.needed
"""

RETURN = r"""
needed:
  description: Whether the repo needs a deploy key; false for a O(repo_url) that is not SSH.
  returned: always
  type: bool
public_key:
  description: The key's public half, to add (read-only) to the Git host. Empty when not needed, and in check mode
    before the key exists.
  returned: always
  type: str
fingerprint:
  description: A short digest of the public key.
  returned: always
  type: str
ssh_fingerprint:
  description: The public key's fingerprint as Git hosts and C(ssh-keygen -l) show it (C(SHA256:...)).
  returned: always
  type: str
rotated:
  description: Whether this run replaced the key (O(rotation_id)); false when the rotation was already done.
  returned: with O(rotation_id)
  type: bool
rotated_at:
  description: When the rotation O(rotation_id) was made (UTC, ISO 8601).
  returned: with O(rotation_id)
  type: str
old_public_key:
  description: The public half of the key replaced, to remove at the Git host (empty when there was none).
  returned: with O(rotation_id)
  type: str
old_fingerprint:
  description: The C(SHA256:...) fingerprint of the key replaced.
  returned: with O(rotation_id)
  type: str
new_fingerprint:
  description: The C(SHA256:...) fingerprint of the key made by the rotation.
  returned: with O(rotation_id)
  type: str
path:
  description: The private key file (O(path)).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.module import GitopsError, run_deploy_key
from ansible_collections.edgefleet.k8s.plugins.module_utils._gitops.options import DEPLOY_KEY


def main() -> None:
    module = AnsibleModule(argument_spec=DEPLOY_KEY, supports_check_mode=True)
    try:
        result = run_deploy_key(dict(module.params), module.check_mode)
    except GitopsError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
