"""What the guest tried to reach, read from the packet capture QEMU writes on the host.

QEMU's ``filter-dump`` object records every frame crossing the guest's user-mode network into a
classic pcap file. With ``restrict=on`` no packet leaves the VM, but the guest still has a route
(10.0.2.2) and a resolver (10.0.2.3) from slirp's DHCP, so a release that reaches for the network
really sends a DNS query or a TCP SYN, and the capture shows it. This module reads that file in
pure Python (no tshark on the host) and lists the attempts:

- DNS queries (the names asked for), over UDP or TCP port 53;
- TCP connection attempts (SYN without ACK) by destination address and port;
- UDP datagrams and ICMP echo requests by destination.

Not attempts: frames slirp sends (its MAC starts with 52:55), the guest's answers on connections
the host opened (SSH: SYN+ACK and later segments are never bare SYNs), DHCP, and IPv6 neighbour
discovery and multicast listener chatter.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from harness.errors import InfrastructureError

if TYPE_CHECKING:
    from harness.guest import Guest

PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
LINKTYPE_ETHERNET = 1
SLIRP_MAC_PREFIX = b"\x52\x55"  # slirp's own virtual hosts (gateway, DNS, ...) use 52:55:<ipv4>
ETH_IPV4, ETH_IPV6, ETH_VLAN = 0x0800, 0x86DD, 0x8100
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58
IPV6_EXTENSION_HEADERS = {0, 43, 60}  # hop-by-hop, routing, destination options (fragment handled apart)
DHCP_PORTS = {67, 68, 546, 547}
# Router/neighbour discovery and multicast listener reports: link housekeeping, not egress.
ICMPV6_HOUSEKEEPING = {130, 131, 132, 133, 134, 135, 136, 137, 143}
ICMP_ECHO_REQUEST, ICMPV6_ECHO_REQUEST = 8, 128

Protocol = Literal["dns", "tcp", "udp", "icmp"]


@dataclass(frozen=True)
class Frame:
    time: float
    data: bytes


@dataclass(frozen=True)
class Attempt:
    """One network attempt by the guest."""

    time: float
    protocol: Protocol
    destination: str
    port: int | None = None
    name: str | None = None  # the DNS name asked for
    qtype: str | None = None

    @property
    def key(self) -> tuple[str, str, int | None, str | None, str | None]:
        return (self.protocol, self.destination, self.port, self.name, self.qtype)

    def describe(self) -> str:
        if self.protocol == "dns":
            return f"DNS query {self.qtype or '?'} {self.name} (to {self.destination}:{self.port})"
        if self.protocol == "tcp":
            return f"TCP connect to {self.destination}:{self.port}"
        if self.protocol == "udp":
            return f"UDP datagram to {self.destination}:{self.port}"
        return f"ICMP echo to {self.destination}"


@dataclass(frozen=True)
class AttemptSummary:
    """Identical attempts folded into one line (retries of one lookup are one finding)."""

    first: Attempt
    count: int
    last_time: float

    def describe(self) -> str:
        times = f" x{self.count}" if self.count > 1 else ""
        return f"{self.first.describe()}{times}"


class PcapError(InfrastructureError):
    """The capture file is missing or not a pcap QEMU could have written."""


def read_frames(path: Path) -> Iterator[Frame]:
    """Frames of a classic pcap file; a record cut short (QEMU still writing) ends the stream."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise PcapError(
            f"cannot read the traffic capture {path}: {exc.strerror}",
            hint="the VM must be started with traffic capture on (the provider's filter-dump)",
        ) from None
    if len(blob) < 24:
        raise PcapError(f"traffic capture {path} is shorter than a pcap header ({len(blob)} bytes)")
    magic = blob[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        raise PcapError(f"{path} is pcapng; QEMU's filter-dump writes classic pcap",
                        hint="pass the file QEMU wrote, not a converted one")
    if magic not in PCAP_MAGIC:
        raise PcapError(f"{path} is not a pcap file (magic {magic.hex()})")
    endian, unit = PCAP_MAGIC[magic]
    (linktype,) = struct.unpack_from(endian + "I", blob, 20)
    if linktype & 0x0FFFFFFF != LINKTYPE_ETHERNET:
        raise PcapError(f"{path} has link type {linktype}, expected Ethernet (1)")
    offset = 24
    record = struct.Struct(endian + "IIII")
    while offset + record.size <= len(blob):
        sec, frac, caplen, _origlen = record.unpack_from(blob, offset)
        offset += record.size
        if offset + caplen > len(blob):
            return
        yield Frame(sec + frac * unit, blob[offset:offset + caplen])
        offset += caplen


def attempts_in(frame: Frame) -> Attempt | None:
    """The attempt a guest-sent frame makes, or None for anything that is not one."""
    data = frame.data
    if len(data) < 14 or data[6:8] == SLIRP_MAC_PREFIX:
        return None
    ethertype = struct.unpack_from("!H", data, 12)[0]
    offset = 14
    if ethertype == ETH_VLAN and len(data) >= 18:
        ethertype = struct.unpack_from("!H", data, 16)[0]
        offset = 18
    if ethertype == ETH_IPV4:
        parsed = _ipv4(data, offset)
    elif ethertype == ETH_IPV6:
        parsed = _ipv6(data, offset)
    else:
        return None  # ARP and other link-layer chatter
    if parsed is None:
        return None
    proto, destination, l4 = parsed
    return _transport(frame.time, proto, destination, l4)


def _ipv4(data: bytes, offset: int) -> tuple[int, str, bytes] | None:
    if len(data) < offset + 20:
        return None
    ihl = (data[offset] & 0x0F) * 4
    frag = struct.unpack_from("!H", data, offset + 6)[0] & 0x1FFF
    if frag:
        return None  # later fragments carry no transport header
    proto = data[offset + 9]
    destination = str(ipaddress.IPv4Address(data[offset + 16:offset + 20]))
    return proto, destination, data[offset + ihl:]


def _ipv6(data: bytes, offset: int) -> tuple[int, str, bytes] | None:
    if len(data) < offset + 40:
        return None
    proto = data[offset + 6]
    destination = str(ipaddress.IPv6Address(data[offset + 24:offset + 40]))
    pos = offset + 40
    while proto in IPV6_EXTENSION_HEADERS or proto == 44:
        if len(data) < pos + 8:
            return None
        if proto == 44:
            if struct.unpack_from("!H", data, pos + 2)[0] & 0xFFF8:
                return None  # not the first fragment
            proto, pos = data[pos], pos + 8
        else:
            proto, pos = data[pos], pos + (data[pos + 1] + 1) * 8
    return proto, destination, data[pos:]


def _transport(time: float, proto: int, destination: str, l4: bytes) -> Attempt | None:
    if proto == PROTO_TCP and len(l4) >= 14:
        dport = struct.unpack_from("!H", l4, 2)[0]
        flags = l4[13]
        if flags & 0x02 and not flags & 0x10:  # SYN without ACK: the guest opens a connection
            return Attempt(time, "tcp", destination, dport)
        return None
    if proto == PROTO_UDP and len(l4) >= 8:
        sport, dport = struct.unpack_from("!HH", l4, 0)
        if sport in DHCP_PORTS and dport in DHCP_PORTS:
            return None
        if dport == 53:
            name, qtype = parse_dns_question(l4[8:])
            return Attempt(time, "dns", destination, dport, name, qtype)
        return Attempt(time, "udp", destination, dport)
    if proto == PROTO_ICMP and l4[:1] == bytes([ICMP_ECHO_REQUEST]):
        return Attempt(time, "icmp", destination)
    if proto == PROTO_ICMPV6 and l4:
        if l4[0] in ICMPV6_HOUSEKEEPING:
            return None
        if l4[0] == ICMPV6_ECHO_REQUEST:
            return Attempt(time, "icmp", destination)
    return None


QTYPES = {1: "A", 28: "AAAA", 5: "CNAME", 15: "MX", 16: "TXT", 33: "SRV", 65: "HTTPS", 12: "PTR", 2: "NS"}


def parse_dns_question(payload: bytes) -> tuple[str | None, str | None]:
    """The first question's name and type; (None, None) if the message is malformed."""
    if len(payload) < 12 or struct.unpack_from("!H", payload, 4)[0] < 1:
        return None, None
    labels = []
    pos = 12
    while pos < len(payload):
        length = payload[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0:  # compression pointers do not occur in a question; treat as malformed
            return None, None
        labels.append(payload[pos + 1:pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    else:
        return None, None
    qtype = None
    if pos + 2 <= len(payload):
        code = struct.unpack_from("!H", payload, pos)[0]
        qtype = QTYPES.get(code, str(code))
    return ".".join(labels) + ".", qtype


def guest_attempts(path: Path, since: float | None = None, until: float | None = None) -> list[Attempt]:
    """Every attempt in the capture, optionally only those within [since, until] (host clock)."""
    out = []
    for frame in read_frames(path):
        if since is not None and frame.time < since:
            continue
        if until is not None and frame.time > until:
            continue
        attempt = attempts_in(frame)
        if attempt is not None:
            out.append(attempt)
    return out


def summarize(attempts: Iterable[Attempt]) -> list[AttemptSummary]:
    folded: dict[tuple[str, str, int | None, str | None, str | None], AttemptSummary] = {}
    for attempt in attempts:
        seen = folded.get(attempt.key)
        if seen is None:
            folded[attempt.key] = AttemptSummary(attempt, 1, attempt.time)
        else:
            folded[attempt.key] = AttemptSummary(seen.first, seen.count + 1, attempt.time)
    return sorted(folded.values(), key=lambda s: s.first.time)


SLIRP_GATEWAY = "10.0.2.2"
SLIRP_NETWORK_PREFIX = "10.0.2."


def make_attempts_visible(guest: Guest) -> str:
    """Give a slirp guest a default route, so a connection to any address leaves a SYN in the capture.

    With ``restrict=on`` slirp's DHCP hands out neither a router nor a DNS server, so a connect to
    an outside address fails inside the guest ("Network is unreachable") and the capture shows
    nothing. A default route via slirp's gateway makes the SYN go out onto the virtual wire, where
    the capture records it and the restriction drops it. (The image's resolv.conf names slirp's
    resolver 10.0.2.3, which is on-link, so lookups are visible already.) Returns what was done.
    """
    routes = guest.run("ip -4 route show", timeout=30)
    if not routes.ok:
        return "no ip(8) in the guest: routes left as they are"
    if any(line.startswith("default") for line in routes.stdout.splitlines()):
        return "the guest already has a default route"
    if SLIRP_NETWORK_PREFIX not in routes.stdout:
        return "not on a slirp network: routes left as they are"
    added = guest.run(f"sudo -n ip route add default via {SLIRP_GATEWAY}", timeout=30)
    if not added.ok:
        raise InfrastructureError(
            "could not give the guest a default route, so connection attempts would stay invisible",
            hint="the image's user needs passwordless sudo", detail=added.stderr[-500:],
        )
    return f"added a default route via {SLIRP_GATEWAY}"
