#!/usr/bin/env bash
# Build (or reuse) the EFI System Partition image for a Secure Boot capable boot of the dm-crypt VM
# (VM_BOOT=efi in up.sh): a GPT disk image with one FAT32 ESP holding
#   EFI/BOOT/BOOTX64.EFI   Microsoft-signed shim (shim-signed: shimx64.efi.signed)
#   EFI/BOOT/grubx64.efi   Debian-signed monolithic grub (grub-efi-amd64-signed), which shim verifies
#   EFI/debian/grub.cfg    where that grub looks for its config (its prefix), a copy in EFI/BOOT/
#   vmlinuz, initrd.img    the base image's Debian-signed kernel (grub has shim verify it) and its initrd
# The root file system stays on the base image's root.img (root=/dev/vda). Built as a file with
# sfdisk and mtools (no loop devices). Cached under ~/.cache/edgefleet/vm/esp-<hash>/, keyed by this
# script, the base image's kernel and initrd, and the signed shim and grub. Prints the image path.
set -euo pipefail
source "$(dirname "$0")/vm-lib.sh"

SHIM=/usr/lib/shim/shimx64.efi.signed
GRUB=/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
for f in "$SHIM" "$GRUB"; do [[ -f "$f" ]] || vm_die "$f is missing (apt-get install shim-signed grub-efi-amd64-signed)"; done
command -v mcopy >/dev/null || vm_die "mtools is missing"
command -v mkfs.vfat >/dev/null || vm_die "dosfstools is missing"

base=$("$VM_DIR/build-image.sh")
hash=$(cat "$VM_DIR/build-esp.sh" "$base/vmlinuz" "$base/initrd.img" "$SHIM" "$GRUB" | sha256sum | cut -c1-12)
out="$VM_CACHE/esp-$hash"
if [[ -f "$out/.ready" ]]; then
  echo "$out/esp.img"
  exit 0
fi

start=$SECONDS
mkdir -p "$VM_CACHE"
work=$(mktemp -d "$VM_CACHE/esp-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat >"$work/grub.cfg" <<'CFG'
set timeout=0
set default=0
menuentry "edgefleet-vm" {
  search --no-floppy --file --set=root /vmlinuz
  linux /vmlinuz root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet
  initrd /initrd.img
}
CFG
# The ESP: 1 MiB for the GPT, then the FAT32 partition (type EFI System) to the end.
size_mib=$(( ( $(stat -c %s "$base/vmlinuz") + $(stat -c %s "$base/initrd.img") ) / 1048576 + 48 ))
truncate -s "${size_mib}M" "$work/esp.img"
printf 'label: gpt\nstart=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI System"\n' \
  | sfdisk -q "$work/esp.img"
truncate -s "$(( size_mib - 2 ))M" "$work/fat.img"
mkfs.vfat -F 32 -n EDGEFLEET "$work/fat.img" >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$work/fat.img" ::/EFI ::/EFI/BOOT ::/EFI/debian
mcopy -i "$work/fat.img" "$SHIM" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$work/fat.img" "$GRUB" ::/EFI/BOOT/grubx64.efi
mcopy -i "$work/fat.img" "$work/grub.cfg" ::/EFI/debian/grub.cfg
mcopy -i "$work/fat.img" "$work/grub.cfg" ::/EFI/BOOT/grub.cfg
mcopy -i "$work/fat.img" "$base/vmlinuz" ::/vmlinuz
mcopy -i "$work/fat.img" "$base/initrd.img" ::/initrd.img
dd if="$work/fat.img" of="$work/esp.img" bs=1M seek=1 conv=notrunc status=none
rm -f "$work/fat.img"
touch "$work/.ready"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
vm_log "ESP image built in $((SECONDS - start)) s: $out/esp.img"
echo "$out/esp.img"
