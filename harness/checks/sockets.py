"""Listening sockets in the guest, with the process holding each, and whether the release keeps
them to itself: only declared ports, only loopback.

Linux guests are read through ``/proc`` alone (``/proc/net/{tcp,tcp6,udp,udp6}`` for the sockets,
``/proc/<pid>/fd`` for who holds them), so a minimal image needs no extra tools; macOS guests
through ``lsof``, which every Mac has.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.guest import Guest, as_root_if_possible

PROC_TABLES = ("tcp", "tcp6", "udp", "udp6")
TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"  # a bound UDP socket waiting for datagrams: UDP's "listening"
SCAN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Owner:
    pid: int
    exe: str
    cmdline: str

    def describe(self) -> str:
        return f"pid {self.pid} {self.cmdline or self.exe or '?'}"


@dataclass(frozen=True)
class Listener:
    proto: str  # tcp | tcp6 | udp | udp6
    address: str
    port: int
    inode: str
    owners: tuple[Owner, ...] = ()

    @property
    def loopback(self) -> bool:
        ip = ipaddress.ip_address(self.address)
        mapped = getattr(ip, "ipv4_mapped", None)
        return (mapped or ip).is_loopback

    def where(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.proto} {host}:{self.port}"

    def describe(self) -> str:
        held = "; ".join(o.describe() for o in self.owners) or "no visible process"
        return f"{self.where()} held by {held}"


def decode_address(hex_address: str) -> tuple[str, int]:
    """``0100007F:1B39`` -> ("127.0.0.1", 6969); IPv6 addresses are four little-endian words."""
    host, _, port = hex_address.partition(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        address = str(ipaddress.IPv4Address(raw[::-1]))
    else:
        words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
        ip6 = ipaddress.IPv6Address(words)
        address = f"::ffff:{ip6.ipv4_mapped}" if ip6.ipv4_mapped else str(ip6)
    return address, int(port, 16)


def parse_proc_net(text: str, proto: str) -> list[Listener]:
    """The listening (TCP) or bound (UDP) sockets of one ``/proc/net`` table."""
    wanted = TCP_LISTEN if proto.startswith("tcp") else UDP_UNCONNECTED
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != wanted:
            continue
        address, port = decode_address(fields[1])
        found.append(Listener(proto, address, port, fields[9]))
    return found


def parse_fd_listing(text: str) -> dict[str, list[int]]:
    """socket inode -> pids holding it, from ``ls -l /proc/[0-9]*/fd``."""
    holders: dict[str, list[int]] = {}
    pid = None
    for line in text.splitlines():
        if line.startswith("/proc/") and line.rstrip().endswith(":"):
            part = line.split("/")[2]
            pid = int(part) if part.isdigit() else None
        elif pid is not None and "-> socket:[" in line:
            inode = line.rsplit("socket:[", 1)[1].rstrip("]")
            holders.setdefault(inode, []).append(pid)
    return holders


SECTION = "==hns== "


def linux_listeners(guest: Guest) -> list[Listener]:
    tables = "; ".join(f"echo '{SECTION}{t}'; cat /proc/net/{t} 2>/dev/null" for t in PROC_TABLES)
    script = f"{tables}; echo '{SECTION}fds'; ls -l /proc/[0-9]*/fd 2>/dev/null; true"
    output = guest.run(as_root_if_possible(script), timeout=SCAN_TIMEOUT_S).stdout
    sections = _sections(output)
    holders = parse_fd_listing(sections.get("fds", ""))
    listeners = [s for t in PROC_TABLES for s in parse_proc_net(sections.get(t, ""), t)]
    pids = sorted({p for s in listeners for p in holders.get(s.inode, [])})
    owners = _owners(guest, pids)
    return [Listener(s.proto, s.address, s.port, s.inode,
                     tuple(owners[p] for p in holders.get(s.inode, []) if p in owners)) for s in listeners]


def _sections(output: str) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in output.splitlines():
        if line.startswith(SECTION):
            current = found.setdefault(line[len(SECTION):].strip(), [])
        else:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def _owners(guest: Guest, pids: Sequence[int]) -> dict[int, Owner]:
    if not pids:
        return {}
    script = "; ".join(
        f"printf '%s\\t%s\\t' {pid} \"$(readlink /proc/{pid}/exe 2>/dev/null)\"; "
        f"tr '\\0' ' ' </proc/{pid}/cmdline 2>/dev/null; echo" for pid in pids)
    output = guest.run(as_root_if_possible(script), timeout=SCAN_TIMEOUT_S).stdout
    owners = {}
    for line in output.splitlines():
        pid, _, rest = line.partition("\t")
        exe, _, cmdline = rest.partition("\t")
        if pid.isdigit():
            owners[int(pid)] = Owner(int(pid), exe, cmdline.strip())
    return owners


LSOF = "lsof -nP -iTCP -sTCP:LISTEN -iUDP -F pcnPt 2>/dev/null; true"


def parse_lsof(text: str) -> list[Listener]:
    """``lsof -F pcnPt`` records (macOS guests): p<pid>, c<command>, then per file t/P/n fields."""
    found = []
    pid, command, proto, family = 0, "", "", ""
    for line in text.splitlines():
        tag, value = line[:1], line[1:]
        if tag == "p":
            pid = int(value)
        elif tag == "c":
            command = value
        elif tag == "t":
            family = value
        elif tag == "P":
            proto = value.lower() + ("6" if family == "IPv6" else "")
        elif tag == "n" and ":" in value:
            host, _, port = value.rpartition(":")
            host = host.strip("[]")
            host = {"*": "::" if proto.endswith("6") else "0.0.0.0"}.get(host, host)
            if port.isdigit():
                found.append(Listener(proto, host, int(port), "", (Owner(pid, "", command),)))
    return found


def listeners(guest: Guest, guest_os: str) -> list[Listener]:
    if guest_os == "linux":
        return linux_listeners(guest)
    return parse_lsof(guest.run(as_root_if_possible(LSOF), timeout=SCAN_TIMEOUT_S).stdout)


def of_release(found: Iterable[Listener], roots: Sequence[str], server_pids: Iterable[int] = ()) -> list[Listener]:
    """The listeners a release process holds: its server (and children) or anything run from its tree."""
    pids = set(server_pids)
    prefixes = tuple(r.rstrip("/") + "/" for r in roots)

    def ours(owner: Owner) -> bool:
        words = [owner.exe, *owner.cmdline.split()]
        return owner.pid in pids or any(w.startswith(prefixes) for w in words if w)

    return [s for s in found if any(ours(o) for o in s.owners)]


def problems(release_listeners: Iterable[Listener], declared: Sequence[int]) -> list[str]:
    """Each listener on a port the profile does not declare, or reachable from outside the machine."""
    out = []
    for s in release_listeners:
        wrong = []
        if not s.loopback:
            wrong.append(f"binds {s.address}, reachable from other machines (loopback only is allowed)")
        if s.port not in declared:
            wrong.append(f"port {s.port} is not declared (the profile declares {', '.join(map(str, declared))})")
        if wrong:
            out.append(f"{s.where()}: {' and '.join(wrong)}; held by "
                       + ("; ".join(o.describe() for o in s.owners) or "no visible process"))
    return out


def process_tree(guest: Guest, root_pid: int) -> set[int]:
    """``root_pid`` and its descendants, from ``/proc/<pid>/stat`` (parent pid is field 4)."""
    output = guest.run("cat /proc/[0-9]*/stat 2>/dev/null; true", timeout=SCAN_TIMEOUT_S).stdout
    parents: dict[int, int] = {}
    for line in output.splitlines():
        head, _, tail = line.rpartition(")")
        pid = head.split(" (", 1)[0]
        rest = tail.split()
        if pid.strip().isdigit() and len(rest) >= 2 and rest[1].isdigit():
            parents[int(pid)] = int(rest[1])
    tree = {root_pid}
    grew = True
    while grew:
        more = {p for p, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree
