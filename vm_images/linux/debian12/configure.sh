#!/bin/sh
# Runs inside the freshly bootstrapped root (chroot) after rootfs/ was copied over it.
# Input (environment): HARNESS_USER, HARNESS_PUBKEY. No network access is needed here.
set -eu

: "${HARNESS_USER:?}" "${HARNESS_PUBKEY:?}"

# The login user: key-only, passwordless sudo, no password at all (locked).
useradd --create-home --shell /bin/bash --user-group "$HARNESS_USER"
passwd --lock "$HARNESS_USER" >/dev/null
passwd --lock root >/dev/null
install -d -m 0700 -o "$HARNESS_USER" -g "$HARNESS_USER" "/home/$HARNESS_USER/.ssh"
printf '%s\n' "$HARNESS_PUBKEY" > "/home/$HARNESS_USER/.ssh/authorized_keys"
chown "$HARNESS_USER:$HARNESS_USER" "/home/$HARNESS_USER/.ssh/authorized_keys"
chmod 0600 "/home/$HARNESS_USER/.ssh/authorized_keys"
printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$HARNESS_USER" > /etc/sudoers.d/90-harness-user
chmod 0440 /etc/sudoers.d/90-harness-user
visudo -c -q

# Every clone must look like a new machine: host keys are made on first boot (see
# harness-ssh-hostkey.service) and systemd writes a fresh machine-id when the file is empty.
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /var/lib/systemd/random-seed

# Networking: systemd-networkd (DHCP on the virtio NIC, see rootfs/etc/systemd/network).
systemctl enable systemd-networkd.service harness-ssh-hostkey.service ssh.service serial-getty@ttyS0.service
# Nothing waits for "network online"; sshd binds 0.0.0.0 and slirp forwards to it.
systemctl disable systemd-networkd-wait-online.service

# Boot time under software emulation: no periodic maintenance in a VM that lives minutes.
systemctl disable apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer getty@tty1.service remote-fs.target
systemctl mask systemd-pstore.service

# The slim initrd (MODULES=list, rootfs/etc/initramfs-tools) replaces the 36 MB MODULES=most one.
update-initramfs -u -k all

# Leave no build residue behind.
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /var/log/apt/* /tmp/* /var/tmp/*
