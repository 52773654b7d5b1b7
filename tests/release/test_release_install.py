"""install.sh: offline, no system Python, Tiles' paths, and nothing half-installed on bad input."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from release_support import TARBALL_NAME, BuiltReleases, ReleaseHome, snapshot


def test_clean_path_has_no_python(clean_path: Path) -> None:
    assert not [p for p in clean_path.iterdir() if p.name.startswith("python")]


def test_install_puts_files_where_tiles_does(installed: ReleaseHome) -> None:
    assert installed.launcher.is_file()
    assert f"REFAPP_INSTALLED_LIB_DIR='{installed.lib}'" in installed.launcher.read_text()
    stack = installed.lib / "server" / "stack_export_prod"
    assert sorted(p.name for p in stack.iterdir()) == ["__venvstacks__", "app-server", "cpython3.11", "framework-numpy"]
    assert not list(stack.glob("*.tar.xz")), "layer archives are deleted after unpacking"
    for layer in ("framework-numpy", "app-server"):
        assert f"home = {stack}/cpython3.11/bin" in (stack / layer / "pyvenv.cfg").read_text()
    assert (installed.lib / "modelfiles" / "refchar" / "weights.npz").is_file()
    assert not [p for p in installed.lib.parent.iterdir() if p.name.startswith(".refapp-install")]


def test_install_prints_what_it_did(installed: ReleaseHome) -> None:
    output = installed.install_output
    for expected in ("sha256 verified", "unpacking layer cpython3.11", "post-install app-server",
                     "installed refapp 0.1.0 (x86_64-linux)", f"launcher: {installed.launcher}"):
        assert expected in output


def test_flags_and_env_choose_the_directories(built: BuiltReleases, fresh_home: ReleaseHome, tmp_path: Path) -> None:
    """Tarball from REFAPP_TARBALL, lib dir from XDG_DATA_HOME, launcher dir from --install-dir."""
    bin_dir, xdg = tmp_path / "tools" / "bin", tmp_path / "xdg"
    env = {**fresh_home.env, "REFAPP_TARBALL": str(built.tarball()), "XDG_DATA_HOME": str(xdg)}
    result = subprocess.run(["sh", str(built.installer()), "--install-dir", str(bin_dir)],
                            capture_output=True, text=True, check=False, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (bin_dir / "refapp").is_file() and (xdg / "refapp" / "server" / "main.py").is_file()
    assert snapshot(fresh_home.home) == set()
    for command, code in (("help", 0), ("status", 3)):
        ran = subprocess.run([str(bin_dir / "refapp"), command], capture_output=True, text=True, check=False, env=env, timeout=30)
        assert ran.returncode == code, ran.stderr


def test_help(built: BuiltReleases, fresh_home: ReleaseHome) -> None:
    result = fresh_home.install(built.installer(), "-h")
    assert result.returncode == 0
    for flag in ("--tarball", "--install-dir", "--lib-dir", "REFAPP_TARBALL", "XDG_DATA_HOME"):
        assert flag in result.stdout
    assert snapshot(fresh_home.home) == set()


def _wrong_arch_copy(tarball: Path, target: Path) -> None:
    """The same release with release.env claiming aarch64, under the correct file name."""
    with tarfile.open(tarball, "r:gz") as src, gzip.open(target, "wb") as gz, \
            tarfile.open(fileobj=gz, mode="w") as dst:
        for info in src:
            data = src.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            if info.name == "release.env" and data is not None:
                data = data.replace(b"ARCH=x86_64", b"ARCH=aarch64")
                info.size = len(data)
            dst.addfile(info, io.BytesIO(data) if data is not None else None)


BAD_INPUTS = {
    "missing": ("tarball not found", lambda src, d: d / TARBALL_NAME),
    "truncated": ("truncated or corrupt", lambda src, d: _truncated(src, d / TARBALL_NAME)),
    "wrong-arch-name": ("built for aarch64-linux", lambda src, d: _copy(src, d / "refapp-v0.1.0-aarch64-linux.tar.gz")),
    "wrong-arch-content": ("contains a aarch64-linux build", lambda src, d: _made(_wrong_arch_copy, src, d / TARBALL_NAME)),
    "not-gzip": ("truncated or corrupt", lambda src, d: _written(d / TARBALL_NAME, b"<html>404</html>")),
}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def _truncated(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    return dst


def _written(dst: Path, data: bytes) -> Path:
    dst.write_bytes(data)
    return dst


def _made(make, src: Path, dst: Path) -> Path:  # type: ignore[no-untyped-def]
    make(src, dst)
    return dst


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_tarball_fails_clearly_and_leaves_nothing(case: str, built: BuiltReleases, fresh_home: ReleaseHome,
                                                      tmp_path: Path) -> None:
    message, make = BAD_INPUTS[case]
    source = tmp_path / "given"
    source.mkdir()
    tarball = make(built.tarball(), source)
    result = fresh_home.install(built.installer(), "--tarball", str(tarball))
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "hint:" in result.stderr or case == "wrong-arch-content"
    assert "Traceback" not in result.stderr
    assert snapshot(fresh_home.home) == set(), "a failed install left files behind"


def test_no_tarball_at_all(built: BuiltReleases, fresh_home: ReleaseHome, tmp_path: Path) -> None:
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copyfile(built.installer(), lone / "install.sh")
    result = fresh_home.install(lone / "install.sh")
    assert result.returncode != 0
    assert "no release tarball given" in result.stderr and "never downloads" in result.stderr
    assert snapshot(fresh_home.home) == set()


def test_failed_upgrade_keeps_the_previous_install(built: BuiltReleases, fresh_home: ReleaseHome, tmp_path: Path) -> None:
    lib_dir = fresh_home.home / "opt" / "refapp"
    first = fresh_home.install(built.installer(), "--tarball", str(built.tarball()), "--lib-dir", str(lib_dir))
    assert first.returncode == 0, first.stderr
    before = snapshot(fresh_home.home)
    broken = _truncated(built.tarball(), tmp_path / TARBALL_NAME)
    failed = fresh_home.install(built.installer(), "--tarball", str(broken), "--lib-dir", str(lib_dir))
    assert failed.returncode != 0
    assert snapshot(fresh_home.home) == before
    again = fresh_home.install(built.installer(), "--tarball", str(built.tarball()), "--lib-dir", str(lib_dir))
    assert again.returncode == 0, again.stderr
    assert "moved the previous install aside" in again.stdout
    assert sorted(p.name for p in lib_dir.parent.iterdir()) == ["refapp"]
