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
    the services in RV(stopped_services) again, then removes RV(journal).
  - The move is journalled on the root disk (O(journal_dir)), written atomically before services stop and again after
    the copy is verified. A run that died half-way is finished by the next one. Services it had stopped are returned in
    RV(stopped_services) so the caller starts them; a partial copy on the volume is made again (the source is emptied
    only after a verified copy); a verified copy whose source was half-emptied is kept and the emptying finished.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  check_mode:
    details: Reports whether data would be moved; stops nothing, copies nothing.
  diff_mode:
    support: none
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
  journal_dir:
    description: Directory on the root disk for the move journal (one JSON file per data directory, mode 0600).
    type: path
    default: /var/lib/edgefleet/data-dir-migrate
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
resumed:
  description: Whether a journal of an earlier, interrupted move was found (and that move finished).
  returned: always
  type: bool
journal:
  description: The journal file of this data directory; remove it once RV(stopped_services) run again.
  returned: always
  type: str
  sample: /var/lib/edgefleet/data-dir-migrate/var-lib-rancher.json
stopped_services:
  description: The services this task, or an interrupted earlier run, stopped; start them once the volume is mounted.
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

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._disk import luks as disk_luks
from ansible_collections.edgefleet.k8s.plugins.module_utils._disk import migrate as disk_migrate


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
            "journal_dir": {"type": "path", "default": disk_migrate.JOURNAL_DIR},
        },
        supports_check_mode=True,
    )
    path = os.path.normpath(module.params["path"])
    device = module.params["device"]
    journal = disk_migrate.journal_file(path, module.params["journal_dir"])
    try:
        pending = disk_migrate.load_journal(journal)
    except disk_migrate.MoveError as exc:
        module.fail_json(msg=str(exc), stopped_services=[])
    # Services an earlier, interrupted run stopped: started again by the caller like our own.
    carried = pending.services if pending is not None else []
    result = {
        "changed": False,
        "migrated": False,
        "resumed": pending is not None,
        "journal": journal,
        "stopped_services": [] if module.check_mode else carried,
    }
    mounted_mm = disk_migrate.parse_mount_source(_mountinfo(), path)
    if mounted_mm is not None:
        if mounted_mm == disk_luks.majmin(disk_luks.dev_name(device)):
            module.exit_json(**result)
        module.fail_json(
            msg=f"{path} is already a mount point of another device ({mounted_mm}); not moving it", **result
        )
    if not disk_migrate.has_data(path):
        module.exit_json(**result)
    if module.check_mode:
        result.update(changed=True, migrated=True)
        module.exit_json(**result)

    systemctl = module.get_bin_path("systemctl", required=True)

    def run(argv: list[str]) -> tuple[int, str, str]:
        if argv[0] == "systemctl":
            argv = [systemctl, *argv[1:]]
        rc, out, err = module.run_command(argv)
        return rc, out, err

    mover = disk_migrate.Mover(
        path=path,
        device=device,
        fstype=module.params["fstype"],
        services=module.params["services"],
        run=run,
        journal=journal,
        remove_source=module.params["remove_source"],
    )
    try:
        moved = mover.move(pending)
    except disk_migrate.MoveError as exc:
        module.fail_json(msg=str(exc), stopped_services=[], migrated=False, journal=journal)
    digest = moved.digest
    module.exit_json(
        changed=True,
        migrated=True,
        resumed=moved.resumed,
        journal=journal,
        stopped_services=moved.stopped_services or [],
        digest=digest.sha256 if digest else None,
        files=digest.files if digest else None,
        bytes=digest.bytes if digest else None,
    )


if __name__ == "__main__":
    main()
