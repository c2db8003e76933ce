#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: tang_keys
short_description: Rotate a Tang server's keys, then retire the old ones once every client is rebound
version_added: 0.2.0
description:
  - Runs on the Tang server. The Tang way, in two steps with the clients rebound in between.
  - O(state=rotated) - new keys are generated with O(keygen) (advertised at once), then the keys advertised before
    are renamed to hidden files (C(.<name>.jwk)) - no longer advertised, still able to recover the clients bound to
    them, so every client still unlocks. Rebind each client next (C(clevis luks regen)).
  - O(state=retired) - the hidden old keys of the rotation are deleted. From then on a disk bound only to them (a
    stolen disk) can never unlock through this Tang server. Run it only after every client was rebound.
  - Each rotation has an ID. Its record (C(<parent of db_dir>/edgefleet-tang-rotations/<id>.json), 0600) holds key
    file names and times, never key material; a second run with the same ID changes nothing.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  diff_mode:
    support: none
    details: Key files are secrets; RV(old_keys) and RV(new_keys) name them.
options:
  db_dir:
    description: The Tang key directory (Debian C(/var/lib/tang), Fedora and RHEL C(/var/db/tang)).
    type: path
    default: /var/lib/tang
  rotation_id:
    description: Names the rotation, for example C(decommission-node7).
    type: str
    required: true
  state:
    description: C(rotated) makes new keys and hides the old; C(retired) deletes the hidden old keys.
    type: str
    choices: [rotated, retired]
    default: rotated
  keygen:
    description: The key generator, given O(db_dir) as its last argument.
    type: list
    elements: str
    default: [/usr/libexec/tangd-keygen]
"""

EXAMPLES = r"""
- name: Rotate the site's Tang keys
  edgefleet.k8s.tang_keys:
    rotation_id: decommission-node7
  delegate_to: tang-site-a
  run_once: true
"""

RETURN = r"""
old_keys:
  description: The key files advertised before the rotation (now hidden, or deleted once retired).
  returned: success
  type: list
  elements: str
new_keys:
  description: The key files the rotation made.
  returned: success
  type: list
  elements: str
rotated_at:
  description: When the rotation was made (UTC).
  returned: success, unless in check mode
  type: str
retired:
  description: Whether the old keys are deleted.
  returned: success
  type: bool
"""

from collections.abc import Sequence

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._disk import tang


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "db_dir": {"type": "path", "default": "/var/lib/tang"},
            "rotation_id": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["rotated", "retired"], "default": "rotated"},
            "keygen": {"type": "list", "elements": "str", "default": ["/usr/libexec/tangd-keygen"], "no_log": False},
        },
        supports_check_mode=True,
    )
    p = module.params

    def run(argv: Sequence[str]) -> tuple[int, str, str]:
        rc, out, err = module.run_command(list(argv))
        return int(rc), str(out), str(err)

    if p["state"] == "rotated":
        result = tang.rotate(p["db_dir"], p["rotation_id"], p["keygen"], run, module.check_mode)
    else:
        result = tang.retire(p["db_dir"], p["rotation_id"], module.check_mode)
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
