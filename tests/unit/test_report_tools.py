"""The report's host tools (Java + npm for Allure, Chromium) are found or named with a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import MissingToolError
from harness.report.allure.cli import AllureCommandLine
from harness.report.browser import HeadlessChromium


def _bin_with(tmp_path: Path, *tools: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for tool in tools:
        path = folder / tool
        path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
        path.chmod(0o755)
    return folder


def test_missing_java_is_named_with_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(_bin_with(tmp_path)))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(MissingToolError) as caught:
        AllureCommandLine(tmp_path / "allure").ensure()
    assert "Java" in caught.value.message and "openjdk-17-jre-headless" in caught.value.hint


def test_missing_npm_is_named_with_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(_bin_with(tmp_path, "java")))
    with pytest.raises(MissingToolError) as caught:
        AllureCommandLine(tmp_path / "allure").ensure()
    assert "npm" in caught.value.message and "apt-get install -y npm" in caught.value.hint
    assert not (tmp_path / "allure").exists() or not any((tmp_path / "allure").iterdir())


def test_missing_chromium_is_named_with_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(_bin_with(tmp_path)))
    with pytest.raises(MissingToolError) as caught:
        HeadlessChromium.find()
    assert caught.value.hint == "apt-get install -y chromium"


def test_a_cache_install_is_reused_without_npm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = AllureCommandLine(tmp_path / "allure")
    cli.executable.parent.mkdir(parents=True)
    cli.executable.write_text("#!/bin/sh\n", encoding="utf-8")
    monkeypatch.setenv("PATH", str(_bin_with(tmp_path, "java")))
    assert cli.ensure() == cli.executable


def test_the_npm_node_ships_is_used_when_none_is_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.report.allure.cli import _npm_command

    prefix = tmp_path / "node-prefix"
    prefix.mkdir()
    node = _bin_with(prefix, "node") / "node"
    cli = prefix / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    cli.parent.mkdir(parents=True)
    cli.write_text("// npm\n", encoding="utf-8")
    monkeypatch.setenv("PATH", str(node.parent))
    assert _npm_command() == [str(node), str(cli)]
