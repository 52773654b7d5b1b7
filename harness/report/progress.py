"""Progress on the terminal while a long phase runs: ``linux-debian12: installing ... 1 min 12 s``.

Installing a release under software emulation takes minutes inside one test's set-up, which
pytest shows as one silent dot. This plugin names each phase of the suite as it starts and
adds its duration when it ends. In a single pytest process the line goes through the terminal
reporter (with output capture lifted for the moment, as pytest's live logging does); an xdist
worker has no terminal reporter of its own, so it writes whole lines, prefixed with its id, to
the standard error the controller's terminal shows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest

# How each phase of the suite reads while it runs; a phase not listed shows its own name.
PHASE_LABELS: dict[str, str] = {
    "boot": "booting a clean VM (after a free VM slot)",
    "copy": "copying the release in",
    "install": "installing",
    "serve": "starting the server",
    "complete": "first completion",
    "uninstall": "uninstalling",
    "teardown": "removing the VM",
}
TWIN_PREFIX = "twin_"


def label(phase: str) -> str:
    if phase.startswith(TWIN_PREFIX):
        return f"second VM: {label(phase[len(TWIN_PREFIX):])}"
    return PHASE_LABELS.get(phase, phase.replace("_", " "))


def duration(seconds: float) -> str:
    """``9.8 s``, ``1 min 12 s``, ``1 h 3 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class PhaseRecordLike(Protocol):
    target: str
    phase: str
    duration_s: float
    ok: bool


class Sink(Protocol):
    def begin(self, text: str) -> None: ...

    def end(self, text: str, text_alone: str, ok: bool) -> None: ...


@dataclass(eq=False)  # a pytest plugin: pluggy keeps its plugins in sets
class PhaseProgress:
    """Announces each phase of the suite as it starts and gives its duration when it ends."""

    sink: Sink
    _open: set[tuple[str, str]] = field(default_factory=set)

    @pytest.hookimpl
    def pytest_harness_phase_started(self, name: str, target: str) -> None:
        self._open.add((target, name))
        self.sink.begin(f"{target}: {label(name)} ...")

    @pytest.hookimpl
    def pytest_harness_phase_finished(self, phase: PhaseRecordLike) -> None:
        if (phase.target, phase.phase) not in self._open:
            return  # a VM's own sub-phase (clone, start, ...): it announced no start
        self._open.discard((phase.target, phase.phase))
        took = f"{duration(phase.duration_s)}{'' if phase.ok else ' (failed)'}"
        self.sink.end(took, f"{phase.target}: {label(phase.phase)}: {took}", phase.ok)


@dataclass
class TerminalSink:
    """One line per phase through pytest's terminal reporter: its start, then its duration."""

    config: pytest.Config
    _column: int = -1  # where the line stood after the last begin(); -1: no begun line

    def begin(self, text: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        with uncaptured(self.config):
            if reporter._tw.width_of_current_line:  # after pytest's dots: a line of our own
                reporter._tw.line()
            reporter.currentfspath = None  # pytest then repeats the file name before its next dot
            reporter.write(text + " ", flush=True)
            self._column = reporter._tw.width_of_current_line

    def end(self, text: str, text_alone: str, ok: bool) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        with uncaptured(self.config):
            if reporter._tw.width_of_current_line == self._column:
                reporter._tw.line(text, red=not ok)  # completes the line begin() left open
            else:  # something else was written meanwhile: a whole line
                if reporter._tw.width_of_current_line:
                    reporter._tw.line()
                reporter._tw.line(text_alone, red=not ok)
            self._column = -1


@dataclass
class WorkerSink:
    """An xdist worker's lines, each complete and tagged with the worker, on the real stderr."""

    worker: str
    stream: int  # a duplicate of the real standard error, taken before any test ran

    def begin(self, text: str) -> None:
        self._write(text)

    def end(self, text: str, text_alone: str, ok: bool) -> None:
        self._write(text_alone)

    def _write(self, line: str) -> None:
        try:
            os.write(self.stream, f"[{self.worker}] {line}\n".encode("utf-8", "replace"))
        except OSError:
            pass  # the terminal went away: progress is a courtesy, never a failure


@contextmanager
def uncaptured(config: pytest.Config) -> Iterator[None]:
    """Lift pytest's output capture for one write (what its live logging does)."""
    capture: Any = config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        yield
        return
    with capture.global_and_fixture_disabled():
        yield


def register(config: pytest.Config) -> None:
    """Show phase progress in this process (called once, for portability runs only)."""
    workerinput = getattr(config, "workerinput", None)
    sink: Sink
    if workerinput is not None:
        try:
            stream = os.dup(2)  # pytest's capture is suspended while plugins configure
        except OSError:
            return
        config.add_cleanup(lambda: os.close(stream))
        sink = WorkerSink(str(workerinput.get("workerid", "gw?")), stream)
    elif config.option.verbose >= -1:
        sink = TerminalSink(config)
    else:
        return
    config.pluginmanager.register(PhaseProgress(sink), "harness-progress")
