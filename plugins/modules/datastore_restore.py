#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: datastore_restore
short_description: Restore a named, verified datastore backup on a K3s or K0s server
version_added: 0.2.0
description:
  - Restores one backup made by M(edgefleet.k8s.datastore_backup). A restore is never implied; O(backup) must name
    the backup, and the task fails, touching nothing, when it names none, names one that is not in O(backup_dir), or
    names one whose data file no longer matches the sha256 and size in its manifest.
  - With O(manage_units=true) the active units among O(units) are stopped first and started again afterwards (also
    after a failed restore, which leaves the current datastore in place).
  - B(SQLite). The backup is copied into a temp file beside the database and checked against its manifest again.
    Then the current database and its C(-wal) and C(-shm) are renamed aside to
    C(<database>.pre-restore-<UTC timestamp>) (with C(-wal) and C(-shm) after it, so SQLite still pairs them; nothing
    committed is lost), and the copy is renamed into place. The module refuses while any process holds the database
    open.
  - B(etcd). The distribution's own restore runs with the server stopped (K3s
    C(k3s server --cluster-reset --cluster-reset-restore-path=<snapshot>), which exits when done; K0s
    C(k0s restore <archive>), with the archive's k0s.yaml written into O(backup_dir), not over the managed config).
    On a K3s HA cluster the other servers must be stopped before the restored server starts, and then rejoin with
    O(rejoin=true), one at a time.
  - B(Rejoin) (O(rejoin=true), etcd, K3s). On one of the other servers of the cluster, after the restore, it stops the
    server unit, renames its C(server/db) aside to C(server/db.pre-restore-<UTC timestamp>) (never deleted), and
    starts the unit, which joins the restored cluster again through its C(server) URL. O(backup) is then optional
    and only names the restore in the messages. A failure after the stop leaves the server stopped.
  - Messages name the node, the backup and what was found and moved aside.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  check_mode:
    details: Verifies the backup against its manifest and reports what would be moved aside and which active units
      would be stopped (a read-only C(systemctl is-active)); changes nothing.
  diff_mode:
    details: The database's sha256 and size before, and the backup's after (for etcd, the data directory and the
      snapshot).
options:
  distribution:
    description: The distribution, C(edgefleet_distribution) of the inventory contract.
    type: str
    required: true
    choices: [k3s, k0s]
  datastore:
    description: C(edgefleet_datastore) of the inventory contract; the backup must be of this kind.
    type: str
    default: sqlite
    choices: [sqlite, etcd]
  backup:
    description: The backup to restore, by its name (the C(name) of
      RV(edgefleet.k8s.datastore_backup#module:backup)), its data file name or its manifest file name, in
      O(backup_dir). Not a path. Required for a restore (the task refuses without it); with O(rejoin=true) only
      named in the messages.
    type: str
  backup_dir:
    description: The directory the backups are kept in. Default, the distribution's (C(backup_dir) of its facts).
    type: path
  db_path:
    description: The SQLite database to restore into. Default, the distribution's (C(sqlite_db) of its facts).
    type: path
  units:
    description: The units that hold the datastore. Default, the distribution's (C(datastore_units) of its facts, the
      server unit).
    type: list
    elements: str
  manage_units:
    description: Stop the active units among O(units) before the restore and start them again after it. Off, the caller
      stops them; the SQLite restore still refuses while a process holds the database open.
    type: bool
    default: true
  rejoin:
    description: Do not restore here; drop this server's etcd data (moved aside, never deleted) and start it again so
      it rejoins the cluster restored on another server of the cluster. Needs O(datastore=etcd); K3s only (K0s has no
      such path in this collection). Run it on the other servers one at a time, after the restore.
    type: bool
    default: false
notes:
  - The unit tests check the command each strategy builds and the checks before it. The K3s etcd restore and the
    rejoin of the other servers run on the lab against the K3s stand-in (a real etcd, not K3s); a K0s etcd restore
    runs nowhere here. See C(docs/upgrades.md).
  - The K3s etcd restore needs the cluster token the snapshot was taken with (the collection's token file).
  - Moved-aside databases are never deleted by the collection; remove them once the restore is known good.
seealso:
  - module: edgefleet.k8s.datastore_backup
  - name: K3s etcd snapshot restore
    description: Upstream documentation of C(--cluster-reset-restore-path).
    link: https://docs.k3s.io/cli/etcd-snapshot
  - name: k0s backup and restore
    description: Upstream documentation of C(k0s restore).
    link: https://docs.k0sproject.io/stable/backup/
"""

EXAMPLES = r"""
- name: Restore the backup taken before the upgrade
  edgefleet.k8s.datastore_restore:
    distribution: "{{ edgefleet_distribution }}"
    datastore: "{{ edgefleet_datastore }}"
    backup: "{{ datastore_backup.backup.name }}"
  when: edgefleet_node_role == 'server'

# An etcd HA cluster (K3s): see docs/upgrades.md for the whole sequence (stop the other servers, restore on the
# init server, then the others rejoin one at a time).
- name: Drop this server's etcd data and rejoin the restored cluster
  edgefleet.k8s.datastore_restore:
    distribution: k3s
    datastore: etcd
    backup: "{{ backup }}"
    rejoin: true
  when: inventory_hostname != edgefleet_cluster_init_server
"""

RETURN = r"""
backup:
  description: The manifest of the backup restored (as RV(edgefleet.k8s.datastore_backup#module:backup)).
  returned: when the backup was found and verified
  type: dict
msg:
  description: What was done (or, in check mode, would be), naming the node, the backup and what was moved aside.
  returned: success
  type: str
moved_aside:
  description: The current database files renamed aside (C(from), C(to)); empty when there were none and for an etcd
    restore; with O(rejoin=true), the etcd data directory.
  returned: when the backup was found and verified
  type: list
  elements: dict
  sample:
    - from: /var/lib/rancher/k3s/server/db/state.db
      to: /var/lib/rancher/k3s/server/db/state.db.pre-restore-20261205T231500123456Z
command:
  description: The distribution's restore command that ran (etcd); empty for SQLite.
  returned: when the backup was found and verified
  type: list
  elements: str
stopped_units:
  description: The units this task stopped (in check mode, would stop) and started again.
  returned: always
  type: list
  elements: str
started_units:
  description: With O(rejoin=true), the units started (in check mode, would be) to rejoin.
  returned: when O(rejoin=true)
  type: list
  elements: str
units:
  description: The units that hold the datastore (O(units) or the distribution's).
  returned: always
  type: list
  elements: str
backup_dir:
  description: The backup directory used.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import backup_module


def main() -> None:
    backup_module.run_module(AnsibleModule, "restore")


if __name__ == "__main__":
    main()
