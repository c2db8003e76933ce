#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: luks_guard
short_description: Decide whether a block device may become an edgefleet LUKS2 data volume
version_added: 0.1.0
description:
  - Read-only safety gate run before any write to a data disk. It never changes the node.
  - Probes the device with C(blkid -p) and reads C(/proc/self/mountinfo), C(/proc/swaps) and C(/sys/class/block).
  - A device that is mounted (itself or a partition), used as swap, or backs the root filesystem is always refused.
  - A device holding a filesystem, a partition table or a LUKS header whose label is not O(owner_label) is refused
    unless O(allow_format=true) B(and) O(format_device_id) names one of the device's stable ids.
  - A LUKS header labelled O(owner_label) is reused (RV(action=reuse)), a blank device is formatted (RV(action=format)).
  - Every problem found is listed in the failure message, each naming the device and what was found.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes.read_only
options:
  device:
    description:
      - The data device, by a stable path (C(/dev/disk/by-id/...), C(/dev/disk/by-path/...), C(/dev/disk/by-uuid/...)).
    type: str
    required: true
  owner_label:
    description: The LUKS2 label that marks a header as created by edgefleet.
    type: str
    default: edgefleet-data
  allow_format:
    description:
      - Allow formatting a device holding a signature edgefleet did not create (needs O(format_device_id) too).
    type: bool
    default: false
  format_device_id:
    description: The stable id of the device that O(allow_format) applies to; must be one of the device's ids.
    type: str
  require_stable_path:
    description: Refuse a kernel name such as C(/dev/vdb), which may change across boots.
    type: bool
    default: true
seealso:
  - module: community.crypto.luks_device
  - module: edgefleet.k8s.clevis_binding
"""

EXAMPLES = r"""
- name: Check the data disk before encrypting it
  edgefleet.k8s.luks_guard:
    device: /dev/disk/by-id/virtio-edgefleet-data
  register: guard
"""

RETURN = r"""
action:
  description: C(format) for a blank (or explicitly allowed) device, C(reuse) for an edgefleet LUKS volume.
  returned: success
  type: str
  sample: format
found:
  description: What the device holds, in words.
  returned: always
  type: str
  sample: no signature (blank)
device_path:
  description: The kernel device the path resolves to.
  returned: always
  type: str
  sample: /dev/vdb
stable_ids:
  description: The device's stable paths under C(/dev/disk).
  returned: always
  type: list
  elements: str
luks_uuid:
  description: The LUKS UUID when the device already is an edgefleet volume.
  returned: success
  type: str
"""

import os
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._disk import luks as disk_luks


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def gather(module: AnsibleModule, requested: str) -> disk_luks.DeviceFacts:
    real = os.path.realpath(requested)
    try:
        is_block = stat.S_ISBLK(os.stat(real).st_mode)
    except OSError:
        is_block = False
    if not is_block:
        return disk_luks.DeviceFacts(requested=requested, path=real, is_block=False)
    name = disk_luks.dev_name(real)
    blkid = module.get_bin_path("blkid", required=True)
    rc, out, _err = module.run_command([blkid, "-p", "-o", "export", real])
    probe = disk_luks.parse_blkid_export(out) if rc == 0 else {}
    for key in ("DEVNAME", "PART_ENTRY_SCHEME"):
        probe.pop(key, None)
    own = {name, *disk_luks.partitions(name)}
    own_mm = {disk_luks.majmin(n) for n in own} - {None}
    mounts = disk_luks.parse_mountinfo(_read("/proc/self/mountinfo"))
    mounted = tuple(sorted({point for mm, point in mounts if mm in own_mm}))
    swaps = {disk_luks.dev_name(line.split()[0]) for line in _read("/proc/swaps").splitlines()[1:] if line.split()}
    root_mm = disk_luks.root_majmin(mounts)
    root_name = disk_luks.name_for_majmin(root_mm) if root_mm else None
    backs_root = bool(root_name) and bool(own & disk_luks.backing_disks(root_name or ""))
    holders = tuple(disk_luks.list_dir(f"/sys/class/block/{name}/holders"))
    return disk_luks.DeviceFacts(
        requested=requested,
        path=real,
        is_block=True,
        stable_ids=disk_luks.stable_ids_for(name),
        probe=probe,
        mounted_at=mounted,
        swap=bool(own & swaps),
        backs_root=backs_root,
        holders=holders,
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "device": {"type": "str", "required": True},
            "owner_label": {"type": "str", "default": disk_luks.OWNER_LABEL},
            "allow_format": {"type": "bool", "default": False},
            "format_device_id": {"type": "str"},
            "require_stable_path": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    params = module.params
    facts = gather(module, params["device"])
    decision = disk_luks.decide(
        facts,
        owner_label=params["owner_label"],
        allow_format=params["allow_format"],
        format_device_id=params["format_device_id"],
        require_stable=params["require_stable_path"],
    )
    result = {
        "changed": False,
        "found": decision.found,
        "device_path": facts.path,
        "stable_ids": list(facts.stable_ids),
    }
    if decision.problems:
        module.fail_json(
            msg=f"refusing to use {params['device']} as a data volume: " + "; ".join(decision.problems),
            problems=list(decision.problems),
            **result,
        )
    module.exit_json(action=decision.action, luks_uuid=decision.luks_uuid, **result)


if __name__ == "__main__":
    main()
