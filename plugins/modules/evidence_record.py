#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: evidence_record
short_description: Write a JSON evidence record of what was revoked and rotated, refusing any secret in it
version_added: 0.2.0
description:
  - Writes O(record) as JSON to C(<dir>/<name>-<stamp>.json), mode 0600 in a 0700 folder, on the host it runs on
    (the lifecycle role runs it on the controller). An earlier record is never overwritten.
  - A run that changed nothing (O(changed=false)) writes no new record when one of the same O(name) exists, so a
    second run of a decommission reports no change.
  - Before writing, the JSON text is searched for every value of O(secrets) (those of 8 characters or more); any
    found refuses the write, and the message says how many, never which.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  check_mode:
    details: Reports the file it would write.
  diff_mode:
    support: none
    details: A new file each time; RV(path) names it.
options:
  dir:
    description: The folder of the records.
    type: path
    required: true
  name:
    description: The record's name, for example C(decommission-node7); letters, digits, C(.), C(_), C(-).
    type: str
    required: true
  stamp:
    description: The run's UTC time as C(20261206T143000Z), the end of the file name.
    type: str
    required: true
  record:
    description: What to record - times, fingerprints, names, outcomes; never a secret.
    type: dict
    required: true
  changed:
    description: Whether the run changed anything; without a change and with an earlier record, nothing is written.
    type: bool
    default: true
  secrets:
    description: Secret values that must not appear in the record (the tokens the run handled).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Write the evidence record on the controller
  edgefleet.k8s.evidence_record:
    dir: "{{ playbook_dir }}/evidence"
    name: "decommission-{{ node }}"
    stamp: "{{ now(utc=true, fmt='%Y%m%dT%H%M%SZ') }}"
    record: "{{ record }}"
    changed: "{{ anything_changed }}"
    secrets: "{{ tokens }}"
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The record written (or, when none was needed, the newest earlier one).
  returned: success
  type: str
records:
  description: Every record of O(name), oldest first.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._common import evidence


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "name": {"type": "str", "required": True},
            "stamp": {"type": "str", "required": True},
            "record": {"type": "dict", "required": True},
            "changed": {"type": "bool", "default": True},
            "secrets": {"type": "list", "elements": "str", "default": [], "no_log": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    result = evidence.write(p["dir"], p["name"], p["record"], p["stamp"], p["changed"], p["secrets"], module.check_mode)
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
