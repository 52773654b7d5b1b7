"""The developer's desk end to end, in real QEMU VMs, driven as a person would drive it.

``harness shell`` runs in a pseudo-terminal (pexpect): the prompt, the release's sha256 in the
guest, no route out, Ctrl-C reaching the guest, a window resize, ``exit 3`` becoming harness's exit
status, and nothing left on the host afterwards. ``harness repro`` on a broken variant's results
lands in a kept VM where the failed install's traces are, which exec, cp and gc then work on.
The repro walk, the kept-VM round trip (``--keep``, ``--name``) and the tart stand-in run on demand.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import psutil
import pytest

from harness.config import HostPaths
from harness.desk.repro import INSTALLER_LOG
from harness.desk.session import desk_dir
from harness.hashing import sha256_file
from harness.host.run_label import LeaseBook
from harness.journal import read_journal
from harness.suite.reference import default_release, variant_release
from harness.vm.registry import available_providers

pytestmark = [pytest.mark.vm]

REPO = Path(__file__).resolve().parents[2]
HARNESS = str(Path(sys.executable).with_name("harness"))
PROMPT = r"\[harness offline\] [^\r\n]*\$ "
VM_NAME = re.compile(r"hns-(?:shell|repro)-\d+-[0-9a-f]+")
READY_TIMEOUT_S = 1200  # TCG on a shared host, behind other runs' VMs in the slot queue
STEP_TIMEOUT_S = 120
PATHS = HostPaths.from_env()


def _release() -> Path:
    release = default_release(REPO)
    if release is None:
        pytest.fail("the reference release is not built: python3 examples/reference_release/build.py --all-variants")
    return release


def assert_nothing_left(name: str) -> None:
    """No VM at any provider, no lease, no VM directory, no logs, no hypervisor process."""
    listed = {info.name for provider in available_providers(PATHS) for info in _listing(provider)}
    assert name not in listed, f"{name} is still listed by a provider"
    assert LeaseBook(PATHS.state / "leases").get(name) is None, f"the lease of {name} is left"
    assert not (PATHS.vms / name).exists(), f"{PATHS.vms / name} is left"
    assert not (desk_dir(PATHS) / name).exists(), f"the logs of {name} are left"
    running = [p.pid for p in psutil.process_iter(["cmdline"]) if name in " ".join(p.info["cmdline"] or [])]
    assert running == [], f"processes of {name} still run: {running}"


def _listing(provider: object) -> list:  # type: ignore[type-arg]
    try:
        return provider.list()  # type: ignore[attr-defined, no-any-return]
    except Exception:  # noqa: BLE001 - a provider that cannot run here lists nothing
        return []


def spawn_shell(*args: str) -> pexpect.spawn:
    child = pexpect.spawn(HARNESS, ["shell", *args], cwd=str(REPO), encoding="utf-8",
                          timeout=STEP_TIMEOUT_S, dimensions=(40, 120), env=dict(os.environ))
    child.logfile_read = sys.stdout
    return child


def in_guest(child: pexpect.spawn, line: str, expect: str) -> str:
    """Type ``line`` at the prompt, wait for ``expect`` then the next prompt; the match of ``expect``."""
    child.sendline(line)
    child.expect(expect)
    found = child.match.group(0)
    child.expect(PROMPT)
    return str(found)


def test_shell_in_a_pseudo_terminal_and_nothing_left_after() -> None:
    release = _release()
    child = spawn_shell("--release", str(release))
    child.expect(r"harness: (hns-shell-\d+-[0-9a-f]+) ready in", timeout=READY_TIMEOUT_S)
    name = child.match.group(1)
    child.expect(PROMPT)
    # The tarball is in the guest with the host's sha256.
    in_guest(child, 'sha256sum "$HARNESS_RELEASE"', sha256_file(release))
    # No route out: no default route, and an outside address is unreachable (nothing is sent).
    in_guest(child, "ip -4 route show default | wc -l", r"[\r\n]0\r\n")
    in_guest(child, "ip route get 192.0.2.1 2>&1; echo rc=$?", r"[Nn]etwork is unreachable[\s\S]*rc=[1-9]")
    # Ctrl-C goes to the guest's foreground command, not to harness.
    # The interrupt is sent once the command says it runs: a ^C typed while the guest's bash is
    # still handing the terminal to its child is bash's race (OpenSSH's own client meets it too).
    child.sendline("sh -c 'echo sleeping; exec sleep 600'")
    child.expect(r"\rsleeping\r\n")
    child.sendcontrol("c")
    child.expect(PROMPT)
    in_guest(child, "echo status=$?", r"status=130")
    # A resize of the host's terminal reaches the guest's PTY.
    child.setwinsize(30, 100)
    in_guest(child, "stty size", r"30 100")
    child.sendline("exit 3")
    child.expect(pexpect.EOF, timeout=STEP_TIMEOUT_S)
    child.close()
    assert child.exitstatus == 3
    assert_nothing_left(name)


def harness(*args: str, timeout: float = READY_TIMEOUT_S, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HARNESS, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          input=stdin, check=False)


@pytest.mark.ondemand  # two VMs and a failed install; the pseudo-terminal walk is CI's desk test
def test_repro_of_a_failed_install_lands_at_the_failure_and_gc_removes_it(tmp_path: Path) -> None:
    release = variant_release("installer_download", REPO)
    assert release is not None, "variant installer_download was not built"
    results = tmp_path / "results"
    run = harness("run", "--release", str(release), "--results-dir", str(results), "-k", "install_offline",
                  timeout=3600)
    checks = {r["check"]: r for r in read_journal(results) if r.get("kind") == "check"}
    assert checks["install_offline"]["outcome"] == "failed", run.stdout[-3000:] + run.stderr[-2000:]
    assert "harness repro" in (results / "signoff.md").read_text()

    repro = harness("repro", str(results))
    assert repro.returncode == 0, repro.stdout + repro.stderr
    found = VM_NAME.search(repro.stdout)
    assert found, repro.stdout
    name = found.group(0)
    try:
        assert "stopped right after the installer exited with 1" in repro.stdout, repro.stdout
        assert f"harness shell --name {name}" in repro.stdout
        assert name in harness("gc", "--list", timeout=120).stdout
        # The failing step's state: the replayed installer's own words and status, the release
        # with the run's sha256, and no install (this installer removes its staging on failure).
        log = harness("exec", "--name", name, "--", "cat", INSTALLER_LOG, timeout=STEP_TIMEOUT_S)
        assert log.returncode == 0, log.stderr
        assert "updates.refapp.invalid" in log.stdout and "[exit 1 after" in log.stdout
        digest = harness("exec", "--name", name, "--", f"sha256sum /tmp/harness-upload/{release.name}",
                         timeout=STEP_TIMEOUT_S)
        assert sha256_file(release) in digest.stdout
        assert harness("exec", "--name", name, "--", "test ! -e ~/.local/share/refapp",
                       timeout=STEP_TIMEOUT_S).returncode == 0
        assert harness("exec", "--name", name, "--", "exit 7", timeout=STEP_TIMEOUT_S).returncode == 7
        copied = harness("cp", f"{name}:{INSTALLER_LOG}", str(tmp_path) + "/", timeout=STEP_TIMEOUT_S)
        assert copied.returncode == 0, copied.stderr
        assert "updates.refapp.invalid" in (tmp_path / Path(INSTALLER_LOG).name).read_text()
    finally:
        removed = harness("gc", "--name", name, timeout=300)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert_nothing_left(name)


@pytest.mark.ondemand
def test_a_kept_shell_is_reentered_by_name_and_scripted() -> None:
    """--keep, then --name, exec and cp both ways, then gc: the kept VM's whole life."""
    child = spawn_shell("--release", str(_release()), "--keep")
    child.expect(r"harness: (hns-shell-\d+-[0-9a-f]+) ready in", timeout=READY_TIMEOUT_S)
    name = child.match.group(1)
    child.expect(PROMPT)
    try:
        in_guest(child, "echo marker > /tmp/left-here && echo written", r"written")
        child.sendline("exit")
        child.expect(r"re-enter: harness shell --name", timeout=STEP_TIMEOUT_S)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        again = spawn_shell("--name", name)
        again.expect(PROMPT, timeout=STEP_TIMEOUT_S)
        in_guest(again, "cat /tmp/left-here", r"marker")
        again.sendline("false")
        again.expect(PROMPT)
        again.sendline("exit")
        again.expect(pexpect.EOF)
        again.close()
        assert again.exitstatus == 0
        assert harness("exec", "--name", name, "--", "sh", "-c", "exit 4", timeout=STEP_TIMEOUT_S).returncode == 4
        piped = harness("exec", "--name", name, "--", "sh", "-s", timeout=STEP_TIMEOUT_S, stdin="echo from-stdin\n")
        assert piped.stdout == "from-stdin\n"
        refused = harness("shell", "--name", name, "--install", timeout=60)
        assert refused.returncode == 2 and "only apply to a new VM" in refused.stderr
    finally:
        assert harness("gc", "--name", name, timeout=300).returncode == 0
    assert_nothing_left(name)
