"""The fault suite: a real ``harness run`` on the reference release, one fault injected at a
known point of its pipeline, then three questions: did the user get a clear outcome (never a
hang, never a pass), is nothing of the run left on the host, and does the next run work?

CI runs the SIGKILL probe (the runner killed during the install) and the rows that take seconds
(no free slot, an unusable or filling results directory); every other row of the README's fault
table is ``ondemand`` (HARNESS_ONDEMAND=1).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fault_support import (
    HARNESS,
    PATHS,
    HarnessRun,
    assert_nothing_left,
    gc_list,
    guest_side_channel,
    hypervisor_pid,
    hypervisors_of,
    run_checks,
    run_vm_dirs,
    wait_until,
)

from harness.host.slots import SlotPool
from harness.install.upgrade import PREVIOUS_UPLOAD_DIR
from harness.install.upload import UPLOAD_DIR
from harness.suite.reference import default_release
from harness.vm.machine import Machine, MachineSettings
from harness.vm.provider import VMOptions
from harness.vm.qemu.provider import QemuProvider

pytestmark = pytest.mark.vm

KILL_TO_CLEAN_LIMIT_S = 10.0
# Just over what the start of a run asks to find free.
RESULTS_FS_MIB = 210
INTERRUPT_EXIT_TIMEOUT_S = 300.0
# Into the installer, which runs for about a minute under emulation.
INTO_INSTALL_S = 5.0


StartRun = Callable[..., HarnessRun]


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[StartRun]:
    """Starts ``harness run``s; one still going at the end (a failed test) is stopped the way a
    CI runner would, with SIGTERM, so that no run outlives the test that made it."""
    runs: list[HarnessRun] = []

    def start(*args: str, **kwargs: object) -> HarnessRun:
        run = HarnessRun.start(tmp_path, *args, **kwargs)  # type: ignore[arg-type]
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop()


def assert_next_run_works(tmp: Path) -> None:
    """A fresh VM boots and answers on this host right after the fault (slots, leases, images)."""
    settings = MachineSettings(image="linux-debian12", run_id="fltnext", artifacts_root=tmp / "next",
                               slot_timeout_s=1800, options=VMOptions(warm=True))
    with Machine(QemuProvider(PATHS), settings, slots=SlotPool(PATHS.slots, 2), say=lambda _t: None) as vm:
        assert vm.run("echo next-run-ok").stdout == "next-run-ok\n"


def _figure(tmp: Path, name: str, value: float) -> None:
    """Measured figures land next to the test's files (and in its captured output)."""
    print(f"FIGURE {name} = {value:.2f}")
    with (tmp / "figures.jsonl").open("a") as handle:
        handle.write(json.dumps({name: round(value, 2)}) + "\n")


INSTALLING = "pgrep -f '[i]nstall.sh --tarball' >/dev/null"
SERVING = "ss -ltnH 'sport = :6969' | grep -q ."


def _installer_running(run: HarnessRun, tmp: Path) -> None:
    """Until the release's installer runs in one of the run's VMs (seen from a side channel of our own)."""
    guest_side_channel(run.run_id, tmp, holding=INSTALLING).close()
    assert run.process.poll() is None, run.output()[-3000:]


def _inject_at(run: HarnessRun, phase: str, tmp: Path) -> None:
    """Return once ``run`` is inside ``phase``; the journal records a phase when it ends."""
    if phase == "boot":
        run.wait_booting()
        time.sleep(2)  # inside the boot wait, not at its edge
    elif phase == "copy":
        run.wait_phase("twin_boot")  # the copy follows a short guest probe
    elif phase == "install":
        run.wait_phase("twin_copy")
        _installer_running(run, tmp)
        time.sleep(INTO_INSTALL_S)
        assert "twin_install" not in run.phases(), "the install ended before the fault landed"
    elif phase == "serve":
        run.wait_phase("serve")  # the primary VM's server answers; checks are running
    else:
        raise AssertionError(phase)


def test_sigkill_during_install_leaves_nothing_within_10s(start_run: StartRun, tmp_path: Path) -> None:
    """The probe: SIGKILL to `harness` and its pytest child (not QEMU) mid-install, no gc."""
    run = start_run()
    _inject_at(run, "install", tmp_path)
    assert hypervisors_of(run.run_id), "the run's VM should be running before the kill"
    dead = run.kill_runner(signal.SIGKILL)
    killed_at = time.monotonic()
    assert run.wait(30) == -signal.SIGKILL
    wait_until(lambda: not hypervisors_of(run.run_id), 60, "the dead run's QEMU to go")
    no_qemu = time.monotonic() - killed_at
    wait_until(lambda: not run_vm_dirs(run.run_id), 60, "the dead run's overlay to go")
    clean = time.monotonic() - killed_at
    _figure(tmp_path, "sigkill_to_no_qemu_s", no_qemu)
    _figure(tmp_path, "sigkill_to_clean_s", clean)
    assert no_qemu <= KILL_TO_CLEAN_LIMIT_S, f"QEMU outlived its run by {no_qemu:.1f}s"
    assert clean <= KILL_TO_CLEAN_LIMIT_S, f"the overlay outlived its run by {clean:.1f}s"
    assert f"-{run.run_id}-" not in gc_list()  # without running gc
    assert_nothing_left(run.run_id, dead)
    watchdog_logs = list((run.results / "vms").glob("watchdog-*.log"))
    assert any("owner" in log.read_text() and "removed hns-" in log.read_text() for log in watchdog_logs)
    assert_next_run_works(tmp_path)


