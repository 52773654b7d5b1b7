"""The tart provider end to end on this Linux host, through the tart STAND-IN backed by QEMU.

Every "tart VM" here is a real Debian guest booted by the QEMU provider behind the stand-in's
``tart`` command line; the harness drives it only through :class:`harness.vm.tart.provider.TartProvider`.
What this proves: the provider's code path (clone, random MAC, detached run, ip, SSH proof, first
password login, key install, stop, delete) and the whole portability suite work through it.
What it cannot prove: anything about macOS or Apple's tart itself (see vm_images/macos/README.md).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_variants import CAUSES, CHECKS, Variant, load_variants  # SUITE's variant table

from harness.config import HostPaths
from harness.host.run_label import VMName
from harness.journal import read_journal
from harness.ssh import SSHTransport
from harness.suite.reference import default_release, variant_release
from harness.testing import StandinHome
from harness.testing.tart_standin.guests import STANDIN_RUN_ID
from harness.vm.registry import get_provider
from harness.vm.tart.cli import TartSettings
from harness.vm.tart.provider import TartProvider

pytestmark = [pytest.mark.vm]

GOLDEN = "linux-debian12-tart-standin"  # a Linux guest: the name says so, the suite treats it so
BACKING_IMAGE = "linux-debian12"
REPO = Path(__file__).resolve().parents[2]
SUITE_TIMEOUT_S = 3600


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinHome]:
    home = StandinHome(tmp_path_factory.mktemp("tart-standin"), backend="qemu")
    home.golden(GOLDEN, BACKING_IMAGE)
    yield home
    home.close()


def _standin_qemu_vms() -> list[str]:
    return [vm.name for vm in get_provider("qemu").list() if (VMName.parse(vm.name) or VMName("", 0, "")).run_id == STANDIN_RUN_ID]


def test_tart_provider_drives_a_qemu_backed_vm(standin: StandinHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    standin.export_tart_env(monkeypatch.setenv)
    provider = TartProvider(TartSettings(binary=str(standin.shim), ssh_port=standin.ssh_port), HostPaths.from_env())
    name = VMName.new("e2etart")
    provider.clone(GOLDEN, name)
    try:
        provider.start(name)
        endpoint = provider.wait_ready(name, timeout_s=900)
        with SSHTransport.connect(endpoint, known_hosts=tmp_path / "known_hosts", log_path=tmp_path / "commands.log",
                                  deadline_s=60) as ssh:
            facts = ssh.run("uname -s; id -un; sudo -n true && echo sudo-ok", timeout=60)
        assert facts.stdout.split() == ["Linux", "admin", "sudo-ok"]
        assert len(_standin_qemu_vms()) == 1
    finally:
        provider.stop(name)
        provider.delete(name)
    assert str(name) not in {vm.name for vm in provider.list()}
    assert _standin_qemu_vms() == []  # the backing guest went with it
    log = (HostPaths.from_env().state / "tart-commands.log").read_text()
    assert "--random-mac" in log and "--net-softnet-block=0.0.0.0/0 --net-softnet-allow=@host" in log
    assert "tart prune" not in log


def _suite_env(standin: StandinHome) -> dict[str, str]:
    return standin.env(HARNESS_TART_BIN=str(standin.shim), HARNESS_TART_SSH_PORT=str(standin.ssh_port))


def run_suite_through_tart(standin: StandinHome, release: Path, results: Path,
                           select: str | None = None) -> tuple[int, dict[str, dict[str, Any]]]:
    """``pytest --pyargs harness.portability`` on ``release`` with --image naming the stand-in's golden VM."""
    command = [
        sys.executable, "-m", "pytest", "--pyargs", "harness.portability", "-p", "no:cacheprovider", "-q",
        "--image", GOLDEN, "--release", str(release), "--profile", "reference", "--results-dir", str(results),
    ]
    if select:
        command += ["-k", select]
    proc = subprocess.run(command, cwd=REPO, env=_suite_env(standin), capture_output=True, text=True,
                          timeout=SUITE_TIMEOUT_S, check=False)
    results.mkdir(parents=True, exist_ok=True)
    (results / "pytest-output.txt").write_text(proc.stdout + proc.stderr)
    checks = {rec["check"]: rec for rec in read_journal(results) if rec.get("kind") == "check"}
    return proc.returncode, checks


def _release_or_fail() -> Path:
    release = default_release()
    if release is None:
        pytest.fail("the reference release is not built: python3 examples/reference_release/build.py --all-variants")
    return release


@pytest.mark.slow
@pytest.mark.ondemand  # the whole suite through tart; CI runs a variant through it
def test_portability_suite_passes_through_tart(standin: StandinHome, tmp_path: Path) -> None:
    code, checks = run_suite_through_tart(standin, _release_or_fail(), tmp_path / "results")
    output = (tmp_path / "results" / "pytest-output.txt").read_text()
    assert code == 0, f"the suite failed through the tart stand-in:\n{output[-4000:]}"
    bad = {name: r["outcome"] for name, r in checks.items() if r["outcome"] in ("failed", "broken")}
    assert checks and not bad, bad
    # tart records no traffic (Softnet blocks instead): the egress check must say so, not break.
    assert checks["egress_none"]["outcome"] == "skipped"
    assert _standin_qemu_vms() == []


# SUITE's variant table (tests/e2e/test_variants.py), run through the tart provider instead of QEMU.
# The one difference: egress_none cannot catch anything on tart (no capture), so a variant counts
# as caught through tart when every other check its row names fails with the cause in its message.
NOT_ON_TART = frozenset({"egress_none"})


# One variant runs in CI: its install fails in the guest, so it proves the tart path catches a
# defect at the cost of one install. Each other variant boots VMs for minutes: on demand.
TART_VARIANTS_IN_CI = frozenset({"installer_download"})


def tart_variants() -> list[Any]:
    return [pytest.param(v, id=v.name, marks=() if v.name in TART_VARIANTS_IN_CI else pytest.mark.ondemand)
            for v in load_variants()]


@pytest.mark.slow
@pytest.mark.parametrize("variant", tart_variants())
def test_broken_variant_is_caught_through_tart(standin: StandinHome, tmp_path: Path, variant: Variant) -> None:
    release = variant_release(variant.name)
    assert release is not None, f"variant {variant.name} was not built"
    expected = [name for name in variant.caught_by if name not in NOT_ON_TART]
    assert expected, f"{variant.name} is caught only by checks tart cannot run: {variant.caught_by}"
    select = " or ".join(CHECKS[name][1] for name in expected)
    _, checks = run_suite_through_tart(standin, release, tmp_path / variant.name, select)
    for name in expected:
        record = checks.get(CHECKS[name][0])
        assert record is not None, f"{variant.name}: {name} did not run through tart; ran {sorted(checks)}"
        assert record["outcome"] == "failed", (
            f"{variant.name} ({variant.defect}): {name} was {record['outcome']} through tart: {record['message'][:600]}")
        assert re.search(CAUSES[variant.name][name], record["message"], re.IGNORECASE), (
            f"{variant.name}: {name} failed through tart without naming the cause:\n{record['message'][:1500]}")
