"""Installed footprint: real ``du`` over a fake install tree, run through a local stand-in guest."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from harness.install import footprint
from harness.profile import load_profile
from harness.ssh import CommandResult


class LocalGuest:
    """Runs the guest's shell commands on this host: enough for commands that only read files."""

    def run(self, cmd: str, timeout: float = 60.0, **_: object) -> CommandResult:
        started = time.monotonic()
        done = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=timeout, check=False)
        return CommandResult(cmd, done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def _file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_each_layer_and_the_rest_of_the_install_are_measured(tmp_path: Path) -> None:
    profile = load_profile("reference")
    lib = tmp_path / "share" / "refapp"
    layers = lib / "server" / "stack_export_prod"
    _file(layers / "cpython3.11" / "lib.so", 300_000)
    _file(layers / "framework-numpy" / "core.so", 200_000)
    _file(lib / "modelfiles" / "weights.bin", 100_000)
    cli = tmp_path / "bin" / "refapp"
    _file(cli, 5_000)

    sizes = footprint.measure(LocalGuest(), profile, {"lib": str(lib)}, [str(cli), str(lib)])  # type: ignore[arg-type]

    # app-server was never installed: left out, not reported as zero.
    assert set(sizes) == {"cpython3.11", "framework-numpy", footprint.REST}
    assert 300_000 <= sizes["cpython3.11"] < 300_000 + 64 * 1024
    assert 200_000 <= sizes["framework-numpy"] < 200_000 + 64 * 1024
    assert 105_000 <= sizes[footprint.REST] < 105_000 + 128 * 1024


def test_no_lib_path_means_roots_only(tmp_path: Path) -> None:
    profile = load_profile("reference")
    _file(tmp_path / "root" / "a.bin", 50_000)
    sizes = footprint.measure(LocalGuest(), profile, {}, [str(tmp_path / "root"), str(tmp_path / "missing")])  # type: ignore[arg-type]
    assert list(sizes) == [footprint.REST] and sizes[footprint.REST] >= 50_000
