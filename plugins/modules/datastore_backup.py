#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: datastore_backup
short_description: Back up a K3s or K0s server's datastore on the node, with a checksum manifest and retention
version_added: 0.2.0
description:
  - Takes one backup of the datastore of the server it runs on, then deletes the oldest backups of the same kind
    beyond O(keep). Restoring is the separate module M(edgefleet.k8s.datastore_restore), so that a restore is always
    an explicit task naming its backup.
  - B(SQLite) (kine, O(datastore=sqlite)) is copied online with SQLite's backup API through a read-only connection
    with a busy timeout, while kine keeps writing. The copy is one read transaction, so it holds every transaction
    committed before it began, including those still only in the write-ahead log; a file copy of the live database
    is never taken. The copy must pass C(PRAGMA integrity_check); its kine row count and highest revision are recorded.
  - B(etcd) (O(datastore=etcd)) is snapshotted by the distribution's own command, run on the server while it runs
    (K3s C(k3s etcd-snapshot save --name ... --dir ...); K0s C(k0s backup --save-path=...), an archive that also holds
    the PKI and k0s.yaml). The command writes into an empty staging directory of ours; the one file it leaves is kept.
  - An C(external) datastore is backed up by its own operator; the module then changes nothing and warns.
  - Each backup is a data file and a JSON manifest beside it (sha256, size, source, time, label, row count,
    integrity), both named C(edgefleet-<kind>-<UTC timestamp>[-<label>]), files C(0600) in a C(0700) directory.
    The data file is written to a temp file in that directory, fsynced and linked to its name; the manifest is written
    last, so an interrupted backup leaves no manifest and is never mistaken for a complete one.
  - Retention deletes only backups of ours (a name of ours and a manifest of ours that names the file), never any
    other file in O(backup_dir).
  - C(changed) is true only when a backup was written (in check mode, would be).
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  check_mode:
    details: Reports the backups retention would delete and checks that the SQLite database exists; writes nothing,
      creates no directory and runs no snapshot command.
  diff_mode:
    details: The names of the backups in O(backup_dir) before and after.
options:
  distribution:
    description: The distribution, C(edgefleet_distribution) of the inventory contract.
    type: str
    required: true
    choices: [k3s, k0s]
  datastore:
    description: C(edgefleet_datastore) of the inventory contract.
    type: str
    default: sqlite
    choices: [sqlite, etcd, external]
  backup_dir:
    description:
      - The directory the backups are kept in (created C(0700)).
      - Default, the distribution's (C(backup_dir) in the C(edgefleet.k8s.distribution_facts) filter), on the data
        volume so a backup is as protected as the datastore it copies (K3s C(/var/lib/rancher/edgefleet-backups),
        K0s C(/var/lib/k0s/edgefleet-backups)).
    type: path
  db_path:
    description: The SQLite database. Default, the distribution's (C(sqlite_db) of its facts).
    type: path
  keep:
    description: How many backups of this kind to keep, the newest; at least 1 (the one just taken).
    type: int
    default: 5
  label:
    description: A note for the backup (for example C(pre-upgrade v1.36.4+lab)), kept in the manifest as given and
      in the name as lower case letters, digits and dashes.
    type: str
    default: ''
  timeout:
    description: Seconds to wait for a lock on the SQLite database (its busy timeout).
    type: float
    default: 30.0
notes:
  - A K3s on-demand snapshot is taken into a staging directory and renamed, so K3s may list a snapshot record whose
    file it cannot find; K3s reconciles its records.
  - C(k0s backup) also covers a kine/SQLite datastore; this module backs SQLite up with the SQLite backup API for both
    distributions, so the backup and its checks are the same everywhere.
seealso:
  - module: edgefleet.k8s.datastore_restore
  - name: K3s etcd snapshots
    description: Upstream documentation of C(k3s etcd-snapshot).
    link: https://docs.k3s.io/cli/etcd-snapshot
  - name: k0s backup and restore
    description: Upstream documentation of C(k0s backup) and C(k0s restore).
    link: https://docs.k0sproject.io/stable/backup/
  - name: SQLite online backup API
    description: How the SQLite copy is taken.
    link: https://www.sqlite.org/backup.html
"""

EXAMPLES = r"""
- name: Back up the datastore before the server is touched
  edgefleet.k8s.datastore_backup:
    distribution: "{{ edgefleet_distribution }}"
    datastore: "{{ edgefleet_datastore }}"
    label: "pre-upgrade {{ edgefleet_version }}"
    keep: 3
  register: datastore_backup
  when: edgefleet_node_role == 'server'

- name: Fetch the new backup and its manifest to the controller
  ansible.builtin.fetch:
    src: "{{ item }}"
    dest: "backups/{{ inventory_hostname }}/"
    flat: true
  loop:
    - "{{ datastore_backup.backup.path }}"
    - "{{ datastore_backup.backup.manifest_path }}"
  when: datastore_backup.backup is not none
"""

RETURN = r"""
backup:
  description: The manifest of the backup taken, with its C(path) and C(manifest_path); null in check mode and for
    an C(external) datastore.
  returned: always
  type: dict
  sample:
    name: edgefleet-sqlite-20261205T231500123456Z-pre-upgrade
    kind: sqlite
    file: edgefleet-sqlite-20261205T231500123456Z-pre-upgrade.db
    path: /var/lib/rancher/edgefleet-backups/edgefleet-sqlite-20261205T231500123456Z-pre-upgrade.db
    manifest_path: /var/lib/rancher/edgefleet-backups/edgefleet-sqlite-20261205T231500123456Z-pre-upgrade.json
    sha256: 9f2c0e8b4d7a1f3e6c5b2a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f
    size: 24576
    rows: 1287
    revision: 1342
    integrity: ok
backups:
  description: Every backup of ours in O(backup_dir) after the task, oldest first (manifests as in RV(backup)).
  returned: always
  type: list
  elements: dict
deleted:
  description: The names of the backups retention deleted (in check mode, would delete).
  returned: always
  type: list
  elements: str
ignored:
  description: Manifest files with a name of ours that could not be read as ours; left alone.
  returned: always
  type: list
  elements: str
backup_dir:
  description: The backup directory used.
  returned: always
  type: str
units:
  description: The units that hold the datastore, as the distribution says; a restore stops them.
  returned: always
  type: list
  elements: str
  sample: [k3s.service]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import backup_module


def main() -> None:
    backup_module.run_module(AnsibleModule, "backup")


if __name__ == "__main__":
    main()
