#!/usr/bin/env bash
# The disk-encryption scenario on the lab's dm-crypt VM (issue 6 acceptance).
# Needs a fresh VM (make lab-vm-up) and the stand-in bundle (make controlplane-bundle).
# The "K3s" and "K0s" here are the lab's stand-ins: a real kube-apiserver on kine/SQLite behind a
# k3s/k0s-shaped CLI, installed by the collection's roles. No real K3s or K0s runs. Steps, each checked:
#   prepare   foreign disks (ext4 with a file; a LUKS header not ours), Tang on loopback, and the K0s
#             stand-in running on SQLite on the PLAIN root disk (/var/lib/k0s), with 200 ConfigMaps
#   converge  (-vvv) a fresh node in site.yml order: the blank data disk is encrypted with
#             sss(TPM2 PCR 7, Tang) + recovery passphrase, then the K3s stand-in is installed onto it;
#             300 ConfigMaps are written to it
#   migrate   (-vvv) the running K0s datastore moves onto its own volume (TPM2 PCR 7); rows equal
#   3 re-runs  converge + migrate whole, then the K3s volume's encryption twice (reencrypt.yml):
#             changed=0 each, marker checksums on both volumes unchanged
#   refusals  the role pointed at the ext4 disk and at the foreign LUKS disk fails with the message;
#             their content checksums are unchanged
#   recovery  each volume's passphrase from the controller's vault opens it (--test-passphrase, stdin)
#   pins      the TPM2 path alone and the Tang path alone each yield the K3s volume's key
#   reboot    with Tang stopped: both volumes come back unlocked by the TPM alone, K3s and K0s run,
#             rows (API and SQLite) and markers equal
#   PCR 7     after extending PCR 7 (a changed boot chain), the TPM no longer unseals either key
#   logs      no passphrase in any log
#   decommission  refused for another node; for this one no key slot remains
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
DEV=/dev/disk/by-id/virtio-edgefleet-data     # K3s: sss(TPM2, Tang), /var/lib/rancher
DEV2=/dev/disk/by-id/virtio-edgefleet-data2   # K0s: TPM2, /var/lib/k0s
fail() { vm_log "FAIL: $*"; exit 1; }
step() { vm_log "--- $* ($((SECONDS - T0)) s)"; }
T0=$SECONDS

play() { ansible-playbook -i "$INV" "$@"; }
recap_changed() { sed -n 's/.*edgefleet-vm *: ok=[0-9]* *changed=\([0-9]*\).*/\1/p' "$1" | tail -n1; }
# "<ConfigMaps> <sha256 of names+data> <kine rows>" of the k3s or k0s stand-in (files/rows.sh).
rows() { vm_ssh "sudo bash -s $1 count" <"$SCENARIO/files/rows.sh"; }
# Wait until the distribution's API answers (after a restart or a reboot; TCG is slow).
api_ready() {
  local _
  for _ in $(seq 90); do
    vm_ssh "sudo /usr/local/bin/$1 kubectl get --raw /readyz" >/dev/null 2>&1 && return 0
    sleep 4
  done
  return 1
}
marker_sum() { vm_ssh "sudo sha256sum $1/edgefleet-marker" | cut -d' ' -f1; }
mounted_from() { vm_ssh "findmnt -n -o SOURCE $1" 2>/dev/null; }
# Content checksums of the two foreign disks (ext4 file; whole LUKS header area).
spare1_sum() { vm_ssh 'sudo bash -c "m=\$(mktemp -d); mount -o ro /dev/disk/by-id/virtio-edgefleet-spare1 \$m && sha256sum \$m/precious.bin | cut -d\" \" -f1; umount \$m; rmdir \$m"'; }
spare2_sum() { vm_ssh 'sudo head -c 16777216 /dev/disk/by-id/virtio-edgefleet-spare2 | sha256sum | cut -d" " -f1'; }
escrow_of() { echo "$EDGEFLEET_ESCROW_DIR/edgefleet-vm.$1.recovery.vault"; }
opens() { ansible-vault view "$(escrow_of "$1")" | tr -d '\n' | vm_ssh "sudo cryptsetup open --test-passphrase --key-file=- $2"; }
tpm2_slot() { vm_ssh "sudo clevis luks list -d $1" | sed -n "s/^\([0-9]*\): $2 .*/\1/p" | head -n1; }

