#!/usr/bin/env bash
# The disk-encryption scenario on the lab's dm-crypt VM (issue 6 acceptance).
# Needs a fresh VM (make lab-vm-up). Steps, each checked:
#   prepare   a running SQLite datastore stand-in (NOT K3s) on the plain root
#             disk, an ext4-with-a-file disk, a foreign LUKS disk, Tang on loopback
#   converge  (-vvv) sss(TPM2 PCR 7, Tang) + recovery passphrase; data moved
#   3 re-runs changed=0 each, marker checksum unchanged
#   refusals  the role pointed at the ext4 disk and at the foreign LUKS disk
#             fails with the message; their content checksums are unchanged
#   recovery  the passphrase from the controller's vault opens the volume
#             (cryptsetup --test-passphrase, key on stdin)
#   pins      the TPM2 path alone and the Tang path alone each yield a key
#   reboot    with Tang stopped: the volume comes back unlocked by the TPM,
#             rows and marker equal, the service running
#   logs      no passphrase in any -vvv log
set -euo pipefail
source "$(dirname "$0")/vm-lib.sh"
cd "$REPO_ROOT"

SCENARIO=extensions/molecule/disk-encryption
INV="$VM_INVENTORY"
WORK=$(mktemp -d /tmp/edgefleet-disk-encryption.XXXXXX)
trap 'rc=$?; if (( rc != 0 )); then rm -rf "$VM_CACHE/last-failure"; mkdir -p "$VM_CACHE/last-failure"; cp "$WORK"/*.log "$VM_CACHE/last-failure/" 2>/dev/null; vm_log "logs kept in $VM_CACHE/last-failure"; fi; rm -rf "$WORK"' EXIT
export EDGEFLEET_ESCROW_DIR="$WORK/escrow"
# The vault secret of this test run only (the user's own vault secret in real use).
head -c 32 /dev/urandom | base64 >"$WORK/vault-pass"
chmod 0600 "$WORK/vault-pass"
export ANSIBLE_VAULT_PASSWORD_FILE="$WORK/vault-pass"
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
DEV=/dev/disk/by-id/virtio-edgefleet-data
DB=/var/lib/rancher/k3s/server/db/state.db
fail() { vm_log "FAIL: $*"; exit 1; }
step() { vm_log "--- $* ($((SECONDS - T0)) s)"; }
T0=$SECONDS

play() { ansible-playbook -i "$INV" "$@"; }
recap_changed() { sed -n 's/.*edgefleet-vm *: ok=[0-9]* *changed=\([0-9]*\).*/\1/p' "$1" | tail -n1; }
rows() { vm_ssh "sudo sqlite3 -readonly $DB 'SELECT count(*) FROM kine'"; }
marker_sum() { vm_ssh "sudo sha256sum /var/lib/rancher/edgefleet-marker" | cut -d' ' -f1; }
# Content checksums of the two foreign disks (ext4 file; whole LUKS header area).
spare1_sum() { vm_ssh 'sudo bash -c "m=\$(mktemp -d); mount -o ro /dev/disk/by-id/virtio-edgefleet-spare1 \$m && sha256sum \$m/precious.bin | cut -d\" \" -f1; umount \$m; rmdir \$m"'; }
spare2_sum() { vm_ssh 'sudo head -c 16777216 /dev/disk/by-id/virtio-edgefleet-spare2 | sha256sum | cut -d" " -f1'; }

step "prepare"
play "$SCENARIO/prepare.yml" >"$WORK/prepare.log" || { cat "$WORK/prepare.log"; fail prepare; }
rows_before=$(rows)
vm_ssh "findmnt -n /var/lib/rancher" && fail "/var/lib/rancher is already a mount point before converge"
vm_ssh "systemctl is-active --quiet edgefleet-sqlite-standin" || fail "the datastore stand-in is not running"
s1_before=$(spare1_sum); s2_before=$(spare2_sum)
vm_log "datastore stand-in rows (plain disk, service running): $rows_before"

