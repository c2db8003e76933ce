#!/usr/bin/env bash
# Prove the dm-crypt VM is what the disk tests need:
# ssh answers, dm-crypt works (luksFormat + open + write + close of a file-backed
# loop device inside the guest, key fed on stdin, never on a command line), and
# the software TPM answers `tpm2_getcap properties-fixed`. Exits non-zero on any
# failure. Touches none of the VM's data disks.
set -euo pipefail
source "$(dirname "$0")/vm-lib.sh"

vm_ssh true || vm_die "no ssh to the VM on 127.0.0.1:$VM_SSH_PORT (run make lab-vm-up)"
vm_log "ssh: ok ($(vm_ssh uname -r))"

vm_ssh sudo bash -s <<'GUEST'
set -euo pipefail
img=$(mktemp /var/tmp/dmcrypt-check.XXXXXX)
name=edgefleet-check-$$
cleanup() {
  cryptsetup close "$name" 2>/dev/null || true
  [[ -n "${loop:-}" ]] && losetup -d "$loop" 2>/dev/null || true
  rm -f "$img"
}
trap cleanup EXIT
truncate -s 32M "$img"
loop=$(losetup --find --show "$img")
key=$(head -c 32 /dev/urandom | base64)
printf '%s' "$key" | cryptsetup luksFormat --batch-mode --type luks2 \
  --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file=- "$loop"
printf '%s' "$key" | cryptsetup open --key-file=- "$loop" "$name"
printf 'edgefleet dm-crypt check\n' | dd of="/dev/mapper/$name" conv=fsync status=none
cryptsetup status "$name" | grep -q 'type:    LUKS2'
cryptsetup close "$name"
if grep -aq 'edgefleet dm-crypt check' "$loop"; then
  echo "plaintext visible on the raw device" >&2; exit 1
fi
echo "[guest] cryptsetup luksFormat/open/close: ok"
caps=$(tpm2_getcap properties-fixed)
family=$(grep -A2 '^TPM2_PT_FAMILY_INDICATOR:' <<<"$caps" | sed -n 's/.*value: "\(.*\)"/\1/p')
maker=$(grep -A2 '^TPM2_PT_MANUFACTURER:' <<<"$caps" | sed -n 's/.*value: "\(.*\)"/\1/p')
[[ "$family" == "2.0" ]] || { echo "TPM family is '$family', not 2.0" >&2; exit 1; }
echo "[guest] tpm2_getcap properties-fixed: ok (TPM $family, manufacturer $maker: the swtpm software TPM)"
GUEST
vm_log "check passed"