SIGNAL_FAULTS = [
    pytest.param(sig, phase, marks=pytest.mark.ondemand, id=f"{sig.name}-{phase}")
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
    for phase in ("boot", "copy", "install", "serve")
    if (sig, phase) != (signal.SIGKILL, "install")  # the CI probe above
]


@pytest.mark.parametrize(("sig", "phase"), SIGNAL_FAULTS)
def test_the_runner_killed_at_any_phase_leaves_nothing(start_run: StartRun, tmp_path: Path, sig: signal.Signals, phase: str) -> None:
    run = start_run(*(["--cold"] if phase == "boot" else []))
    _inject_at(run, phase, tmp_path)
    dead = run.kill_runner(sig)
    code = run.wait(INTERRUPT_EXIT_TIMEOUT_S)
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        took = wait_until(lambda: not run_vm_dirs(run.run_id) and not hypervisors_of(run.run_id), 60,
                          "the dead run's VMs to go")
        _figure(tmp_path, f"sigkill_{phase}_to_clean_s", took)
        assert took <= KILL_TO_CLEAN_LIMIT_S
    else:
        # An interrupt: pytest tears its VMs down itself and says the run was interrupted.
        assert code != 0, run.output()[-3000:]
        output = run.output()
        assert "Interrupted" in output or "KeyboardInterrupt" in output, output[-3000:]
        signoff = run.results / "signoff.json"
        if signoff.exists():
            verdict = json.loads(signoff.read_text())["verdict"]
            assert not verdict["ship"], "an interrupted run must never say SHIP"
    assert_nothing_left(run.run_id, dead)
    assert_next_run_works(tmp_path)


# -- the guest and the server breaking under a run ------------------------------------------------

RUN_END_TIMEOUT_S = 2400.0  # a whole suite under emulation, behind other runs' VMs


def _finished_with(run: HarnessRun, outcome: str, pattern: str) -> dict[str, object]:
    """The run ends by itself (no hang), does not say SHIP, and a check with ``outcome`` names
    the fault (its message matches ``pattern``); that check's record."""
    code = run.wait(RUN_END_TIMEOUT_S)
    assert code != 0, "a run with a fault must not pass"
    verdict = json.loads((run.results / "signoff.json").read_text())["verdict"]
    assert not verdict["ship"]
    checks = run_checks(run.results)
    named = [r for r in checks.values() if re.fullmatch(outcome, str(r["outcome"])) and re.search(pattern, str(r["message"]))]
    assert named, f"no {outcome} check matching /{pattern}/: " + json.dumps(
        {k: (r["outcome"], str(r["message"])[:300]) for k, r in checks.items()}, indent=1)
    return named[0]


def assert_the_release_is_not_blamed(run: HarnessRun) -> None:
    """A fault of the machine, not of the (good) release: no check may say the release failed."""
    failed = {k: str(r["message"])[:300] for k, r in run_checks(run.results).items() if r["outcome"] == "failed"}
    assert not failed, f"the machine's fault was reported as the release's defect: {failed}"


@pytest.mark.ondemand
def test_a_guest_kernel_panic_mid_install_is_broken_and_named(start_run: StartRun, tmp_path: Path) -> None:
    run = start_run()
    _inject_at(run, "install", tmp_path)
    side = guest_side_channel(run.run_id, tmp_path, holding=INSTALLING)
    try:
        side.run("sudo -n sh -c 'sleep 1; echo c > /proc/sysrq-trigger' >/dev/null 2>&1 &", timeout=30)
    finally:
        side.close()
    record = _finished_with(run, "broken", r"no longer running")
    assert re.search(r"Kernel panic|sysrq", str(record["message"])), record["message"]
    assert_the_release_is_not_blamed(run)
    assert_nothing_left(run.run_id, [])
    assert_next_run_works(tmp_path)


