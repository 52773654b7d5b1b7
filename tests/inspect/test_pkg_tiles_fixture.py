"""The Tiles-shaped product archive (examples/tiles_release/build_pkg.py) through the real
`harness inspect`: its facts in the good form, and each broken form caught by its named rule."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.inspect.runner import inspect_release

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "examples" / "tiles_release" / "build_pkg.py"
PKG = "tiles-v0.4.20-canary.1-arm64-darwin.pkg"
FORMS = {  # broken form -> the rule that must catch it (build_pkg.VARIANTS says why)
    "no_host_architectures": "pkg.rosetta_prompt",
    "missing_component": "pkg.missing_component",
    "postinstall_not_executable": "pkg.script_not_executable",
    "parent_reference": "archive.parent_reference",
    "x86_64_cli": "macho.rosetta_required",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The forms, built into a temporary directory (about 10 s; the tarball they read is cached)."""
    out = tmp_path_factory.mktemp("tiles-pkg")
    subprocess.run([sys.executable, str(BUILDER), "--out", str(out), "--part-size", "65536"], check=True,
                   capture_output=True, timeout=600)
    return out


def inspect_json(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["inspect", str(path), "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def errors(report: dict) -> dict[str, str]:  # type: ignore[type-arg]
    """rule -> the first line of its first error finding."""
    found: dict[str, str] = {}
    for f in report["findings"]:
        if f["severity"] == "error":
            found.setdefault(f["check"], f"{f['path']}: {f['message']}")
    return found


@pytest.fixture(scope="module")
def good_errors(built: Path) -> dict[str, str]:
    return {f.check: f.line() for f in inspect_release(built / "current" / PKG).errors()}


def test_good_form_lists_payload_scripts_privileges_and_distribution(built: Path, capsys: pytest.CaptureFixture[str],
                                                                     good_errors: dict[str, str]) -> None:
    code = main(["inspect", str(built / "current" / PKG)])
    text = capsys.readouterr().out
    for fact in ("Package (product archive)", "host architectures: arm64, x86_64", "choice app: com.tilesprivacy.tiles",
                 "choice model: com.tilesprivacy.tiles_models_gguf", "#tiles-model_gguf.pkg",
                 "tiles-unsigned.pkg/Scripts/postinstall", "Privileged changes", "sudoers rule", "LaunchDaemon",
                 "usr/local/share/tiles/server/stack_export_prod"):
        assert fact in text, fact
    # The stand-in's layers are Linux builds (the reference release's); what they trip on a macOS
    # target is the stand-in's, not the package's: none of the package rules.
    assert not set(good_errors) & set(FORMS.values()), good_errors
    assert code == (1 if good_errors else 0)


def test_model_package_ships_the_split_parts_and_a_joining_postinstall(built: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _, report = inspect_json(built / "current" / PKG, capsys)
    facts = report["stats"]["package"]
    model = next(c for c in facts["components"] if c["name"] == "tiles-model_gguf.pkg")
    assert (model["identifier"], model["version"], model["scripts"]) == (
        "com.tilesprivacy.tiles_models_gguf", "2.0", {"postinstall": "postinstall"})
    app = next(c for c in facts["components"] if c["name"] == "tiles-unsigned.pkg")
    assert app["relocatable"] == [] and app["install_location"] == "/"
    assert facts["distribution"]["customize"] == "never"
    assert report["stats"]["files"] > 100


@pytest.mark.parametrize(("form", "rule"), FORMS.items())
def test_each_broken_form_is_caught_by_its_named_rule(built: Path, capsys: pytest.CaptureFixture[str],
                                                      good_errors: dict[str, str], form: str, rule: str) -> None:
    code, report = inspect_json(built / "variants" / form / PKG, capsys)
    found = errors(report)
    assert code == 1
    assert set(found) - set(good_errors) == {rule}, found
    print(f"| {form} | {rule} | {found[rule]} |", file=sys.stderr)


def test_product_named_tiles_pkg_reads_its_version_and_picks_the_darwin_variant(
        built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    product = shutil.copyfile(built / "current" / PKG, tmp_path / "tiles.pkg")
    _, report = inspect_json(product, capsys, "--profile", "tiles")
    assert report["target"] == "macos-14"
    assert report["stats"]["release_name"] == {"product": "tiles", "version": "0.4.20-canary.1", "prerelease": True,
                                               "platform": "darwin-arm64", "backend": ""}
