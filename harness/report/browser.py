"""Headless Chromium for looking at reports the way people do: screenshots and the rendered DOM.

Chromium's own command line is enough (``--screenshot``, ``--dump-dom``); no driver package is
needed. Every call gets a fresh throw-away profile and a deadline, and the flags keep Chromium
from phoning home (component updates, sync, background networking).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InfrastructureError, MissingToolError

CANDIDATES: tuple[str, ...] = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
)
QUIET_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    # Reports are local files: no name resolves, so nothing they reference leaves the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)


@dataclass(frozen=True)
class HeadlessChromium:
    executable: Path
    timeout_s: float = 120.0

    @classmethod
    def find(cls) -> HeadlessChromium:
        for name in CANDIDATES:
            found = shutil.which(name)
            if found:
                return cls(Path(found))
        raise MissingToolError(
            "no Chromium found to render the reports", hint="apt-get install -y chromium"
        )

    def _run(
        self, url: str, *flags: str, scrollbars: bool = False
    ) -> subprocess.CompletedProcess[str]:
        quiet = [f for f in QUIET_FLAGS if scrollbars is False or f != "--hide-scrollbars"]
        with tempfile.TemporaryDirectory(prefix="harness-chromium-") as profile:
            command = [
                str(self.executable),
                *quiet,
                f"--user-data-dir={profile}",
                *flags,
                url,
            ]
            try:
                done = subprocess.run(
                    command, check=False, capture_output=True, text=True, timeout=self.timeout_s
                )
            except subprocess.TimeoutExpired:
                raise InfrastructureError(
                    f"Chromium did not finish rendering {url} in {self.timeout_s:.0f} s"
                ) from None
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-10:])
            raise InfrastructureError(
                f"Chromium failed on {url} (exit {done.returncode})", detail=tail
            )
        return done

    def screenshot(
        self,
        url: str,
        png: Path,
        width: int = 1280,
        height: int = 1600,
        wait_ms: int = 3000,
        scrollbars: bool = False,
    ) -> Path:
        """``scrollbars``: draw them, so that a page wider than the window shows it in the picture."""
        png.parent.mkdir(parents=True, exist_ok=True)
        self._run(
            url,
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            f"--virtual-time-budget={wait_ms}",
            scrollbars=scrollbars,
        )
        if not png.is_file() or png.stat().st_size == 0:
            raise InfrastructureError(f"Chromium wrote no screenshot of {url}")
        return png

    def dom(self, url: str, wait_ms: int = 3000, width: int = 1280, height: int = 1600) -> str:
        """The page's DOM after scripts ran for ``wait_ms`` of virtual time in a window that size."""
        return self._run(
            url, "--dump-dom", f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}"
        ).stdout
