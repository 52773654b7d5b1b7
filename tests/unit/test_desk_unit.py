"""The developer's desk without a VM: the terminal relay over a socket pair, the prompt, the
command lines of exec and cp, kept-VM lookup, and repro's choice of check and proof of inputs."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from harness.commands.cp import Place, parse_place
from harness.commands.exec import command_line
from harness.config import HostPaths
from harness.desk.guest_shell import OFFLINE, ONLINE, GuestShell, launch_command
from harness.desk.repro import CheckOutcome, choose_check, plan_repro, verify_release
from harness.desk.session import find_kept
from harness.desk.terminal import run_terminal
from harness.errors import UsageError
from harness.hashing import sha256_file
from harness.host.reaper import reap
from harness.host.run_label import Lease, LeaseBook, VMName
from harness.journal import CheckRecord, Journal
from harness.report.signoff.model import repro_command
from harness.suite.stages import reaches, stage_of
from harness.target import TargetInputs
from harness.vm.orchard.provider import OrchardProvider, OrchardSettings
from harness.vm.provider import VMOptions
from harness.vm.qemu.launch import QemuLaunch, qemu_command
from harness.vm.tart.cli import TartSettings
from harness.vm.tart.provider import ONLINE_MARKER, TartProvider


class SocketChannel:
    """A paramiko-like channel over one end of a socket pair; the test plays the guest."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pty: tuple[str, int, int] | None = None
        self.command = ""
        self.resizes: list[tuple[int, int]] = []
        self.exit_status: int | None = None
        self.write_shut = False
        self.closed = False

    def get_pty(self, term: str = "vt100", width: int = 80, height: int = 24) -> None:
        self.pty = (term, width, height)

    def exec_command(self, command: str) -> None:
        self.command = command

    def resize_pty(self, width: int = 80, height: int = 24) -> None:
        self.resizes.append((width, height))

    def recv(self, nbytes: int) -> bytes:
        return self.sock.recv(nbytes)

    def recv_ready(self) -> bool:
        return bool(select.select([self.sock], [], [], 0)[0])

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        self.write_shut = True
        self.sock.shutdown(socket.SHUT_WR)

    def exit_status_ready(self) -> bool:
        return self.exit_status is not None

    def recv_exit_status(self) -> int:
        assert self.exit_status is not None
        return self.exit_status

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.closed = True


def test_terminal_relays_both_ways_and_returns_the_exit_status(tmp_path: Path) -> None:
    ours, guest = socket.socketpair()
    channel = SocketChannel(ours)
    stdin_read, stdin_write = os.pipe()
    out_path = tmp_path / "out"

    def the_guest() -> None:
        typed = b""
        while b"exit 3\n" not in typed:
            typed += guest.recv(100)
        guest.sendall(b"prompt$ exit 3\r\n")
        channel.exit_status = 3
        guest.close()

    worker = threading.Thread(target=the_guest)
    worker.start()
    os.write(stdin_write, b"exit 3\n")
    with out_path.open("wb") as out:
        code = run_terminal(channel, "bash -i", stdin_fd=stdin_read, stdout_fd=out.fileno(), term="xterm")
    worker.join(5)
    os.close(stdin_read)
    os.close(stdin_write)
    assert code == 3
    assert out_path.read_bytes() == b"prompt$ exit 3\r\n"
    assert channel.command == "bash -i" and channel.pty is not None and channel.pty[0] == "xterm"


def test_terminal_sends_end_of_input_when_piped_stdin_runs_out(tmp_path: Path) -> None:
    ours, guest = socket.socketpair()
    channel = SocketChannel(ours)
    stdin_read, stdin_write = os.pipe()
    os.write(stdin_write, b"true\n")
    os.close(stdin_write)

    def the_guest() -> None:
        while guest.recv(100):
            pass  # until the host shuts its side: the shell saw end of input
        channel.exit_status = 0
        guest.close()

    worker = threading.Thread(target=the_guest)
    worker.start()
    with (tmp_path / "out").open("wb") as out:
        assert run_terminal(channel, "sh", stdin_fd=stdin_read, stdout_fd=out.fileno()) == 0
    worker.join(5)
    os.close(stdin_read)
    assert channel.write_shut


