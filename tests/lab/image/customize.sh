#!/bin/sh
# mmdebstrap customize hook: $1 is the root of the new image.
# Makes the tree behave like an edge node with a login for Ansible:
# user `edge`, passwordless sudo, key-only sshd. The lab key is not baked in;
# the firstboot unit installs the key bind-mounted at run time, and makes host
# keys unique per container.
set -eu
root=$1

chroot "$root" useradd --create-home --shell /bin/bash --comment 'edge node operator' edge
chroot "$root" passwd --lock edge >/dev/null
install -d -m 0700 -o 0 -g 0 "$root/etc/sudoers.d"
printf 'edge ALL=(ALL:ALL) NOPASSWD: ALL\n' > "$root/etc/sudoers.d/90-edge"
chmod 0440 "$root/etc/sudoers.d/90-edge"

# One host key per container, made at first boot (not shared through the image).
rm -f "$root"/etc/ssh/ssh_host_*
cat > "$root/etc/ssh/sshd_config.d/10-edgefleet-lab.conf" <<'CONF'
# edgefleet lab node: key-only logins.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UseDNS no
CONF

cat > "$root/usr/local/sbin/edgefleet-lab-firstboot" <<'SH'
#!/bin/sh
# edgefleet lab (test only): host key and the login key for user edge.
set -eu
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
if [ -f /run/edgefleet-lab/authorized_keys ] && [ ! -s /home/edge/.ssh/authorized_keys ]; then
  install -d -m 0700 -o edge -g edge /home/edge/.ssh
  install -m 0600 -o edge -g edge /run/edgefleet-lab/authorized_keys /home/edge/.ssh/authorized_keys
fi
SH
chmod 0755 "$root/usr/local/sbin/edgefleet-lab-firstboot"
cat > "$root/etc/systemd/system/edgefleet-lab-firstboot.service" <<'UNIT'
[Unit]
Description=edgefleet lab node first boot (host key, login key)
Before=ssh.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/edgefleet-lab-firstboot
RemainAfterExit=yes
[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable edgefleet-lab-firstboot.service ssh.service >/dev/null 2>&1

# Nothing in a container needs these; they only slow the boot or fail.
for unit in systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
            fstrim.timer systemd-remount-fs.service getty@tty1.service console-getty.service; do
  chroot "$root" systemctl mask "$unit" >/dev/null 2>&1 || true
done

# A real node has a machine id of its own: let systemd make one at first boot.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Smaller image: no apt lists or docs caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
