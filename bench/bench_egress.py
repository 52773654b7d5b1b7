"""Parse time of a large guest capture: what ``harness.egress.guest_attempts`` costs after a big upload.

    .venv/bin/python bench/bench_egress.py [--frames 300000] [--repeats 3]

The capture is shaped like the one a portability run leaves: a release tarball copied into the
guest over SSH (full-size segments from slirp's side, skipped by MAC, and the guest's ACKs, which
are parsed down to TCP), with a handful of real attempts (DNS lookups, SYNs) spread through it.
Prints the best and median of the repeats in seconds and microseconds per frame, and tshark's time
on the same file (when installed) as an outside reference.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import dpkt

from harness.egress import guest_attempts

GUEST_MAC = bytes.fromhex("525400123456")
SLIRP_MAC = bytes.fromhex("52550a000202")
GUEST_IP = bytes([10, 0, 2, 15])
SLIRP_IP = bytes([10, 0, 2, 2])
RESOLVER_IP = bytes([10, 0, 2, 3])
ATTEMPT_EVERY = 1000  # one attempt per this many frames


def frame(src_mac: bytes, dst_mac: bytes, src: bytes, dst: bytes, l4: dpkt.Packet, proto: int) -> bytes:
    ip = dpkt.ip.IP(src=src, dst=dst, p=proto, data=l4)
    return bytes(dpkt.ethernet.Ethernet(src=src_mac, dst=dst_mac, type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def dns_query(name: str) -> bytes:
    query = dpkt.dns.DNS(id=1, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
    return bytes(query)


def build_capture(path: Path, frames: int) -> int:
    """Write ``frames`` frames to ``path``; returns how many attempts it holds."""
    upload = frame(SLIRP_MAC, GUEST_MAC, SLIRP_IP, GUEST_IP,
                   dpkt.tcp.TCP(sport=40000, dport=22, flags=dpkt.tcp.TH_ACK, data=b"x" * 1448), 6)
    ack = frame(GUEST_MAC, SLIRP_MAC, GUEST_IP, SLIRP_IP,
                dpkt.tcp.TCP(sport=22, dport=40000, flags=dpkt.tcp.TH_ACK), 6)
    lookup = frame(GUEST_MAC, SLIRP_MAC, GUEST_IP, RESOLVER_IP,
                   dpkt.udp.UDP(sport=5353, dport=53, data=dns_query("pypi.example.invalid")), 17)
    syn = frame(GUEST_MAC, SLIRP_MAC, GUEST_IP, bytes([192, 0, 2, 1]),
                dpkt.tcp.TCP(sport=50000, dport=443, flags=dpkt.tcp.TH_SYN), 6)
    attempts = 0
    with path.open("wb") as out:
        writer = dpkt.pcap.Writer(out, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
        for i in range(frames):
            if i % ATTEMPT_EVERY == 0:
                data = lookup if i % (2 * ATTEMPT_EVERY) == 0 else syn
                attempts += 1
            else:
                data = upload if i % 3 else ack  # delayed ACK: one per two full segments
            writer.writepkt(data, ts=1000.0 + i * 1e-4)
    return attempts


def timed(repeats: int, run: object) -> list[float]:
    assert callable(run)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "big.pcap"
        expected = build_capture(pcap, args.frames)
        found = len(guest_attempts(pcap))
        assert found == expected, f"found {found} attempts, built {expected}"
        ours = timed(args.repeats, lambda: guest_attempts(pcap))
        size_mb = pcap.stat().st_size / 1e6
        print(f"capture: {args.frames} frames, {size_mb:.0f} MB, {expected} attempts")
        print(f"guest_attempts: best {min(ours):.2f} s, median {statistics.median(ours):.2f} s, "
              f"{min(ours) / args.frames * 1e6:.2f} us/frame")
        if shutil.which("tshark"):
            tshark = timed(1, lambda: subprocess.run(
                ["tshark", "-r", str(pcap), "-Y", "dns.flags.response == 0 || tcp.flags == 0x002",
                 "-T", "fields", "-e", "ip.dst"], capture_output=True, check=True))
            print(f"tshark (reference): {tshark[0]:.2f} s")


if __name__ == "__main__":
    main()
