#!/usr/bin/env bash
# Runs on the VM as root (test only). Idempotent.
set -euo pipefail
# spare1: ext4 with a file (somebody's data).
S1=/dev/disk/by-id/virtio-edgefleet-spare1
if ! blkid -p "$S1" | grep -q 'TYPE="ext4"'; then
  mkfs.ext4 -q -F -L someones-data "$S1"
  m=$(mktemp -d); mount "$S1" "$m"
  head -c 100000 /dev/urandom >"$m/precious.bin"; umount "$m"; rmdir "$m"
  echo changed
fi
# spare2: a LUKS header that edgefleet did not create.
S2=/dev/disk/by-id/virtio-edgefleet-spare2
if ! blkid -p "$S2" | grep -q crypto_LUKS; then
  head -c 32 /dev/urandom | cryptsetup luksFormat -q --type luks2 --label someone-else \
    --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file=- "$S2"
  echo changed
fi
# Tang on loopback (port 80).
if ! systemctl is-active --quiet tangd.socket; then
  systemctl enable --now tangd.socket
  echo changed
fi
