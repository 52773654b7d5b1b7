"""The QMP client against a scripted QMP server and against a real QEMU that boots nothing.

Every step has a deadline: a server that never greets or never answers costs the timeout, not a
hang. Errors come out as the callers catch them (OSError/ConnectionError for a dead or silent
socket, InfrastructureError for a QMP error or a socket that is not QMP).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from harness.errors import InfrastructureError
from harness.vm.qemu.qmp import QMPClient
from tests.needs import unavailable

GREETING = {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""},
                    "capabilities": []}}
EVENT = {"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}}

# What the scripted server does with one request: the messages to send back (none: hang up; None:
# say nothing).
Script = Callable[[dict[str, Any]], list[dict[str, Any]] | None]


def answer(request: dict[str, Any]) -> list[dict[str, Any]] | None:
    reply: dict[str, Any]
    if request["execute"] == "fail":
        reply = {"error": {"class": "GenericError", "desc": "it went wrong"}}
    elif request["execute"] == "hang":
        return None
    elif request["execute"] == "echo":
        reply = {"return": request.get("arguments", {})}
    else:
        reply = {"return": {"status": "running", "running": True}}
    if "id" in request:
        reply["id"] = request["id"]
    return [EVENT, reply]  # an event first: the client skips it


def bind_unix(path: Path) -> socket.socket:
    """A listening socket at ``path``, however long (through the directory's /proc fd)."""
    directory_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(f"/proc/self/fd/{directory_fd}/{path.name}")
    finally:
        os.close(directory_fd)
    server.listen(8)
    return server


def serve(server: socket.socket, greeting: bytes | None, script: Script) -> None:
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return  # closed: the test is over
        threading.Thread(target=converse, args=(conn, greeting, script), daemon=True).start()


def requests(conn: socket.socket) -> Iterator[dict[str, Any]]:
    """The JSON objects a client sends, newline or not between them (QEMU needs none)."""
    decoder = json.JSONDecoder()
    buffer = ""
    while chunk := conn.recv(4096):
        buffer += chunk.decode()
        while buffer.strip():
            try:
                request, end = decoder.raw_decode(buffer.lstrip())
            except ValueError:
                break  # the rest has not arrived yet
            buffer = buffer.lstrip()[end:]
            yield request


def converse(conn: socket.socket, greeting: bytes | None, script: Script) -> None:
    with conn:
        if greeting is None:
            conn.recv(1)  # says nothing until the client gives up
            return
        conn.sendall(greeting)
        for request in requests(conn):
            if request["execute"] == "qmp_capabilities":
                replies: list[dict[str, Any]] | None = [{"return": {}}]  # no events before this
            else:
                replies = script(request)
            if replies is None:
                conn.recv(1)
                return
            if not replies:
                return  # hangs up without a word
            try:
                conn.sendall(b"".join(json.dumps(r).encode() + b"\r\n" for r in replies))
            except BrokenPipeError:
                return  # the client gave up first


@pytest.fixture
def qmp_server(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    servers: list[socket.socket] = []

    def start(greeting: bytes | None = json.dumps(GREETING).encode() + b"\r\n", script: Script = answer,
              directory: str = ".") -> Path:
        path = tmp_path / directory / "qmp.sock"
        path.parent.mkdir(parents=True, exist_ok=True)
        server = bind_unix(path)
        servers.append(server)
        threading.Thread(target=serve, args=(server, greeting, script), daemon=True).start()
        return path

    yield start
    for server in servers:
        server.shutdown(socket.SHUT_RDWR)
        server.close()


def test_commands_return_their_value_past_events(qmp_server: Callable[..., Path]) -> None:
    with QMPClient(qmp_server(), timeout_s=5.0) as qmp:
        assert qmp.execute("query-status")["status"] == "running"
        assert qmp.execute("echo", uri="exec:cat", n=3) == {"uri": "exec:cat", "n": 3}
        assert qmp.execute("echo") == {}


def test_a_qmp_error_is_infrastructure(qmp_server: Callable[..., Path]) -> None:
    with QMPClient(qmp_server(), timeout_s=5.0) as qmp, \
            pytest.raises(InfrastructureError, match="QMP fail failed: it went wrong"):
        qmp.execute("fail")


def test_a_long_socket_path(tmp_path: Path, qmp_server: Callable[..., Path]) -> None:
    path = qmp_server(directory="q" * 120)
    assert len(str(path)) > 108
    with QMPClient(path, timeout_s=5.0) as qmp:
        assert qmp.execute("query-status")["running"] is True


@pytest.mark.parametrize("greeting", [None, b'{"QMP": {"version":'])
def test_no_greeting_costs_the_timeout(qmp_server: Callable[..., Path], greeting: bytes | None) -> None:
    """Silent, or half a greeting and then silence: TimeoutError (an OSError) after the timeout."""
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        QMPClient(qmp_server(greeting=greeting), timeout_s=0.5)
    assert time.monotonic() - started < 3.0


def test_an_unanswered_command_costs_the_timeout(qmp_server: Callable[..., Path]) -> None:
    with QMPClient(qmp_server(), timeout_s=0.5) as qmp:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            qmp.execute("hang")
        assert time.monotonic() - started < 3.0


def test_a_socket_that_is_not_qmp(qmp_server: Callable[..., Path]) -> None:
    with pytest.raises(InfrastructureError, match="did not greet like QMP"):
        QMPClient(qmp_server(greeting=b'{"hello": "world"}\r\n'), timeout_s=2.0)


def test_a_server_that_hangs_up(qmp_server: Callable[..., Path]) -> None:
    with QMPClient(qmp_server(script=lambda _: []), timeout_s=2.0) as qmp:
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            qmp.execute("query-status")
        assert time.monotonic() - started < 1.0  # at once, not at the timeout


def test_nobody_listening(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        QMPClient(tmp_path / "absent.sock", timeout_s=1.0)


def test_clients_in_threads_at_once(qmp_server: Callable[..., Path]) -> None:
    path = qmp_server()

    def status(_: int) -> str:
        with QMPClient(path, timeout_s=5.0) as qmp:
            return str(qmp.execute("query-status")["status"])

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(status, range(16))) == ["running"] * 16


def test_a_real_qemu(tmp_path: Path) -> None:
    """QEMU with no machine at all: its monitor answers, and quit ends the process."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        unavailable("qemu-system-x86_64 is not installed: apt-get install qemu-system-x86")
    sock = tmp_path / "qmp.sock"
    process = subprocess.Popen([qemu, "-machine", "none", "-nodefaults", "-display", "none",
                                "-qmp", f"unix:{sock},server=on,wait=off"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        with QMPClient(sock, timeout_s=10.0) as qmp:
            assert qmp.execute("query-status")["status"] in ("prelaunch", "running", "paused")
            with pytest.raises(InfrastructureError, match="QMP no-such-command failed"):
                qmp.execute("no-such-command")
            qmp.execute("quit")
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
