"""The Tiles-shaped fixture is built the way Tiles ships: its runtime's build configuration names
python-build-standalone's prefix, not the home directory of the machine that built the seed."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from release_support import REPO

from harness.checks import buildhost

FIXTURE = REPO / "examples" / "tiles_release"
CURRENT = "current/tiles-v0.4.20-canary.1-x86_64-linux.tar.gz"


def test_fixture_runtime_names_no_build_host_home(tmp_path: Path) -> None:
    dist = FIXTURE / "dist"
    subprocess.run([sys.executable, str(FIXTURE / "build.py"), "--out", str(dist)], check=True, timeout=1800,
                   capture_output=True)
    layers = tmp_path / "layers"
    layers.mkdir()
    with tarfile.open(dist / CURRENT) as release:
        archives = [m for m in release.getmembers() if m.name.endswith(".tar.xz")]
        assert any("cpython3.13" in m.name for m in archives), [m.name for m in archives]
        for member in archives:
            with tarfile.open(fileobj=release.extractfile(member), mode="r:xz") as layer:
                layer.extractall(layers, filter="tar")
    sysconfig = next(layers.glob("cpython3.13/lib/python3.*/_sysconfigdata_*.py"))
    assert "'prefix': '/install'" in sysconfig.read_text(), "the runtime's sysconfig data lost its prefix"
    found = subprocess.run(["sh", "-c", buildhost.home_mentions_command([str(layers)])],
                           capture_output=True, text=True, timeout=300, check=False).stdout
    assert buildhost.home_problems(found, [str(layers)]) == []