def test_prompt_says_whether_the_network_is_cut() -> None:
    offline = GuestShell(network=OFFLINE, release_path="/tmp/harness-upload/a b.tar.gz", vm_name="hns-shell-1-a").rc_text()
    online = GuestShell(network=ONLINE).rc_text()
    assert "PS1='[harness offline] " in offline and "export HARNESS_NETWORK=offline" in offline
    assert "export HARNESS_RELEASE='/tmp/harness-upload/a b.tar.gz'" in offline
    assert "[harness ONLINE (debugging)]" in online and "HARNESS_RELEASE" not in online
    assert "bash --rcfile /var/tmp/harness-shell.rc -i" in launch_command()


def test_qemu_leaves_the_network_open_only_when_asked(tmp_path: Path) -> None:
    def netdev(options: VMOptions) -> str:
        launch = QemuLaunch(name="hns-r-1-a", vm_dir=tmp_path, kernel=Path("/k"), initrd=Path("/i"),
                            kernel_cmdline="", ssh_port=4000, accel_args=(), options=options)
        argv = qemu_command("qemu", launch)
        return argv[argv.index("-netdev") + 1]

    assert "restrict=on" in netdev(VMOptions())
    assert "restrict=off" in netdev(VMOptions(online=True))


def test_exec_takes_one_shell_line_or_exact_words() -> None:
    assert command_line(["--", "ls /tmp | wc -l"]) == "ls /tmp | wc -l"
    assert command_line(["--", "printf", "%s\n", "a b"]) == "printf '%s\n' 'a b'"
    with pytest.raises(UsageError, match="no command"):
        command_line(["--"])


def test_cp_names_the_vm_side_only_for_harness_names() -> None:
    assert parse_place("hns-shell-12-abc123:/tmp/x") == Place("hns-shell-12-abc123", "/tmp/x")
    assert parse_place("C:/odd/host/path") == Place("", "C:/odd/host/path")
    assert parse_place("./file") == Place("", "./file")
    with pytest.raises(UsageError, match="no path"):
        parse_place("hns-shell-12-abc123:")


def test_a_vm_that_is_not_kept_is_refused_with_the_kept_ones_listed(tmp_path: Path) -> None:
    paths = HostPaths(cache=tmp_path / "cache", state=tmp_path / "state")
    book = LeaseBook(paths.state / "leases")
    book.write(Lease("hns-shell-1-aaaaaa", "qemu", "linux-debian12", 1, None, 0.0, kept=True))
    book.write(Lease.for_this_process("hns-run-2-bbbbbb", "qemu", "linux-debian12"))
    with pytest.raises(UsageError, match="belongs to a running harness process") as info:
        find_kept("hns-run-2-bbbbbb", paths)
    assert "hns-shell-1-aaaaaa" in info.value.hint
    with pytest.raises(UsageError, match="no VM of that name"):
        find_kept("hns-shell-9-cccccc", paths)
    with pytest.raises(UsageError, match="not a harness VM name"):
        find_kept("my-vm", paths)


def test_stages_follow_the_fixture_chain() -> None:
    assert stage_of(["target", "deployment", "installed", "server", "client"]) == "client"
    assert stage_of(["target", "install_twin"]) == "installed"
    assert stage_of(["target"]) == "release" and stage_of(["tmp_path"]) == ""
    assert reaches("server", "installed") and not reaches("installed", "server")
    assert reaches("", "server")  # unknown: replay everything


def _outcome(check: str, outcome: str, target: str = "linux-debian12") -> CheckOutcome:
    return CheckOutcome(check, target, outcome, "", "installed")


def test_repro_picks_the_first_failure_or_the_named_check() -> None:
    checks = [_outcome("release_checksum", "passed"), _outcome("install_offline", "failed"),
              _outcome("egress_none", "failed")]
    assert choose_check(checks, None, None).check == "install_offline"
    assert choose_check(checks, "release_checksum", None).check == "release_checksum"
    with pytest.raises(UsageError, match="no check 'nope'"):
        choose_check(checks, "nope", None)
    with pytest.raises(UsageError, match="no check failed"):
        choose_check(checks[:1], None, None)
    matrix = [_outcome("install_offline", "failed", "a"), _outcome("install_offline", "passed", "b")]
    with pytest.raises(UsageError, match="several targets"):
        choose_check(matrix, "install_offline", None)
    assert choose_check(matrix, "install_offline", "b").target == "b"