step "prepare: foreign disks, Tang, K0s stand-in on the plain root disk"
play "$SCENARIO/prepare.yml" >"$WORK/prepare.log" 2>&1 || { tail -n 60 "$WORK/prepare.log"; fail prepare; }
[[ -z "$(mounted_from /var/lib/k0s)" ]] || fail "/var/lib/k0s is a mount point before migrate"
vm_ssh "systemctl is-active --quiet k0scontroller" || fail "the K0s stand-in is not running"
# edgefleet_distribution_api_port: 6444 (vars/k0s.yml) must be where it listens, leaving 6443 to K3s.
vm_ssh "sudo ss -Hltnp 'sport = :6444'" | grep -q kube-apiserver || fail "the K0s API server does not listen on 6444"
vm_ssh "sudo bash -s k0s create 200" <"$SCENARIO/files/rows.sh"
k0s_before=$(rows k0s)
[[ "$k0s_before" == "200 "*" 200" ]] || fail "K0s rows after creating 200 ConfigMaps: $k0s_before"
s1_before=$(spare1_sum); s2_before=$(spare2_sum)
vm_log "K0s stand-in on the plain disk, running: ConfigMaps/digest/kine rows = $k0s_before"

step "converge (-vvv): encrypt the blank disk, then install the K3s stand-in onto it"
vm_ssh "sudo blkid -p $DEV" && fail "the data disk is not blank"
play "$SCENARIO/converge.yml" -vvv >"$WORK/converge.log" 2>&1 || { tail -n 60 "$WORK/converge.log"; fail converge; }
grep -E '^edgefleet-vm' "$WORK/converge.log" | tail -n1
mounted_from /var/lib/rancher | grep -qx /dev/mapper/edgefleet-data || fail "/var/lib/rancher is not mounted from the volume"
vm_ssh "sudo cryptsetup status edgefleet-data" | grep -q 'type:    LUKS2' || fail "the K3s volume is not LUKS2"
vm_ssh "sudo findmnt -n -o SOURCE -T /var/lib/rancher/k3s/server/db/state.db" | grep -qx /dev/mapper/edgefleet-data \
  || fail "the K3s SQLite datastore is not on the encrypted volume"
vm_ssh "systemctl is-active --quiet k3s" || fail "K3s is not running"
vm_ssh "sudo bash -s k3s create 300" <"$SCENARIO/files/rows.sh"
k3s_before=$(rows k3s)
[[ "$k3s_before" == "300 "*" 300" ]] || fail "K3s rows after creating 300 ConfigMaps: $k3s_before"
vm_log "K3s stand-in installed onto the encrypted volume: ConfigMaps/digest/kine rows = $k3s_before"

step "migrate (-vvv): the running K0s datastore moves onto its own volume"
play "$SCENARIO/migrate.yml" -vvv >"$WORK/migrate.log" 2>&1 || { tail -n 60 "$WORK/migrate.log"; fail migrate; }
grep -E '^edgefleet-vm' "$WORK/migrate.log" | tail -n1
grep -q '"migrated": true' "$WORK/migrate.log" || fail "the K0s data was not moved"
mounted_from /var/lib/k0s | grep -qx /dev/mapper/edgefleet-k0s-data || fail "/var/lib/k0s is not mounted from its volume"
vm_ssh "systemctl is-active --quiet k0scontroller" || fail "k0scontroller was not started again"
api_ready k0s || fail "the K0s API did not come back after the move"
k0s_after=$(rows k0s)
[[ "$k0s_after" == "$k0s_before" ]] || fail "K0s rows before the move: $k0s_before, after: $k0s_after"
vm_ssh "sudo test ! -e /var/lib/edgefleet/data-dir-migrate/var-lib-k0s.json" || fail "the move journal was left behind"
vm_log "migration: K0s rows $k0s_before -> $k0s_after on the encrypted volume, k0scontroller running"

for d in /var/lib/rancher /var/lib/k0s; do
  vm_ssh "sudo bash -c 'head -c 65536 /dev/urandom > $d/edgefleet-marker'"
