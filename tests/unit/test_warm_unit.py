"""Warm starts without booting anything: snapshot keys and store, per-VM plans, the agent protocol,
the fallback to a cold boot. The guest side is proven in tests/e2e/test_warm*.py."""

# ruff: noqa: F811  (pytest fixtures imported from qemu_fakes are parameters here)
from __future__ import annotations

import json
import subprocess
import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
from qemu_fakes import FakeImages, built_tiny, fake_images  # noqa: F401  (fixtures)

from harness.errors import InfrastructureError
from harness.host.run_label import VMName
from harness.images.store import BuiltImage
from harness.vm.provider import StartMode, VMOptions
from harness.vm.qemu.provider import QemuLaunch, QemuProvider, qemu_command
from harness.vm.qemu.snapshots import (
    BackgroundChecksum,
    Snapshot,
    SnapshotKey,
    SnapshotStore,
    crc32_file,
)
from harness.vm.qemu.warm import WarmStarts
from harness.vm.qemu.warm_agent import (
    AGENT_SCRIPT,
    PEM_END,
    check_agent_reply,
    warm_devices,
)
from harness.vm.warm.personalization import Personalization
from harness.vm.warm.plan import (
    WarmPlan,
    WarmRestoreFailed,
    WarmStartWarning,
    start_mode,
    start_mode_record_data,
)
from tests.unit.fake_provider import FakeProvider

pytest_plugins = ["pytester"]

KEY = SnapshotKey(image="linux-tiny", image_hash="aaaa", qemu_version="7.2.22", accel="tcg",
                  launch_signature="sig")


@pytest.fixture
def built(built_tiny: FakeImages) -> BuiltImage:
    image = built_tiny.store.current("linux-tiny")
    return image