@pytest.mark.ondemand
def test_qemu_killed_mid_install_is_broken_and_named(start_run: StartRun, tmp_path: Path) -> None:
    run = start_run()
    _inject_at(run, "install", tmp_path)
    os.kill(hypervisor_pid(run.run_id), signal.SIGKILL)
    _finished_with(run, "broken", r"no longer running")
    assert_the_release_is_not_blamed(run)
    assert_nothing_left(run.run_id, [])
    assert_next_run_works(tmp_path)


# Armed in a VM before its copy starts, this fires at the first bytes of the release, so it lands
# mid-transfer. It takes every sshd, the listener too, in a session of its own so that closing the
# side channel that armed it does not hang it up.
KILL_SSHD_AT_FIRST_BYTES = (
    "f={upload}/{name}; if test -e $f; then echo late; exit 0; fi; "
    "sudo -n setsid sh -c \"while ! test -s $f; do sleep 0.05; done; pkill -KILL -x sshd\" "
    "</dev/null >/dev/null 2>&1 & echo armed")
# A VM's first copy follows its boot within a second or two, before a side channel can arm
# anything; the upgrade VM's copy of this release waits for the older release's install.
PREVIOUS_INSTALLING = f"pgrep -f '[{PREVIOUS_UPLOAD_DIR[0]}]{PREVIOUS_UPLOAD_DIR[1:]}/install.sh' >/dev/null"


@pytest.mark.ondemand
def test_sshd_killed_mid_transfer_is_broken_and_named(start_run: StartRun, tmp_path: Path) -> None:
    release = Path(_reference())
    [previous] = sorted((release.parent / "previous").glob("*.tar.gz"))
    run = start_run("--upgrade-from", str(previous), "-k", "upgrade_clean")
    side = guest_side_channel(run.run_id, tmp_path, holding=PREVIOUS_INSTALLING)
    try:
        said = side.run(KILL_SSHD_AT_FIRST_BYTES.format(upload=UPLOAD_DIR, name=release.name), timeout=30, check=True)
    finally:
        side.close()
    assert said.stdout.strip() == "armed", said.stdout
    record = _finished_with(run, "broken", rf"SSH connection to 127\.0\.0\.1:\d+ dropped during the SFTP put of {UPLOAD_DIR}/")
    assert record["check"] == "upgrade_clean"
    assert_the_release_is_not_blamed(run)
    assert_nothing_left(run.run_id, [])
    assert_next_run_works(tmp_path)


def _stop_server(run: HarnessRun, tmp: Path, sig: str) -> None:
    side = guest_side_channel(run.run_id, tmp, holding=SERVING)
    try:
        side.run(f"sudo -n sh -c 'kill -{sig} $(ss -ltnpH \"sport = :6969\" | grep -o \"pid=[0-9]*\" | cut -d= -f2)'",
                 timeout=30, check=True)
    finally:
        side.close()


@pytest.mark.ondemand
def test_a_hung_server_ends_the_run_with_the_hang_named(start_run: StartRun, tmp_path: Path) -> None:
    run = start_run()
    _inject_at(run, "serve", tmp_path)
    _stop_server(run, tmp_path, "STOP")
    _finished_with(run, "broken|failed", r"timed out|timeout|did not answer|not healthy")
    assert_nothing_left(run.run_id, [])


@pytest.mark.ondemand
def test_a_server_dying_after_its_first_answer_is_named(start_run: StartRun, tmp_path: Path) -> None:
    run = start_run()
    run.wait_phase("complete")  # the first completion came back
    _stop_server(run, tmp_path, "KILL")
    _finished_with(run, "broken|failed", r"refused|reset|closed|died|not running|exited")
    assert_nothing_left(run.run_id, [])


# -- the host and the release misbehaving ------------------------------------------------------------


def _profile_with_install(tmp: Path, command: str, timeout_s: int) -> Path:
    reference = (Path(__file__).resolve().parents[2] / "harness" / "profiles" / "reference.toml").read_text()
    profile = tmp / "reference-fault.toml"
    profile.write_text(reference.replace('command = "sh {upload}/install.sh --tarball {tarball}"',
                                         f"command = {json.dumps(command)}")
                       .replace("timeout_s = 1200", f"timeout_s = {timeout_s}"))
    assert profile.read_text() != reference
    return profile


def _reference() -> str:
    found = default_release()
    assert found is not None, "the reference release is not built (bash .ci/setup)"
    return str(found)


@pytest.mark.ondemand
def test_an_installer_that_never_returns_is_killed_at_its_timeout(start_run: StartRun, tmp_path: Path) -> None:
    profile = _profile_with_install(tmp_path, "sleep 100000", 30)
    run = start_run("--release", _reference(), "--profile", str(profile), "-k", "install_offline")
    record = _finished_with(run, "failed", r"still running after 30 s and was killed")
    assert record["check"] == "install_offline"
    assert not hypervisors_of(run.run_id) and not run_vm_dirs(run.run_id)
    assert_nothing_left(run.run_id, [])


