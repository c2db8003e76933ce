#!/usr/bin/env bash
# mmdebstrap customize hook: configure the VM's root tree ($1) as a lab edge
# node. Part of the image recipe hash. The ssh key is added at build time from
# $VM_PUBKEY (the lab key), so the image is keyed by recipe, not by key.
set -euo pipefail
root=$1

echo edgefleet-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 edgefleet-vm\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 defaults,errors=remount-ro 0 1\n' >"$root/etc/fstab"

# systemd-networkd DHCP on the single user-net NIC (no route anywhere: restrict=on).
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n' >"$root/etc/systemd/network/20-eth0.network"
chroot "$root" systemctl enable systemd-networkd.service ssh.service >/dev/null 2>&1
# Nothing to wait for: the lab has no route out.
chroot "$root" systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true

# The ansible user, as a real edge node has it.
chroot "$root" useradd -m -s /bin/bash edge
install -d -m 0700 -o 1000 -g 1000 "$root/home/edge/.ssh"
install -m 0600 -o 1000 -g 1000 /dev/stdin "$root/home/edge/.ssh/authorized_keys" <<<"$VM_PUBKEY"
printf 'edge ALL=(ALL) NOPASSWD:ALL\n' >"$root/etc/sudoers.d/edge"
chmod 0440 "$root/etc/sudoers.d/edge"
# Console login for debugging only through the serial log; root has no password.
chroot "$root" passwd -l root >/dev/null

# Fresh host keys per image; fast ssh (no DNS lookups of the client).
rm -f "$root"/etc/ssh/ssh_host_*
chroot "$root" ssh-keygen -A >/dev/null
printf 'UseDNS no\n' >"$root/etc/ssh/sshd_config.d/edgefleet-lab.conf"

# Tang ships enabled on a socket; the lab scenario enables it when it needs it.
chroot "$root" systemctl disable tangd.socket >/dev/null 2>&1 || true

# Rebuild the initrd now that clevis hooks are in place.
chroot "$root" update-initramfs -u -k all >/dev/null 2>&1
