"""The results directory preflight: a directory that cannot be written or has no room is one
clear error before any VM boots."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.report.results_dir.space import check_results_dir


def test_a_writable_directory_with_room_passes_and_keeps_no_probe(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    check_results_dir(tmp_path / "old", min_free=1)
    assert list((tmp_path / "old").iterdir()) == []


def test_a_results_directory_not_made_yet_is_judged_by_its_parent_and_not_made(tmp_path: Path) -> None:
    """The run makes it; a preflight (or a run that stops at a later usage error) leaves nothing."""
    check_results_dir(tmp_path / "deep" / "results", min_free=1)
    assert list(tmp_path.iterdir()) == []


def test_a_path_that_cannot_be_a_directory_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UsageError, match=r"results directory .*/file/results cannot be written") as caught:
        check_results_dir(blocker / "results")
    assert "--results-dir" in caught.value.hint


def test_too_little_room_is_named_with_the_figures(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"MiB free; a run needs at least \d+ MiB"):
        check_results_dir(tmp_path, min_free=2**62)
