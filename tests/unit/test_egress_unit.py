"""The pcap reader finds the guest's attempts and nothing else; tshark (when present) agrees."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from harness.egress import PcapError, guest_attempts, parse_dns_question, read_frames, summarize
from tests.needs import unavailable

GUEST_MAC = bytes.fromhex("525400123456")
SLIRP_MAC = bytes.fromhex("52550a000202")
GUEST_IP = bytes([10, 0, 2, 15])


def ipv4(proto: int, src: bytes, dst: bytes, payload: bytes, frag: int = 0) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, frag, 64, proto, 0, src, dst)
    return header + payload


def ether(src: bytes, dst: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def tcp(sport: int, dport: int, flags: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def dns_query(name: str, qtype: int = 1) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", qtype, 1)


def guest_frame(proto: int, dst: str, payload: bytes) -> bytes:
    return ether(GUEST_MAC, SLIRP_MAC, 0x0800, ipv4(proto, GUEST_IP, bytes(map(int, dst.split("."))), payload))


def ipv6_frame(next_header: int, dst: bytes, payload: bytes) -> bytes:
    header = struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, 64, b"\xfe\x80" + b"\0" * 14, dst)
    return ether(GUEST_MAC, bytes.fromhex("333300000001"), 0x86DD, header + payload)


def write_pcap(path: Path, frames: list[tuple[float, bytes]], truncate_last: bool = False) -> Path:
    blob = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for ts, frame in frames:
        blob += struct.pack("<IIII", int(ts), int((ts % 1) * 1e6), len(frame), len(frame)) + frame
    if truncate_last:
        blob = blob[:-5]
    path.write_bytes(blob)
    return path


FRAMES = [
    # DHCP discover: address configuration, not egress.
    (100.0, ether(GUEST_MAC, b"\xff" * 6, 0x0800, ipv4(17, bytes(4), b"\xff" * 4, udp(68, 67, b"\0" * 40)))),
    # The host's SSH connection: SYN from slirp's side, SYN+ACK and data from the guest.
    (101.0, ether(SLIRP_MAC, GUEST_MAC, 0x0800, ipv4(6, bytes([10, 0, 2, 2]), GUEST_IP, tcp(40000, 22, 0x02)))),
    (101.1, guest_frame(6, "10.0.2.2", tcp(22, 40000, 0x12))),
    (101.2, guest_frame(6, "10.0.2.2", tcp(22, 40000, 0x18))),
    # Attempts: a lookup (retried), then connections.
    (200.0, guest_frame(17, "10.0.2.3", udp(5353, 53, dns_query("models.example.invalid", 1)))),
    (200.5, guest_frame(17, "10.0.2.3", udp(5354, 53, dns_query("models.example.invalid", 1)))),
    (200.6, guest_frame(17, "10.0.2.3", udp(5355, 53, dns_query("models.example.invalid", 28)))),
    (201.0, guest_frame(6, "10.0.2.2", tcp(50000, 8080, 0x02))),
    (202.0, guest_frame(17, "10.0.2.2", udp(50001, 123, b"\0" * 48))),
    (203.0, guest_frame(1, "10.0.2.2", b"\x08\x00" + b"\0" * 6)),
    # A later fragment has no transport header.
    (204.0, guest_frame(17, "10.0.2.2", b"\0" * 16)[:14] + ipv4(17, GUEST_IP, bytes([10, 0, 2, 2]), b"\0" * 16, frag=10)),
    # IPv6 router solicitation: housekeeping. IPv6 SYN: an attempt.
    (205.0, ipv6_frame(58, b"\xff\x02" + b"\0" * 13 + b"\x02", b"\x85\x00" + b"\0" * 6)),
    (206.0, ipv6_frame(6, b"\x20\x01\x0d\xb8" + b"\0" * 11 + b"\x01", tcp(50002, 443, 0x02))),
    # ARP
    (207.0, ether(GUEST_MAC, b"\xff" * 6, 0x0806, b"\0" * 28)),
]


def test_attempts_listed(tmp_path: Path) -> None:
    pcap = write_pcap(tmp_path / "t.pcap", FRAMES)
    got = [a.describe() for a in guest_attempts(pcap)]
    assert got == [
        "DNS query A models.example.invalid. (to 10.0.2.3:53)",
        "DNS query A models.example.invalid. (to 10.0.2.3:53)",
        "DNS query AAAA models.example.invalid. (to 10.0.2.3:53)",
        "TCP connect to 10.0.2.2:8080",
        "UDP datagram to 10.0.2.2:123",
        "ICMP echo to 10.0.2.2",
        "TCP connect to 2001:db8::1:443",
    ]


def test_time_window(tmp_path: Path) -> None:
    pcap = write_pcap(tmp_path / "t.pcap", FRAMES)
    assert [a.protocol for a in guest_attempts(pcap, since=200.9, until=202.5)] == ["tcp", "udp"]
    assert guest_attempts(pcap, until=199.0) == []


def test_summary_folds_retries(tmp_path: Path) -> None:
    pcap = write_pcap(tmp_path / "t.pcap", FRAMES)
    lines = [s.describe() for s in summarize(guest_attempts(pcap))]
    assert lines[0] == "DNS query A models.example.invalid. (to 10.0.2.3:53) x2"
    assert len(lines) == 6  # the AAAA lookup is its own line


def test_truncated_last_record_is_ignored(tmp_path: Path) -> None:
    pcap = write_pcap(tmp_path / "t.pcap", FRAMES, truncate_last=True)
    assert len(list(read_frames(pcap))) == len(FRAMES) - 1


def test_no_attempts_in_ssh_only_capture(tmp_path: Path) -> None:
    pcap = write_pcap(tmp_path / "t.pcap", FRAMES[:4])
    assert guest_attempts(pcap) == []


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(PcapError, match="cannot read"):
        list(read_frames(tmp_path / "missing.pcap"))
    (tmp_path / "short").write_bytes(b"abc")
    with pytest.raises(PcapError, match="shorter than a pcap header"):
        list(read_frames(tmp_path / "short"))
    (tmp_path / "ng").write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 28)
    with pytest.raises(PcapError, match="pcapng"):
        list(read_frames(tmp_path / "ng"))
    (tmp_path / "junk").write_bytes(b"\0" * 40)
    with pytest.raises(PcapError, match="not a pcap"):
        list(read_frames(tmp_path / "junk"))


def test_dns_question_parse() -> None:
    assert parse_dns_question(dns_query("a.b.invalid", 28)) == ("a.b.invalid.", "AAAA")
    assert parse_dns_question(b"\0" * 5) == (None, None)


def test_tshark_agrees(tmp_path: Path) -> None:
    """Our pcap reading agrees with Wireshark's on the same capture (tshark: a cross-check only)."""
    if shutil.which("tshark") is None:
        unavailable("tshark (the cross-check of the pcap reader) is not installed: apt-get install tshark")
    pcap = write_pcap(tmp_path / "t.pcap", FRAMES)
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "dns.flags.response == 0 || (tcp.flags.syn == 1 && tcp.flags.ack == 0)",
         "-T", "fields", "-e", "dns.qry.name", "-e", "tcp.dstport", "-e", "eth.src"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()
    theirs = sorted(line.split("\t")[0] or line.split("\t")[1] for line in out if not line.endswith("52:55:0a:00:02:02"))
    ours = sorted(
        (a.name or "").rstrip(".") or str(a.port) for a in guest_attempts(pcap) if a.protocol in ("dns", "tcp")
    )
    assert theirs == ours


