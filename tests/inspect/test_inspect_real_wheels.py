"""The inspector on real third-party binaries, cross-checked against the reference tools.

Wheels are fetched once with ``pip download --platform ... --only-binary=:all:`` into
``<cache>/wheels``; the tests skip with the reason when PyPI cannot be reached. ELF verdicts are
compared with ``auditwheel show --json``; Mach-O ones with delocate, which needs Apple's
``otool``/``lipo``: here a stand-in directory maps them onto LLVM's ``llvm-otool``/``llvm-lipo``
(package llvm-14), whose Mach-O parser is independent of ours.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.config import HostPaths
from harness.inspect.elf import versioned_symbols
from harness.inspect.layout import LayoutExpectations
from harness.inspect.macho import dependency_listing
from harness.inspect.runner import collect, inspect_collected
from harness.inspect.targets import load_target, version_tuple
from tests.needs import unavailable

pytestmark = pytest.mark.slow

WHEELS: dict[str, tuple[str, str]] = {
    # key: (requirement, --platform)
    "numpy-linux": ("numpy==2.1.3", "manylinux2014_x86_64"),
    "pillow-linux": ("pillow==11.0.0", "manylinux2014_x86_64"),
    "lxml-linux": ("lxml==5.3.0", "manylinux2014_x86_64"),
    "numpy-macos-arm64": ("numpy==2.1.3", "macosx_14_0_arm64"),
    "pillow-macos-arm64": ("pillow==11.0.0", "macosx_11_0_arm64"),
    "numpy-macos-x86_64": ("numpy==1.26.4", "macosx_11_0_x86_64"),
    "pillow-macos-x86_64": ("pillow==11.0.0", "macosx_11_0_x86_64"),
}
LINUX = [k for k in WHEELS if k.endswith("linux")]
MACOS = [k for k in WHEELS if "macos" in k]
PIP_TIMEOUT_S = 300
LLVM_BIN = Path("/usr/lib/llvm-14/bin")


@pytest.fixture(scope="session")
def wheels() -> dict[str, Path]:
    cache = HostPaths.from_env().cache / "wheels"
    found: dict[str, Path] = {}
    for key, (requirement, platform) in WHEELS.items():
        target = cache / key
        existing = sorted(target.glob("*.whl"))
        if not existing:
            target.mkdir(parents=True, exist_ok=True)
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                     "--platform", platform, "--python-version", "3.11", "--dest", str(target), requirement],
                    capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                pytest.skip(f"PyPI did not answer within {PIP_TIMEOUT_S} s: cannot fetch {requirement} ({platform})")
            existing = sorted(target.glob("*.whl"))
            if done.returncode != 0 or not existing:
                pytest.skip(f"PyPI unreachable: pip download {requirement} ({platform}) failed: {done.stderr.strip()[-300:]}")
        found[key] = existing[0]
    return found


def _auditwheel(wheel: Path) -> dict:
    tool = Path(sys.executable).with_name("auditwheel")
    if not tool.exists():
        unavailable("auditwheel is not installed: pip install -e '.[test]'")
    done = subprocess.run([str(tool), "show", "--json", str(wheel)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _without_loader(symbols: dict[str, set[str]]) -> dict[str, set[str]]:
    # auditwheel leaves out the dynamic loader's own symbol versions (ld-linux-*), so do we here.
    return {lib: set(v) for lib, v in symbols.items() if not lib.startswith("ld-linux")}


@pytest.mark.parametrize("key", LINUX)
def test_elf_verdicts_match_auditwheel(wheels: dict[str, Path], key: str) -> None:
    peer = _auditwheel(wheels[key])
    collected = collect(wheels[key])
    ours = _without_loader(versioned_symbols(collected.elf.binaries))
    theirs = {lib: set(v) for lib, v in peer["versioned_symbols"].items()}
    assert ours == theirs
    # auditwheel's tag (manylinux_2_17) bounds the newest GLIBC version we saw.
    tag_glibc = re.match(r"manylinux_(\d+)_(\d+)_", peer["sym_tag"])
    assert tag_glibc, peer["sym_tag"]
    newest = max((v for vs in ours.values() for v in vs if v.startswith("GLIBC_")), key=version_tuple)
    assert version_tuple(newest) <= (int(tag_glibc[1]), int(tag_glibc[2]))
    # Both agree that nothing outside the wheel and the base system is needed.
    report = inspect_collected(collected, load_target("debian-12"), LayoutExpectations())
    assert peer["external_libs"] == {}
    assert not report.errors(), [f.line() for f in report.errors()]


def _strip_wheel(source: Path, dest: Path, prefix: str) -> tuple[Path, set[str]]:
    removed = set()
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if info.filename.startswith(prefix):
                removed.add(info.filename.rsplit("/", 1)[-1])
            else:
                out.writestr(info, src.read(info))
    return dest, removed


def test_wheel_without_its_bundled_libraries_is_caught(wheels: dict[str, Path], tmp_path: Path) -> None:
    broken, removed = _strip_wheel(wheels["numpy-linux"], tmp_path / wheels["numpy-linux"].name, "numpy.libs/")
    report = inspect_collected(collect(broken), load_target("debian-12"), LayoutExpectations())
    unresolved = {f.message.split()[1].rstrip(",") for f in report.errors() if f.check == "elf.unresolved_needed"}
    assert unresolved and unresolved <= removed
    assert any("openblas" in name for name in unresolved)


@pytest.fixture(scope="session")
def apple_tools_standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PATH directory whose otool/lipo are LLVM's, so delocate runs on Linux (a stand-in)."""
    if not (LLVM_BIN / "llvm-otool").exists() or not (LLVM_BIN / "llvm-lipo").exists():
        unavailable("delocate needs otool/lipo; their LLVM stand-ins come with: apt-get install llvm-14")
    bindir = tmp_path_factory.mktemp("apple-tools")
    # Apple's otool takes -m (no member name decoration); llvm-otool does not know it.
    (bindir / "otool").write_text(
        '#!/bin/bash\nargs=()\nfor a in "$@"; do [[ $a == -m ]] || args+=("$a"); done\n'
        f'exec {LLVM_BIN}/llvm-otool "${{args[@]}}"\n')
    (bindir / "lipo").write_text(f'#!/bin/sh\nexec {LLVM_BIN}/llvm-lipo "$@"\n')
    for tool in ("otool", "lipo"):
        (bindir / tool).chmod(0o755)
    return bindir


