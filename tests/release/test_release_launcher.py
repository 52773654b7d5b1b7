"""The launcher: serve/status/stop, pid and log files, what the server writes, start-up failures."""

from __future__ import annotations

import socket

from release_support import ReleaseHome, free_port, snapshot


def test_launcher_lifecycle_and_footprint(installed: ReleaseHome) -> None:
    before = snapshot(installed.home)
    port = free_port()
    with installed.serving(port) as client:
        assert client.http.get("/ping").status_code == 200
        status = installed.refapp("status")
        assert status.returncode == 0 and f"port {port}" in status.stdout
        again = installed.refapp("serve", "--port", str(port))
        assert again.returncode == 0 and "already running" in again.stdout
        pid = installed.server_pid()
    assert installed.refapp("status").returncode == 3
    assert pid is not None
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the port still answers after stop"
    logs = installed.home / ".local" / "share" / "refapp" / "logs"
    assert "Uvicorn running" in (logs / "server.err.log").read_text()
    assert "loaded in" in (logs / "server.out.log").read_text()
    new = {p for p in snapshot(installed.home) - before if "__pycache__" not in p}
    allowed = (".config", ".local/share/refapp/logs")
    assert all(p.startswith(allowed) for p in new), f"unexpected writes: {sorted(new)}"


def test_serve_reports_a_dead_server(installed: ReleaseHome) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        result = installed.refapp("serve", "--port", str(port), "--timeout", "60")
        assert result.returncode == 1
        assert "exited during start-up" in result.stderr and "address already in use" in result.stderr.lower()
        assert installed.server_pid() is None
    finally:
        busy.close()