@pytest.mark.ondemand
def test_an_installer_printing_100_mb_is_kept_bounded(start_run: StartRun, tmp_path: Path) -> None:
    profile = _profile_with_install(
        tmp_path, "head -c 100000000 /dev/zero | tr '\\0' x | fold -w 99; sh {upload}/install.sh --tarball {tarball}", 1200)
    run = start_run("--release", _reference(), "--profile", str(profile), "-k", "install_offline")
    code = run.wait(RUN_END_TIMEOUT_S)
    checks = run_checks(run.results)
    assert checks["install_offline"]["outcome"] == "passed", (code, checks["install_offline"]["message"])
    files = {p: p.stat().st_size for p in run.results.rglob("*") if p.is_file()}
    size = sum(files.values())
    assert size < 100_000_000, f"the results hold {size} bytes: the flood was kept whole"
    # Logs and attachments keep both ends (a few MiB); the capture keeps each frame's first bytes.
    texts = {str(p.relative_to(run.results)): n for p, n in files.items()
             if p.suffix != ".pcap" and "releases" not in p.parts}
    assert max(texts.values()) < 4 * 2**20, sorted(texts.items(), key=lambda kv: -kv[1])[:5]
    assert any(b"bytes of output dropped here" in p.read_bytes() for p in run.results.rglob("*") if p.is_file())
    assert_nothing_left(run.run_id, [])


def test_no_free_vm_slot_is_broken_and_names_the_holder(start_run: StartRun, tmp_path: Path) -> None:
    """Out of VM slots: a private host state whose one slot this test holds; no VM boots."""
    state = tmp_path / "state"
    with SlotPool(state / "slots", 1).acquire(timeout_s=5, label="the fault suite holds it"):
        run = start_run("-k", "install_offline", env={"HARNESS_STATE": str(state)},
                               pytest_args=("--max-vms", "1", "--vm-slot-timeout", "5"))
        record = _finished_with(run, "broken", rf"all 1 VM slots busy for 5 s; held by pids {os.getpid()}")
    assert "the fault suite holds it" in str(record["message"])
    assert not any((state / "vms").glob("*")) and not any((state / "leases").glob("*"))


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mounts small tmpfs file systems (needs root, as the image build does); unmounted after."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def _fill_up(point: Path) -> None:
    """Takes every free byte of the file system mounted at ``point``."""
    with (point / "filler").open("wb") as filler:
        os.posix_fallocate(filler.fileno(), 0, shutil.disk_usage(point).free)


def _ended_on_a_full_results_disk(run: HarnessRun) -> None:
    code = run.wait(RUN_END_TIMEOUT_S)
    output = run.output()
    assert code == pytest.ExitCode.INTERNAL_ERROR, output[-3000:]
    assert f"harness: the results directory {run.results} filled up during the run" in output, output[-3000:]
    assert "hint: free space there" in output
    assert "INTERNALERROR" not in output and "Traceback" not in output, output[-6000:]


def test_a_results_disk_filling_mid_run_stops_it_with_one_sentence(tmpfs: Callable[[str], Path],
                                                                   start_run: StartRun) -> None:
    point = tmpfs(f"size={RESULTS_FS_MIB}m")
    run = start_run("-k", "static or release_checksum", results=point / "results")
    wait_until(lambda: (run.results / "journal").is_dir() or run.process.poll() is not None, 120,
               "the run to start writing its results")
    _fill_up(point)
    _ended_on_a_full_results_disk(run)


@pytest.mark.ondemand
def test_a_results_disk_filling_mid_install_still_removes_the_vm(tmpfs: Callable[[str], Path],
                                                                 start_run: StartRun, tmp_path: Path) -> None:
    point = tmpfs(f"size={RESULTS_FS_MIB}m")
    run = start_run("-k", "install_offline", results=point / "results")
    _installer_running(run, tmp_path)
    _fill_up(point)
    _ended_on_a_full_results_disk(run)
    assert_nothing_left(run.run_id, [])
    assert_next_run_works(tmp_path)


@pytest.mark.parametrize(("options", "says"), [
    ("ro,size=1m", "cannot be written: Read-only file system"),
    ("size=64k", "MiB free; a run needs at least"),
], ids=["read-only", "full"])
def test_an_unusable_results_dir_stops_the_run_before_any_vm(tmpfs: Callable[[str], Path], options: str,
                                                             says: str) -> None:
    results = tmpfs(options) / "results"
    done = subprocess.run([*HARNESS, "run", "--results-dir", str(results)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"harness: usage error: the results directory {results} "), done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr
    assert "hint: pass --results-dir DIR on a writable file system" in done.stderr