step "converge (-vvv)"
play "$SCENARIO/converge.yml" -vvv >"$WORK/converge.log" 2>&1 || { tail -n 60 "$WORK/converge.log"; fail converge; }
grep -E '^(PLAY RECAP|edgefleet-vm)' "$WORK/converge.log" | tail -n1
vm_ssh "findmnt -n -o SOURCE /var/lib/rancher" | grep -q "/dev/mapper/edgefleet-data" || fail "data dir not mounted from the volume"
vm_ssh "sudo cryptsetup status edgefleet-data" | grep -q 'type:    LUKS2' || fail "volume is not LUKS2"
vm_ssh "systemctl is-active --quiet edgefleet-sqlite-standin" || fail "the service was not started again"
rows_after=$(rows)
[[ "$rows_after" == "$rows_before" ]] || fail "rows before the move $rows_before, after $rows_after"
vm_log "migration: rows $rows_before -> $rows_after on the encrypted volume, service running"
vm_ssh "sudo sqlite3 -readonly /dev/null 'select 1'" >/dev/null
vm_ssh "sudo bash -c 'head -c 65536 /dev/urandom > /var/lib/rancher/edgefleet-marker'"
marker=$(marker_sum)

step "3 re-runs"
for i in 1 2 3; do
  play "$SCENARIO/converge.yml" >"$WORK/rerun$i.log" 2>&1 || { tail -n 40 "$WORK/rerun$i.log"; fail "re-run $i"; }
  c=$(recap_changed "$WORK/rerun$i.log")
  [[ "$c" == "0" ]] || { grep -E '^(changed|TASK)' "$WORK/rerun$i.log" | grep -B1 '^changed' >&2; fail "re-run $i: changed=$c"; }
  vm_log "re-run $i: changed=0"
done
[[ "$(marker_sum)" == "$marker" ]] || fail "marker checksum changed across re-runs"
vm_log "marker sha256 ${marker:0:16}... equal after 3 re-runs"

step "refusals"
for spare in spare1 spare2; do
  if play "$SCENARIO/converge.yml" -e disk_encryption_test_device=/dev/disk/by-id/virtio-edgefleet-$spare \
    -e edgefleet_disk_encryption_name=refusal-$spare >"$WORK/refuse-$spare.log" 2>&1; then
    fail "the role formatted or accepted $spare"
  fi
  grep -q "refusing to" "$WORK/refuse-$spare.log" || { tail -n 20 "$WORK/refuse-$spare.log"; fail "no refusal message for $spare"; }
  grep -q "edgefleet_disk_encryption_allow_format: true AND edgefleet_disk_encryption_format_device_id" \
    "$WORK/refuse-$spare.log" || fail "the refusal for $spare does not name the two variables"
  grep -o "virtio-edgefleet-$spare ([^)]*): holds [^.]*" "$WORK/refuse-$spare.log" | head -n1 >&2
done
[[ "$(spare1_sum)" == "$s1_before" ]] || fail "the file on the ext4 disk changed"
[[ "$(spare2_sum)" == "$s2_before" ]] || fail "the foreign LUKS header changed"
vm_log "refusals: both disks refused, contents unchanged (ext4 file ${s1_before:0:12}, LUKS area ${s2_before:0:12})"

step "recovery passphrase from the vault"
escrow=$(ls "$EDGEFLEET_ESCROW_DIR"/edgefleet-vm.edgefleet-data.recovery.vault)
[[ "$(stat -c %a "$escrow")" == 600 ]] || fail "escrow file mode is not 0600"
head -c 14 "$escrow" | grep -q '^\$ANSIBLE_VAULT' || fail "escrow file is not vault-encrypted"
ansible-vault view "$escrow" | tr -d '\n' | vm_ssh "sudo cryptsetup open --test-passphrase --key-file=- $DEV" \
  || fail "the escrowed recovery passphrase does not open the volume"
vm_log "recovery passphrase from the vault opens the volume"

step "pins: TPM2 alone, Tang alone"
slot=$(vm_ssh "sudo clevis luks list -d $DEV" | sed -n "s/^\([0-9]*\): sss .*/\1/p" | head -n1)
[[ -n "$slot" ]] || fail "no sss binding on the volume"
vm_ssh "sudo clevis luks list -d $DEV" >&2
vm_ssh "sudo systemctl stop tangd.socket; sudo clevis luks pass -d $DEV -s $slot | sudo cryptsetup open --test-passphrase --key-file=- $DEV" \
  || fail "sss did not unlock with the TPM2 alone (Tang stopped)"
