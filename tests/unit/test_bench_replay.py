"""The arithmetic behind bench/bench_warm.py's overhead figure: what counts as guest time, which
connections are replayed, and the shell line a traced command becomes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from ssh_replay import ReplayResult, guest_busy_s, load_traces, remote_line


def test_guest_time_is_the_union_of_operations() -> None:
    traces = [[{"op": "run", "t": 0.0, "s": 2.0}, {"op": "forward", "t": 1.0, "s": 3.0}],
              [{"op": "put", "t": 10.0, "s": 1.0}, {"op": "run", "t": 10.5, "s": 0.2}]]
    assert guest_busy_s(traces) == 5.0  # [0, 4] and [10, 11]


def test_snapshot_builds_are_not_part_of_the_run(tmp_path: Path) -> None:
    (tmp_path / "2-1-a.jsonl").write_text(json.dumps({"op": "run", "cmd": "true", "t": 2, "s": 1}) + "\n")
    (tmp_path / "1-1-b.jsonl").write_text(
        json.dumps({"op": "run", "cmd": "systemd-run --unit=harness-warm-agent x", "t": 1, "s": 1}) + "\n")
    (tmp_path / "10-1-c.jsonl").write_text(json.dumps({"op": "run", "cmd": "later", "t": 3, "s": 1}) + "\n")
    assert [[op["cmd"] for op in ops] for ops in load_traces(tmp_path)] == [["true"], ["later"]]


def test_a_traced_command_replays_with_its_directory_and_environment(tmp_path: Path) -> None:
    line = remote_line({"cmd": 'printf "%s|%s" "$A" "$(pwd)"', "cwd": str(tmp_path), "env": {"A": "it's"}})
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True)
    assert done.stdout == f"it's|{tmp_path}"


def test_load_drift_uses_the_long_commands() -> None:
    result = ReplayResult(pairs=[(10.0, 20.0), (4.0, 6.0), (0.1, 5.0)])
    assert result.load_drift == 1.75
    assert ReplayResult().load_drift == 1.0
