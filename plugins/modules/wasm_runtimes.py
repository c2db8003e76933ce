#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: wasm_runtimes
short_description: Deliver a site's WebAssembly RuntimeClasses and a K0s node's containerd WASM runtimes
version_added: 0.3.0
description:
  - On the init server (O(runtime_classes=true)), writes one C(RuntimeClass) per runtime of O(runtimes) into the
    folder the distribution applies by itself (K3s C(/var/lib/rancher/k3s/server/manifests/edgefleet-wasm.yaml),
    K0s C(/var/lib/k0s/manifests/edgefleet-wasm/edgefleet-wasm.yaml)). Each is named C(wasm-<runtime>) (apart from
    K3s's packaged classes), its C(handler) is the runtime's name and its C(scheduling.nodeSelector) is the label
    C(edgefleet.io/wasm-<runtime>=true) that only WASM-capable nodes carry.
  - On a node whose O(labels) name WASM runtimes, writes what its container runtime must be told of them, as the
    distribution strategy in C(plugins/module_utils/_distribution/) says. K0s gets the containerd drop-in
    C(/etc/k0s/containerd.d/edgefleet-wasm.toml) (one CRI runtime per WASM runtime, shims in C(/opt/kwasm/bin));
    K3s gets none, as it finds the shims itself.
  - Every file is written atomically, mode C(0600), only when its bytes, mode or owner differ. A file of ours no
    longer wanted (the site's runtimes removed, the node no longer labelled, another init server) is removed; a
    file without our header is never touched. The shims themselves are not placed by this module.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  diff_mode:
    details: The content before and after of each file written or removed (they hold no secrets).
options:
  distribution:
    description: The distribution, C(edgefleet_distribution) of the inventory contract.
    type: str
    required: true
    choices: [k3s, k0s]
  host:
    description: The host's inventory name, used in messages.
    type: str
    default: ''
  runtimes:
    description:
      - The site's WASM runtimes (the fleet's C(wasm), published as C(edgefleet_wasm_runtimes)), checked against
        the known runtimes (lunatic, slight, spin, wasmedge, wasmer, wasmtime, wws).
      - Used only with O(runtime_classes=true).
    type: list
    elements: raw
    default: []
  runtimes_name:
    description: The variable O(runtimes) came from, used in messages.
    type: str
    default: edgefleet_wasm_runtimes
  labels:
    description:
      - The node's labels (C(edgefleet_node_labels)). The runtimes of its C(edgefleet.io/wasm-<runtime>=true) labels
        are the ones its container runtime is told of.
    type: dict
    default: {}
  runtime_classes:
    description: Whether this node keeps the cluster's C(RuntimeClass) manifest (true on the init server only).
    type: bool
    default: false
  validate_only:
    description: Only check O(runtimes); read and write nothing on the host. Problems fail the task.
    type: bool
    default: false
  restart_marker:
    description:
      - A file that records a needed restart on disk (mode C(0600), directory C(0700)), written when a file the runtime
        reads at start changed or was removed. While it exists RV(restart_required) stays true; the caller removes it
        after the restart. Not written in check mode.
    type: path
notes:
  - The formats and their sources are in C(docs/wasm.md) of the collection.
seealso:
  - name: Kubernetes RuntimeClass
    description: C(handler) and C(scheduling.nodeSelector).
    link: https://kubernetes.io/docs/concepts/containers/runtime-class/
  - name: k0s runtime
    description: K0s's containerd import directory.
    link: https://docs.k0sproject.io/stable/runtime/
"""

EXAMPLES = r"""
- name: Deliver the site's WASM RuntimeClasses and the node's containerd runtimes
  edgefleet.k8s.wasm_runtimes:
    distribution: "{{ edgefleet_distribution }}"
    host: "{{ inventory_hostname }}"
    runtimes: "{{ edgefleet_wasm_runtimes | default([]) }}"
    labels: "{{ edgefleet_node_labels | default({}) }}"
    runtime_classes: "{{ inventory_hostname == edgefleet_cluster_init_server }}"
  become: true
"""

RETURN = r"""
runtime_classes:
  description: The names of the RuntimeClass objects this node's manifest holds (none off the init server).
  returned: success, unless O(validate_only)
  type: list
  elements: str
  sample: [wasm-spin, wasm-wasmtime]
node_runtimes:
  description: The runtimes the node is labelled for.
  returned: success, unless O(validate_only)
  type: list
  elements: str
  sample: [spin, wasmtime]
files:
  description: The files wanted on this node.
  returned: success, unless O(validate_only)
  type: list
  elements: str
  sample: [/var/lib/k0s/manifests/edgefleet-wasm/edgefleet-wasm.yaml, /etc/k0s/containerd.d/edgefleet-wasm.toml]
written:
  description: The files written (in check mode, that would be written) because their bytes, mode or owner differed.
  returned: success, unless O(validate_only)
  type: list
  elements: str
removed:
  description: Files of ours no longer wanted, removed (in check mode, that would be removed).
  returned: success, unless O(validate_only)
  type: list
  elements: str
restart_required:
  description: True when a file the runtime reads at start changed, or O(restart_marker) holds an earlier one.
  returned: success, unless O(validate_only)
  type: bool
problems:
  description: Every problem found; the task fails when the list is not empty.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import wasm_module


def main() -> None:
    wasm_module.run_module(AnsibleModule)


if __name__ == "__main__":
    main()