vm_log "sss unlocks with the TPM2 alone (Tang stopped)"
vm_ssh "sudo systemctl start tangd.socket; sudo env TPM2TOOLS_TCTI=device:/dev/null clevis luks pass -d $DEV -s $slot | sudo cryptsetup open --test-passphrase --key-file=- $DEV" \
  || fail "sss did not unlock with Tang alone (TPM unreachable)"
vm_log "sss unlocks with Tang alone (TPM made unreachable for the tpm2 pin)"

step "reboot with Tang stopped"
vm_ssh "sudo systemctl disable --now tangd.socket >/dev/null 2>&1; sudo systemctl reboot" || true
sleep 15
vm_wait_ssh 300 || fail "no ssh after reboot"
vm_ssh "systemctl is-active --quiet tangd.socket" && fail "Tang is running; the reboot test needs it off"
# crypttab/fstab say nofail: sshd may answer before clevis has unlocked the volume.
for _ in $(seq 120); do
  vm_ssh "findmnt -n -o SOURCE /var/lib/rancher" 2>/dev/null | grep -q edgefleet-data && break
  sleep 2
done
vm_ssh "sudo cryptsetup status edgefleet-data" | grep -q 'type:    LUKS2' || fail "volume not unlocked after reboot"
vm_ssh "findmnt -n -o SOURCE /var/lib/rancher" | grep -q edgefleet-data || fail "data dir not mounted after reboot"
for _ in $(seq 30); do vm_ssh "systemctl is-active --quiet edgefleet-sqlite-standin" && break; sleep 2; done
vm_ssh "systemctl is-active --quiet edgefleet-sqlite-standin" || fail "service not running after reboot"
[[ "$(rows)" == "$rows_before" ]] || fail "rows after reboot $(rows), before $rows_before"
[[ "$(marker_sum)" == "$marker" ]] || fail "marker changed across the reboot"
vm_ssh "sudo journalctl -b -u systemd-cryptsetup@edgefleet\\\\x2ddata.service --no-pager -o cat" | tail -n 3 >&2 || true
vm_log "after reboot: unlocked by the TPM (no passphrase typed, Tang off), rows $rows_before, marker equal"

step "no secret in the -vvv logs"
pass=$(ansible-vault view "$escrow" | tr -d '\n')
[[ ${#pass} -ge 20 ]] || fail "escrowed passphrase is too short"
if grep -rlF -- "$pass" "$WORK"/*.log; then fail "the recovery passphrase appears in a log"; fi
unset pass
vm_log "no passphrase in $(cat "$WORK"/*.log | wc -l) log lines"
step "decommission (crypto-erase) only for the named node"
if play "$SCENARIO/decommission.yml" -e edgefleet_disk_encryption_decommission_node=some-other-node \
  >"$WORK/decom-refused.log" 2>&1; then fail "decommission ran for a node that was not named"; fi
grep -q "refusing to crypto-erase" "$WORK/decom-refused.log" || fail "no refusal message for an unnamed node"
vm_ssh "sudo cryptsetup isLuks $DEV" || fail "the unnamed-node decommission touched the volume"
play "$SCENARIO/decommission.yml" -e edgefleet_disk_encryption_decommission_node=edgefleet-vm \
  >"$WORK/decom.log" 2>&1 || { tail -n 30 "$WORK/decom.log"; fail "decommission"; }
if ansible-vault view "$escrow" | tr -d '\n' | vm_ssh "sudo cryptsetup open --test-passphrase --key-file=- $DEV" 2>/dev/null; then
  fail "the recovery passphrase still opens the volume after crypto-erase"
fi
vm_ssh "sudo cryptsetup luksDump $DEV" | sed -n '/^Keyslots:/,/^Tokens:/p' | grep -qE '^  [0-9]+: luks2' \
  && fail "key slots remain after crypto-erase"
vm_log "decommission: refused for an unnamed node; for the named node every key slot is gone, recovery fails"
step "disk-encryption scenario passed"