def _delocate_listdeps(wheel: Path, bindir: Path) -> tuple[set[str], str]:
    tool = Path(sys.executable).with_name("delocate-listdeps")
    if not tool.exists():
        unavailable("delocate is not installed: pip install -e '.[test]'")
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(wheel.parent)}
    done = subprocess.run([str(tool), "--all", str(wheel)], capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.strip() for line in done.stdout.splitlines() if line.strip()}, done.stderr


@pytest.mark.parametrize("key", MACOS)
def test_macho_dependencies_match_delocate(wheels: dict[str, Path], apple_tools_standin: Path, key: str) -> None:
    theirs, _ = _delocate_listdeps(wheels[key], apple_tools_standin)
    collected = collect(wheels[key])
    ours = set(dependency_listing(collected.macho.binaries, collected.contents, load_target("macos-14")))
    assert ours == theirs


@pytest.mark.parametrize("key", MACOS)
def test_macho_architectures_match_lipo(wheels: dict[str, Path], apple_tools_standin: Path, key: str,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from delocate.tools import get_archs

    monkeypatch.setenv("PATH", f"{apple_tools_standin}:/usr/bin:/bin")
    collected = collect(wheels[key])
    with zipfile.ZipFile(wheels[key]) as wheel:
        wheel.extractall(tmp_path)
    loadable = {p: i for p, i in collected.macho.binaries.items() if i.loadable}
    assert loadable
    for path, info in loadable.items():
        assert info.archs == get_archs(str(tmp_path / path)), path
    report = inspect_collected(collected, load_target("macos-14"), LayoutExpectations())
    rosetta = {f.path for f in report.errors() if f.check == "macho.rosetta_required"}
    if key.endswith("x86_64"):
        assert rosetta == set(loadable)  # every x86_64-only file would make macOS ask for Rosetta
    else:
        assert not report.errors(), [f.line() for f in report.errors()]


def test_minimum_macos_matches_the_wheel_tag(wheels: dict[str, Path]) -> None:
    """numpy's macosx_14_0 wheel: minos 14.0 everywhere, fine on macOS 14, too new for 13."""
    collected = collect(wheels["numpy-macos-arm64"])
    assert {s.minos for i in collected.macho.binaries.values() for s in i.slices} == {"14.0"}
    older = load_target("macos-14")
    from dataclasses import replace

    report = inspect_collected(collected, replace(older, name="macos-13", macos_version="13.0"), LayoutExpectations())
    assert {f.check for f in report.errors()} == {"macho.minos_too_new"}


def test_wheel_without_its_bundled_dylibs_matches_delocate(wheels: dict[str, Path], apple_tools_standin: Path,
                                                            tmp_path: Path) -> None:
    broken, removed = _strip_wheel(wheels["pillow-macos-arm64"], tmp_path / wheels["pillow-macos-arm64"].name,
                                   "PIL/.dylibs/")
    _, stderr = _delocate_listdeps(broken, apple_tools_standin)
    theirs = set(re.findall(r"(@loader_path/\S+) not found, requested by", stderr))
    report = inspect_collected(collect(broken), load_target("macos-14"), LayoutExpectations())
    ours = {f.message.split()[1].rstrip(",") for f in report.errors() if f.check == "macho.unresolved_reference"}
    assert theirs and ours == theirs
    assert {name.rsplit("/", 1)[-1] for name in ours} <= removed