def _inputs(tmp_path: Path) -> TargetInputs:
    pinned = tmp_path / "results" / "releases" / "t"
    pinned.mkdir(parents=True)
    tarball = pinned / "refapp-v0.1.0-x86_64-linux.tar.gz"
    tarball.write_bytes(b"the tested bytes")
    (pinned / "install.sh").write_text("#!/bin/sh\n")
    origin = tmp_path / "dist"
    origin.mkdir()
    (origin / tarball.name).write_bytes(b"the tested bytes")
    (origin / "install.sh").write_text("#!/bin/sh\n")
    return TargetInputs(
        target="linux-debian12", release_path=str(tarball), release_origin=str(origin / tarball.name),
        release_sha256=sha256_file(tarball), companions={"install.sh": sha256_file(pinned / "install.sh")},
        profile_source=str(tmp_path / "missing.toml"), profile_sha256="", image="linux-debian12",
        provider="qemu", image_digest="abc", warm=True, cpus=2, memory_mb=2048)


def test_repro_uses_the_tested_bytes_and_refuses_changed_ones(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    assert verify_release(inputs) == Path(inputs.release_path)
    Path(inputs.release_path).write_bytes(b"rebuilt")  # the pinned copy was a hard link, rewritten
    assert verify_release(inputs) == Path(inputs.release_origin)
    (Path(inputs.release_origin).parent / "install.sh").write_text("#!/bin/sh\nexit 1\n")
    with pytest.raises(UsageError, match="refusing to reproduce with different bytes") as info:
        verify_release(inputs)
    assert "install.sh beside it changed" in info.value.message and "sha256" in info.value.message


def test_repro_reads_the_journal_and_names_a_missing_record(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    results = tmp_path / "results"
    with pytest.raises(UsageError, match="no run journal"):
        plan_repro(results)
    journal = Journal(results, writer_id="main")
    journal.write(CheckRecord(target="linux-debian12", check="install_offline", outcome="failed",
                              message="install failed", area="install", stage="installed"))
    with pytest.raises(UsageError, match="no inputs recorded"):
        plan_repro(results)
    journal.write(inputs.record())
    plan = plan_repro(results)
    assert plan.check.check == "install_offline" and plan.stage == "installed"
    assert plan.release == Path(inputs.release_path)
    assert repro_command(str(results), "install_offline", "linux-debian12") == (
        f"harness repro {results} --check install_offline --target linux-debian12")


def test_tart_and_orchard_cut_the_network_unless_the_vm_was_made_online(tmp_path: Path) -> None:
    paths = HostPaths(cache=tmp_path / "cache", state=tmp_path / "state")
    tart = TartProvider(TartSettings(binary="/bin/true"), paths)
    assert "--net-softnet-block=0.0.0.0/0" in tart.run_command("hns-shell-1-aaaaaa")
    (tart.vm_dir("hns-shell-2-bbbbbb")).mkdir(parents=True)
    (tart.vm_dir("hns-shell-2-bbbbbb") / ONLINE_MARKER).touch()  # what clone writes for online=True
    assert not any(a.startswith("--net-softnet") for a in tart.run_command("hns-shell-2-bbbbbb"))
    orchard = OrchardProvider(OrchardSettings(url="http://127.0.0.1:1"), paths)
    cut = orchard.spec("macos-clean", VMName.new("unit"), VMOptions())
    opened = orchard.spec("macos-clean", VMName.new("unit"), VMOptions(online=True))
    assert cut["netSoftnet"] and cut["netSoftnetBlock"] == ["0.0.0.0/0"]
    assert not opened["netSoftnet"] and opened["netSoftnetBlock"] == []


def test_gc_removes_logs_of_desk_vms_whose_process_died(tmp_path: Path) -> None:
    paths = HostPaths(cache=tmp_path / "cache", state=tmp_path / "state")
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = paths.desk / f"hns-shell-{dead.pid}-aaaaaa"
    live = paths.desk / f"hns-shell-{os.getpid()}-bbbbbb"
    for directory in (orphan, live):
        directory.mkdir(parents=True)
        (directory / "commands.log").write_text("")
    reap([], paths)
    assert not orphan.exists() and live.exists()
