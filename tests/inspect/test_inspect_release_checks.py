"""Each planted defect in a synthetic layered release is caught by its named check; the good
release yields no error. The binaries are hand-made ELF/Mach-O files (see synth.py)."""

from __future__ import annotations

import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from synth import (
    GOOD_LOOSE,
    Layer,
    Member,
    good_layers,
    layer_archive,
    make_elf,
    tar_bytes,
    venvstacks_release,
)

from harness.inspect.findings import Report
from harness.inspect.layout import LayoutExpectations, expectations_from_layout
from harness.inspect.runner import inspect_release
from harness.inspect.targets import load_target
from harness.testing.macho_writer import make_fat, make_macho_slice

LINUX = "debian-12"


def inspect(path: Path, target: str = LINUX, **kwargs: object) -> Report:
    return inspect_release(path, target=target, **kwargs)  # type: ignore[arg-type]


def errors(report: Report) -> set[str]:
    return report.checks("error")


def with_file(layers: list[Layer], target: str, path: str, data: bytes) -> list[Layer]:
    return [replace(l, files={**l.files, path: data}) if l.target == target else l for l in layers]


def test_good_release_has_no_errors(tmp_path: Path) -> None:
    release = venvstacks_release(tmp_path / "good.tar.gz", good_layers(), GOOD_LOOSE)
    report = inspect(release, profile="reference")
    assert not report.errors(), [f.line() for f in report.errors()]
    assert report.stats["layers"] == ["cpython3.11", "framework-numpy", "app-server"]
    assert report.stats["elf_binaries"] == 3
    assert report.stats["max_glibc"] == "GLIBC_2.34"


# ------------------------------------------------------------------ archive safety

@pytest.mark.parametrize(
    ("member", "check"),
    [
        (Member("/etc/evil", b"x"), "archive.absolute_path"),
        (Member("../outside", b"x"), "archive.parent_reference"),
        (Member("link", kind=tarfile.SYMTYPE, linkname="../../etc/passwd"), "archive.link_outside"),
        (Member("abslink", kind=tarfile.SYMTYPE, linkname="/usr/bin/python3"), "archive.link_outside"),
        (Member("hard", kind=tarfile.LNKTYPE, linkname="../x"), "archive.link_outside"),
        (Member("dev", kind=tarfile.CHRTYPE), "archive.special_file"),
        (Member("fifo", kind=tarfile.FIFOTYPE), "archive.special_file"),
        (Member("suid", b"x", mode=0o4755), "archive.setuid"),
        (Member("ww", b"x", mode=0o666), "archive.world_writable"),
        (Member("refapp", b"again"), "archive.collision"),
    ],
)
def test_archive_safety_defects(tmp_path: Path, member: Member, check: str) -> None:
    release = venvstacks_release(tmp_path / "r.tar.gz", good_layers(), GOOD_LOOSE, loose_members=[member])
    assert check in errors(inspect(release))


def test_defects_inside_a_nested_layer_are_found(tmp_path: Path) -> None:
    layers = good_layers()
    layers[2] = replace(layers[2], extra=[Member("app-server/../../../escape", b"x"),
                                          Member("app-server/lib/tool", b"x", mode=0o6755)])
    report = inspect(venvstacks_release(tmp_path / "r.tar.gz", layers, GOOD_LOOSE))
    hits = {(f.check, f.path) for f in report.errors()}
    assert ("archive.parent_reference", "escape") in hits  # two levels up from the layers dir
    assert ("archive.setuid", "server/stack_export_prod/app-server/lib/tool") in hits


def test_case_collision_is_an_error_for_macos_only(tmp_path: Path) -> None:
    loose = {**GOOD_LOOSE, "modelfiles/Tiny": b"other"}
    release = venvstacks_release(tmp_path / "r.tar.gz", good_layers(), loose)
    assert "archive.case_collision" in errors(inspect(release, "macos-14"))
    assert "archive.case_collision" in inspect(release).checks("warning")


def test_unreadable_layer_is_reported_not_raised(tmp_path: Path) -> None:
    release = venvstacks_release(tmp_path / "r.tar.gz", good_layers(), GOOD_LOOSE,
                                 extra_archives={"broken.tar.xz": b"\xfd7zXZ\0garbage"})
    assert "archive.unreadable_layer" in errors(inspect(release))