done
m1=$(marker_sum /var/lib/rancher); m2=$(marker_sum /var/lib/k0s)

step "3 re-runs: both plays whole, then the K3s volume's encryption twice more"
for i in 1 2 3; do
  if (( i == 1 )); then plays=("$SCENARIO/converge.yml" "$SCENARIO/migrate.yml"); else plays=("$SCENARIO/reencrypt.yml"); fi
  play "${plays[@]}" >"$WORK/rerun$i.log" 2>&1 || { tail -n 40 "$WORK/rerun$i.log"; fail "re-run $i"; }
  c=$(recap_changed "$WORK/rerun$i.log")
  [[ "$c" == "0" ]] || { grep -B1 '^changed' "$WORK/rerun$i.log" >&2; fail "re-run $i: changed=$c"; }
  vm_log "re-run $i: changed=0"
done
[[ "$(marker_sum /var/lib/rancher)" == "$m1" && "$(marker_sum /var/lib/k0s)" == "$m2" ]] \
  || fail "a marker checksum changed across the re-runs"
vm_log "markers equal after 3 re-runs (K3s ${m1:0:16}..., K0s ${m2:0:16}...)"

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

step "recovery passphrases from the vault"
for vol in edgefleet-data edgefleet-k0s-data; do
  escrow=$(escrow_of $vol)
  [[ "$(stat -c %a "$escrow")" == 600 ]] || fail "$escrow: mode is not 0600"
  head -c 14 "$escrow" | grep -q '^\$ANSIBLE_VAULT' || fail "$escrow is not vault-encrypted"
done
opens edgefleet-data "$DEV" || fail "the escrowed recovery passphrase does not open the K3s volume"
opens edgefleet-k0s-data "$DEV2" || fail "the escrowed recovery passphrase does not open the K0s volume"
vm_log "each recovery passphrase from the vault opens its volume"

step "pins: TPM2 alone, Tang alone"
slot=$(tpm2_slot "$DEV" sss)
[[ -n "$slot" ]] || fail "no sss binding on the K3s volume"
vm_ssh "sudo clevis luks list -d $DEV; sudo clevis luks list -d $DEV2" >&2
vm_ssh "sudo systemctl stop tangd.socket; sudo clevis luks pass -d $DEV -s $slot | sudo cryptsetup open --test-passphrase --key-file=- $DEV" \
  || fail "sss did not unlock with the TPM2 alone (Tang stopped)"
vm_log "sss unlocks with the TPM2 alone (Tang stopped)"
# (the tpm2 pin's own errors go to /dev/null: they are the expected failure of that pin)
vm_ssh "sudo systemctl start tangd.socket; sudo env TPM2TOOLS_TCTI=device:/dev/null clevis luks pass -d $DEV -s $slot 2>/dev/null | sudo cryptsetup open --test-passphrase --key-file=- $DEV" \
  || fail "sss did not unlock with Tang alone (TPM unreachable)"
vm_log "sss unlocks with Tang alone (TPM made unreachable for the tpm2 pin)"

step "reboot with Tang stopped"
vm_ssh "sudo systemctl disable --now tangd.socket >/dev/null 2>&1; sudo systemctl reboot" || true
sleep 15
vm_wait_ssh 300 || fail "no ssh after reboot"
vm_ssh "systemctl is-active --quiet tangd.socket" && fail "Tang is running; the reboot test needs it off"
# crypttab/fstab say nofail: sshd may answer before clevis has unlocked the volumes.
for _ in $(seq 120); do
  [[ "$(mounted_from /var/lib/rancher)" == /dev/mapper/edgefleet-data && "$(mounted_from /var/lib/k0s)" == /dev/mapper/edgefleet-k0s-data ]] && break
  sleep 2
done
for vol in edgefleet-data edgefleet-k0s-data; do
  vm_ssh "sudo cryptsetup status $vol" | grep -q 'type:    LUKS2' || fail "$vol is not unlocked after the reboot"
