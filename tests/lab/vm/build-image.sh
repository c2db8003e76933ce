#!/usr/bin/env bash
# Build (or reuse) the dm-crypt VM's base image: a Debian 12 root filesystem
# made with mmdebstrap, packed into ext4 with `mkfs.ext4 -d`, and the kernel and
# initrd taken from its /boot. Cached under ~/.cache/edgefleet/vm/base-<hash>/,
# keyed by a hash of the recipe (this script, guest-setup.sh, packages.txt and
# the lab public key). Prints the image directory.
set -euo pipefail
source "$(dirname "$0")/vm-lib.sh"

vm_ensure_packages
vm_ensure_key
pubkey=$(<"$VM_KEY.pub")
hash=$( { cat "$VM_DIR/build-image.sh" "$VM_DIR/guest-setup.sh" "$VM_DIR/packages.txt"; echo "$pubkey"; } \
  | sha256sum | cut -c1-12)
base="$VM_CACHE/base-$hash"
if [[ -f "$base/.ready" ]]; then
  echo "$base"
  exit 0
fi

# The Debian mirror this machine already uses (deb822 or one-line sources).
mirror=$( { grep -rhoE '^(URIs:|deb)[[:space:]]+[^[:space:]]+/debian/?([[:space:]]|$)' \
  /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true; } | awk 'NR == 1 {print $2}')
[[ -n "$mirror" ]] || vm_die "no Debian mirror found in /etc/apt/sources.list*"

mkdir -p "$VM_CACHE"
work=$(mktemp -d "$VM_CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
include=$(grep -vE '^\s*(#|$)' "$VM_DIR/packages.txt" | paste -sd, -)
vm_log "building the VM image $hash (about 2-3 minutes)"
start=$SECONDS
VM_PUBKEY="$pubkey" mmdebstrap --quiet --variant=apt --include="$include" \
  --customize-hook="$VM_DIR/guest-setup.sh \"\$1\"" \
  bookworm "$work/root" "deb $mirror bookworm main" "deb $mirror bookworm-updates main"
mkdir -p "$work/out"
cp "$work/root/boot/vmlinuz-"* "$work/out/vmlinuz"
cp "$work/root/boot/initrd.img-"* "$work/out/initrd.img"
mkfs.ext4 -q -F -L edgefleet-root -d "$work/root" "$work/out/root.img" 3G
touch "$work/out/.ready"
rm -rf "$base"
mv "$work/out" "$base"
vm_log "image built in $((SECONDS - start)) s: $base"
echo "$base"
