#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: artifact
short_description: Stage a verified K3s/K0s air-gap bundle on a node
version_added: 0.1.0
description:
  - Verifies an air-gap bundle B(on the controller) against its C(sha256sum-<arch>.txt) before any byte
    goes to a node, sends only the files whose sha256 on the node differs, verifies them again on the node,
    stages them under O(staging_root)/<distribution>/<version>/ and installs the binary as
    O(bin_dir)/<distribution> (0755) and the images archive in the distribution's images directory.
  - The bundle is a directory on the controller or a mirror URL. For a URL the sums file itself must be
    pinned by O(bundle_sums_sha256); the files are mirrored into O(cache_dir) on the controller and verified there.
  - A run that changes nothing costs one module run on the node and reads no file again, there or on the
    controller. A file is hashed again when its device, inode, size, mtime or ctime differ from those recorded when
    it was last hashed (C(.sha256-record.json), 0600, in O(staging_root) on the node and in O(cache_dir) on the
    controller). Every write, chmod, chown or rename sets a file's ctime, which user space cannot set back.
  - A checksum mismatch stops the task with a message naming the file and both hashes. A wanted file that the
    sums file does not list, or that the sums file lists but the bundle lacks, also stops it.
  - Upstream file names are used, C(k3s), C(k3s-arm64), C(k3s-armhf), C(k0s-<version>-<arch>),
    C(k3s-airgap-images-<arch>.tar[.gz|.zst]), C(k0s-airgap-bundle-<version>-<arch>), C(install.sh); the
    WASM shims as C(containerd-shim-<runtime>-v1-<arch>) (see O(wasm_runtimes)).
  - This module runs through its action plugin of the same name; calling the module part alone is not supported.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - edgefleet.k8s.attributes
  - edgefleet.k8s.attributes.action
attributes:
  check_mode:
    details: Reports the files and bytes that would be sent (RV(bytes_to_send)); sends nothing.
