"""tart warm starts end to end through the QEMU-backed tart STAND-IN: the provider builds a
suspended template (a real guest booted, then `tart suspend`), clones it and resumes the clone
(behind the stand-in, a warm QEMU restore). Nothing here ran on Apple hardware: it proves the
provider's path through tart's documented suspend/resume rules, not macOS itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import HostPaths
from harness.host.run_label import VMName
from harness.ssh import SSHTransport
from harness.testing import StandinHome
from harness.testing.tart_standin.guests import STANDIN_RUN_ID
from harness.vm.provider import VMOptions
from harness.vm.registry import get_provider
from harness.vm.tart.cli import TartSettings
from harness.vm.tart.provider import TartProvider
from harness.vm.tart.warm import RESTORED_TEXT, is_template
from harness.vm.warm.plan import WarmPlan

pytestmark = [pytest.mark.vm]

GOLDEN = "macos-tart-standin"  # says macOS to tart (only macOS VMs suspend); a Debian guest behind
BACKING_IMAGE = "linux-debian12"


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinHome]:
    home = StandinHome(tmp_path_factory.mktemp("tart-warm"), backend="qemu")
    home.golden(GOLDEN, BACKING_IMAGE, "--os", "darwin")
    yield home
    home.close()


@pytest.fixture
def provider(standin: StandinHome, monkeypatch: pytest.MonkeyPatch) -> Iterator[TartProvider]:
    standin.export_tart_env(monkeypatch.setenv)
    made = TartProvider(TartSettings(binary=str(standin.shim), ssh_port=standin.ssh_port), HostPaths.from_env())
    yield made
    for vm in made.list():
        if is_template(vm.name) or (VMName.parse(vm.name) is not None and vm.name.startswith("hns-e2ewarm")):
            made.stop(vm.name, timeout_s=10)  # type: ignore[arg-type]
            made.delete(vm.name)  # type: ignore[arg-type]


def _backing_plans(run_pid: int) -> list[WarmPlan | None]:
    """The plans of the QEMU guests the stand-in's `tart run` process ``run_pid`` started."""
    qemu = get_provider("qemu")
    mine = [vm.name for vm in qemu.list()
            if (parsed := VMName.parse(vm.name)) and parsed.run_id == STANDIN_RUN_ID and parsed.owner_pid == run_pid]
    return [WarmPlan.load(qemu.vm_dir(name)) for name in mine]  # type: ignore[attr-defined]


@pytest.mark.ondemand  # a template suspended and two clones resumed through the stand-in
def test_a_warm_tart_clone_resumes_a_suspended_template(provider: TartProvider, tmp_path: Path) -> None:
    timings = []
    for attempt in range(2):  # the first builds the template, the second only resumes it
        name = VMName.new("e2ewarm")
        started = time.monotonic()
        provider.clone(GOLDEN, name, VMOptions(warm=True))
        try:
            provider.start(name)
            endpoint = provider.wait_ready(name, timeout_s=900)
            timings.append(time.monotonic() - started)
            assert provider.start_mode(name).used == "warm", provider.start_mode(name)
            assert RESTORED_TEXT in provider.console_tail(name, lines=1000)
            run_pid = int((provider.vm_dir(name) / "tart-run.pid").read_text())
            assert [p.resumed for p in _backing_plans(run_pid) if p is not None] == [True], "not a warm QEMU guest"
            with SSHTransport.connect(endpoint, known_hosts=tmp_path / f"known_hosts{attempt}",
                                      log_path=tmp_path / "commands.log", deadline_s=60) as ssh:
                assert ssh.run("id -un", timeout=60).stdout.strip() == "admin"
            templates = {vm.name: vm.state for vm in provider.list() if is_template(vm.name)}
            assert list(templates.values()) == ["suspended"], templates
        finally:
            provider.stop(name)
            provider.delete(name)
        assert _backing_plans(run_pid) == [], "the backing guest went with its VM"
    assert timings[1] < timings[0], f"resuming ({timings[1]:.1f} s) should beat building ({timings[0]:.1f} s)"
