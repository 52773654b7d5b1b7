"""The end of a portability run on the terminal: seconds per phase and target, and each target's
critical path beside the run's one total time (a per-target clock would be a second total)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.journal import read_journal
from harness.plugins.report import reporter_for
from harness.report.critical_path import critical_paths
from harness.run_options import is_portability_run
from harness.text_table import text_table

TIMING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("twin_boot", "2nd boot"), ("twin_install", "2nd install"), ("boot", "boot"), ("copy", "copy"),
    ("install", "install"), ("serve", "server ready"), ("complete", "1st completion"),
)


def timing_rows(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Seconds per phase and target; a phase that ran again (a restarted server) keeps its first time."""
    wanted = {name for name, _ in TIMING_COLUMNS}
    rows: dict[str, dict[str, float]] = {}
    for record in records:
        if record.get("kind") == "phase" and record.get("phase") in wanted:
            rows.setdefault(record["target"], {}).setdefault(record["phase"], float(record["duration_s"]))
    return rows


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not is_portability_run(config):
        return
    root = reporter_for(config).layout.root
    records = list(read_journal(root))
    rows = timing_rows([r for r in records if r.get("kind") == "phase"])
    if not rows:
        return
    terminalreporter.section("per-phase timings (s)")
    table = [[target_name, *(f"{phases[name]:.1f}" if name in phases else "-" for name, _ in TIMING_COLUMNS)]
             for target_name, phases in sorted(rows.items())]
    header = ["target", *(label for _, label in TIMING_COLUMNS)]
    for line in text_table(table, header, right=range(1, len(header))).splitlines():
        terminalreporter.write_line(line)
    for path in critical_paths(records):
        terminalreporter.write_line(f"{path.target}: {path.line()}")
