#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_files
short_description: Keep many files of a node in step in one module run
version_added: 0.4.0
description:
  - Compares every file of O(files) with the node's in one module run (bytes, mode, owner and group) and writes
    the ones that differ. A run that changes nothing costs one round trip to the node, where a template task
    costs two for each file.
  - Render the content on the controller, with the C(ansible.builtin.template) lookup, as a template task would.
  - A file whose content changes and that has a O(files[].validate) command is checked first, in a temporary
    file. If any validator refuses, B(nothing) is written and every refusal is named.
  - O(directories) are created, or get their mode and owner set, before any file is written.
  - Each file is written atomically (a temporary file in the same directory, created with the final mode and
    owner, then renamed over the target); missing parent directories not in O(directories) are created C(0755).
  - Bad input (a relative path, a path given twice, a mode that is not a quoted octal string, an unknown owner
    or group, a validator without C(%s)) fails before any file is read, listing every problem. A path of
    O(directories) that exists and is not a directory fails before anything is written.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  check_mode:
    details: Reports what would be written; validators do not run, as with a template task.
  diff_mode:
    details: The old and new content of each changed file, or its old and new mode and owner; the content of a
      O(files[].secret) file is never shown.
options:
  directories:
    description: Directories to create, or whose mode and owner to set, before the files are written.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the directory on the node.
        type: str
        required: true
      mode:
        description: The directory's mode, a quoted octal string such as C('0700').
        type: str
        required: true
      owner:
        description: The directory's owner, a user name or number.
        type: str
        default: root
      group:
        description: The directory's group, a group name or number.
        type: str
        default: root
  files:
    description: The files to keep in step, in the order they are checked and written.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file on the node.
        type: str
        required: true
      content:
        description: The whole content of the file (text, written as UTF-8).
        type: str
        required: true
      mode:
        description: The file's mode, a quoted octal string such as C('0644').
        type: str
        required: true
      owner:
        description: The file's owner, a user name or number.
        type: str
        default: root
      group:
        description: The file's group, a group name or number.
        type: str
        default: root
      validate:
        description:
          - A command that checks the new content before it is written; C(%s) stands for the file holding it.
            Split like a shell command line, run without a shell.
        type: str
      secret:
        description: The content is a secret; the diff shows neither the old nor the new content.
        type: bool
        default: false
  root:
    description: The directory the paths are under. Only tests change it.
    type: path
    default: /
"""

EXAMPLES = r"""
- name: Write the hardening files in one round trip
  edgefleet.k8s.node_files:
    files:
      - path: /etc/sysctl.d/90-edgefleet.conf
        content: "{{ lookup('ansible.builtin.template', 'sysctl.conf.j2') }}"
        mode: "0644"
      - path: /etc/ssh/sshd_config.d/50-edgefleet.conf
        content: "{{ lookup('ansible.builtin.template', 'sshd.conf.j2') }}"
        mode: "0600"
        validate: /usr/sbin/sshd -t -f %s
  become: true
  register: hardening_files

- name: Reload sshd when its drop-in changed
  ansible.builtin.systemd_service:
    name: ssh
    state: reloaded
  when: "'/etc/ssh/sshd_config.d/50-edgefleet.conf' in hardening_files.changed_paths"
"""

RETURN = r"""
changed_paths:
  description: The directories, then the files, that were (or in check mode would be) created or changed, in the
    order given.
  returned: always
  type: list
  elements: str
  sample: [/etc/ssh/sshd_config.d/50-edgefleet.conf]
content_changed_paths:
  description: The part of RV(changed_paths) whose content changed (the rest changed mode or owner only).
  returned: always
  type: list
  elements: str
  sample: [/etc/ssh/sshd_config.d/50-edgefleet.conf]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.file_set import run_node_files
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.result import finish


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "directories": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "path": {"type": "str", "required": True},
                    "mode": {"type": "str", "required": True},
                    "owner": {"type": "str", "default": "root"},
                    "group": {"type": "str", "default": "root"},
                },
            },
            "files": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "path": {"type": "str", "required": True},
                    "content": {"type": "str", "required": True},
                    "mode": {"type": "str", "required": True},
                    "owner": {"type": "str", "default": "root"},
                    "group": {"type": "str", "default": "root"},
                    "validate": {"type": "str"},
                    "secret": {"type": "bool", "default": False},
                },
            },
            "root": {"type": "path", "default": "/"},
        },
        supports_check_mode=True,
    )

    def run(argv: list[str]) -> tuple[int, str, str]:
        rc, out, err = module.run_command(argv)
        return rc, out, err

    finish(module, run_node_files(module.params, module.check_mode, run, module.tmpdir))


if __name__ == "__main__":
    main()
