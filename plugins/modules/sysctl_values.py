#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sysctl_values
short_description: Set many running kernel parameters in one module run
version_added: 0.2.0
description:
  - Reads each kernel parameter in O(values) from C(/proc/sys) and writes the ones whose running value differs.
    Every parameter is checked in this one run, so a run that changes nothing costs one round trip to the node.
  - Values compare the way the kernel prints them (tokens separated by one space), so C(4096 87380 6291456)
    matches however it is spaced. A boolean is written as C(1) or C(0).
  - A parameter this kernel does not have is skipped and listed in RV(absent). A value the kernel refuses, or
    does not keep as written, fails the task; every parameter is still tried and every refusal is named.
  - Sets running values only. The values after a reboot belong in C(/etc/sysctl.d), which the
    edgefleet.k8s.os_hardening role writes as files.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
options:
  values:
    description: Kernel parameter names (dot-separated, as C(sysctl) prints them) and their values.
    type: dict
    required: true
  root:
    description: Where the kernel's parameters are. Only tests change it.
    type: path
    default: /proc/sys
"""

EXAMPLES = r"""
- name: Apply the network hardening sysctls now
  edgefleet.k8s.sysctl_values:
    values:
      net.ipv4.conf.all.accept_redirects: 0
      net.ipv4.tcp_syncookies: 1
  become: true
"""

RETURN = r"""
applied:
  description: The parameters whose running value was (or in check mode would be) written.
  returned: always
  type: list
  elements: str
  sample: [net.ipv4.tcp_syncookies]
absent:
  description: The parameters this kernel does not have; they were skipped.
  returned: always
  type: list
  elements: str
  sample: [kernel.keys.root_maxbytes]
values:
  description: The running value of every parameter the kernel has, after the run.
  returned: always
  type: dict
  sample: {net.ipv4.tcp_syncookies: "1"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.result import finish
from ansible_collections.edgefleet.k8s.plugins.module_utils._hardening.sysctl import run_sysctl_values


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "values": {"type": "dict", "required": True},
            "root": {"type": "path", "default": "/proc/sys"},
        },
        supports_check_mode=True,
    )
    finish(module, run_sysctl_values(module.params, module.check_mode))


if __name__ == "__main__":
    main()
