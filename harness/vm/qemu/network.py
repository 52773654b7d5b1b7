"""The guest's network: QEMU user-mode networking with no route out (``restrict=on``), one host
port forwarded to the guest's sshd on loopback, and the optional capture of every frame it sends."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"
GUEST_SSH_PORT = 22
NETDEV_ID = "n0"


def network_args(ssh_port: int, online: bool = False) -> list[str]:
    """The guest's only NIC: user-mode, restricted, with ``LOOPBACK:ssh_port`` forwarded to sshd."""
    # restrict=on: the guest reaches nothing through slirp, the host's own ports included; the
    # one way in is SSH forwarded from the host's loopback, and there is no guestfwd at all.
    # Only ``harness shell --online-for-debugging`` lifts it (VMOptions.online).
    restrict = "off" if online else "on"
    netdev = (f"user,id={NETDEV_ID},restrict={restrict},"
              f"hostfwd=tcp:{LOOPBACK}:{ssh_port}-:{GUEST_SSH_PORT}")
    return ["-netdev", netdev, "-device", f"virtio-net-pci,netdev={NETDEV_ID}"]


# Bytes kept of each frame. The egress reader needs the headers (Ethernet, VLAN, IPv6 with its
# extension headers, TCP) and a DNS question (at most 255 bytes of name); keeping whole frames
# would also keep every byte the harness moves over SSH, a release upload or a flood of output.
CAPTURE_SNAPLEN = 512


def capture_args(pcap_option: str) -> list[str]:
    """Dump every frame of the guest's NIC into a pcap file (``pcap_option`` already escaped),
    each cut to its first ``CAPTURE_SNAPLEN`` bytes."""
    return ["-object", f"filter-dump,id=dump0,netdev={NETDEV_ID},file={pcap_option},maxlen={CAPTURE_SNAPLEN}"]


def free_loopback_port() -> int:
    """A port that was free a moment ago; QEMU may still lose a race for it (start retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def read_ssh_banner(port: int, timeout_s: float) -> bytes:
    """The first line the guest's sshd sends, or b"" (slirp accepts a TCP connection even when
    nothing listens in the guest, then closes it: only the banner proves sshd is up)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            data = b""
            while b"\n" not in data and len(data) < 256:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
            return data
    except OSError:
        return b""
