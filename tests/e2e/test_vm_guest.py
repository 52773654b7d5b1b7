"""A real Debian guest under QEMU, driven through the ``vm`` fixture: commands, copies, forwards,
and proof that the guest is clean (no Python) and offline."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import RemoteTimeout
from harness.vm.machine import Machine

pytestmark = pytest.mark.vm

PYTHON_NAMES = ("python", "python3", "python2", "python3.11", "pypy3")


def test_commands_run_with_exit_codes_env_cwd_and_timeouts(vm: Machine) -> None:
    result = vm.run("uname -s; id -un; echo to-stderr >&2; exit 7")
    assert (result.exit_code, result.stdout, result.stderr) == (7, "Linux\ntester\n", "to-stderr\n")
    assert vm.run('echo "$ANSWER $(pwd)"', env={"ANSWER": "42"}, cwd="/tmp").stdout == "42 /tmp\n"
    assert vm.sudo("id -u").stdout == "0\n"

    with pytest.raises(RemoteTimeout):
        vm.run("sleep 313 & sleep 314", timeout=3)
    leftovers = vm.run("pgrep -f 'sleep 31[34]'")
    assert leftovers.exit_code == 1 and leftovers.stdout == "", "timed-out command still runs"
    assert "$ uname -s" in vm.ssh.log.path.read_text()


def test_file_round_trip_with_checksum_and_port_forward(vm: Machine, tmp_path: Path) -> None:
    payload = os.urandom(16 * 2**20 + 7)
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    expected = hashlib.sha256(payload).hexdigest()

    sent = vm.put(source, "/tmp/payload.bin", mode=0o600)
    assert sent.sha256 == expected
    assert vm.run("sha256sum /tmp/payload.bin").stdout.split()[0] == expected
    assert vm.run("stat -c %a /tmp/payload.bin").stdout == "600\n"
    back = vm.get("/tmp/payload.bin", tmp_path / "back.bin")
    assert back.sha256 == expected and (tmp_path / "back.bin").read_bytes() == payload

    # the guest's own sshd, reached through the tunnel
    with vm.forward(22) as port, socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        assert sock.recv(64).startswith(b"SSH-2.0-OpenSSH")


@pytest.fixture
def host_listener() -> Iterator[tuple[int, list[str]]]:
    """A TCP listener on the host's 127.0.0.1; records every connection it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except (TimeoutError, OSError):
                continue
            seen.append(f"{peer[0]}:{peer[1]}")
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join(timeout=5)
    server.close()


def _tcp_probe(vm: Machine, host: str, port: int) -> int:
    """Exit code of a TCP connect from inside the guest (bash's /dev/tcp; 124 = timed out)."""
    return vm.run(f"timeout 8 bash -c 'exec 3<>/dev/tcp/{host}/{port}'", timeout=30).exit_code


def test_guest_is_clean_and_offline(vm: Machine, host_listener: tuple[int, list[str]]) -> None:
    # Clean: no Python interpreter of any name, no libpython anywhere.
    for name in PYTHON_NAMES:
        assert not vm.command_exists(name), f"{name} is installed in the clean image"
    found = vm.run(
        r"find / -xdev \( -name 'libpython*' -o -name 'python[0-9]*' \) -print 2>/dev/null",
        timeout=300,
    )
    assert found.stdout == "", f"python files in the clean image:\n{found.stdout}"

    # Offline: no default route, and nothing answers through the slirp gateway.
    assert vm.run("ip route show default").stdout.strip() == "", "the guest has a route out"
    port, seen = host_listener
    assert _tcp_probe(vm, "127.0.0.1", 22) == 0, "positive control: the probe reaches a listener"
    assert _tcp_probe(vm, "10.0.2.2", port) != 0, "the host's loopback listener was reachable"
    assert _tcp_probe(vm, "10.0.2.2", 80) != 0
    assert seen == [], f"the host listener got connections from the guest: {seen}"
    assert not vm.run("getent hosts egress-probe.invalid", timeout=30).ok
