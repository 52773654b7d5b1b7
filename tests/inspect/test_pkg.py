"""Installer packages (.pkg) read statically: facts, the named rules, and bad input."""

from __future__ import annotations

import lzma
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import libarchive
import pytest

from harness.errors import UsageError
from harness.inspect.archive import sniff_format
from harness.inspect.runner import inspect_release
from harness.preflight import check_release, judge_release_input
from harness.profile import load_profile
from harness.release_name import parse_release_name
from harness.testing.macho_writer import make_macho_slice
from harness.testing.pkg_writer import (
    PLAIN_XAR,
    ComponentSpec,
    PayloadFile,
    cpio_bytes,
    package_info,
    write_pkg,
)

POSTINSTALL = b"""#!/bin/bash
set -e
printf '%%staff ALL=(root) NOPASSWD: /usr/bin/pmset\\n' > /private/etc/sudoers.d/tiles
cp sleep-guard.plist /Library/LaunchDaemons/com.example.tiles.sleep-guard.plist
cd /usr/local/share/tiles/server/stack_export_prod && for a in *.tar.xz; do tar -xf "$a"; done
"""


def distribution(arches: str = "arm64,x86_64", component: str = "tiles-unsigned.pkg",
                 ref_id: str = "com.example.tiles") -> str:
    host = f' hostArchitectures="{arches}"' if arches else ""
    return (f'<?xml version="1.0"?><installer-gui-script minSpecVersion="2"><title>Tiles</title>'
            f'<options customize="never"{host}/><volume-check><allowed-os-versions><os-version min="13.0"/>'
            f'</allowed-os-versions></volume-check><choices-outline><line choice="app"/></choices-outline>'
            f'<choice id="app" title="Tiles"><pkg-ref id="{ref_id}"/></choice>'
            f'<pkg-ref id="{ref_id}" version="0.4.20">#{component}</pkg-ref></installer-gui-script>')


def component(cli: bytes | None = None, postinstall_mode: int = 0o755, extra: dict[str, PayloadFile] | None = None,
              identifier: str = "com.example.tiles") -> ComponentSpec:
    payload = {"./usr/local/bin/tiles": PayloadFile(cli or make_macho_slice("arm64", filetype=2), 0o755),
               "./Applications/Tiles.app/Contents/Info.plist": PayloadFile(b"<plist/>"), **(extra or {})}
    return ComponentSpec("tiles-unsigned.pkg", identifier, "0.4.20", payload,
                         scripts={"postinstall": PayloadFile(POSTINSTALL, postinstall_mode)})


def build(tmp_path: Path, name: str = "tiles-v0.4.20-canary.1-arm64-darwin.pkg", **kwargs: object) -> Path:
    dist = str(kwargs.pop("dist", distribution()))
    return write_pkg(tmp_path / name, [component(**kwargs)], dist)  # type: ignore[arg-type]


def test_good_package_lists_facts_payload_and_privileged_changes(tmp_path: Path) -> None:
    report = inspect_release(build(tmp_path))
    assert report.target == "macos-14"
    assert not report.errors(), [f.line() for f in report.errors()]
    facts = report.stats["package"]
    assert facts["distribution"]["host_architectures"] == ["arm64", "x86_64"]
    assert facts["components"][0]["identifier"] == "com.example.tiles"
    assert facts["scripts"][0]["executable"]
    assert report.stats["macho_binaries"] == 1
    privileged = [f.message for f in report.findings if f.check == "pkg.privileged_change"]
    assert any("sudoers" in m for m in privileged) and any("LaunchDaemon" in m for m in privileged)
    assert "pkg.unsigned" in report.checks("warning")


