"""Secure Boot on a real UEFI boot: the preflight's `require_secure_boot` refuses the node with Secure Boot off
and accepts it with Secure Boot on (issue 18, acceptance 6).

The VM is the lab's dm-crypt VM image booted through UEFI (tests/lab/vm/up.sh with VM_BOOT=efi): OVMF from
Debian's ovmf package (OVMF_CODE_4M.secboot.fd, q35 with SMM), the ESP of tests/lab/vm/build-esp.sh
(Microsoft-signed shim, Debian-signed grub and kernel). With VM_SECURE_BOOT=on the vars carry the Microsoft
keys (OVMF_VARS_4M.ms.fd): the firmware enforces Secure Boot and the signed chain boots. With off the vars
have no keys (OVMF_VARS_4M.fd): setup mode, nothing enforced, which the preflight reports as setup_mode.

It is a VM of its own beside the lab's (run directory vm/run-secureboot, host edgefleet-vm-sb, ssh on
127.0.0.1:$VM_SB_SSH_PORT, default 2232), booted twice (off, then on) and always stopped; about 3-4 minutes
under TCG (docs/lab.md). Run by make test-vm-secureboot, not by make test-vm-full (marker vm_secure_boot).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vmlab import CACHE, Ansible, PlayRun, VmHost, start_vm, stop_vm

pytestmark = [pytest.mark.vm, pytest.mark.vm_secure_boot]

PLAYBOOK = Path(__file__).parent / "files" / "secureboot-preflight.yml"
NAME = "edgefleet-vm-sb"
PORT = int(os.environ.get("VM_SB_SSH_PORT", "2232"))
# Not under inventories/lab/ (ansible.cfg's default inventory): no other lab run sees this VM.
INVENTORY = CACHE / "vm" / "secureboot-inventory.yml"
LOGS = CACHE / "vm" / "test-logs-secureboot"
ENV = {
    "VM_RUN": str(CACHE / "vm" / "run-secureboot"),
    "VM_NAME": NAME,
    "VM_SSH_PORT": str(PORT),
    "VM_INVENTORY": str(INVENTORY),
    "VM_BOOT": "efi",
}
EFIVAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


def log(msg: str) -> None:
    print(f"[secure-boot] {msg}", flush=True)


@contextlib.contextmanager
def booted(secure_boot: str) -> Iterator[VmHost]:
    """The VM booted through OVMF with Secure Boot `on` or `off`; stopped on the way out."""
    env = {**ENV, "VM_SECURE_BOOT": secure_boot}
    stop_vm(env)  # a VM left by an earlier run may be in the other mode
    try:
        t0 = time.monotonic()
        up = start_vm(env)
        if up.returncode != 0:
            pytest.fail(f"the VM (Secure Boot {secure_boot}) did not come up:\n{up.stderr[-3000:]}", pytrace=False)
        log(f"Secure Boot {secure_boot}: ssh after {time.monotonic() - t0:.0f} s (boot and image checks)")
        yield VmHost(port=PORT)
    finally:
        if not os.environ.get("EDGEFLEET_VM_KEEP"):
            stop_vm(env)


@pytest.fixture(scope="module")
def ansible(request: pytest.FixtureRequest) -> Iterator[Ansible]:
    """Each run's JSON result and stderr go to LOGS: kept when a test failed, removed when all passed."""
    failed_before = request.session.testsfailed
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(mode=0o700, parents=True)
    yield Ansible(LOGS, {}, inventory=INVENTORY)
    if request.session.testsfailed > failed_before or os.environ.get("EDGEFLEET_VM_KEEP_LOGS"):
        log(f"logs kept in {LOGS}")
    else:
        shutil.rmtree(LOGS, ignore_errors=True)


def preflight(ansible: Ansible, name: str) -> tuple[PlayRun, str]:
    """The preflight role with require_secure_boot true; the run and the Secure Boot state the module read."""
    run = ansible.play(name, PLAYBOOK)
    run.host = NAME
    facts = [r for r in run.results() if r.action == "edgefleet.k8s.preflight_facts"]
    assert facts, run.explain()
    state = str(facts[0].result.get("ansible_facts", {}).get("edgefleet_preflight", {}).get("secure_boot"))
    log(f"{name}: rc {run.rc}, Secure Boot {state}")
    return run, state


def test_refused_with_secure_boot_off(ansible: Ansible) -> None:
    with booted("off") as host:
        assert "Secure boot disabled" in host.out("sudo dmesg"), "the kernel should see Secure Boot off"
        run, state = preflight(ansible, "secure-boot-off")
    assert state == "setup_mode", f"OVMF vars without keys should read as setup mode, not {state}"
    assert run.rc != 0, f"preflight accepted {NAME} with Secure Boot off"
    failed = run.failed_tasks()
    assert [r.task.split(" : ")[-1] for r in failed] == ["Stop with every problem of this node"], run.explain()
    msg = failed[0].msg
    assert f"preflight found 1 problem(s) on {NAME}" in msg, msg
    assert f"{NAME} does not boot with Secure Boot enforced" in msg, msg
    assert "edgefleet_preflight_require_secure_boot" in msg, msg


def test_accepted_with_secure_boot_on(ansible: Ansible) -> None:
    with booted("on") as host:
        dmesg = host.out("sudo dmesg")
        assert "Secure boot enabled" in dmesg, "the kernel should see Secure Boot on"
        assert "locked down from EFI Secure Boot" in dmesg, "the signed kernel should lock down under Secure Boot"
        # SecureBoot = 1 (4 bytes of attributes, then the value).
        assert host.out(f"od -An -tu1 {EFIVAR}").split()[-1] == "1"
        run, state = preflight(ansible, "secure-boot-on")
    assert state == "enabled", f"Secure Boot state {state}, expected enabled"
    assert run.rc == 0, run.explain()
    assert run.failures == 0, run.explain()