def test_nanosecond_big_endian_capture(tmp_path: Path) -> None:
    """The other classic pcap flavours read alike, with times as plain floats."""
    blob = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    for ts, frame in FRAMES:
        blob += struct.pack(">IIII", int(ts), round((ts % 1) * 1e9), len(frame), len(frame)) + frame
    (tmp_path / "ns.pcap").write_bytes(blob)
    micro = guest_attempts(write_pcap(tmp_path / "us.pcap", FRAMES))
    nano = guest_attempts(tmp_path / "ns.pcap")
    assert [a.key for a in nano] == [a.key for a in micro]
    assert all(type(a.time) is float for a in nano)
    assert [round(a.time, 3) for a in nano] == [round(a.time, 3) for a in micro]


def test_record_header_cut_short_ends_the_stream(tmp_path: Path) -> None:
    pcap = write_pcap(tmp_path / "t.pcap", FRAMES)
    pcap.write_bytes(pcap.read_bytes() + b"\0" * 7)  # QEMU halfway through the next record's header
    assert len(list(read_frames(pcap))) == len(FRAMES)


def test_vlan_tagged_attempt(tmp_path: Path) -> None:
    tagged = guest_frame(6, "10.0.2.2", tcp(50000, 8080, 0x02))
    tagged = tagged[:12] + struct.pack("!HH", 0x8100, 5) + tagged[12:]
    [attempt] = guest_attempts(write_pcap(tmp_path / "t.pcap", [(1.0, tagged)]))
    assert attempt.describe() == "TCP connect to 10.0.2.2:8080"