@pytest.mark.parametrize(("kwargs", "rule"), [
    ({"dist": distribution(arches="")}, "pkg.rosetta_prompt"),
    ({"dist": distribution(arches="x86_64")}, "pkg.host_architecture"),
    ({"dist": distribution(component="tiles-app.pkg")}, "pkg.missing_component"),
    ({"dist": distribution(ref_id="com.example.other")}, "pkg.identifier_mismatch"),
    ({"postinstall_mode": 0o644}, "pkg.script_not_executable"),
    ({"extra": {"../../etc/evil": PayloadFile(b"x")}}, "archive.parent_reference"),
    ({"extra": {"/etc/evil": PayloadFile(b"x")}}, "archive.absolute_path"),
    ({"cli": make_macho_slice("x86_64", filetype=2)}, "macho.rosetta_required"),
])
def test_each_broken_form_is_caught_by_its_rule(tmp_path: Path, kwargs: dict[str, object], rule: str) -> None:
    report = inspect_release(build(tmp_path, **kwargs))
    assert rule in report.checks("error")


def test_os_minimum_above_the_target_is_refused(tmp_path: Path) -> None:
    pkg = build(tmp_path, dist=distribution().replace('min="13.0"', 'min="15.0"'))
    assert "pkg.os_version_refused" in inspect_release(pkg).checks("error")


def test_a_component_package_alone_reads_without_a_distribution(tmp_path: Path) -> None:
    pkg = write_pkg(tmp_path / "tiles.pkg", [replace(component(), install_location="/usr/local")])
    report = inspect_release(pkg)
    assert report.stats["package"]["kind"] == "component"
    assert "usr/local/usr/local/bin/tiles" in {e["path"] for e in report.footprint["largest_files"]}


def test_pkg_is_sniffed_by_content_and_named_by_the_one_parser(tmp_path: Path) -> None:
    pkg = build(tmp_path)
    disguised = pkg.rename(tmp_path / "tiles-v0.4.20-x86_64-linux.tar.gz")
    assert sniff_format(disguised) == "pkg"
    name = parse_release_name("tiles-v0.4.20-canary.1-arm64-darwin.pkg")
    assert (name.version, name.platform) == ("0.4.20-canary.1", "darwin-arm64")
    assert judge_release_input(write_pkg(tmp_path / "tiles.pkg", [component()], distribution())).name is None


def test_run_refuses_a_pkg_cleanly(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="installing a .pkg needs a macOS guest"):
        check_release(build(tmp_path), load_profile("tiles"))


def test_bad_input_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    pkg = build(tmp_path)
    data = pkg.read_bytes()
    cut = tmp_path / "cut.pkg"
    cut.write_bytes(data[: len(data) - 200])
    with pytest.raises(UsageError, match=r"cut\.pkg is truncated"):
        inspect_release(cut)
    fake = tmp_path / "fake.pkg"
    fake.write_bytes(b"xar!" + b"\0" * 40)
    with pytest.raises(UsageError, match=r"fake\.pkg"):
        inspect_release(fake)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.pkg", "fake.pkg", pkg.name]


def test_cli_inspect_prints_no_traceback_for_a_truncated_package(tmp_path: Path) -> None:
    pkg = build(tmp_path)
    pkg.write_bytes(pkg.read_bytes()[:300])
    done = subprocess.run([sys.executable, "-m", "harness.cli", "inspect", str(pkg)], check=False, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and pkg.name in done.stderr


def test_a_pbzx_payload_is_read_by_the_hand_written_decoder(tmp_path: Path) -> None:
    spec = component()
    plain = cpio_bytes(spec.payload, compress=False)
    halves = [plain[: len(plain) // 2], plain[len(plain) // 2 :]]
    chunks = b"".join(struct.pack(">QQ", 1 << 24, len(xz)) + xz for xz in (lzma.compress(h) for h in halves))
    payload = b"pbzx" + struct.pack(">Q", 1 << 24) + chunks
    info = package_info(spec)
    pkg = tmp_path / "tiles.pkg"
    with libarchive.file_writer(str(pkg), "xar", options=PLAIN_XAR) as writer:
        writer.add_file_from_memory("PackageInfo", len(info), info)
        writer.add_file_from_memory("Payload", len(payload), payload)
    report = inspect_release(pkg)
    assert report.stats["files"] == 2 and report.stats["macho_binaries"] == 1
