#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: data_dir_migrate
short_description: Move an existing data directory onto a new (encrypted) volume, proven by checksum
version_added: 0.1.0
description:
  - Used by the C(edgefleet.k8s.disk_encryption) role when a node's data directory already holds data.
  - If O(path) is already the mount point of O(device), or holds no data, nothing is done.
  - Otherwise it stops the active services among O(services), mounts O(device) on a private temporary directory,
    copies the tree with C(cp -a), and compares a digest of both trees (relative path, type, mode, owner and content
    of every entry). On a mismatch it unmounts, starts the services again and fails; the source is untouched.
  - On a match it unmounts the volume and, when O(remove_source=true), empties O(path) so no plaintext copy stays on
    the unencrypted disk (an ordinary delete, not a secure erase). The caller mounts the volume at O(path) and starts
    the services in RV(stopped_services) again.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports whether data would be moved; stops nothing, copies nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description: The data directory (for example C(/var/lib/rancher)).
    type: path
    required: true
  device:
    description: The opened volume to move the data onto (for example C(/dev/mapper/edgefleet-data)).
    type: path
    required: true
  fstype:
    description: The filesystem on O(device).
    type: str
    default: ext4
  services:
    description: systemd units that use the data; the active ones are stopped before the copy.
    type: list
    elements: str
    default: []
  remove_source:
    description: Empty O(path) on the unencrypted disk after a verified copy.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Move /var/lib/rancher onto the encrypted volume
  edgefleet.k8s.data_dir_migrate:
    path: /var/lib/rancher
    device: /dev/mapper/edgefleet-data
    services: [k3s]
  register: moved
"""

RETURN = r"""
migrated:
  description: Whether data was (or, in check mode, would be) moved.
  returned: always
  type: bool
stopped_services:
  description: The services this task stopped; start them again once the volume is mounted.
  returned: always
  type: list
  elements: str
digest:
  description: The sha256 tree digest of the moved data (equal on both sides).
  returned: when migrated
  type: str
files:
  description: Number of regular files moved.
  returned: when migrated
  type: int
bytes:
  description: Bytes of regular files moved.
  returned: when migrated
  type: int
"""

import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils import disk_luks, disk_migrate


def _mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        return handle.read()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "device": {"type": "path", "required": True},
            "fstype": {"type": "str", "default": "ext4"},
            "services": {"type": "list", "elements": "str", "default": []},
            "remove_source": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    path = os.path.normpath(module.params["path"])
    device = module.params["device"]
    result = {"changed": False, "migrated": False, "stopped_services": []}
    dev_mm = disk_luks.majmin(disk_luks.dev_name(device))
    mounted_mm = disk_migrate.parse_mount_source(_mountinfo(), path)
    if mounted_mm is not None:
        if mounted_mm == dev_mm:
            module.exit_json(**result)
        module.fail_json(
            msg=f"{path} is already a mount point of another device ({mounted_mm}); not moving it", **result
        )
    if not disk_migrate.has_data(path):
        module.exit_json(**result)
    if module.check_mode:
        module.exit_json(changed=True, migrated=True, stopped_services=[])

    systemctl = module.get_bin_path("systemctl", required=True)
    stopped: list[str] = []
    for unit in module.params["services"]:
        rc, _o, _e = module.run_command([systemctl, "is-active", "--quiet", unit])
        if rc == 0:
            rc, _o, err = module.run_command([systemctl, "stop", unit])
            if rc != 0:
                module.fail_json(
                    msg=f"cannot stop {unit} before moving {path}: {err.strip()}", stopped_services=stopped
                )
            stopped.append(unit)

    def restart_and_fail(msg: str) -> None:
        for unit in stopped:
            module.run_command([systemctl, "start", unit])
        module.fail_json(msg=msg, stopped_services=[], migrated=False)

    tmp = tempfile.mkdtemp(prefix="edgefleet-migrate-", dir="/run")
    rc, _o, err = module.run_command(["mount", "-t", module.params["fstype"], device, tmp])
    if rc != 0:
        os.rmdir(tmp)
        restart_and_fail(f"cannot mount {device} to move {path}: {err.strip()}")
    try:
        source = disk_migrate.tree_digest(path)
        if disk_migrate.has_data(tmp):
            present = disk_migrate.tree_digest(tmp)
            if present.sha256 != source.sha256:
                restart_and_fail(
                    f"{device} already holds other data than {path} (digest {present.sha256[:16]} vs "
                    f"{source.sha256[:16]}); not overwriting it. Inspect both and empty one of them."
                )
        else:
            rc, _o, err = module.run_command(["cp", "-a", "--", f"{path}/.", f"{tmp}/"])
            if rc != 0:
                restart_and_fail(f"copying {path} onto {device} failed: {err.strip()}")
            os.sync()
        copied = disk_migrate.tree_digest(tmp)
        if copied.sha256 != source.sha256:
            restart_and_fail(
                f"the copy of {path} on {device} differs from the source (digest {copied.sha256[:16]} vs "
                f"{source.sha256[:16]}); the source is untouched"
            )
    finally:
        module.run_command(["umount", tmp])
        os.rmdir(tmp)
    if module.params["remove_source"]:
        for name in os.listdir(path):
            full = os.path.join(path, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.unlink(full)
    module.exit_json(
        changed=True,
        migrated=True,
        stopped_services=stopped,
        digest=source.sha256,
        files=source.files,
        bytes=source.bytes,
    )


if __name__ == "__main__":
    main()
