"""The new checks' guest-side logic, run against this host itself through a local shell (the
same commands a guest runs): real sockets, real files, the host's own dynamic loader."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from harness.checks import buildhost, hygiene, native, sockets
from harness.checks.reinstall import left_behind, reinstall_differences
from harness.guest_tree import Manifest, ManifestEntry
from harness.install.conditions import as_user
from harness.ssh import CommandResult


class LocalGuest:
    """Runs guest commands in a local shell: the guest-side scripts are exercised for real."""

    def run(self, cmd: str, timeout: float = 60, env: Mapping[str, str] | None = None,
            cwd: str | None = None, check: bool = False, stdin: bytes | None = None) -> CommandResult:
        started = time.monotonic()
        done = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})}, cwd=cwd, check=False)
        return CommandResult(cmd, done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@pytest.fixture
def listening() -> Iterator[tuple[int, int]]:
    """One TCP socket on loopback and one on every interface, held by this process."""
    held = []
    for host in ("127.0.0.1", "0.0.0.0"):
        s = socket.socket()
        s.bind((host, 0))
        s.listen()
        held.append(s)
    try:
        yield held[0].getsockname()[1], held[1].getsockname()[1]
    finally:
        for s in held:
            s.close()


def test_decode_proc_net_addresses() -> None:
    assert sockets.decode_address("0100007F:1B39") == ("127.0.0.1", 6969)
    assert sockets.decode_address("00000000000000000000000001000000:0016") == ("::1", 22)
    assert sockets.decode_address("0000000000000000FFFF00000100007F:1B39") == ("::ffff:127.0.0.1", 6969)


def test_listeners_found_with_their_process(listening: tuple[int, int]) -> None:
    loopback, everywhere = listening
    found = sockets.listeners(LocalGuest(), "linux")
    ours = {s.port: s for s in sockets.of_release(found, roots=("/nonexistent",), server_pids={os.getpid()})}
    assert {loopback, everywhere} <= set(ours)
    assert ours[loopback].loopback and not ours[everywhere].loopback
    assert all(o.pid == os.getpid() for o in ours[everywhere].owners)
    problems = sockets.problems([ours[loopback], ours[everywhere]], declared=(loopback,))
    assert len(problems) == 1
    assert problems[0].startswith(f"tcp 0.0.0.0:{everywhere}: binds 0.0.0.0")
    assert f"port {everywhere} is not declared" in problems[0] and f"pid {os.getpid()}" in problems[0]


def test_listeners_of_other_processes_are_not_the_release(listening: tuple[int, int]) -> None:
    found = sockets.listeners(LocalGuest(), "linux")
    assert sockets.of_release(found, roots=("/nonexistent",), server_pids={1_000_000}) == []


def test_process_tree_includes_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert {os.getpid(), child.pid} <= sockets.process_tree(LocalGuest(), os.getpid())
    finally:
        child.kill()
        child.wait()


def test_lsof_records() -> None:
    text = "p412\ncrefapp-server\ntIPv4\nPTCP\nn127.0.0.1:6969\ntIPv6\nPTCP\nn*:7000\n"
    found = sockets.parse_lsof(text)
    assert [(s.proto, s.address, s.port) for s in found] == [("tcp", "127.0.0.1", 6969), ("tcp6", "::", 7000)]
    assert not found[1].loopback and found[1].owners[0].pid == 412


def test_tree_hygiene_finds_each_kind(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("fine")
    (tmp_path / "open.txt").write_text("x")
    (tmp_path / "open.txt").chmod(0o666)
    (tmp_path / "suid").write_bytes(b"x")
    (tmp_path / "suid").chmod(0o4755)
    (tmp_path / "link").symlink_to("ok.txt")  # 0777 by nature: never a finding
    kinds = {(f.kind, Path(f.path).name) for f in hygiene.scan_tree(LocalGuest(), [str(tmp_path)], os.environ.get("USER") or "root")}
    assert ("world-writable", "open.txt") in kinds and ("setuid", "suid") in kinds
    assert not any(name in ("ok.txt", "link") for _, name in kinds)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_tree_hygiene_finds_foreign_owner_and_devices(tmp_path: Path) -> None:
    (tmp_path / "theirs").write_text("x")
    os.chown(tmp_path / "theirs", 65534, 65534)
    os.mknod(tmp_path / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    found = hygiene.scan_tree(LocalGuest(), [str(tmp_path)], "root")
    kinds = {(f.kind, Path(f.path).name) for f in found}
    assert ("owned by another user", "theirs") in kinds and ("device file", "null") in kinds


def test_scratch_leftovers_fold_and_allow() -> None:
    left = ["/tmp/refapp-unpack.ab12", "/tmp/refapp-unpack.ab12/release.env", "/home/u/.cache/refapp"]
    assert hygiene.unexpected_leftovers(left, ["/home/u/.cache/refapp"]) == ["/tmp/refapp-unpack.ab12"]


def test_path_files_and_home_mentions(tmp_path: Path) -> None:
    site = tmp_path / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "dev.pth").write_text("/root/src/refapp/server\nimport os; os.environ\n../relative\n")
    (site / "ok.pth").write_text(f"{site}\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "pyvenv.cfg").write_text(f"home = {tmp_path}/bin\n")
    (tmp_path / "build.cfg").write_text("source = /home/builder/work/refapp\ninstalled = " + str(tmp_path) + "/x\n")
    (tmp_path / "run.sh").write_text("#!/bin/sh\nexec /Users/dev/refapp/bin/serve\n")
    (tmp_path / "run.sh").chmod(0o755)
    (site / "example.py").write_text('"""Load /home/guido/data.txt, say."""\n')  # prose: not judged
    (site / "tool.cfg").write_text("cache = /root/.cache/tool\n")
    guest, roots = LocalGuest(), [str(tmp_path)]
    files = buildhost.parse_path_files(guest.run(buildhost.path_files_command(roots)).stdout)
    assert set(files) == {str(site / "dev.pth"), str(site / "ok.pth"), str(tmp_path / "pyvenv.cfg")}
    named = [p for path, text in files.items() for p in buildhost.named_paths(path.rsplit("/", 1)[-1], text)]
    problems = buildhost.path_file_problems(files, buildhost.check_exist(guest, named))
    assert problems == [f"{site / 'dev.pth'} names /root/src/refapp/server, which does not exist on the clean machine"]
    mentions = guest.run(buildhost.home_mentions_command(roots)).stdout
    found = buildhost.home_problems(mentions, roots, allowed=["*/tool.cfg"])
    assert [p.split(" names ")[0] for p in found] == [str(tmp_path / "build.cfg"), str(site / "dev.pth"),
                                                       str(tmp_path / "run.sh")]
    assert found[0].startswith(f"{tmp_path / 'build.cfg'} names /home/builder/work/refapp,")
    assert "/Users/dev/refapp/bin/serve" in found[2]


def test_sys_path_outside_the_deployment() -> None:
    paths = {"app": ["", "/opt/refapp/lib/python3.11", "/root/src/refapp"], "broken": "exit 1: boom"}
    assert buildhost.sys_path_problems(paths, ["/opt/refapp"]) == [
        "app: sys.path holds /root/src/refapp, outside the deployment (/opt/refapp)",
        "broken: its python did not report sys.path (exit 1: boom)",
    ]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler to make an ELF with a missing library")
def test_loader_names_the_missing_library_and_its_file(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    (build / "dep.c").write_text("int dep(void) { return 1; }\n")
    (build / "use.c").write_text("int dep(void); int use(void) { return dep(); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", "libhnsdep.so", "dep.c"], cwd=build, check=True)
    tree = tmp_path / "tree"
    tree.mkdir()
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tree / "libuse.so"), "use.c", "-L.", "-lhnsdep"],
                   cwd=build, check=True)
    shutil.copy(shutil.which("ls") or "/bin/ls", tree / "ls")
    (tree / "script.sh").write_text("#!/bin/sh\n")
    (tree / "script.sh").chmod(0o755)
    output = LocalGuest().run(native.loader_command([str(tree)])).stdout
    files, missing, has_loader = native.parse_loader_output(output)
    assert has_loader and sorted(Path(f).name for f in files) == ["libuse.so", "ls"]
    assert [m.describe() for m in missing] == [
        f"{tree / 'libuse.so'} needs libhnsdep.so, which the clean machine's loader cannot find"]


def test_stdlib_probes_pass_on_a_full_python_and_name_failures() -> None:
    result = LocalGuest().run(native.stdlib_command(sys.executable))
    assert native.stdlib_problems(sys.executable, result.stdout, result.exit_code) == []
    broken = '{"lzma": "ModuleNotFoundError: No module named \'_lzma\'", "zlib": ""}'
    assert native.stdlib_problems("/x/python3", broken, 0) == [
        "/x/python3: lzma does not work: ModuleNotFoundError: No module named '_lzma'"]


def _manifest(*paths: str) -> Manifest:
    return Manifest(tuple(ManifestEntry(p, "f", "644", "d" + p) for p in paths))


def test_reinstall_and_upgrade_comparisons() -> None:
    fresh = _manifest("/l/a", "/l/b")
    assert reinstall_differences(fresh, _manifest("/l/a", "/l/b"), []) == []
    assert reinstall_differences(fresh, _manifest("/l/a", "/l/b", "/l/lib/a"), []) == [
        "only in the tree after reinstalling: f 644 d/l/lib/a /l/lib/a"]
    assert reinstall_differences(fresh, _manifest("/l/a", "/l/b", "/l/x.log"), ["*.log"]) == []
    old = _manifest("/l/a", "/l/legacy.py")
    upgraded = _manifest("/l/a", "/l/b", "/l/legacy.py")
    assert left_behind(upgraded, old, fresh, []) == ["/l/legacy.py (from the older release)"]
    assert left_behind(upgraded, old, fresh, ["*/legacy.py"]) == []


def test_conditions_run_as_root_through_sudo_with_their_environment() -> None:
    command, env = as_user("sh '/tmp/a b/install.sh'", {"HOME": "/tmp/a b", "LC_ALL": "C"}, root=True)
    assert env == {}
    assert command.startswith("sudo -n env HOME='/tmp/a b' LC_ALL=C /bin/sh -c ")
    assert as_user("true", {"HOME": "/h"}, root=False) == ("true", {"HOME": "/h"})
