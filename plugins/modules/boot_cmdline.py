#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: boot_cmdline
short_description: Ensure tokens on a Raspberry Pi style one-line kernel cmdline file
version_added: 0.1.0
description:
  - Adds the given tokens (by default C(cgroup_memory=1 cgroup_enable=memory), which K3s and K0s need on
    Raspberry Pi OS) to a one-line C(cmdline.txt), once each, keeping every other token and its order.
    A token with the same key and another value (C(cgroup_memory=0)) is replaced.
  - When O(path) is not given, uses C(/boot/firmware/cmdline.txt) (Bookworm) if it exists, else
    C(/boot/cmdline.txt) (older releases).
  - Writes atomically and keeps the file's mode. Returns RV(reboot_required) when it changed the file.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
options:
  path:
    description:
      - The cmdline file.
      - Default, the first of C(/boot/firmware/cmdline.txt) and C(/boot/cmdline.txt) that exists.
    type: path
  tokens:
    description: Tokens that must be on the line.
    type: list
    elements: str
    default: [cgroup_memory=1, cgroup_enable=memory]
"""

EXAMPLES = r"""
- name: Enable the memory cgroup on a Raspberry Pi
  edgefleet.k8s.boot_cmdline:
  register: cmdline
  become: true

- name: Reboot when the boot flags changed
  ansible.builtin.reboot:
  when: cmdline.reboot_required
  become: true
"""

RETURN = r"""
path:
  description: The cmdline file that was checked.
  returned: always
  type: str
  sample: /boot/firmware/cmdline.txt
reboot_required:
  description: True when the file changed (the new flags take effect after a reboot).
  returned: always
  type: bool
  sample: true
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.files import atomic_write, text_diff
from ansible_collections.edgefleet.k8s.plugins.module_utils._preflight import checks as preflight


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path"},
            "tokens": {
                "type": "list",
                "elements": "str",
                "default": list(preflight.PI_CMDLINE_TOKENS),
                "no_log": False,
            },
        },
        supports_check_mode=True,
    )
    found = module.params["path"] or preflight.pi_cmdline_path("/")
    if not found or not os.path.isfile(found):
        tried = module.params["path"] or " and ".join(preflight.PI_CMDLINE_PATHS)
        module.fail_json(msg=f"boot cmdline file not found: tried {tried}")
    path = str(found)
    with open(path, encoding="utf-8") as handle:
        before = handle.read()
    after = preflight.cmdline_with_tokens(before, module.params["tokens"])
    changed = before != after
    result = {"changed": changed, "path": path, "reboot_required": changed}
    if module._diff:
        result["diff"] = text_diff(path, before, after)
    if changed and not module.check_mode:
        info = os.stat(path)
        atomic_write(path, after.encode(), mode=info.st_mode & 0o7777, uid=info.st_uid, gid=info.st_gid)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