options:
  bundle:
    description:
      - Root of the bundle on the controller (C(<bundle>/<distribution>/<version>/) holds the files), or a
        mirror URL with the same layout below it (C(http://), C(https://), C(file://)).
      - C(~) is expanded on the controller.
    type: str
    required: true
  distribution:
    description: The distribution whose artifacts are staged.
    type: str
    required: true
    choices: [k3s, k0s]
  version:
    description: The release version, as used in the bundle's directory and file names.
    type: str
    required: true
  arch:
    description: The node's architecture, in upstream naming.
    type: str
    required: true
    choices: [amd64, arm64, armhf]
  components:
    description:
      - Which artifacts to stage. The binary is always required; images and the install script are
        staged when the bundle has them; the WASM shims of O(wasm_runtimes) are required.
    type: list
    elements: str
    choices: [binary, images, install_script, wasm_shims]
    default: [binary, images, install_script, wasm_shims]
  wasm_runtimes:
    description:
      - The WASM runtimes whose containerd shims the node runs (with C(wasm_shims) in O(components)); the
        C(edgefleet.io/wasm-<runtime>) labels of a node name them (P(edgefleet.k8s.wasm_node_runtimes#filter)).
      - Each shim is required in the bundle as C(containerd-shim-<runtime>-v1-<arch>), listed in the sums file
        like every other file, and installed 0755 as C(/opt/kwasm/bin/containerd-shim-<runtime>-v1), where K3s
        looks for shims and where the K0s containerd drop-in of P(edgefleet.k8s.wasm_runtimes#module) points.
      - K3s adds a runtime for each shim it finds when it starts, so a shim installed where there was none
        writes O(restart_marker). A replaced shim needs no restart.
      - Known runtimes are C(lunatic), C(slight), C(spin), C(wasmedge), C(wasmer), C(wasmtime) and C(wws).
    type: list
    elements: str
    default: []
  bundle_sums_sha256:
    description:
      - The sha256 of the bundle's C(sha256sum-<arch>.txt). Required when O(bundle) is a URL; when given
        for a directory it is checked too.
    type: str
  cache_dir:
    description: Controller directory into which a mirror URL bundle is downloaded and verified.
    type: path
    default: ~/.cache/edgefleet/artifacts
  staging_root:
    description: Node directory under which C(<distribution>/<version>/) holds the staged files.
    type: path
    default: /var/lib/edgefleet/artifacts
  bin_dir:
    description: Node directory into which the binary is installed as C(<distribution>).
    type: path
    default: /usr/local/bin
  images_dir:
    description:
      - Node directory for the images archive. Defaults to the distribution's own
        (C(/var/lib/rancher/k3s/agent/images) or C(/var/lib/k0s/images)).
    type: path
  verify_only:
    description:
      - Only verify the bundle on the controller; touch no node. Use it in a first play on C(localhost)
        so that a corrupt bundle stops the run before any node is touched.
    type: bool
    default: false
  restart_marker:
    description:
      - Node file written (0600, atomically) before a binary replaces an installed one of other content. The
        service still runs the old binary until it restarts; the distribution role restarts it when this
        file exists and removes the file afterwards, so a run that dies between the two still restarts it
        on the next run.
      - Unset, a changed binary is installed and nothing records that its service must restart.
    type: path
  install:
    description:
      - Install the staged files (the binary into O(bin_dir), images into O(images_dir)). Off, the files are only
        staged into O(staging_root) (verified, sent when missing), and nothing installed changes; the upgrade
        playbook prestages a new version this way before any restart.
    type: bool
    default: true
  _files:
    description: Internal, set by the action plugin (the verified files and their pinned sha256). Do not set.
    type: list
    elements: dict
  _sources:
    description: Internal, set by the action plugin (where the sent files landed on the node). Do not set.
    type: dict
    default: {}
  _probe:
    description:
      - Internal, set by the action plugin (report the staged files' sha256; when all match, stage and install in
        the same run). Do not set.
    type: bool
    default: false
notes:
  - The node side runs as root (use C(become)); files are written atomically and owned by root.
seealso:
  - name: Air-gap bundle contract
    description: docs/architecture.md in the collection.
    link: https://example.invalid/edgefleet/k8s/docs/architecture.md
"""

EXAMPLES = r"""
- name: Verify the bundle on the controller before touching any node
  edgefleet.k8s.artifact:
    bundle: ~/.cache/edgefleet/bundle
    distribution: k3s
    version: v1.30.2+k3s1
    arch: arm64
    verify_only: true
  delegate_to: localhost
  run_once: true

- name: Stage and install the K3s binary and images
  edgefleet.k8s.artifact:
    bundle: /srv/bundles
    distribution: k3s
    version: v1.30.2+k3s1
    arch: "{{ edgefleet_arch }}"
  become: true

- name: From a mirror, with the sums file pinned
  edgefleet.k8s.artifact:
    bundle: https://mirror.example.invalid/edge
    bundle_sums_sha256: 0f3c5b1e4d0d3c8c1c1a8f2e6b7d9e0a1b2c3d4e5f60718293a4b5c6d7e8f901
    distribution: k0s
    version: v1.30.2+k0s.0
    arch: amd64
  become: true
"""

RETURN = r"""
bytes_sent:
  description: Bytes sent to the node by this run (0 when the node already had every file).
  returned: always
  type: int
  sample: 0
bytes_to_send:
  description: In check mode, the bytes a real run would send.
  returned: always
  type: int
  sample: 67108864
hashed_on_node:
  description:
    - Files read and hashed on the node by this run. A file whose device, inode, size, mtime and ctime are those
      recorded when it was last hashed (in C(.sha256-record.json) under O(staging_root), 0600) is not read again,
      so a run that changes nothing reports 0.
  returned: always
  type: int
  sample: 0
source:
  description: The verified bundle directory or URL.
  returned: always
  type: str
  sample: /root/.cache/edgefleet/bundle/k3s/v1.30.2+k3s1
files:
  description: Per-file status.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The upstream file name.
      type: str
    kind:
      description: C(binary), C(images), C(install_script) or C(wasm_shims).
      type: str
    sha256:
      description: The pinned sha256.
      type: str
    sent:
      description: Whether this run sent the file.
      type: bool
    staged:
      description: C(ok), C(staged) or C(would_stage).
      type: str
    installed:
      description: C(ok), C(installed), C(would_install) or C(n/a) (staged only).
      type: str
    staged_path:
      description: Where the file is staged on the node.
      type: str
    install_path:
      description: Where the file is installed, if anywhere.
      type: str
    restart_recorded:
      description: Whether this run replaced an installed binary (or installed a new WASM shim for K3s) and wrote
        O(restart_marker) first.
      type: bool
  sample:
    - name: k3s-arm64
      kind: binary
      sha256: 0f3c5b1e4d0d3c8c1c1a8f2e6b7d9e0a1b2c3d4e5f60718293a4b5c6d7e8f901
      sent: false
      staged: ok
      installed: ok
      restart_recorded: false
      staged_path: /var/lib/edgefleet/artifacts/k3s/v1.30.2+k3s1/k3s-arm64
      install_path: /usr/local/bin/k3s
not_in_bundle:
  description: Optional files the bundle does not have.
  returned: always
  type: list
  elements: str
  sample: [k3s-airgap-images-arm64.tar.zst]
binary_path:
  description: Where the distribution binary is installed.
  returned: always
  type: str
  sample: /usr/local/bin/k3s
staging_dir:
  description: The node's staging directory for this distribution and version.
  returned: always
  type: str
  sample: /var/lib/edgefleet/artifacts/k3s/v1.30.2+k3s1
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._artifacts import bundle as artifacts
from ansible_collections.edgefleet.k8s.plugins.module_utils._common.hash_record import HashRecord
from ansible_collections.edgefleet.k8s.plugins.module_utils._distribution import registry


def main() -> None:
    module = AnsibleModule(
        argument_spec=artifacts.argument_spec(on_node=True),
        supports_check_mode=True,
    )
    params = module.params
    files = params["_files"]
    if files is None:
        module.fail_json(msg="edgefleet.k8s.artifact must run through its action plugin (the _files list is missing)")
    staging_dir = artifacts.staging_dir_for(params["staging_root"], params["distribution"], params["version"])
    record = HashRecord(os.path.join(params["staging_root"], artifacts.HASH_RECORD_NAME))
    out: dict[str, Any] = {"staging_dir": staging_dir}
    if params["_probe"]:
        out["remote"] = artifacts.probe(files, staging_dir, record.sha256)
        if any(out["remote"].get(f["name"]) != f["sha256"] for f in files):
            module.exit_json(changed=False, hashed=record.read, **out)
        # Every file is staged already: nothing to send, so stage and install in this same run.
    results, problems = artifacts.stage_and_install(
        files,
        staging_dir,
        params["_sources"],
        module.check_mode,
        params["restart_marker"],
        restart_on_new_shim=registry.get(params["distribution"]).wasm_shims_found_at_start,
        hasher=record.sha256,
    )
    if not module.check_mode:
        record.save()
    out.update(changed=any(r.changed for r in results), files=[r.as_dict() for r in results], hashed=record.read)
    if module._diff:
        out["diff"] = artifacts.diff_of(results)
    if problems:
        module.fail_json(msg="artifact staging failed:\n" + "\n".join(problems), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
