"""The run journal: the facts a run produces, written as JSON lines, read back by the reports.

Each pytest process (the xdist controller and every worker) appends to a file of its own under
``<results>/journal/``, so parallel workers never interleave writes and nothing needs a lock.
Reports (``harness.report``) read every file back; the journal is the contract between the suite
that measures and the reports that present.

Record kinds:
- ``meta``: one per process: run id, release (name, version, sha256), profile, image(s), host.
- ``phase``: a timed step on one target: boot, copy, install, serve, complete, teardown.
- ``check``: the outcome of one check on one target (passed | failed | broken | skipped) with its
  message and evidence file paths relative to the results directory.
- ``digest``: sha256 of a golden completion (prompt id -> digest) on one target.
- ``footprint``: sizes per layer, from static inspection or from the installed tree.
- ``egress``: network attempts the guest made.
- ``target``: one per target: the exact inputs (tarball and its companions by sha256, profile
  file by sha256, image by digest, VM options) that ``harness repro`` recreates it from.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["passed", "failed", "broken", "skipped"]
# The pytest mark the suite puts on each check with its stage (see CheckRecord.stage).
STAGE_MARK = "harness_stage"


@dataclass(frozen=True)
class PhaseRecord:
    target: str  # image or platform the phase ran on, e.g. "linux-debian12"
    phase: str  # boot | copy | install | serve | complete | teardown | ...
    duration_s: float
    ok: bool = True
    started_at: float = field(default_factory=time.time)
    kind: str = "phase"


@dataclass(frozen=True)
class CheckRecord:
    target: str
    check: str  # a stable check name, e.g. "install_offline", "determinism_repeat"
    outcome: Outcome
    message: str = ""
    area: str = ""  # install | determinism | egress | static | server | infrastructure
    evidence: tuple[str, ...] = ()  # paths relative to the results directory
    nodeid: str = ""
    # How far along the fixture chain the check needed the target: release | installed | server |
    # client ("" when unknown). ``harness repro`` replays the steps up to there.
    stage: str = ""
    started_at: float = 0.0  # the check's own call (its requests to the guest), not its fixtures
    duration_s: float = 0.0
    finished_at: float = field(default_factory=time.time)  # host clock: when the outcome was known
    kind: str = "check"


@dataclass(frozen=True)
class DigestRecord:
    target: str
    prompt_id: str
    sha256: str
    kind: str = "digest"


@dataclass(frozen=True)
class GenericRecord:
    """``meta``, ``footprint`` and ``egress`` records: a kind plus free-form data."""

    kind: str
    data: dict[str, Any]
    target: str = ""


Record = PhaseRecord | CheckRecord | DigestRecord | GenericRecord


class Journal:
    """Appends records for one process; cheap to create, safe to use from fixtures."""

    def __init__(self, results_dir: Path, writer_id: str | None = None) -> None:
        self.results_dir = results_dir
        writer = writer_id or f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"
        self.path = results_dir / "journal" / f"{writer}.jsonl"

    def write(self, record: Record) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(record), sort_keys=True, default=str)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def read_journal(results_dir: Path) -> Iterator[dict[str, Any]]:
    """Every record of every writer, in file order per writer."""
    for path in sorted((results_dir / "journal").glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    yield json.loads(line)
