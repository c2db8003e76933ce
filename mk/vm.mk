# The lab's dm-crypt VM (qemu/TCG + swtpm): see docs/lab.md, "The dm-crypt VM".
VM_LAB := tests/lab/vm

.PHONY: lab-vm-image lab-vm-up lab-vm-down lab-vm-check test-vm test-vm-full test-vm-secureboot
lab-vm-image:
	$(VM_LAB)/build-image.sh >/dev/null

lab-vm-up:
	$(VM_LAB)/up.sh

lab-vm-down:
	$(VM_LAB)/down.sh

# ssh, dm-crypt and the software TPM answer in the VM.
lab-vm-check:
	$(VM_LAB)/check.sh

# In `make test`: boot the VM, run the VM checks, always tear it down.
test-vm: venv
	@trap '$(VM_LAB)/down.sh' EXIT; $(VM_LAB)/up.sh && $(VM_LAB)/check.sh

# The disk-encryption acceptance on the VM: the pytest tests marked `vm` (tests/integration/vm/), which
# drive the playbooks of extensions/molecule/disk-encryption/ in one sequence; slow under TCG.
# -s prints what each stage measured or saw as it happens (a CI log cut short by a timeout still has it);
# the VM is always torn down.
test-vm-full: venv controlplane-bundle
	@trap '$(VM_LAB)/down.sh' EXIT; $(VM_LAB)/up.sh && $(VM_LAB)/check.sh \
	  && $(BIN)/python -m pytest -v -s --durations=0 -p no:cacheprovider -m 'vm and not vm_secure_boot' tests/integration/vm

# Secure Boot (issue 18, acceptance 6): the VM image booted through OVMF (ESP of build-esp.sh: signed shim,
# grub, kernel) with Secure Boot off, then on; the preflight with require_secure_boot refuses, then accepts.
# A VM of its own (vm/run-secureboot, ssh 127.0.0.1:2232); about 3-4 minutes under TCG (docs/lab.md).
test-vm-secureboot: venv
	$(BIN)/python -m pytest -v -s --durations=0 -p no:cacheprovider -m vm_secure_boot tests/integration/vm

TEST_TARGETS += test-vm-full test-vm-secureboot
