"""A profile with several mistakes reports all of them at once, each at the key that holds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.profile import BUILTIN_DIR, ProfileError, load_profile

REFERENCE = BUILTIN_DIR / "reference.toml"
CLI = "import sys; from harness.cli import main; sys.exit(main())"  # what the harness script runs


def profile_with(tmp_path: Path, *edits: tuple[str, str], tail: str = "") -> Path:
    text = REFERENCE.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, f"test fixture drifted: {old!r} not in reference.toml"
        text = text.replace(old, new, 1)
    path = tmp_path / "mine.toml"
    path.write_text(text + tail, encoding="utf-8")
    return path


def problems_of(path: Path) -> ProfileError:
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    return err.value


def test_three_mistakes_are_reported_together_with_paths_and_suggestions(tmp_path: Path) -> None:
    path = profile_with(tmp_path, ("[install]", "[install]\ncomand = 'x'"), ("port = 6969", 'port = "6969"'),
                        ('flavour = "openai"', 'flavour = "openai-see"'))
    error = problems_of(path)
    lines = str(error).splitlines()
    assert lines[0] == f"{path}: 3 problems in this profile:"
    assert "  install.comand: unknown key; did you mean 'install.command'?" in lines
    assert "  server.port: wrong type (expected an integer, got str '6969')" in lines
    assert ("  api.flavour: not a known value (expected one of openai, openai-sse, tiles-sse, got 'openai-see'); "
            "did you mean 'openai-sse'?") in lines
    assert [p.path for p in error.problems] == ["install.comand", "server.port", "api.flavour"] or \
        sorted(p.path for p in error.problems) == ["api.flavour", "install.comand", "server.port"]
    assert error.hint


def test_an_unknown_table_suggests_the_nearest_one(tmp_path: Path) -> None:
    error = problems_of(profile_with(tmp_path, tail='\n[determinsm]\nrepeats = 3\n'))
    [problem] = error.problems
    assert (problem.path, problem.what, problem.suggestion) == ("determinsm", "unknown key", "determinism")


def test_an_unknown_key_far_from_any_lists_the_known_ones(tmp_path: Path) -> None:
    error = problems_of(profile_with(tmp_path, ("[upgrade]", "[upgrade]\nzzz = 1")))
    [problem] = error.problems
    assert problem.suggestion == "" and problem.expected == "one of command, leaves"


def test_mistakes_in_an_os_table_and_a_variant_are_found_at_their_paths(tmp_path: Path) -> None:
    tail = """
[os.linux.server]
port = 70000
[os.linux.instal]
trace = true

[[variant]]
name = "old"
versions = "<1.0"
[variant.api]
flavour = "tiles"
timeout_s = "slow"
"""
    error = problems_of(profile_with(tmp_path, ("port = 6969", 'port = "6969"'), tail=tail))
    by_path = {p.path: p for p in error.problems}
    assert set(by_path) == {"server.port", "os.linux.server.port", "os.linux.instal", "variant[0].api.flavour",
                            "variant[0].api.timeout_s"}
    assert by_path["os.linux.server.port"].expected == "a TCP/UDP port, 1-65535"
    assert by_path["os.linux.instal"].suggestion == "os.linux.install"
    assert by_path["variant[0].api.flavour"].suggestion == "tiles-sse"
    assert by_path["variant[0].api.timeout_s"].got == "str 'slow'"


def test_a_rule_broken_only_once_merged_names_the_table_that_broke_it(tmp_path: Path) -> None:
    tail = '\n[[variant]]\nname = "streamless"\n[variant.api]\nsupports_stream = false\n'
    error = problems_of(profile_with(tmp_path, ("supports_non_stream = true", "supports_non_stream = false"), tail=tail))
    [problem] = error.problems
    assert problem.path == "variant[0].api.supports_stream"
    assert "both false" in problem.what


def test_a_base_key_that_fails_only_with_an_os_table_says_so(tmp_path: Path) -> None:
    # [paths] gains a key on darwin only, so on darwin {cache} in the base file's [paths] comes too late.
    error = problems_of(profile_with(tmp_path, ('logs = "{data}/logs"', 'logs = "{data}/logs"\nextra = "{cache}/x"'),
                                     tail='\n[os.darwin.paths]\ncache = "/tmp/c"\n'))
    lines = {str(p) for p in error.problems}
    assert any(line.startswith("paths.extra: uses the placeholder {cache}") and "with [os.darwin] merged in" not in line
               for line in lines)


def test_a_placeholder_typo_is_reported_beside_a_wrong_type(tmp_path: Path) -> None:
    path = profile_with(tmp_path, ('start = "{bin}/refapp serve', 'start = "{bim}/refapp serve'),
                        ("stop_timeout_s = 20", "stop_timeout_s = true"))
    error = problems_of(path)
    assert {(p.path, p.suggestion) for p in error.problems} == {("server.start", "{bin}"), ("server.stop_timeout_s", "")}


def test_a_missing_key_in_an_array_an_override_replaced_is_the_override_s(tmp_path: Path) -> None:
    error = problems_of(profile_with(tmp_path, tail='\n[os.linux]\nconditions = [{ home = "/tmp/h" }]\n'))
    [problem] = error.problems
    assert (problem.path, problem.what) == ("os.linux.conditions[0].name", "missing")


def test_the_cli_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = profile_with(tmp_path, ("[install]", "[install]\ncomand = 'x'"), ("port = 6969", 'port = "6969"'),
                        ('flavour = "openai"', 'flavour = "grpc"'))
    done = subprocess.run([sys.executable, "-c", CLI, "run", "--profile", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    for key in ("install.comand", "server.port", "api.flavour"):
        assert f"  {key}: " in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_importing_the_package_does_not_import_the_validator() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys, harness.profile; print('pydantic' in sys.modules)"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"