# ------------------------------------------------------------------ layout and venvstacks metadata

def test_archive_hash_mismatch(tmp_path: Path) -> None:
    release = venvstacks_release(tmp_path / "r.tar.gz", good_layers(), GOOD_LOOSE, tamper_hash="framework-numpy")
    report = inspect(release)
    assert {f.path for f in report.errors() if f.check == "layout.archive_hash_mismatch"} == {
        "server/stack_export_prod/framework-numpy.tar.xz"}


def test_missing_required_layer(tmp_path: Path) -> None:
    layers = [l for l in good_layers() if l.target != "framework-numpy"]
    assert "layout.required_layer_missing" in errors(inspect(venvstacks_release(tmp_path / "r.tar.gz", layers, GOOD_LOOSE)))


def test_two_archives_of_one_layer(tmp_path: Path) -> None:
    """The defect Tiles shipped: a stale app-server archive beside the new one."""
    layers = good_layers()
    stale = layer_archive("app-server", {"lib/python3.11/site-packages/server/main.py": b"old\n"})
    release = venvstacks_release(tmp_path / "r.tar.gz", layers, GOOD_LOOSE, extra_archives={"app-server-old.tar.xz": stale})
    report = inspect(release)
    assert "layout.duplicate_layer_archive" in errors(report)
    assert "layout.unlisted_layer_archive" in report.checks("warning")


def test_launch_module_missing(tmp_path: Path) -> None:
    layers = good_layers()
    layers[2] = replace(layers[2], files={k: v for k, v in layers[2].files.items() if "server/main.py" not in k})
    loose = {k: v for k, v in GOOD_LOOSE.items() if k != "server/main.py"}
    assert "layout.launch_module_missing" in errors(inspect(venvstacks_release(tmp_path / "r.tar.gz", layers, loose)))


def test_archive_named_in_metadata_but_absent(tmp_path: Path) -> None:
    layers = good_layers()
    layers[0] = replace(layers[0], archive_name="cpython3.11-linux-1.tar.xz")
    release = venvstacks_release(tmp_path / "r.tar.gz", layers, GOOD_LOOSE)
    # Re-pack without that archive member to plant the defect.
    with tarfile.open(release) as tar:
        kept = [Member(m.name, tar.extractfile(m).read() if m.isfile() else b"", m.mode)  # type: ignore[union-attr]
                for m in tar.getmembers() if not m.name.endswith("cpython3.11-linux-1.tar.xz")]
    release.write_bytes(tar_bytes(kept, "gz"))
    assert "layout.layer_archive_missing" in errors(inspect(release))


def test_profile_layout_expectations(tmp_path: Path) -> None:
    release = venvstacks_release(tmp_path / "r.tar.gz", good_layers(), {**GOOD_LOOSE, "x/__pycache__/a.pyc": b"c"})
    expect = expectations_from_layout({"cli": "tiles", "layers_dir": "server/stack_export_prod",
                                       "layers": ["cpython3.13", "app-server"], "launch_module": "server.main",
                                       "forbidden_paths": ["**/__pycache__", "**/*.pyc"]})
    report = inspect(release, layout=expect)
    assert {"layout.missing_path", "layout.required_layer_missing"} <= errors(report)
    assert "layout.forbidden_path" in report.checks("warning")
    misplaced = expectations_from_layout({"layers_dir": "elsewhere"})
    assert "layout.layer_archive_misplaced" in errors(inspect(release, layout=misplaced))


def test_layout_table_must_be_well_typed() -> None:
    from harness.errors import UsageError

    with pytest.raises(UsageError, match="list of strings"):
        expectations_from_layout({"layers": "app-server"})
    assert expectations_from_layout(None) == LayoutExpectations()


def test_top_directory_is_transparent_to_the_layout(tmp_path: Path) -> None:
    release = venvstacks_release(tmp_path / "r.tar.gz", good_layers(), GOOD_LOOSE, top="refapp-v1.0-x86_64-linux")
    assert not inspect(release, profile="reference").errors()


# ------------------------------------------------------------------ ELF

