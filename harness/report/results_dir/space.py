"""Whether the results directory can take a run's writes, before the run and during it.

Before any VM boots, :func:`check_results_dir` wants it writable and with room for one run's
evidence (allure results, logs, packet captures; tens of MB for the reference release), so a
read-only or full disk is one clear sentence instead of a traceback mid-run. A disk that fills up
(or turns read-only) during the run is :class:`DiskGuard`'s: the run stops its checks, still
tears its VMs down, and ends with one sentence naming the directory instead of pytest's
INTERNALERROR dump and a traceback from every plugin that tried to write after it."""

from __future__ import annotations

import errno
import os
import shutil
import sys
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.errors import InfrastructureError, UsageError

MIN_FREE_BYTES = 200 * 1024 * 1024
RESULTS_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def nearest_existing(root: Path) -> Path:
    """``root``, or the nearest directory above it that exists (a run makes the rest)."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def check_results_dir(root: Path, min_free: int = MIN_FREE_BYTES) -> None:
    """UsageError naming the problem when ``root`` cannot hold a run's results. Nothing is left
    behind: a missing ``root`` is judged by the nearest directory that exists (the run makes it)."""
    hint = "pass --results-dir DIR on a writable file system with free space"
    existing = nearest_existing(root)
    probe = existing / f".write-probe-{os.getpid()}"
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a directory")
        probe.write_bytes(b"probe")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"the results directory {root} cannot be written: {exc.strerror or exc}",
                         hint=hint) from None
    free = shutil.disk_usage(existing).free
    if free < min_free:
        raise UsageError(
            f"the results directory {root} has {free // 2**20} MiB free; a run needs at least "
            f"{min_free // 2**20} MiB", hint=hint)


def results_write_error(exc: BaseException | None) -> OSError | None:
    """The out-of-space or read-only error behind ``exc`` (itself, or what it was raised from;
    for a group, such an error behind each of its members), else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in RESULTS_WRITE_ERRNOS:
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = [results_write_error(member) for member in exc.exceptions]
            return found[0] if found and all(found) else None
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _free_mib(root: Path) -> str:
    try:
        return f"{shutil.disk_usage(nearest_existing(root)).free // 2**20} MiB free now"
    except OSError as exc:
        return f"its free space unknown: {exc.strerror or exc}"


def describe(root: Path, error: OSError) -> InfrastructureError:
    happened = "became read-only" if error.errno == errno.EROFS else "filled up"
    where = f" writing {error.filename}" if error.filename else ""
    return InfrastructureError(
        f"the results directory {root} {happened} during the run ({error.strerror}{where}); "
        "the checks stopped there and the results are incomplete",
        hint=f"free space there ({_free_mib(root)}) or pass --results-dir DIR on another file system, "
        "then run again",
    )


@dataclass(eq=False)  # a pytest plugin must stay hashable
class DiskGuard:
    """Registered for a portability run (controller and workers alike: both write results)."""

    root: Path
    error: OSError | None = None

    def _stop(self, session: pytest.Session, error: OSError) -> None:
        if self.error is None:
            self.error = error
            sys.stderr.write(f"\nharness: {describe(self.root, error)}\n")
        session.shouldstop = "the results directory cannot be written"

    # Around the whole loop, not each test: other plugins (allure's among them) wrap each test's
    # protocol from outside any wrapper of ours and write their files on the way out.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, Any, Any]:
        try:
            return (yield)
        except OSError as exc:
            error = results_write_error(exc)
            if error is None:
                raise
            self._stop(session, error)
            return True

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, Any, Any]:
        try:
            return (yield)
        except (OSError, BaseExceptionGroup) as exc:
            error = results_write_error(exc)
            if error is None:
                raise
            self._stop(session, error)
            # A plugin that failed to write its file cut the hook short, and pytest's own teardown
            # of session fixtures (the run's VMs) may be one of the calls it cut off. That teardown
            # runs every finalizer even when some fail (other plugins' reports of them, here).
            runner: Any = session.config.pluginmanager.get_plugin("runner")
            try:
                runner.pytest_sessionfinish(session)
            except BaseExceptionGroup as failures:
                if results_write_error(failures) is None:
                    raise
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            return None
