#!/usr/bin/python
# Copyright (c) edgefleet.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: clevis_binding
short_description: Ensure one clevis binding (tpm2, tang or sss) on a LUKS2 device
version_added: 0.1.0
description:
  - Idempotently ensures that the LUKS device has exactly one clevis binding of the pin O(pin), with the
    configuration O(config). It reads C(clevis luks list), compares the bindings of that pin in a canonical form
    (Tang URL; TPM2 hash, key, PCR bank and PCR ids; sss threshold and pins), and binds or unbinds only what differs.
  - A binding of the same pin with a different config is replaced, the new one bound before the old one is removed,
    so the volume never loses its automatic unlock. Bindings of other pins are left alone.
  - The existing key used to add a key slot is fed to clevis on standard input, never on a command line, and
    never returned.
author:
  - edgefleet.k8s contributors (@edgefleet)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - edgefleet.k8s.attributes
attributes:
  diff_mode:
    details: The diff lists the clevis bindings (slot, pin, config) before and after; they hold no secret.
options:
  device:
    description: The LUKS2 device (a stable path is best).
    type: str
    required: true
  pin:
    description: The top-level clevis pin.
    type: str
    required: true
    choices: [tpm2, tang, sss]
  config:
    description:
      - The pin's configuration, as clevis takes it. C(tpm2) takes C(pcr_ids) (a list or a comma string), C(pcr_bank),
        C(hash), C(key); C(tang) takes C(url) (and optionally C(adv)); C(sss) takes C(t) and C(pins), a mapping of pin
        name to a config or a list of configs.
    type: dict
    default: {}
  state:
    description: C(present) ensures the binding; C(absent) removes every binding of O(pin).
    type: str
    choices: [present, absent]
    default: present
  passphrase:
    description: An existing passphrase of the device, needed to add or remove a key slot.
    type: str
  keyfile:
    description: A file on the node holding an existing key of the device (instead of O(passphrase)).
    type: path
  trust_tang:
    description:
      - Trust the Tang server's advertisement on first use (C(clevis luks bind -y)). Without it a Tang pin needs
        an C(adv) in its config.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Bind the data volume to the TPM (PCR 7) and to Tang, either one unlocks
  edgefleet.k8s.clevis_binding:
    device: /dev/disk/by-id/virtio-edgefleet-data
    pin: sss
    config:
      t: 1
      pins:
        tpm2: {pcr_ids: [7]}
        tang: [{url: "http://tang.example.internal"}]
    passphrase: "{{ recovery_passphrase }}"
  no_log: true
"""

RETURN = r"""
bindings:
  description: The device's clevis bindings after the task (in check mode, as they would be).
  returned: always
  type: list
  elements: str
  sample: ["slot 1: tpm2 {\"hash\": \"sha256\", \"key\": \"ecc\"}"]
added:
  description: Whether a binding was (or would be) added.
  returned: always
  type: bool
removed_slots:
  description: Key slots whose binding was (or would be) removed.
  returned: always
  type: list
  elements: int
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edgefleet.k8s.plugins.module_utils._disk import luks as disk_luks


def parse_ok(out: str, err: str) -> bool:
    """``clevis luks list`` exits non-zero on a LUKS device without bindings; that is not an error."""
    return not out.strip() and ("No" in err or not err.strip())


def _list(module: AnsibleModule, clevis: str, device: str) -> list[disk_luks.Binding]:
    rc, out, err = module.run_command([clevis, "luks", "list", "-d", device])
    if rc != 0 and not parse_ok(out, err):
        module.fail_json(msg=f"clevis luks list -d {device} failed (rc={rc}): {err.strip()}")
    return disk_luks.parse_clevis_list(out)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "device": {"type": "str", "required": True},
            "pin": {"type": "str", "required": True, "choices": list(disk_luks.PINS)},
            "config": {"type": "dict", "default": {}},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "passphrase": {"type": "str", "no_log": True},
            "keyfile": {"type": "path"},
            "trust_tang": {"type": "bool", "default": True},
        },
        mutually_exclusive=[("passphrase", "keyfile")],
        supports_check_mode=True,
    )
    p: dict[str, Any] = module.params
    device, pin, config, state = p["device"], p["pin"], p["config"], p["state"]
    if p["passphrase"] is None and p["keyfile"] is None:
        module.fail_json(msg=f"clevis_binding on {device}: passphrase or keyfile is required to change bindings")
    if state == "present":
        problems = disk_luks.config_problems(pin, config)
        if problems:
            module.fail_json(msg=f"clevis_binding on {device}: invalid config: " + "; ".join(problems))
    clevis = module.get_bin_path("clevis", required=True)
    before = _list(module, clevis, device)
    plan = disk_luks.plan_binding(before, pin, config, state)
    changed = plan.add or bool(plan.remove)
    kept = [b for b in before if b.slot not in plan.remove]
    after_lines = disk_luks.describe_bindings(kept)
    if plan.add:
        after_lines.append(disk_luks.describe_planned(pin, config))
    if changed and not module.check_mode:
        key: str | bytes | None = p["passphrase"]
        if p["keyfile"]:
            try:
                with open(p["keyfile"], "rb") as handle:
                    key = handle.read()
            except OSError as exc:
                module.fail_json(msg=f"clevis_binding on {device}: cannot read keyfile {p['keyfile']}: {exc}")
        if plan.add:
            cmd = [clevis, "luks", "bind", "-d", device]
            if p["trust_tang"]:
                cmd.append("-y")
            cmd += ["-k", "-", pin, disk_luks.clevis_json(pin, config)]
            rc, _out, err = module.run_command(cmd, data=key, binary_data=True)
            if rc != 0:
                module.fail_json(msg=f"clevis luks bind {pin} on {device} failed (rc={rc}): {err.strip()}")
        for slot in plan.remove:
            # unbind asks for a remaining key on stdin (LUKS2 luksKillSlot).
            rc, _out, err = module.run_command(
                [clevis, "luks", "unbind", "-f", "-d", device, "-s", str(slot)], data=key, binary_data=True
            )
            if rc != 0:
                module.fail_json(msg=f"clevis luks unbind slot {slot} on {device} failed (rc={rc}): {err.strip()}")
        after_lines = disk_luks.describe_bindings(_list(module, clevis, device))
    before_lines = disk_luks.describe_bindings(before)
    module.exit_json(
        changed=changed,
        bindings=after_lines,
        added=plan.add,
        removed_slots=list(plan.remove),
        diff={"before": "\n".join(before_lines) + "\n", "after": "\n".join(after_lines) + "\n"},
    )


if __name__ == "__main__":
    main()