def test_glibc_and_glibcxx_too_new(tmp_path: Path) -> None:
    ext = make_elf(needed=("libc.so.6", "libstdc++.so.6"),
                   version_needs={"libc.so.6": ("GLIBC_2.2.5", "GLIBC_2.38"), "libstdc++.so.6": ("GLIBCXX_3.4.32",)})
    layers = with_file(good_layers(), "framework-numpy", "lib/python3.11/site-packages/numpy/new.so", ext)
    report = inspect(venvstacks_release(tmp_path / "r.tar.gz", layers, GOOD_LOOSE))
    by_check = {f.check: f for f in report.errors()}
    assert "GLIBC_2.38" in by_check["elf.glibc_too_new"].message
    assert "GLIBCXX_3.4.32" in by_check["elf.glibcxx_too_new"].message


def test_versions_of_a_bundled_library_are_checked_against_that_library(tmp_path: Path) -> None:
    lib = make_elf(soname="libfoo.so.1", version_defs=("FOO_1.0",))
    ok = make_elf(needed=("libfoo.so.1",), runpath="$ORIGIN", version_needs={"libfoo.so.1": ("FOO_1.0",)})
    bad = make_elf(needed=("libfoo.so.1",), runpath="$ORIGIN", version_needs={"libfoo.so.1": ("FOO_2.0",)})
    layers = good_layers()
    for name, data in (("lib/libfoo.so.1", lib), ("lib/ok.so", ok), ("lib/bad.so", bad)):
        layers = with_file(layers, "cpython3.11", name, data)
    report = inspect(venvstacks_release(tmp_path / "r.tar.gz", layers, GOOD_LOOSE))
    missing = [f for f in report.errors() if f.check == "elf.symbol_version_missing"]
    assert [f.path.rsplit("/", 1)[-1] for f in missing] == ["bad.so"]


def test_unresolved_needed_and_rpath_rules(tmp_path: Path) -> None:
    cases = {
        "lib/needs_ssl1.so": make_elf(needed=("libssl.so.1.1",)),
        "lib/abs_rpath.so": make_elf(needed=("libc.so.6",), rpath="/home/builder/venv/lib"),
        "lib/escapes.so": make_elf(needed=("libc.so.6",), runpath="$ORIGIN/../../../../../.."),
        "lib/arm.so": make_elf(needed=("libc.so.6",), machine=183),
    }
    layers = good_layers()
    for name, data in cases.items():
        layers = with_file(layers, "cpython3.11", name, data)
    report = inspect(venvstacks_release(tmp_path / "r.tar.gz", layers, GOOD_LOOSE))
    found = {(f.check, f.path.rsplit("/", 1)[-1]) for f in report.errors()}
    assert ("elf.unresolved_needed", "needs_ssl1.so") in found
    assert ("elf.absolute_rpath", "abs_rpath.so") in found
    assert ("elf.rpath_escapes", "escapes.so") in found
    assert ("elf.wrong_architecture", "arm.so") in found


def test_needed_library_found_only_by_name_is_information(tmp_path: Path) -> None:
    layers = with_file(good_layers(), "framework-numpy", "lib/python3.11/site-packages/numpy/linalg.so",
                       make_elf(needed=("libpython3.11.so.1.0",)))
    report = inspect(venvstacks_release(tmp_path / "r.tar.gz", layers, GOOD_LOOSE))
    assert not report.errors()
    assert "elf.needed_off_search_path" in report.checks("info")


def test_target_list_is_derived_from_the_image() -> None:
    target = load_target("debian-12")
    assert target.glibc == "2.36"
    assert {"libc.so.6", "libstdc++.so.6", "ld-linux-x86-64.so.2"} <= target.sonames
    assert "GLIBCXX_3.4.30" in target.symbol_versions["libstdc++.so.6"]
    assert "python3" not in target.commands  # the clean image ships no Python
    assert target.image == "linux-debian12" and target.image_build  # read from an image, named as such


# ------------------------------------------------------------------ Mach-O

def macos_release(tmp_path: Path, files: dict[str, bytes]) -> Path:
    base = {"bin/python3": make_macho_slice(filetype=2, dylibs=("/usr/lib/libSystem.B.dylib", "@rpath/libpython3.11.dylib"),
                                            rpaths=("@executable_path/../lib",)),
            "lib/libpython3.11.dylib": make_macho_slice(install_id="@rpath/libpython3.11.dylib")}
    return venvstacks_release(tmp_path / "mac.tar.gz", [Layer("cpython3.11", {**base, **files})], GOOD_LOOSE)