done
mounted_from /var/lib/rancher | grep -qx /dev/mapper/edgefleet-data || fail "/var/lib/rancher is not mounted after the reboot"
mounted_from /var/lib/k0s | grep -qx /dev/mapper/edgefleet-k0s-data || fail "/var/lib/k0s is not mounted after the reboot"
api_ready k3s || fail "the K3s API did not come back after the reboot"
api_ready k0s || fail "the K0s API did not come back after the reboot"
k3s_after=$(rows k3s); k0s_after=$(rows k0s)
[[ "$k3s_after" == "$k3s_before" ]] || fail "K3s rows before the reboot: $k3s_before, after: $k3s_after"
[[ "$k0s_after" == "$k0s_before" ]] || fail "K0s rows before the reboot: $k0s_before, after: $k0s_after"
[[ "$(marker_sum /var/lib/rancher)" == "$m1" && "$(marker_sum /var/lib/k0s)" == "$m2" ]] || fail "a marker changed across the reboot"
vm_ssh "sudo journalctl -b -u 'systemd-cryptsetup@*' -u 'clevis-luks-askpass*' --no-pager -o cat" | tail -n 4 >&2 || true
vm_log "after the reboot (no passphrase typed, Tang off): both volumes unlocked by the TPM, K3s and K0s running,"
vm_log "  K3s rows $k3s_after, K0s rows $k0s_after (ConfigMaps/digest/kine rows), markers equal"

step "PCR 7 changed: the TPM no longer unseals"
vm_ssh "sudo tpm2_pcrextend 7:sha256=$(printf 'edgefleet: a changed boot chain' | sha256sum | cut -d' ' -f1)"
k0s_slot=$(tpm2_slot "$DEV2" tpm2)
[[ -n "$k0s_slot" ]] || fail "no tpm2 binding on the K0s volume"
vm_ssh "sudo clevis luks pass -d $DEV2 -s $k0s_slot >/dev/null 2>&1" && fail "the TPM2 binding unsealed after PCR 7 changed"
vm_ssh "sudo clevis luks pass -d $DEV -s $slot >/dev/null 2>&1" && fail "sss unsealed with PCR 7 changed and Tang off"
vm_ssh "sudo systemctl start tangd.socket; sudo clevis luks pass -d $DEV -s $slot 2>/dev/null | sudo cryptsetup open --test-passphrase --key-file=- $DEV" \
  || fail "with PCR 7 changed, the sss binding no longer unlocks through Tang"
vm_log "with PCR 7 extended: the TPM2 pin refuses on both volumes; the K3s volume still opens through Tang"

step "no secret in the logs"
for vol in edgefleet-data edgefleet-k0s-data; do
  pass=$(ansible-vault view "$(escrow_of $vol)" | tr -d '\n')
  [[ ${#pass} -ge 20 ]] || fail "escrowed passphrase of $vol is too short"
  if grep -rlF -- "$pass" "$WORK"/*.log; then fail "the recovery passphrase of $vol appears in a log"; fi
done
unset pass
vm_log "no passphrase in $(cat "$WORK"/*.log | wc -l) log lines (converge and migrate at -vvv)"

step "decommission (crypto-erase) only for the named node"
if play "$SCENARIO/decommission.yml" -e edgefleet_disk_encryption_decommission_node=some-other-node \
  >"$WORK/decom-refused.log" 2>&1; then fail "decommission ran for a node that was not named"; fi
grep -q "refusing to crypto-erase" "$WORK/decom-refused.log" || fail "no refusal message for an unnamed node"
vm_ssh "sudo cryptsetup isLuks $DEV" || fail "the unnamed-node decommission touched the volume"
play "$SCENARIO/decommission.yml" -e edgefleet_disk_encryption_decommission_node=edgefleet-vm \
  >"$WORK/decom.log" 2>&1 || { tail -n 30 "$WORK/decom.log"; fail "decommission"; }
opens edgefleet-data "$DEV" 2>/dev/null && fail "the recovery passphrase still opens the volume after crypto-erase"
vm_ssh "sudo cryptsetup luksDump $DEV" | sed -n '/^Keyslots:/,/^Tokens:/p' | grep -qE '^  [0-9]+: luks2' \
  && fail "key slots remain after crypto-erase"
vm_log "decommission: refused for an unnamed node; for the named node every key slot is gone, recovery fails"
step "disk-encryption scenario passed"
