"""Why an installer failed, in one line a release manager can act on.

From the installer's output the harness finds the step it was in (the last traced command before
the first error when the profile turns on shell tracing, else the installer's last progress line),
the first real error line (not a tail of tracebacks and path dumps), the exit code, and a hint
from a small table of failure signatures the harness knows.

Tracing uses bash's xtrace inherited through the environment (``SHELLOPTS``), so it survives an
installer that re-executes itself under bash; ``PS4`` tags each trace line with the script and
line number so trace lines are told apart from the installer's own output.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

TRACE_TAG = "[trace]"
HARNESS_NOTE = "[killed after"  # what run_step appends when it kills an installer at its timeout
# Bash repeats PS4's first character once per nesting level (subshells, $(...)).
TRACE_PS4 = "+ " + TRACE_TAG + " ${BASH_SOURCE##*/}:${LINENO}: "
_TRACE_RE = re.compile(r"^\++ " + re.escape(TRACE_TAG) + r" (?P<where>[^:]*:\d+): (?P<command>.*)$")
# What marks a line as an error; the first such line is what went wrong, later ones are fallout.
_ERROR_RE = re.compile(
    r"(?i)\b(error|fatal|failed|cannot|can't|not found|no such file|permission denied|traceback|"
    r"killed|denied|no space left)\b"
)


@dataclass(frozen=True)
class Signature:
    """A known failure: what the output says, what it means, what to do."""

    pattern: re.Pattern[str]
    cause: str
    hint: str


SIGNATURES: tuple[Signature, ...] = (
    Signature(re.compile(r"No module named 'encodings'|init_fs_encoding|could not find platform independent libraries"),
              "Python could not find its standard library",
              "a layer's bin/python ran before its pyvenv.cfg existed; run post-install with the "
              "runtime's python ({runtime}/bin/python {layer}/postinstall.py), as venvstacks documents"),
    Signature(re.compile(r"(?:env|exec|sh|bash): '?(?:python|pypy)[0-9.]*'?: (?:No such file|not found)"
                         r"|(?:python|pypy)[0-9.]*: (?:command )?not found"),
              "a script needs a Python the clean machine does not have",
              "run it with the release's own interpreter instead of a #!/usr/bin/env python3 shebang"),
    Signature(re.compile(r"\bcurl: (?:command )?not found|\bwget: (?:command )?not found"),
              "the installer wants to download with a tool a minimal system lacks",
              "install from the local tarball (Tiles: --dev with TILES_DEV_TARBALL) so nothing is downloaded"),
    Signature(re.compile(r"Could not resolve host|Temporary failure in name resolution|Network is unreachable"
                         r"|Name or service not known"),
              "the installer tried to reach the network",
              "an offline install must not download; ship what it fetches inside the tarball"),
    Signature(re.compile(r"xz: Cannot exec|xz: (?:command )?not found|Cannot exec.*xz"),
              "tar could not run xz to unpack a layer",
              "the machine needs xz (Debian: xz-utils), or ship the layers as .tar.gz"),
    Signature(re.compile(r"No space left on device"),
              "the disk filled up during the install",
              "free space in the guest, or shrink the release"),
    Signature(re.compile(r"is missing or empty|must exist and be non-empty"),
              "the tarball lacks a directory the installer requires",
              "check the bundler put every required directory (Tiles: pi/, vendor/, modelfiles/) in the tarball"),
)


@dataclass(frozen=True)
class InstallFailure:
    step: str  # the command or progress line the installer was at ("" when nothing tells)
    first_error: str
    exit_code: int | None
    cause: str = ""
    hint: str = ""
    timeout_s: float | None = None  # the step's timeout (the headline names it when it killed the installer)

    def headline(self) -> str:
        after = f" after {self.timeout_s:g} s" if self.timeout_s is not None else " at its timeout"
        code = f"was still running{after} and was killed" if self.exit_code is None else f"exited with {self.exit_code}"
        where = f" in `{self.step}`" if self.step else ""
        said = f": {self.first_error}" if self.first_error else ""
        cause = f" ({self.cause})" if self.cause else ""
        return f"the installer {code}{where}{said}{cause}"


def is_trace(line: str) -> bool:
    return _TRACE_RE.match(line) is not None


def diagnose(output: str, exit_code: int | None, timeout_s: float | None = None) -> InstallFailure:
    """``output`` is what the installer printed (stdout, then stderr, trace lines included);
    ``exit_code`` is None when it was killed at ``timeout_s``."""
    lines = output.splitlines()
    index = first_error_index(lines)
    first_error = lines[index].strip() if index is not None else ""
    step = _step(lines, index)
    found = next((s for s in SIGNATURES if s.pattern.search(output)), None)
    return InstallFailure(step, first_error, exit_code, found.cause if found else "", found.hint if found else "",
                          timeout_s)


def first_error_index(lines: Sequence[str]) -> int | None:
    for index, line in enumerate(lines):
        if line.startswith(HARNESS_NOTE):  # the harness's own note, e.g. that it killed the installer
            continue
        if not is_trace(line) and not _is_file_listing(line) and _ERROR_RE.search(line):
            return index
    return None


def _is_file_listing(line: str) -> bool:
    # `tar -xvf` prints one member per line; lib/python3.13/urllib/error.py is not an error.
    text = line.strip()
    return "/" in text and not any(c.isspace() for c in text)


def _step(lines: Sequence[str], error_index: int | None) -> str:
    """The last traced command before the first error; without tracing, the last progress line."""
    before = lines[:error_index] if error_index is not None else lines
    traced = [m for m in map(_TRACE_RE.match, before) if m is not None]
    if traced:
        # Scripts the installer runs (a bash wrapper around python, say) are traced too; the
        # step is the installer's own command, from the script the trace started in.
        top = traced[0]["where"].rsplit(":", 1)[0]
        own = [m for m in traced if m["where"].rsplit(":", 1)[0] == top] or traced
        return f"{own[-1]['command'].strip()}  [{own[-1]['where']}]"
    # Untraced: progress goes to stdout, which comes first in ``output``; its last line is the step.
    progress = [line.strip() for line in before
                if line.strip() and not _is_file_listing(line) and not _ERROR_RE.search(line)]
    return progress[-1] if progress else ""


def without_trace(output: str) -> str:
    """The installer's output as a user would have seen it (no trace lines)."""
    return "\n".join(line for line in output.splitlines() if not is_trace(line))
