"""The tiles profile's server start command, run by a real shell: it returns at once, leaves the
server in the background and records the server's own pid (not a subshell's)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from harness.profile import bind, load_profile, select_profile


def test_start_command_backgrounds_only_the_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    profile = select_profile(load_profile("tiles"), "linux", "0.4.20")
    bound = bind(profile, {"home": str(home), "user": "u", "upload": "/tmp/up", "tarball": "/tmp/up/t.tar.gz"})
    app_python = Path(bound.context["app_python"])
    app_python.parent.mkdir(parents=True)
    # Stands in for the server: stays up until killed, like uvicorn.
    app_python.write_text("#!/bin/sh\nexec sleep 60\n")
    app_python.chmod(0o755)
    started = time.monotonic()
    done = subprocess.run(["/bin/sh", "-c", bound.server.start], capture_output=True, text=True, timeout=20,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10, "the start command waited for the server"
    pid = int(Path(bound.server.pid_file).read_text())
    try:
        assert os.kill(pid, 0) is None  # the recorded pid is the running server
        assert subprocess.run(["/bin/sh", "-c", bound.server.status], timeout=10, check=False).returncode == 0
    finally:
        os.kill(pid, signal.SIGKILL)
