"""Bad input is refused before any VM: one clear message, exit 2, no pytest session, nothing written.

Each row of the README's bad-input table is a case here, run through the ``harness`` command as a
user types it, from an empty working directory with the host's cache and state in scratch places.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.cli import main
from harness.commands import run as run_command
from harness.preflight import judge_release_input
from tests.unit.release_files import large_release, small_release

NAME = "refapp-v0.1.0-x86_64-linux.tar.gz"


@dataclass(frozen=True)
class Row:
    id: str
    make: Callable[[Path], list[str]]  # writes the input under the given directory, returns the argv
    first_line: str  # a fragment of the message's first line


def _empty(d: Path) -> list[str]:
    (d / NAME).write_bytes(b"")
    return ["run", "--release", str(d / NAME)]


def _text(d: Path) -> list[str]:
    (d / NAME).write_text("<html><body>404 Not Found</body></html>\n")
    return ["run", "--release", str(d / NAME)]


def _truncated(d: Path) -> list[str]:
    whole = large_release(d / "whole" / NAME)
    (d / NAME).write_bytes(whole.read_bytes()[: 1 << 20])  # the first megabyte of a good tarball
    return ["run", "--release", str(d / NAME)]


def _parent_member(d: Path) -> list[str]:
    small_release(d / NAME, {"install.sh": b"#!/bin/sh\n", "../.escape": b"x"})
    return ["run", "--release", str(d / NAME)]


def _link_to_passwd(d: Path) -> list[str]:
    small_release(d / NAME, links={"passwd": "/etc/passwd"})
    return ["run", "--release", str(d / NAME)]


def _installer_package(d: Path) -> list[str]:
    (d / "refapp-v0.1.0-arm64-darwin.tar.gz").write_bytes(b"xar!\x00\x1c\x00\x01" + bytes(64))
    return ["run", "--release", str(d / "refapp-v0.1.0-arm64-darwin.tar.gz")]


def _image(name: str) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        return ["run", "--release", str(small_release(d / NAME)), "--image", name]
    return make


def _darwin_on_linux(d: Path) -> list[str]:
    return ["run", "--release", str(small_release(d / "refapp-v0.1.0-arm64-darwin.tar.gz"))]


def _three_mistakes(d: Path) -> list[str]:
    reference = Path(__file__).parents[2] / "harness" / "profiles" / "reference.toml"
    text = reference.read_text().replace('port = 6969', 'prot = 6969')  # a typo of a key
    text = text.replace('ready_timeout_s = 120', 'ready_timeout_s = "two minutes"')  # a wrong type
    text = text.replace('flavour = "openai"', 'flavour = "opneai"')  # a value not among the choices
    (d / "mine.toml").write_text(text)
    return ["run", "--release", str(small_release(d / NAME)), "--profile", str(d / "mine.toml")]


def _shell_image(d: Path) -> list[str]:
    return ["shell", "--release", str(small_release(d / NAME)), "--image", "nosuch"]


def _shell_truncated(d: Path) -> list[str]:
    return ["shell", *_truncated(d)[1:]]


def _inspect_empty_dir(d: Path) -> list[str]:
    (d / "refapp-v0.1.0-x86_64-linux").mkdir()
    return ["inspect", str(d / "refapp-v0.1.0-x86_64-linux")]


def _inspect_no_version(d: Path) -> list[str]:
    return ["inspect", str(small_release(d / "refapp-x86_64-linux.tar.gz"))]


def _diff_no_version(d: Path) -> list[str]:
    return ["diff", str(small_release(d / NAME)), str(small_release(d / "refapp-latest.tar.gz"))]


def _repro_no_journal(d: Path) -> list[str]:
    (d / "old-results").mkdir()
    return ["repro", "--results-dir", str(d / "old-results")]


ROWS = [
    Row("empty-file", _empty, "is empty (0 bytes)"),
    Row("text-renamed", _text, "is not an archive: it starts with the text '<html><body>404"),
    Row("first-megabyte", _truncated, "is truncated or corrupt: its 1,048,576 bytes end before the archive does"),
    Row("parent-member", _parent_member, "is unsafe to unpack: 1 member(s) would land outside its directory"),
    Row("link-to-etc-passwd", _link_to_passwd, "is unsafe to unpack: 1 member(s) would land outside"),
    Row("installer-package", _installer_package, "is a macOS installer package (a xar archive)"),
    Row("image-nosuch", _image("nosuch"), "unknown image 'nosuch'"),
    Row("image-linux-nosuch", _image("linux-nosuch"), "unknown image 'linux-nosuch'"),
    Row("darwin-on-linux", _darwin_on_linux, "is built for darwin-arm64, but image linux-debian12 is linux-x86_64"),
    Row("profile-three-mistakes", _three_mistakes, "mine.toml"),
    Row("shell-image-nosuch", _shell_image, "unknown image 'nosuch'"),
    Row("shell-first-megabyte", _shell_truncated, "is truncated or corrupt"),
    Row("inspect-empty-dir", _inspect_empty_dir, "is empty: there is nothing to inspect"),
    Row("inspect-no-version", _inspect_no_version, "cannot read product, version and platform from the tarball name"),
    Row("diff-no-version", _diff_no_version, "cannot read product, version and platform from the tarball name"),
    Row("repro-no-journal", _repro_no_journal, "holds no run journal"),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, the host's cache and state elsewhere, and no pytest to start."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HARNESS_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))

    def no_session(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a pytest session was started: {args}")

    monkeypatch.setattr(run_command.subprocess, "Popen", no_session)
    return work


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_refused_before_any_vm(row: Row, scratch: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    argv = row.make(inputs)
    before = _tree(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    first = err.splitlines()[0]
    assert first.startswith("harness: usage error: ") and row.first_line in first, err
    assert "Traceback" not in err and "hint: " in err
    assert _tree(tmp_path) == before, "the refused command wrote something"


def test_every_profile_mistake_is_reported_at_once(scratch: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    assert main(_three_mistakes(inputs)) == 2
    err = capsys.readouterr().err
    for where in ("server.prot", "server.ready_timeout_s", "api.flavour"):
        assert where in err, err
    assert "port" in err  # the nearest valid key for the typo


def test_a_good_release_passes_and_its_digest_comes_from_the_one_read(tmp_path: Path) -> None:
    release = large_release(tmp_path / NAME)
    given = judge_release_input(release)
    assert given.format == "tar.gz" and given.name is not None and given.name.version == "0.1.0"
    digest = subprocess.run(["sha256sum", str(release)], capture_output=True, text=True, check=True).stdout.split()[0]
    from harness.inspect.archive import read_release

    assert read_release(release).sha256 == digest


def test_report_takes_results_dir_as_run_does_and_keeps_the_old_spelling(tmp_path: Path) -> None:
    from harness.cli import build_parser

    for spelling in ("--results-dir", "--results"):
        args = build_parser().parse_args(["report", spelling, str(tmp_path)])
        assert args.results == tmp_path


def test_a_pytest_session_given_a_cut_release_stops_before_collecting(tmp_path: Path) -> None:
    """The plugin's own door (pytest --pyargs harness.portability) judges the release file too."""
    import sys

    cut = tmp_path / NAME
    cut.write_bytes(large_release(tmp_path / "whole" / NAME).read_bytes()[: 1 << 20])
    results = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "harness.portability", f"--release={cut}",
                           f"--results-dir={results}", "-p", "no:cacheprovider"],
                          check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "is truncated or corrupt" in done.stderr and "Traceback" not in done.stdout + done.stderr
    assert not results.exists()
