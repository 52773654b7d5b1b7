"""Shared by the QEMU provider's e2e modules: the image, the host's slot cap, leak checks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from harness.config import HostPaths
from harness.host.run_label import VMName
from harness.host.slots import SlotPool
from harness.images import image_store
from harness.images.store import BuiltImage
from harness.vm.qemu.provider import QemuProvider

IMAGE = "linux-debian12"
BOOT_TIMEOUT_S = 600.0  # TCG on a shared 2-core host; ~30 s when idle, minutes when crowded
HOST_VM_CAP = 2  # the default --max-vms, shared with every other harness run on this host
PATHS = HostPaths.from_env()
RUN_ID = "qe2e" + uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def base_image() -> BuiltImage:
    """The current Debian image, built once if missing (needs root and Debian's mirror)."""
    return image_store(PATHS).ensure(IMAGE)


@pytest.fixture(scope="module")
def provider() -> QemuProvider:
    return QemuProvider(PATHS)


@pytest.fixture
def slot() -> Iterator[None]:
    with SlotPool(PATHS.slots, HOST_VM_CAP).acquire(timeout_s=BOOT_TIMEOUT_S * 2, label=f"test_qemu {RUN_ID}"):
        yield


def qemu_processes_of(vm_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(vm_dir) in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def assert_gone(provider: QemuProvider, name: VMName) -> None:
    vm_dir = provider.vm_dir(name)
    assert not vm_dir.exists(), f"{vm_dir} left behind"
    assert qemu_processes_of(vm_dir) == [], f"QEMU of {name} still running"
    assert str(name) not in [info.name for info in provider.list()]


@pytest.fixture
def fresh_vm(provider: QemuProvider, base_image: BuiltImage, slot: None) -> Iterator[VMName]:
    """A cloned (not started) VM that is deleted, and checked gone, whatever the test did."""
    name = VMName.new(RUN_ID)
    provider.clone(IMAGE, name)
    try:
        yield name
    finally:
        provider.delete(name)
        assert_gone(provider, name)


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)
