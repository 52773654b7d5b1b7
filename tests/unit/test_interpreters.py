"""Finding a release's reliance on a system Python, from shebangs and error output."""

from __future__ import annotations

from harness.suite.interpreters import Shebang, foreign_interpreters, not_found_lines

ROOT = "/home/u/.local/share/app"


def problems(line: str, exists: dict[str, bool] | None = None) -> list[str]:
    return foreign_interpreters([Shebang(f"{ROOT}/tool", line)], [ROOT, "/home/u/.local/bin/app"], exists or {})


def test_interpreter_resolution() -> None:
    assert Shebang("x", "#!/usr/bin/env python3").interpreter == "python3"
    assert Shebang("x", "#!/usr/bin/env -S python3 -u").interpreter == "python3"
    assert Shebang("x", "#! /bin/sh -e").interpreter == "/bin/sh"
    assert Shebang("x", "#!").interpreter == ""


def test_env_python_is_flagged() -> None:
    found = problems("#!/usr/bin/env python3")
    assert found and "runs whatever python3 is on PATH" in found[0]


def test_absolute_system_python_is_flagged() -> None:
    found = problems("#!/usr/bin/python3.11", {"/usr/bin/python3.11": False})
    assert found and "uses a Python outside the release" in found[0]


def test_release_python_and_shells_are_fine() -> None:
    assert problems(f"#!{ROOT}/server/app-server/bin/python") == []
    assert problems("#!/bin/sh") == []
    assert problems("#!/usr/bin/env bash") == []


def test_missing_interpreters() -> None:
    assert "does not exist on a clean machine" in problems("#!/opt/build/bin/ruby", {"/opt/build/bin/ruby": False})[0]
    assert "points inside the release" in problems(f"#!{ROOT}/bin/python", {f"{ROOT}/bin/python": False})[0]
    assert "needs perl from PATH" in problems("#!/usr/bin/env perl")[0]


def test_not_found_messages() -> None:
    text = ("refapp install: unpacking\n"
            "/usr/bin/env: 'python3': No such file or directory\n"
            "sh: 1: python3: not found\n"
            "bash: python: command not found\n"
            "all good\n")
    hits = not_found_lines(text, "installer")
    assert len(hits) == 3 and hits[0].startswith("installer: /usr/bin/env")
    assert not_found_lines("python3 -m server.main started\n", "log") == []


def test_library_shebangs_are_inert() -> None:
    from harness.suite.interpreters import runnable

    lib = Shebang(f"{ROOT}/fw/lib/python3.11/site-packages/numpy/testing/print_coercion_tables.py", "#!/usr/bin/env python3")
    tool = Shebang(f"{ROOT}/server/tools/warmup.py", "#!/usr/bin/env python3")
    run, inert = runnable([lib, tool])
    assert run == [tool] and inert == [lib]
