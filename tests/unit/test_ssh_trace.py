"""The operation trace bench/bench_warm.py replays: off by default, complete when on (commands with
their environment, directory and stdin, copies, forwarded exchanges), against a local sshd."""


from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sshd_server import LocalSSHD, sshd_fixture  # noqa: F401 (fixture)

from harness.ssh import SSHTransport
from harness.ssh.trace import TRACE_ENV, BusyClock


def _connect(sshd: LocalSSHD, tmp_path: Path) -> SSHTransport:
    return SSHTransport.connect(sshd.endpoint, known_hosts=tmp_path / "known_hosts",
                                log_path=tmp_path / "commands.log", deadline_s=20)


def _records(directory: Path) -> list[dict[str, object]]:
    return [json.loads(line) for path in sorted(directory.glob("*.jsonl"))
            for line in path.read_text().splitlines()]


def test_no_trace_unless_asked(sshd: LocalSSHD, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACE_ENV, raising=False)
    with _connect(sshd, tmp_path) as ssh:
        assert ssh.trace is None
        assert ssh.run("true", timeout=20).ok


@pytest.fixture
def http_server() -> Iterator[int]:
    class Slow(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: both requests share one forwarded connection

        def do_GET(self) -> None:
            time.sleep(0.3)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_every_guest_operation_is_recorded(sshd: LocalSSHD, tmp_path: Path, http_server: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    trace_dir = tmp_path / "trace"
    monkeypatch.setenv(TRACE_ENV, str(trace_dir))
    source = tmp_path / "payload"
    source.write_bytes(b"x" * 5000)
    with _connect(sshd, tmp_path) as ssh:
        ssh.run("cat > /dev/null", timeout=20, env={"A": "b c"}, cwd=str(tmp_path), stdin=b"input")
        ssh.put(source, str(tmp_path / "copy"), mode=0o600)
        with ssh.forward(http_server) as port, httpx.Client(timeout=10) as client:
            for _ in range(2):  # one kept-alive connection, two requests, idle time between them
                assert client.get(f"http://127.0.0.1:{port}/").text == "ok"
                time.sleep(0.5)
    records = _records(trace_dir)
    runs = [r for r in records if r["op"] == "run"]
    assert runs[0]["cmd"] == "cat > /dev/null" and runs[0]["env"] == {"A": "b c"}
    assert runs[0]["cwd"] == str(tmp_path) and base64.b64decode(str(runs[0]["stdin"])) == b"input"
    assert runs[0]["exit"] == 0 and float(str(runs[0]["s"])) > 0
    [put] = [r for r in records if r["op"] == "put"]
    assert (put["local"], put["remote"], put["mode"], put["size"]) == (str(source), str(tmp_path / "copy"), 0o600, 5000)
    assert any("sha256sum" in str(r["cmd"]) for r in runs), "the copy's check is a command of its own"
    [forward] = [r for r in records if r["op"] == "forward"]
    assert forward["requests"] == 2 and 0.6 <= float(str(forward["s"])) < 1.5, forward


def test_busy_clock_counts_requests_not_idle_time(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr("harness.ssh.trace.time.monotonic", lambda: now[0])
    clock = BusyClock()
    for at, event in ((0.0, "sent"), (0.1, "sent"), (1.0, "received"), (1.5, "received"),
                      (10.0, "sent"), (12.0, "received")):
        now[0] = at
        getattr(clock, event)()
    clock.finish()
    assert clock.requests == 2 and clock.busy_s == pytest.approx(1.5 + 2.0)
