#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: recovery_escrow
short_description: Generate or read a node's LUKS recovery passphrase, escrowed on the controller with ansible-vault
version_added: 0.1.0
description:
  - Runs on the controller only (action plugin). Looks for C(<escrow_dir>/<host>.<volume>.recovery.vault).
  - If it exists, decrypts it with the vault secret the play was given and returns the passphrase.
  - If not, generates a new passphrase (8 groups of 6 characters, about 246 bits), encrypts it with the configured
    vault secret and writes the file atomically with mode 0600 (directory 0700). Nothing is ever written in clear.
  - "The task B(must) carry C(no_log: true): the passphrase is returned as RV(passphrase) for the next task only."
  - Fails with a clear message when no vault secret is configured.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - edgefleet.k8s.attributes
  - edgefleet.k8s.attributes.action
attributes:
  check_mode:
    details: In check mode a missing file is not written; a throw-away passphrase is returned.
  diff_mode:
    support: none
options:
  escrow_dir:
    description: The controller directory holding the escrow files.
    type: str
    required: true
  host:
    description: The node name (the inventory host name).
    type: str
    required: true
  volume:
    description: The volume name on that node.
    type: str
    default: data
  vault_id:
    description: The vault id to encrypt with (default the first configured secret).
    type: str
"""

EXAMPLES = r"""
- name: Recovery passphrase (escrowed on the controller)
  edgefleet.k8s.recovery_escrow:
    escrow_dir: "{{ inventory_dir }}/escrow"
    host: "{{ inventory_hostname }}"
  register: recovery
  no_log: true
"""

RETURN = r"""
path:
  description: The escrow file on the controller.
  returned: success
  type: str
created:
  description: Whether a new passphrase was generated (and written, outside check mode).
  returned: success
  type: bool
passphrase:
  description: The recovery passphrase. Secret; the task must use C(no_log).
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "escrow_dir": {"type": "str", "required": True},
            "host": {"type": "str", "required": True},
            "volume": {"type": "str", "default": "data"},
            "vault_id": {"type": "str"},
        },
        supports_check_mode=True,
    )
    # The escrow lives on the controller: this only runs if the action plugin was bypassed.
    module.fail_json(msg="edgefleet.k8s.recovery_escrow runs on the controller through its action plugin only")


if __name__ == "__main__":
    main()
