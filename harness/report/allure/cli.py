"""Allure 2's command line, installed from the npm registry into the harness cache on first use,
and the single-file report it writes.

``allure-commandline`` ships the Java report generator inside an npm package; it needs Java 17
or newer on PATH (or JAVA_HOME). Installs are pinned and kept per version, so a cached CI runner
and a fresh desk machine build the same report.

Reports are written as one file (``--single-file``, Allure 2.24 and later), which opens from disk
(a report of many files fetches its data, which browsers refuse over ``file://``: "500 Failed to
fetch"); Allure's analytics are switched off, so opening a report contacts no outside host.

The page carries every data file as ``d('name','base64')``; the harness takes two of them back
out: the ``history/`` files the next run's trend graphs start from, and ``data/categories.json``
to find the first failure for a screenshot.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from harness.bounded import last_lines
from harness.config import HostPaths
from harness.errors import InfrastructureError, MissingToolError

ALLURE_VERSION = "2.46.1"
INSTALL_TIMEOUT_S = 300.0
GENERATE_TIMEOUT_S = 600.0
_EMBEDDED = re.compile(r"""d\('([^']+)','([A-Za-z0-9+/=]*)'\)""")
HISTORY_PREFIX = "history/"
OUTPUT_LINES = 20  # of npm's or allure's output, in the error when either fails


@dataclass(frozen=True)
class AllureCommandLine:
    home: Path
    version: str = ALLURE_VERSION

    @classmethod
    def from_cache(cls, paths: HostPaths | None = None) -> AllureCommandLine:
        version = os.environ.get("HARNESS_ALLURE_VERSION", ALLURE_VERSION)
        cache = (paths or HostPaths.from_env()).cache
        return cls(home=cache / "tools" / f"allure-commandline-{version}", version=version)

    @property
    def executable(self) -> Path:
        return self.home / "node_modules" / "allure-commandline" / "dist" / "bin" / "allure"

    def ensure(self) -> Path:
        """Install on first use (under a file lock, so parallel runs install once); returns the binary."""
        _require_java()
        if self.executable.is_file():
            return self.executable
        npm = _npm_command()
        self.home.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.home / ".install.lock"), timeout=INSTALL_TIMEOUT_S):
            if self.executable.is_file():
                return self.executable
            command = [
                *npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
                str(self.home),
                f"allure-commandline@{self.version}",
            ]
            try:
                done = subprocess.run(
                    command, check=False, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
                )
            except subprocess.TimeoutExpired:
                raise InfrastructureError(
                    f"npm install allure-commandline@{self.version} took over "
                    f"{INSTALL_TIMEOUT_S:.0f} s",
                    hint="check access to the npm registry",
                ) from None
            if done.returncode != 0 or not self.executable.is_file():
                raise InfrastructureError(
                    f"npm could not install allure-commandline@{self.version} (exit {done.returncode})",
                    hint="check access to registry.npmjs.org, or set HARNESS_ALLURE_VERSION to a published version",
                    detail=last_lines((done.stdout + done.stderr).strip(), OUTPUT_LINES),
                )
        return self.executable

    def generate(self, results: Path, report: Path) -> Path:
        """``allure generate`` of ``results`` into ``report`` (replaced) as one self-contained
        index.html, with the trend history it embeds also written to ``report/history/`` for the
        next run; returns the index.html."""
        executable = self.ensure()
        command = [
            str(executable), "generate", str(results), "--clean", "--single-file", "-o", str(report)
        ]
        # "true" exactly: Allure reads the variable as a boolean and ignores "1".
        env = {**os.environ, "ALLURE_NO_ANALYTICS": "true"}
        try:
            done = subprocess.run(
                command,
                check=False,
                capture_output=True,
                text=True,
                timeout=GENERATE_TIMEOUT_S,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise InfrastructureError(
                f"allure generate ran over {GENERATE_TIMEOUT_S:.0f} s"
            ) from None
        index = report / "index.html"
        if done.returncode != 0 or not index.is_file():
            raise InfrastructureError(
                f"allure generate failed (exit {done.returncode})",
                hint=f"look at the results in {results}",
                detail=last_lines((done.stdout + done.stderr).strip(), OUTPUT_LINES),
            )
        unpack(index, report)
        return index


def _npm_command() -> list[str]:
    """npm on PATH, else the copy Node.js ships beside itself (some Node installs link no npm)."""
    npm = shutil.which("npm")
    if npm is not None:
        return [npm]
    node = shutil.which("node")
    if node is not None:
        bundled = Path(node).resolve().parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
        if bundled.is_file():
            return [node, str(bundled)]
    raise MissingToolError(
        "npm is not installed; it fetches Allure's command line",
        hint="apt-get install -y npm (or install Node.js 18+, which ships npm)",
    )


def _require_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (
        java_home and (Path(java_home) / "bin" / "java").is_file()
    ):
        raise MissingToolError(
            "Java is not installed; Allure's report generator runs on Java 17+",
            hint="apt-get install -y openjdk-17-jre-headless",
        )


def embedded_files(index: Path) -> dict[str, bytes]:
    """Every data file the page embeds, by its path inside a report of many files."""
    found: dict[str, bytes] = {}
    for match in _EMBEDDED.finditer(index.read_text(encoding="utf-8", errors="replace")):
        try:
            found[match.group(1)] = base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            continue  # not one of allure's data files: some other call that looks alike
    return found


def unpack(index: Path, into: Path, prefix: str = HISTORY_PREFIX) -> list[Path]:
    """Write the embedded files under ``prefix`` as files below ``into``; returns them."""
    written: list[Path] = []
    root = into.resolve()
    for name, data in embedded_files(index).items():
        if not name.startswith(prefix):
            continue
        target = (into / name).resolve()
        if not target.is_relative_to(root):
            continue  # a name that climbs out of the report is nobody's history file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)
    return written