def test_good_macos_layer_passes(tmp_path: Path) -> None:
    universal = make_fat(("x86_64", make_macho_slice("x86_64")), ("arm64", make_macho_slice("arm64")))
    report = inspect(macos_release(tmp_path, {"lib/universal.so": universal,
                                              "lib/ext.so": make_macho_slice(filetype=8, dylibs=("@loader_path/libpython3.11.dylib",))}),
                     "macos-14")
    assert not report.errors(), [f.line() for f in report.errors()]


@pytest.mark.parametrize(
    ("binary", "check"),
    [
        (make_macho_slice("x86_64"), "macho.rosetta_required"),
        (make_macho_slice(minos="15.0"), "macho.minos_too_new"),
        (make_macho_slice(dylibs=("/opt/homebrew/lib/libomp.dylib",)), "macho.external_dylib"),
        (make_macho_slice(dylibs=("/Users/runner/work/build/libfoo.dylib",)), "macho.external_dylib"),
        (make_macho_slice(dylibs=("@rpath/libmissing.dylib",), rpaths=("@loader_path",)), "macho.unresolved_reference"),
        (make_macho_slice(dylibs=("@loader_path/../nowhere/libz.dylib",)), "macho.unresolved_reference"),
        (make_macho_slice(signed=False), "macho.unsigned"),
    ],
)
def test_macho_defects(tmp_path: Path, binary: bytes, check: str) -> None:
    report = inspect(macos_release(tmp_path, {"lib/defect.so": binary}), "macos-14")
    assert {f.check for f in report.errors() if f.path.endswith("lib/defect.so")} == {check}


def test_minos_is_judged_per_target(tmp_path: Path) -> None:
    release = macos_release(tmp_path, {"lib/new.so": make_macho_slice(minos="15.0")})
    assert "macho.minos_too_new" in errors(inspect(release, "macos-14"))
    assert "macho.minos_too_new" not in errors(inspect(release, "macos-15"))


def test_absolute_rpath_is_a_warning(tmp_path: Path) -> None:
    report = inspect(macos_release(tmp_path, {"lib/r.so": make_macho_slice(rpaths=("/usr/local/lib",))}), "macos-14")
    assert "macho.absolute_rpath" in report.checks("warning")
    assert not report.errors()


def test_target_is_inferred_from_the_binaries(tmp_path: Path) -> None:
    assert inspect_release(macos_release(tmp_path, {})).target == "macos-14"
    assert inspect_release(venvstacks_release(tmp_path / "l.tar.gz", good_layers(), GOOD_LOOSE)).target == "debian-12"


# ------------------------------------------------------------------ scripts

@pytest.mark.parametrize(
    ("script", "system", "check", "severity"),
    [
        (b"#!/usr/bin/env python3\n", "debian-12", "scripts.missing_interpreter", "error"),
        (b"#!/usr/bin/python3\n", "macos-14", "scripts.missing_interpreter", "error"),
        (b"#!/usr/local/bin/ruby\n", "debian-12", "scripts.missing_interpreter", "error"),
        (b"#!/home/ci/build/server/stack_export_prod/app-server/bin/python\n", "debian-12",
         "scripts.hardcoded_install_path", "error"),
        (b"#!python\n", "debian-12", "scripts.missing_interpreter", "error"),
    ],
)
def test_script_interpreters(tmp_path: Path, script: bytes, system: str, check: str, severity: str) -> None:
    layers = with_file(good_layers(), "app-server", "bin/serve", script + b"print(1)\n")
    report = inspect(venvstacks_release(tmp_path / "r.tar.gz", layers, GOOD_LOOSE), system)
    assert (check, severity) in {(f.check, f.severity) for f in report.in_area("scripts")}


def test_system_shells_and_library_shebangs_pass(tmp_path: Path) -> None:
    layers = with_file(good_layers(), "app-server", "bin/tool", b"#!/usr/bin/env bash\necho\n")
    # CPython's stdlib keeps "#! /usr/local/bin/python" lines in modules that are never run directly.
    layers = with_file(layers, "cpython3.11", "lib/python3.11/cgi.py", b"#! /usr/local/bin/python\n")
    report = inspect(venvstacks_release(tmp_path / "r.tar.gz", layers, GOOD_LOOSE))
    assert not report.in_area("scripts")
