"""A failed installer is named by its step, its first real error line, its exit code and a hint."""

from __future__ import annotations

from harness.errors import RemoteTimeout
from harness.install.failure import TRACE_TAG, diagnose, without_trace
from harness.install.run import run_step
from harness.suite.interpreters import InterpreterProblem, interpreter_headline

# What venvstacks 0.8's wrapper prints when a layer's bin/python runs before pyvenv.cfg exists,
# shaped as the harness captures it: stdout (progress, tar -xv listing), then stderr with trace.
WRAPPER_FAILURE = "\n".join([
    "tiles install: unpacking layer app-server-linux_x86_64-1.tar.xz",
    "cpython3.13/lib/python3.11/urllib/error.py",
    "tiles install: post-install app-server",
    f"+ {TRACE_TAG} install.sh:97: tar -xvf ./app-server-linux_x86_64-1.tar.xz",
    f"+ {TRACE_TAG} install.sh:104: app-server/bin/python app-server/postinstall.py",
    f"++ {TRACE_TAG} python:5: dirname app-server/bin/python",
    "Could not find platform independent libraries <prefix>",
    "Python path configuration:",
    "  PYTHONHOME = (not set)",
    "  sys.path = [",
    "    '/home/u/.local/share/tiles/server/stack_export_prod/app-server/lib/python311.zip',",
    "  ]",
    "Fatal Python error: init_fs_encoding: failed to get the Python codec of the filesystem encoding",
    "Python runtime state: core initialized",
    "ModuleNotFoundError: No module named 'encodings'",
    "",
    "Current thread 0x00007f (most recent call first):",
    "  <no Python frame>",
])


def test_wrapper_defect_names_command_first_error_exit_and_cause() -> None:
    failure = diagnose(WRAPPER_FAILURE, 1)
    assert failure.step == "app-server/bin/python app-server/postinstall.py  [install.sh:104]"
    assert failure.first_error.startswith("Fatal Python error: init_fs_encoding")
    assert failure.cause == "Python could not find its standard library"
    assert "pyvenv.cfg" in failure.hint and "runtime's python" in failure.hint
    headline = failure.headline()
    assert headline.startswith("the installer exited with 1 in `")
    assert "Fatal Python error" in headline and "standard library" in headline


def test_without_the_wrappers_trace_the_step_is_the_same() -> None:
    failure = diagnose(WRAPPER_FAILURE.replace(f"++ {TRACE_TAG} python:5: dirname app-server/bin/python\n", ""), 1)
    assert failure.step == "app-server/bin/python app-server/postinstall.py  [install.sh:104]"


def test_untraced_failure_uses_the_last_progress_line() -> None:
    output = "refapp install: checking x.tar.gz\nrefapp install: post-install app-server\n" \
             "refapp install: error: post-install of app-server failed\n"
    failure = diagnose(output, 1)
    assert failure.step == "refapp install: post-install app-server"
    assert failure.first_error == "refapp install: error: post-install of app-server failed"
    assert failure.cause == ""


def test_timeout_and_trace_free_output() -> None:
    assert diagnose("waiting\n", None, 30).headline() == "the installer was still running after 30 s and was killed in `waiting`"
    killed = diagnose("tiles install: post-install app-server\n[killed after 900 s]", None)
    assert killed.first_error == "" and killed.step == "tiles install: post-install app-server"
    assert TRACE_TAG not in without_trace(WRAPPER_FAILURE)


def test_interpreter_headline_names_what_it_found() -> None:
    node = [InterpreterProblem("x: '#!/usr/bin/env node' needs node from PATH", "node")]
    assert interpreter_headline(node) == "the release relies on interpreters a clean machine lacks (node)"
    py = [InterpreterProblem("y: '#!/usr/bin/env python3' runs whatever python3 is on PATH", "python3")]
    assert interpreter_headline(py) == "the release relies on a Python outside itself (python3)"
    assert "node, python3" in interpreter_headline(node + py)


class HangingGuest:
    """A guest whose command hangs: the SSH layer kills it and raises with what it printed."""

    def __init__(self, stdout: str, stderr: str) -> None:
        self.stdout, self.stderr = stdout, stderr

    def run(self, cmd: str, timeout: float = 0, env: object = None, cwd: object = None,
            check: bool = False, stdin: object = None) -> object:
        raise RemoteTimeout(f"command ran past its {timeout:g} s timeout", detail="stdout tail:\n...\nstderr tail:\n...",
                            stdout=self.stdout, stderr=self.stderr)


def test_a_killed_installer_is_named_by_its_own_output_not_the_harness_framing() -> None:
    silent = run_step(HangingGuest("", ""), "sleep 100000", {}, 30, "/home/tester")  # type: ignore[arg-type]
    assert silent.timed_out and silent.output == "[killed after 30 s]"
    assert silent.failure().headline() == "the installer was still running after 30 s and was killed"
    talking = run_step(HangingGuest("refapp install: unpacking\n", "still waiting\n"), "install.sh", {}, 900,
                       "/home/tester")  # type: ignore[arg-type]
    assert talking.output == "refapp install: unpacking\nstill waiting\n[killed after 900 s]"
    assert talking.failure().headline() == ("the installer was still running after 900 s and was killed "
                                             "in `still waiting`")
