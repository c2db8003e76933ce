#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: preflight_facts
short_description: Check that an edge node can run K3s or K0s, listing every problem
version_added: 0.1.0
description:
  - Gathers what matters for K3s/K0s on an edge node, reading C(/proc) and C(/sys) only (it never loads kernel
    modules, so it is safe in containers) - architecture, RAM, kernel features (overlay, br_netfilter, conntrack,
    an iptables or nft binary), the cgroup layout (v1, v2 or hybrid) and its enabled controllers, free disk on the
    data path, clock synchronisation, the Secure Boot state from the UEFI variables and, on a Raspberry Pi, the
    cgroup flags of the boot cmdline.
  - Compares them with what the node's role needs and returns one sentence per problem, naming the host and the
    variable to change. The module itself never fails on a problem; the C(edgefleet.k8s.preflight) role does,
    with all of them in one message.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes.read_only
options:
  host:
    description: The node's name, used in the messages.
    type: str
    required: true
  distribution:
    description: The distribution the node will run.
    type: str
    choices: [k3s, k0s]
    default: k3s
  role:
    description: The node's role (for K0s, server = controller and agent = worker).
    type: str
    choices: [server, agent]
    default: agent
  expected_arch:
    description: The architecture the fleet says the node has; a different one is a problem.
    type: str
    choices: [amd64, arm64, armhf]
  min_ram_mb:
    description: Minimum C(MemTotal) in MiB for this node's role.
    type: int
    default: 512
  min_ram_var:
    description: The variable name shown in the RAM message.
    type: str
    default: edgefleet_preflight_min_ram_mb
  data_path:
    description: The data directory whose file system must have room (its nearest existing parent is checked).
    type: path
    default: /var/lib
  min_free_disk_mb:
    description: Minimum free space at O(data_path), in MiB.
    type: int
    default: 2048
  min_free_disk_var:
    description: The variable name shown in the disk message.
    type: str
    default: edgefleet_preflight_min_free_disk_mb
  cgroup_controllers:
    description: cgroup controllers that must be enabled.
    type: list
    elements: str
    default: [cpu, cpuset, memory, pids]
  features:
    description: Kernel features that must be present.
    type: list
    elements: str
    choices: [overlay, br_netfilter, conntrack, netfilter_tool]
    default: [overlay, br_netfilter, conntrack, netfilter_tool]
  require_clock_sync:
    description:
      - Whether an unsynchronised clock is a problem. In a container it is only a warning (the host keeps the time).
    type: bool
    default: true
  require_secure_boot:
    description:
      - Whether a node that does not boot with Secure Boot enforced is a problem. The state is read from the UEFI
        variables C(SecureBoot) and C(SetupMode) (efivarfs, or the older sysfs efivars); a node in setup mode, one
        booted without UEFI, or one whose variables cannot be read (a container) does not pass.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Check the node
  edgefleet.k8s.preflight_facts:
    host: "{{ inventory_hostname }}"
    distribution: k3s
    role: server
    expected_arch: arm64
    min_ram_mb: 1536
  register: preflight

- name: Stop with every problem
  ansible.builtin.fail:
    msg: "{{ preflight.problems | join('\n') }}"
  when: preflight.problems | length > 0
"""

RETURN = r"""
problems:
  description: One sentence per problem; empty when the node is fit.
  returned: always
  type: list
  elements: str
  sample: ["node3 has 1.6 GB RAM; K3S server needs ≥ 2.0 GB (edgefleet_preflight_min_ram_mb.server)"]
warnings_list:
  description: Things worth knowing that do not stop the run (for example clock sync in a container).
  returned: always
  type: list
  elements: str
ansible_facts:
  description: The gathered facts.
  returned: always
  type: dict
  contains:
    edgefleet_preflight:
      description: >-
        arch, machine, mem_total_mb, kernel, features, cgroup_mode, cgroup_controllers, data_path, free_disk_mb,
        clock_synced, clock_source, in_container, pi_model, pi_cmdline_path, pi_cmdline_ok, secure_boot (enabled,
        disabled, setup_mode, not_efi or unknown) and secure_boot_source (the variable it was read from, or why
        none was).
      type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry
from ansible_collections.edgefleet.k8s.plugins.module_utils._preflight import checks as preflight


def _clock(module: AnsibleModule) -> tuple[bool | None, str]:
    timedatectl = module.get_bin_path("timedatectl")
    if timedatectl:
        rc, out, _err = module.run_command([timedatectl, "show", "-p", "NTPSynchronized", "--value"])
        if rc == 0 and out.strip() in ("yes", "no"):
            return out.strip() == "yes", "timedatectl"
    chronyc = module.get_bin_path("chronyc")
    if chronyc:
        rc, out, _err = module.run_command([chronyc, "-n", "tracking"])
        if rc == 0:
            synced = "Leap status     : Normal" in out
            return synced, "chronyc"
    return None, "no timedatectl or chronyc answer"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "required": True},
            "distribution": {"type": "str", "choices": list(registry.NAMES), "default": registry.NAMES[0]},
            "role": {"type": "str", "choices": ["server", "agent"], "default": "agent"},
            "expected_arch": {"type": "str", "choices": ["amd64", "arm64", "armhf"]},
            "min_ram_mb": {"type": "int", "default": 512},
            "min_ram_var": {"type": "str", "default": "edgefleet_preflight_min_ram_mb"},
            "data_path": {"type": "path", "default": "/var/lib"},
            "min_free_disk_mb": {"type": "int", "default": 2048},
            "min_free_disk_var": {"type": "str", "default": "edgefleet_preflight_min_free_disk_mb"},
            "cgroup_controllers": {"type": "list", "elements": "str", "default": list(preflight.DEFAULT_CONTROLLERS)},
            "features": {
                "type": "list",
                "elements": "str",
                "choices": ["overlay", "br_netfilter", "conntrack", "netfilter_tool"],
                "default": ["overlay", "br_netfilter", "conntrack", "netfilter_tool"],
            },
            "require_clock_sync": {"type": "bool", "default": True},
            "require_secure_boot": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    binaries = {name: module.get_bin_path(name) is not None for name in ("iptables", "nft")}
    facts = preflight.gather(p["data_path"], binaries, _clock(module))
    req = preflight.Requirements(
        host=p["host"],
        distribution=p["distribution"],
        role=p["role"],
        expected_arch=p["expected_arch"],
        min_ram_mb=p["min_ram_mb"],
        min_ram_var=p["min_ram_var"],
        min_free_disk_mb=p["min_free_disk_mb"],
        min_free_disk_var=p["min_free_disk_var"],
        controllers=tuple(p["cgroup_controllers"]),
        features=tuple(p["features"]),
        require_clock_sync=p["require_clock_sync"],
        require_secure_boot=p["require_secure_boot"],
    )
    problems, warnings = preflight.evaluate(facts, req)
    module.exit_json(
        changed=False,
        problems=problems,
        warnings_list=warnings,
        ansible_facts={"edgefleet_preflight": facts.as_dict()},
    )


if __name__ == "__main__":
    main()