class CountingBuilder:
    """Writes a fake snapshot (a disk and a state file) and counts how often it was asked to."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self._lock = threading.Lock()

    def __call__(self, work: Path) -> None:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay_s)
        (work / "disk.qcow2").write_bytes(b"disk" * 100)
        (work / "state").write_bytes(b"state" * 1000)


# ---------------------------------------------------------------- keys and the store


def test_the_key_changes_with_everything_a_saved_machine_depends_on() -> None:
    assert KEY.digest == replace(KEY).digest
    for change in ({"image_hash": "bbbb"}, {"qemu_version": "8.0.0"}, {"accel": "kvm"},
                   {"launch_signature": "other"}, {"format": "9-x"}):
        assert replace(KEY, **change).digest != KEY.digest, change


def test_a_snapshot_is_built_once_and_reused(built: BuiltImage) -> None:
    store, builder = SnapshotStore(), CountingBuilder()
    first = store.ensure(built, KEY, builder)
    second = store.ensure(built, KEY, builder)
    assert builder.calls == 1
    assert first == second and first.directory == built.directory / "warm" / KEY.digest
    assert first.state_crc32 == crc32_file(first.state) and first.state_bytes == 5000
    assert not (first.disk.stat().st_mode & 0o222), "the frozen layer must be read-only"


def test_a_new_image_hash_builds_a_new_snapshot(built: BuiltImage) -> None:
    store, builder = SnapshotStore(), CountingBuilder()
    old = store.ensure(built, KEY, builder)
    new = store.ensure(built, replace(KEY, image_hash="bbbb"), builder)
    assert builder.calls == 2 and new.directory != old.directory
    assert store.find(built, KEY) is not None, "the same QEMU can still restore the old one"


def test_another_qemu_version_replaces_old_snapshots(built: BuiltImage) -> None:
    store, builder = SnapshotStore(), CountingBuilder()
    old = store.ensure(built, KEY, builder)
    store.ensure(built, replace(KEY, qemu_version="8.2.0"), builder)
    assert builder.calls == 2
    assert not old.directory.exists(), "a snapshot QEMU can no longer load must go"


def test_a_damaged_snapshot_is_rebuilt(built: BuiltImage) -> None:
    store, builder = SnapshotStore(), CountingBuilder()
    snapshot = store.ensure(built, KEY, builder)
    snapshot.state.chmod(0o644)
    with snapshot.state.open("ab") as handle:
        handle.write(b"x")
    assert snapshot.problem() is not None and store.find(built, KEY) is None
    rebuilt = store.ensure(built, KEY, builder)
    assert builder.calls == 2 and rebuilt.problem() is None


def test_concurrent_builders_of_one_snapshot_wait_for_each_other(built: BuiltImage) -> None:
    store, builder = SnapshotStore(), CountingBuilder(delay_s=0.5)
    results: list[Snapshot] = []
    threads = [threading.Thread(target=lambda: results.append(store.ensure(built, KEY, builder)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert builder.calls == 1 and len(results) == 3 and len({r.directory for r in results}) == 1


def test_a_failed_build_leaves_nothing_behind(built: BuiltImage) -> None:
    def broken(work: Path) -> None:
        (work / "state").write_bytes(b"half")
        raise InfrastructureError("template did not boot")

    store = SnapshotStore()
    with pytest.raises(InfrastructureError):
        store.ensure(built, KEY, broken)
    leftovers = [p.name for p in store.root(built).iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_a_lock_held_too_long_is_an_error_not_a_hang(built: BuiltImage) -> None:
    from filelock import FileLock

    store = SnapshotStore(lock_timeout_s=0.3)
    store.root(built).mkdir(parents=True)
    with FileLock(str(store.root(built) / f"{KEY.digest}.lock")):
        result: list[BaseException] = []

        def build() -> None:
            try:
                store.ensure(built, KEY, CountingBuilder())
            except BaseException as exc:  # noqa: BLE001
                result.append(exc)

        other = threading.Thread(target=build)
        other.start()
        other.join(10)
    assert result and isinstance(result[0], InfrastructureError) and "--cold" in str(result[0])


def test_quarantine_takes_a_snapshot_out_of_use(built: BuiltImage) -> None:
    store = SnapshotStore()
    snapshot = store.ensure(built, KEY, CountingBuilder())
    store.quarantine(snapshot)
    assert store.find(built, KEY) is None
    assert any(p.name.startswith(".bad-") for p in store.root(built).iterdir())


def test_background_checksum_matches_and_reports_missing_files(tmp_path: Path) -> None:
    data = tmp_path / "state"
    data.write_bytes(b"\x01" * (9 * 2**20 + 7))
    assert BackgroundChecksum(data).result(10) == f"{zlib.crc32(data.read_bytes()):08x}"
    with pytest.raises(WarmRestoreFailed):
        BackgroundChecksum(tmp_path / "missing").result(10)


# ---------------------------------------------------------------- per VM


def test_launch_arguments_follow_the_role(tmp_path: Path) -> None:
    warm = WarmStarts()
    assert warm.launch_args(tmp_path) == ()
    WarmPlan(role="template").save(tmp_path)
    assert warm.launch_args(tmp_path) == warm_devices()
    WarmPlan(role="clone", snapshot="/s", key="k").save(tmp_path)
    clone = warm.launch_args(tmp_path)
    assert clone[: len(warm_devices())] == warm_devices()
    assert clone[len(warm_devices()):] == ("-S", "-incoming", "defer"), "paused until checked"
    WarmPlan(role="fallback", reason="x").save(tmp_path)
    assert warm.launch_args(tmp_path) == ()


def test_template_and_clone_differ_only_by_incoming(tmp_path: Path) -> None:
    def argv(extra: tuple[str, ...]) -> list[str]:
        return qemu_command("qemu", QemuLaunch(
            name="n", vm_dir=tmp_path, kernel=Path("/k"), initrd=Path("/i"), kernel_cmdline="c",
            ssh_port=1, accel_args=(), options=VMOptions(), extra_args=extra))

    template, clone = argv(warm_devices()), argv((*warm_devices(), "-S", "-incoming", "defer"))
    assert clone[: len(template)] == template
    assert "vmgenid,guid=auto" in template and "-incoming" not in template


def test_resume_refuses_a_snapshot_whose_files_changed(built: BuiltImage, tmp_path: Path) -> None:
    store = SnapshotStore()
    snapshot = store.ensure(built, KEY, CountingBuilder())
    snapshot.state.chmod(0o644)
    snapshot.state.write_bytes(b"short")
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir()
    WarmPlan(role="clone", snapshot=str(snapshot.directory), key=KEY.digest).save(vm_dir)
    process = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(WarmRestoreFailed, match="unusable"):
            WarmStarts(store).resume(vm_dir, process)
    finally:
        process.kill()
        process.wait()


def test_fall_back_puts_the_clone_on_the_base_image(built: BuiltImage, tmp_path: Path) -> None:
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir()
    (vm_dir / "overlay.qcow2").write_bytes(b"overlay on the snapshot")
    with pytest.warns(WarmStartWarning, match="state file damaged"):
        WarmStarts().fall_back(vm_dir, built.disk, "state file damaged")
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(vm_dir / "overlay.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == str(built.disk)
    assert WarmStarts().mode(vm_dir, requested=True) == StartMode("cold", True, "state file damaged")


def test_a_clone_whose_snapshot_cannot_be_built_sits_on_the_base_image(
        built_tiny: FakeImages, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_ACCEL", "tcg")
    provider = QemuProvider(built_tiny.paths, built_tiny.store)

    def no_template(work: Path) -> None:
        raise InfrastructureError("the template never answered SSH")

    monkeypatch.setattr("harness.vm.qemu.warm.build_snapshot", lambda *args: no_template(args[-1]))
    name = VMName.new("unit")
    with pytest.warns(WarmStartWarning, match="never answered SSH"):
        provider.clone("linux-tiny", name, VMOptions(warm=True))
    try:
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(provider.vm_dir(name) / "overlay.qcow2")],
                                         capture_output=True, text=True, check=True).stdout)
        assert info["backing-filename"] == str(built_tiny.store.current("linux-tiny").disk)
        mode = provider.start_mode(name)
        assert mode.used == "cold" and mode.requested and "never answered SSH" in mode.detail
    finally:
        provider.delete(name)


def test_a_cold_clone_reports_a_cold_start(built_tiny: FakeImages) -> None:
    provider = QemuProvider(built_tiny.paths, built_tiny.store)
    name = VMName.new("unit")
    provider.clone("linux-tiny", name)
    try:
        assert provider.start_mode(name) == StartMode("cold", requested=False)
        # A provider that declares no warm starts is not asked: it booted cold.
        assert start_mode(FakeProvider(provider.paths.vms), name) == StartMode("cold", requested=False)
    finally:
        provider.delete(name)


# ---------------------------------------------------------------- agent protocol and journal


def test_the_request_carries_a_fresh_identity_per_clone() -> None:
    one, two = Personalization.new(), Personalization.new()
    assert one.machine_id != two.machine_id and one.seed != two.seed
    assert one.host_key_public != two.host_key_public
    lines = one.request(1700000000.25).decode().splitlines()
    epoch, machine_id, seed = lines[0].split()
    assert epoch == "1700000000.250000" and len(machine_id) == 32 and len(seed) == 64
    assert lines[1].startswith("-----BEGIN OPENSSH PRIVATE KEY-----") and PEM_END in lines
    assert lines[-1] == one.host_key_public and lines[-1].startswith("ssh-ed25519 ")
    # The agent only accepts hex and dots in the first line, and reads the key up to PEM_END.
    assert all(c in "0123456789abcdef." for c in epoch + machine_id + seed)
    assert PEM_END in AGENT_SCRIPT


def test_only_done_counts_as_a_personalised_clone() -> None:
    check_agent_reply("done\n")
    for reply in ("error malformed request\n", "", "don"):
        with pytest.raises(WarmRestoreFailed):
            check_agent_reply(reply)


def test_the_journal_record_names_the_start_and_any_fallback() -> None:
    warm = start_mode_record_data(StartMode("warm", True, "snapshot k"), "hns-r-1-a", "linux-debian12")
    assert warm["extra"] == {"vm start (linux-debian12)": "warm"}
    assert warm["vm_start"]["used"] == "warm"
    cold = start_mode_record_data(StartMode("cold", True, "damaged"), "hns-r-1-a", "linux-debian12")
    assert cold["extra"]["warm start fell back to cold (hns-r-1-a)"] == "damaged"
    assert StartMode("cold", True, "damaged").label == "cold (warm start failed: damaged)"


def test_the_sign_off_shows_how_vms_started() -> None:
    from harness.report.signoff.assemble import build_model
    from harness.report.signoff.html import render_html
    from harness.report.signoff.markdown import render_markdown

    data = start_mode_record_data(StartMode("warm", True, "snapshot k"), "hns-r-1-a", "linux-debian12")
    model = build_model([{"kind": "meta", "target": "linux-debian12", "data": data}])
    assert "vm start (linux-debian12): warm" in render_markdown(model)
    assert "vm start (linux-debian12): warm" in render_html(model)


def test_a_clone_whose_snapshot_vanished_starts_on_the_base_image(built: BuiltImage, tmp_path: Path) -> None:
    store = SnapshotStore()
    snapshot = store.ensure(built, KEY, CountingBuilder())
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir()
    WarmPlan(role="clone", snapshot=str(snapshot.directory), key=KEY.digest, base_disk=str(built.disk)).save(vm_dir)
    assert WarmStarts(store).launch_args(vm_dir)[-1] == "defer"
    store.quarantine(snapshot)
    with pytest.warns(WarmStartWarning, match="gone"):
        assert WarmStarts(store).launch_args(vm_dir) == ()
    assert WarmStarts(store).mode(vm_dir, requested=True).used == "cold"


def test_the_key_is_worked_out_once_per_vm_shape(built_tiny: FakeImages, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_ACCEL", "tcg")
    asked: list[str] = []

    def version(binary: str) -> str:
        asked.append(binary)
        return "7.2.22"

    monkeypatch.setattr("harness.vm.qemu.accel.qemu_version", version)
    provider = QemuProvider(built_tiny.paths, built_tiny.store)
    built = built_tiny.store.current("linux-tiny")
    first = provider.warm.snapshot_key(provider, built, VMOptions())
    assert provider.warm.snapshot_key(provider, built, VMOptions()) == first and len(asked) == 1
    bigger = provider.warm.snapshot_key(provider, built, VMOptions(memory_mb=4096))
    assert bigger.launch_signature != first.launch_signature and len(asked) == 2
    assert (first.image, first.image_hash, first.qemu_version, first.accel) == ("linux-tiny", built.content_hash, "7.2.22", "tcg")


def test_snapshots_of_an_older_format_are_removed_by_the_next_build(built: BuiltImage) -> None:
    store, builder = SnapshotStore(), CountingBuilder()
    old = store.ensure(built, replace(KEY, format="0-old"), builder)
    store.ensure(built, KEY, builder)
    assert not old.directory.exists()


def test_harness_run_hands_warm_or_cold_to_pytest(tmp_path: Path) -> None:
    from harness.cli import build_parser
    from harness.commands.run import make_plan, pytest_argv
    from tests.unit.release_files import small_release

    release = small_release(tmp_path / "refapp-v0.1.0-x86_64-linux.tar.gz")

    def argv(*extra: str) -> list[str]:
        return pytest_argv(make_plan(build_parser().parse_args(["run", "--release", str(release), *extra])))

    assert "--warm" in argv() and "--cold" not in argv()
    assert "--cold" in argv("--cold") and "--warm" not in argv("--cold")


def test_the_pytest_option_reaches_the_vms(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_env(vm_environment):
            options = vm_environment.machine().settings.options
            print("WARM", vm_environment.warm, options.warm)
        """
    )
    for flag, expected in (("--warm", "WARM True True"), ("--cold", "WARM False False"), (None, "WARM True True")):
        result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", "-p", "harness.plugins",
                                               *([flag] if flag else []))
        assert expected in result.stdout.str(), result.stdout.str()
