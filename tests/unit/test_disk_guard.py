"""Which errors mean the results directory can no longer be written."""

from __future__ import annotations

import errno
from pathlib import Path

from harness.report.results_dir.space import describe, results_write_error


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise RuntimeError("while writing the report") from exc
    except RuntimeError as wrapped:
        return wrapped


def test_a_full_or_read_only_disk_is_found_behind_what_was_raised_from_it() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    assert results_write_error(full) is full
    assert results_write_error(_raised_from(full)) is full
    assert results_write_error(OSError(errno.EROFS, "Read-only file system")) is not None


def test_other_errors_are_not_mistaken_for_a_full_disk() -> None:
    assert results_write_error(OSError(errno.ENOENT, "No such file or directory")) is None
    assert results_write_error(_raised_from(ValueError("bad"))) is None
    assert results_write_error(None) is None


def test_a_group_counts_only_when_every_member_is_a_full_disk() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    assert results_write_error(BaseExceptionGroup("teardown", [full, OSError(errno.ENOSPC, "again")])) is full
    assert results_write_error(BaseExceptionGroup("teardown", [full, KeyboardInterrupt()])) is None


def test_the_sentence_names_the_directory_the_cause_and_what_to_do(tmp_path: Path) -> None:
    error = describe(tmp_path / "results", OSError(errno.ENOSPC, "No space left on device", "junit.xml"))
    assert error.message.startswith(f"the results directory {tmp_path / 'results'} filled up during the run "
                                    "(No space left on device writing junit.xml)")
    assert "MiB free now" in error.hint and "--results-dir" in error.hint
    assert "became read-only" in describe(tmp_path, OSError(errno.EROFS, "Read-only file system")).message
