"""The SSH transport against a real OpenSSH server on 127.0.0.1 (no VM needed)."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import paramiko
import psutil
import pytest
from sshd_server import LocalSSHD, free_port, keygen, run_sshd, sshd_fixture  # noqa: F401 (fixture)

from harness.errors import InfrastructureError, RemoteTimeout
from harness.ssh import HostKeyPin, RemoteCommandFailed, SSHTransport, ssh_command
from harness.ssh.endpoint import SSHEndpoint


@pytest.fixture
def ssh(sshd: LocalSSHD, tmp_path: Path) -> Iterator[SSHTransport]:
    with SSHTransport.connect(
        sshd.endpoint, known_hosts=tmp_path / "known_hosts", log_path=tmp_path / "commands.log",
        deadline_s=20,
    ) as transport:
        yield transport


def _pids_matching(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], check=False, capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def test_run_returns_exit_code_output_and_duration(ssh: SSHTransport) -> None:
    result = ssh.run("echo out; echo err >&2; exit 3", timeout=20)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok and result.duration_s > 0
    assert result.cmd == "echo out; echo err >&2; exit 3"


def test_run_honours_env_cwd_and_stdin(ssh: SSHTransport, tmp_path: Path) -> None:
    result = ssh.run(
        'printf "%s|%s|" "$GREETING" "$(pwd)"; cat', timeout=20,
        env={"GREETING": "it's a \"quoted\" $value"}, cwd=str(tmp_path), stdin=b"from stdin",
    )
    assert result.stdout == f"it's a \"quoted\" $value|{tmp_path}|from stdin"


def test_run_keeps_the_command_whole(ssh: SSHTransport, tmp_path: Path) -> None:
    # Operators, quotes and several lines stay one command; a bad cwd stops it before it runs.
    script = "false || echo 'fall back'\nfor x in a b; do printf '%s;' \"$x\"; done\nexit 4"
    result = ssh.run(script, timeout=20, cwd=str(tmp_path))
    assert (result.exit_code, result.stdout) == (4, "fall back\na;b;")
    missing = ssh.run("echo ran", timeout=20, cwd=str(tmp_path / "absent"))
    assert missing.exit_code != 0 and "ran" not in missing.stdout


def test_run_check_raises_with_the_result(ssh: SSHTransport) -> None:
    with pytest.raises(RemoteCommandFailed) as caught:
        ssh.run("echo broken >&2; false", timeout=20, check=True)
    assert caught.value.result.exit_code == 1
    assert "broken" in str(caught.value)


def test_timeout_raises_and_kills_the_remote_process_group(ssh: SSHTransport) -> None:
    marker = f"{os.getpid()}{time.monotonic_ns() % 10**6}"
    # A child in the background plus one in the foreground: both belong to the session's group.
    cmd = f"sleep 3{marker}1 & sleep 3{marker}2; echo never"
    started = time.monotonic()
    with pytest.raises(RemoteTimeout) as caught:
        ssh.run(cmd, timeout=1.5)
    assert time.monotonic() - started < 15
    assert "1.5 s timeout" in str(caught.value)
    deadline = time.monotonic() + 10
    while _pids_matching(f"sleep 3{marker}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pids_matching(f"sleep 3{marker}") == []
    assert ssh.run("echo still usable", timeout=20).stdout == "still usable\n"


def test_a_flood_of_output_is_kept_at_both_ends_and_counted(ssh: SSHTransport,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.ssh.exec

    monkeypatch.setattr(harness.ssh.exec, "OUTPUT_KEEP_BYTES", 1000)
    result = ssh.run("echo first; seq 1 200000; echo last", timeout=60)
    assert result.ok
    assert result.stdout.startswith("first\n1\n2\n") and result.stdout.endswith("200000\nlast\n")
    dropped = int(re.search(r"\[\.\.\. (\d+) bytes of output dropped here", result.stdout)[1])  # type: ignore[index]
    assert len(result.stdout) < 3000 + 100
    assert dropped + len(result.stdout) > 1_200_000  # seq 1..200000 prints ~1.29 MB


def test_every_command_is_logged_with_timestamps(ssh: SSHTransport) -> None:
    ssh.run("echo logged-out; echo logged-err >&2", timeout=20)
    log = ssh.log.path.read_text()
    assert re.search(r"^\d{4}-\d\d-\d\dT[\d:.]+\+00:00 \$ echo logged-out", log, re.MULTILINE)
    assert "  | logged-out" in log and "  ! logged-err" in log and "exit 0 after" in log


def test_put_and_get_round_trip_with_checksums(ssh: SSHTransport, tmp_path: Path) -> None:
    payload = os.urandom(9 * 2**20 + 123)  # several request sizes, plus a ragged tail
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    remote = str(tmp_path / "remote" / "copy.bin")
    ssh.run(f"mkdir -p {tmp_path / 'remote'}", timeout=20, check=True)

    sent = ssh.put(source, remote, mode=0o640)
    back = ssh.get(remote, tmp_path / "back.bin")

    expected = hashlib.sha256(payload).hexdigest()
    assert sent.sha256 == back.sha256 == expected and sent.size == back.size == len(payload)
    assert (tmp_path / "back.bin").read_bytes() == payload
    assert oct(os.stat(remote).st_mode & 0o777) == "0o640"
    assert "sha256" in ssh.log.path.read_text()


def test_put_to_a_missing_directory_is_a_clear_error(ssh: SSHTransport, tmp_path: Path) -> None:
    source = tmp_path / "small"
    source.write_text("x")
    with pytest.raises(InfrastructureError, match="SFTP put .* failed"):
        ssh.put(source, str(tmp_path / "no" / "such" / "dir" / "small"))


def test_sshd_killed_mid_put_names_the_dropped_connection(sshd: LocalSSHD, tmp_path: Path) -> None:
    source = tmp_path / "big"
    source.write_bytes(os.urandom(64 * 2**20))
    remote = tmp_path / "remote-big"
    with run_sshd(tmp_path / "doomed", sshd.endpoint.key_path) as doomed, SSHTransport.connect(
        doomed.endpoint, known_hosts=tmp_path / "kh", log_path=tmp_path / "log", deadline_s=20,
    ) as transport:

        def kill_at_first_bytes() -> None:
            deadline = time.monotonic() + 60
            while not (remote.exists() and remote.stat().st_size) and time.monotonic() < deadline:
                time.sleep(0.01)
            # The listener and the session's sshd (each session has a process group of its own).
            listener = psutil.Process(doomed.process.pid)
            for process in [*listener.children(recursive=True), listener]:
                process.kill()

        killer = threading.Thread(target=kill_at_first_bytes)
        killer.start()
        try:
            with pytest.raises(InfrastructureError) as caught:
                transport.put(source, str(remote), timeout=60)
        finally:
            killer.join(timeout=70)
    assert remote.stat().st_size < source.stat().st_size, "the copy ended before the kill"
    assert f"the SSH connection to 127.0.0.1:{doomed.endpoint.port} dropped during the SFTP put" in caught.value.message
    assert "console log" in (caught.value.hint or "")


def test_a_corrupt_copy_is_detected(
    ssh: SSHTransport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "small"
    source.write_text("x")
    # The guest reports a different digest than what was sent: the copy must be refused.
    monkeypatch.setattr(SSHTransport, "remote_sha256", lambda self, path, timeout=0: "0" * 64)
    with pytest.raises(InfrastructureError, match="is corrupt"):
        ssh.put(source, str(tmp_path / "dest"))


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_forward_reaches_a_guest_port_through_ssh(ssh: SSHTransport) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with ssh.forward(server.server_address[1]) as local_port:
            assert local_port != server.server_address[1]
            with httpx.Client(base_url=f"http://127.0.0.1:{local_port}", timeout=10) as client:
                replies = [client.get(f"/n{i}").text for i in range(5)]
            assert replies == [f"hello /n{i}" for i in range(5)]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{local_port}/", timeout=3)
    finally:
        server.shutdown()
        server.server_close()


def test_forward_to_a_closed_guest_port_fails_the_client_not_the_transport(
    ssh: SSHTransport, caplog: pytest.LogCaptureFixture,
) -> None:
    with ssh.forward(free_port()) as local_port, pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{local_port}/", timeout=5)
    assert ssh.run("true", timeout=20).ok
    # The refusal goes to the VM's command log, not as an ERROR line into a passing run's output.
    assert "refused" in ssh.log.path.read_text()
    assert not [r for r in caplog.records if r.name.startswith("paramiko") and r.levelname == "ERROR"]


def test_host_key_is_pinned_and_a_changed_key_is_refused(sshd: LocalSSHD, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    with SSHTransport.connect(sshd.endpoint, known_hosts=known_hosts,
                              log_path=tmp_path / "log", deadline_s=20):
        pass
    assert f"[127.0.0.1]:{sshd.endpoint.port} ssh-ed25519" in known_hosts.read_text()
    with SSHTransport.connect(sshd.endpoint, known_hosts=known_hosts,
                              log_path=tmp_path / "log", deadline_s=20):
        pass  # same key again: accepted
    impostor = paramiko.Ed25519Key.from_private_key_file(str(keygen(tmp_path / "other")))
    replaced = tmp_path / "replaced_known_hosts"
    HostKeyPin(replaced, "127.0.0.1", sshd.endpoint.port).check(impostor)
    with pytest.raises(InfrastructureError, match="host key of .* changed"):
        SSHTransport.connect(sshd.endpoint, known_hosts=replaced,
                             log_path=tmp_path / "log", deadline_s=20)


def test_a_refused_key_names_the_key_and_the_user(sshd: LocalSSHD, tmp_path: Path) -> None:
    stranger = keygen(tmp_path / "stranger")
    endpoint = SSHEndpoint(sshd.endpoint.host, sshd.endpoint.port, sshd.endpoint.user, stranger)
    started = time.monotonic()
    with pytest.raises(InfrastructureError) as caught:
        SSHTransport.connect(endpoint, known_hosts=tmp_path / "kh",
                             log_path=tmp_path / "log", deadline_s=30)
    assert time.monotonic() - started < 10, "a refused key must not be retried until the deadline"
    assert str(stranger) in str(caught.value) and f"'{endpoint.user}'" in str(caught.value)


def test_a_missing_key_file_is_a_clear_error(sshd: LocalSSHD, tmp_path: Path) -> None:
    endpoint = SSHEndpoint("127.0.0.1", sshd.endpoint.port, "tester", tmp_path / "absent")
    with pytest.raises(InfrastructureError, match="absent does not exist"):
        SSHTransport.connect(endpoint, known_hosts=tmp_path / "kh", log_path=tmp_path / "log")


def test_connect_retries_until_the_server_comes_up(sshd: LocalSSHD, tmp_path: Path) -> None:
    port = free_port()
    endpoint = SSHEndpoint("127.0.0.1", port, sshd.endpoint.user, sshd.endpoint.key_path)
    results: list[SSHTransport | BaseException] = []

    def connect() -> None:
        try:
            results.append(SSHTransport.connect(endpoint, known_hosts=tmp_path / "kh",
                                                log_path=tmp_path / "log", deadline_s=30))
        except BaseException as exc:  # noqa: BLE001 (handed to the main thread)
            results.append(exc)

    client = threading.Thread(target=connect)
    client.start()
    with run_sshd(tmp_path / "late", sshd.endpoint.key_path, port=port, delay_s=2.0):
        client.join(timeout=40)
        transport = results[0]
        assert isinstance(transport, SSHTransport), transport
        assert transport.run("echo up", timeout=20).stdout == "up\n"
        transport.close()


def test_connect_gives_up_at_the_deadline(sshd: LocalSSHD, tmp_path: Path) -> None:
    endpoint = SSHEndpoint("127.0.0.1", free_port(), "tester", sshd.endpoint.key_path)
    started = time.monotonic()
    with pytest.raises(InfrastructureError, match="could not open SSH .* within 2 s"):
        SSHTransport.connect(endpoint, known_hosts=tmp_path / "kh",
                             log_path=tmp_path / "log", deadline_s=2)
    assert time.monotonic() - started < 6


def test_still_alive_callback_aborts_the_wait(sshd: LocalSSHD, tmp_path: Path) -> None:
    endpoint = SSHEndpoint("127.0.0.1", free_port(), "tester", sshd.endpoint.key_path)

    def vm_died() -> None:
        raise InfrastructureError("the VM process exited")

    with pytest.raises(InfrastructureError, match="VM process exited"):
        SSHTransport.connect(endpoint, known_hosts=tmp_path / "kh", log_path=tmp_path / "log",
                             deadline_s=30, still_alive=vm_died)


def test_ssh_command_logs_in_with_the_same_key_and_pin(ssh: SSHTransport) -> None:
    line = ssh.ssh_command()
    assert line.startswith(f"ssh -p {ssh.endpoint.port} -i {ssh.endpoint.key_path} ")
    assert f"UserKnownHostsFile={ssh.known_hosts}" in line
    assert line.endswith(f"{ssh.endpoint.user}@127.0.0.1")
    # The very line a human would paste, with a command appended; BatchMode: never prompt.
    batch = line.replace("ssh ", "ssh -o BatchMode=yes ", 1)
    done = subprocess.run(f"{batch} echo via-openssh", shell=True, check=False,
                          capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, "via-openssh\n"), done.stderr
    assert ssh_command(ssh.endpoint, ssh.known_hosts) == line
