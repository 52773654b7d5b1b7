"""Long output is kept at both ends, in the command log and in attachments, with the middle counted."""

from __future__ import annotations

from pathlib import Path

from harness.bounded import both_ends, last_lines
from harness.ssh.command_log import LOG_KEEP_BYTES, CommandLog
from harness.ssh.results import CommandResult


def test_short_text_is_kept_whole_and_long_text_at_both_ends() -> None:
    assert both_ends("short", 10) == "short"
    kept = both_ends("a" * 10 + "b" * 1000 + "c" * 10, 10)
    assert kept == "a" * 10 + "\n[... 1000 bytes of output dropped here ...]\n" + "c" * 10


def test_multibyte_text_is_cut_by_bytes_without_breaking_the_kept_ends() -> None:
    kept = both_ends("é" * 100, 9)  # 200 bytes; 9 bytes end in the middle of a character
    head, _, tail = kept.partition("\n[... 182 bytes of output dropped here ...]\n")
    assert head.startswith("éééé") and tail.endswith("éééé") and "\ufffd" in head + tail


def test_the_end_alone_is_the_last_lines() -> None:
    assert last_lines("one\ntwo\nthree\n", 2) == "two\nthree"
    assert last_lines("only", 5) == "only" and last_lines("", 3) == ""


def test_a_flood_reaches_the_command_log_bounded(tmp_path: Path) -> None:
    log = CommandLog(tmp_path / "commands.log")
    flood = "x" * 99 + "\n"
    log.command("installer", CommandResult("installer", 0, "first line\n" + flood * 100_000 + "last line\n", "", 1.0))
    text = (tmp_path / "commands.log").read_text()
    assert len(text.encode()) < 3 * LOG_KEEP_BYTES
    assert "  | first line" in text and "  | last line" in text and "bytes of output dropped here" in text
