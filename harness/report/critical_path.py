"""The limit a run's arrangement can reach: per target, the longest chain of guest work that must
happen in sequence, beside the wall time the run took.

Each VM of a target is one chain: the first VM boots, takes the copy, installs, starts the server,
answers the first completion, then serves the checks' requests (their call time); the second VM
(``twin_``) and the upgrade VM (``upgrade_``) are chains of their own phases. Nothing on one chain
can start before the step before it on that chain, but the chains are independent, so the best
any arrangement can do is the longest of them. Teardown is not guest work a check waits for.
The wall time is the run's one total, start to end (its ``run`` and ``run_end`` records), the
figure the sign-off states; only a journal without them falls back to the target's own span.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.report.formatting import seconds

FIRST_VM_STEPS: tuple[str, ...] = ("boot", "copy", "install", "serve", "complete")
OTHER_VMS: dict[str, str] = {"twin_": "second VM", "upgrade_": "upgrade VM"}
FIRST_VM = "first VM"
NOT_ON_A_CHAIN = ("teardown", "total")
VM_STAGES = frozenset({"installed", "server", "client"})  # checks whose call time is guest work


@dataclass(frozen=True)
class CriticalPath:
    target: str
    wall_s: float
    path_s: float
    chain: str  # the chain that is the critical path
    chains: dict[str, float]  # every VM's chain, seconds

    @property
    def ratio(self) -> float:
        return self.wall_s / self.path_s if self.path_s > 0 else 0.0

    def line(self) -> str:
        """``critical path 1 min 58 s (first VM) of the run's 2 min 22 s, 1.20x``: durations in
        the sign-off's one format, so the total reads the same here as everywhere else."""
        others = ", ".join(f"{name} {seconds(took)}" for name, took in self.chains.items() if name != self.chain)
        return (f"critical path {seconds(self.path_s)} ({self.chain}" + (f"; {others}" if others else "")
                + f") of the run's {seconds(self.wall_s)}, {self.ratio:.2f}x")


def _chain_of(phase: str) -> str | None:
    if phase in NOT_ON_A_CHAIN:
        return None
    for prefix, name in OTHER_VMS.items():
        if phase.startswith(prefix):
            return None if phase[len(prefix):] in NOT_ON_A_CHAIN else name
    return FIRST_VM if phase in FIRST_VM_STEPS else None


def critical_paths(records: Iterable[Mapping[str, Any]]) -> list[CriticalPath]:
    """One CriticalPath per target with timed VM work, from journal records (phase and check).

    A chain's length is the time covered by its steps, so a step inside another (a server
    restarted within a check's call) is counted once."""
    chains: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    spans: dict[str, list[float]] = {}
    run_span: dict[str, float] = {}
    for record in records:
        kind, target = record.get("kind"), str(record.get("target", ""))
        data = record.get("data") or {}
        if kind == "run" and data.get("started_at") is not None:
            run_span["start"] = float(data["started_at"])
        elif kind == "run_end" and data.get("finished_at") is not None:
            run_span["end"] = float(data["finished_at"])
        start, took = float(record.get("started_at", 0.0)), float(record.get("duration_s", 0.0))
        if kind == "phase":
            phase = str(record.get("phase", ""))
            chain = _chain_of(phase)
            if chain is None and not phase.endswith("teardown"):
                continue  # ``total`` and a VM's own sub-steps (vm_clone, ...) are no span of their own
            span = spans.setdefault(target, [start, start + took])
            span[0], span[1] = min(span[0], start), max(span[1], start + took)
            if chain is not None:
                chains[target][chain].append((start, start + took))
        elif kind == "check" and record.get("stage") in VM_STAGES and start > 0:
            chains[target][FIRST_VM].append((start, start + took))
            if target in spans:
                spans[target][1] = max(spans[target][1], start + took)
    found = []
    for target, per_chain in sorted(chains.items()):
        if target not in spans or not per_chain:
            continue
        lengths = {name: round(covered(intervals), 3) for name, intervals in per_chain.items()}
        chain, longest = max(lengths.items(), key=lambda item: item[1])
        start, end = (run_span["start"], run_span["end"]) if len(run_span) == 2 else spans[target]
        found.append(CriticalPath(target, max(0.0, end - start), longest, chain, lengths))
    return found


def covered(intervals: Iterable[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``(start, end)`` intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total
