"""The sign-off model: everything a release manager needs about one run, as plain values.

Built by :mod:`.assemble` from the run journal (the suite's facts) and JUnit XML (a cross-check
that catches what never reached the journal: collection errors, a crashed worker); rendered by
:mod:`.html` and :mod:`.markdown`; stored as JSON for machines and for the next run's trends.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from harness.journal import Outcome
from harness.report.critical_path import CriticalPath
from harness.report.facts import HostFacts, ImageFacts, ReleaseFacts, RunFacts
from harness.report.identity import TARBALL_TARGET

SCHEMA = 1
PHASE_ORDER: tuple[str, ...] = (
    "boot",
    "copy",
    "install",
    "serve",
    "complete",
    "uninstall",
    "teardown",
)
TOTAL_PHASE = "total"  # the suite's wall time per target, not one more step to add up
AREA_ORDER: tuple[str, ...] = ("static", "install", "server", "determinism", "egress")
# pytest exit codes that mean the run itself did not finish its work.
INCOMPLETE_EXIT = {
    2: "the run was interrupted",
    3: "pytest hit an internal error",
    4: "pytest was called wrongly",
    5: "no tests were collected",
}


def repro_command(results_dir: str, check: str, target: str) -> str:
    """The command that recreates ``check``'s target in a kept VM (see ``harness repro``)."""
    return shlex.join(["harness", "repro", results_dir, "--check", check, "--target", target])


@dataclass(frozen=True)
class CheckResult:
    target: str
    check: str
    area: str
    outcome: Outcome
    message: str = ""
    category: str = ""
    evidence: tuple[str, ...] = ()
    nodeid: str = ""


@dataclass(frozen=True)
class FailureGroup:
    """Checks that failed the same way (same outcome, category and message)."""

    members: tuple[CheckResult, ...]

    @property
    def lead(self) -> CheckResult:
        return self.members[0]

    @property
    def evidence(self) -> tuple[str, ...]:
        paths: list[str] = []
        for member in self.members:
            paths += [p for p in member.evidence if p not in paths]
        return tuple(paths)

    def where(self) -> list[tuple[str, tuple[str, ...]]]:
        """(check, targets) pairs in display order."""
        targets: dict[str, list[str]] = {}
        for member in self.members:
            targets.setdefault(member.check, []).append(member.target)
        return [(check, tuple(found)) for check, found in targets.items()]


@dataclass(frozen=True)
class PhaseTiming:
    target: str
    phase: str
    count: int
    total_s: float
    mean_s: float
    max_s: float
    ok: bool


@dataclass(frozen=True)
class Footprint:
    target: str
    source: str
    layers: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.layers.values())


@dataclass(frozen=True)
class DigestResult:
    target: str
    prompt_id: str
    sha256s: tuple[str, ...]  # distinct values in the order seen; more than one = drift in the run

    @property
    def stable(self) -> bool:
        return len(self.sha256s) == 1


@dataclass(frozen=True)
class Evidence:
    target: str
    name: str
    path: str
    nodeid: str = ""
    when: str = ""  # the test phase it was attached in: setup | call | teardown


@dataclass(frozen=True)
class EgressAttempt:
    target: str
    attempt: dict[str, Any]


@dataclass(frozen=True)
class Regression:
    kind: str  # check | phase | footprint | digest
    target: str
    subject: str
    before: str
    after: str
    detail: str


@dataclass(frozen=True)
class Verdict:
    ship: bool
    reasons: tuple[str, ...]

    @property
    def headline(self) -> str:
        return "SHIP" if self.ship else "DO NOT SHIP"


@dataclass(frozen=True)
class SignoffModel:
    verdict: Verdict
    facts: RunFacts
    targets: tuple[str, ...]
    checks: tuple[CheckResult, ...]
    phases: tuple[PhaseTiming, ...] = ()
    footprints: tuple[Footprint, ...] = ()
    digests: tuple[DigestResult, ...] = ()
    egress: tuple[EgressAttempt, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    problems: tuple[str, ...] = ()  # things outside any check: collection errors, lost tests
    links: dict[str, str] = field(default_factory=dict)
    regressions: tuple[Regression, ...] = ()
    generated_at: float = 0.0
    schema: int = SCHEMA
    results_dir: str = ""  # where the run's results are: the repro commands point there
    critical_paths: tuple[CriticalPath, ...] = ()

    # -- views the renderers share --------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        found = {o: 0 for o in ("passed", "failed", "broken", "skipped")}
        for check in self.checks:
            found[check.outcome] += 1
        return found

    def check_rows(self) -> list[tuple[str, str]]:
        """(area, check) pairs of the image matrix in display order: areas in pipeline order."""
        rows = {(c.area, c.check) for c in self.checks if c.target != TARBALL_TARGET}
        return sorted(rows, key=lambda r: (area_rank(r[0]), r[0], r[1]))

    def tarball_checks(self) -> list[CheckResult]:
        """Static checks: they judge the tarball itself, so they sit outside the image matrix."""
        return sorted((c for c in self.checks if c.target == TARBALL_TARGET), key=lambda c: c.check)

    def cell(self, target: str, check: str) -> CheckResult | None:
        return next((c for c in self.checks if c.target == target and c.check == check), None)

    def problems_first(self) -> list[CheckResult]:
        bad = [c for c in self.checks if c.outcome in ("failed", "broken")]
        return sorted(
            bad, key=lambda c: (c.outcome != "failed", area_rank(c.area), c.check, c.target)
        )

    def failure_groups(self) -> list[FailureGroup]:
        """Failed and broken checks grouped by cause: one install defect is one card, not ten."""
        groups: dict[tuple[str, str, str], list[CheckResult]] = {}
        for check in self.problems_first():
            groups.setdefault((check.outcome, check.category, check.message), []).append(check)
        return [FailureGroup(tuple(members)) for members in groups.values()]

    def skipped_groups(self) -> list[FailureGroup]:
        """Skipped checks grouped by their reason: a reader must see why without hovering."""
        groups: dict[str, list[CheckResult]] = {}
        ordered = sorted(
            (c for c in self.checks if c.outcome == "skipped"),
            key=lambda c: (area_rank(c.area), c.check, c.target),
        )
        for check in ordered:
            groups.setdefault(check.message.strip(), []).append(check)
        return [FailureGroup(tuple(members)) for members in groups.values()]

    @property
    def total_s(self) -> float | None:
        """The run's one total: its wall time from start to end (None while unknown).

        Per-target spans and the deployments' own clocks differ from it by seconds; showing
        them beside it would give a reader three totals for one run.
        """
        return self.facts.duration_s

    def image(self, target: str) -> ImageFacts:
        """What the run knows about ``target``'s image: its ``--image`` name and store digest."""
        return next(
            (i for i in self.facts.images if i.target == target), ImageFacts(target, target)
        )

    def phase_names(self) -> list[str]:
        """Pipeline order; prefixed phases (``twin_boot``) after the plain ones; ``total`` last."""
        return sorted({p.phase for p in self.phases}, key=_phase_rank)

    def main_phases(self) -> list[str]:
        """The pipeline's own steps (boot ... teardown), without ``total`` and finer-grained detail."""
        return [n for n in self.phase_names() if n in PHASE_ORDER]

    def detail_phases(self) -> list[str]:
        """Finer steps other areas time (``vm_slot_wait``, ``twin_install`` ...)."""
        return [n for n in self.phase_names() if n not in PHASE_ORDER and n != TOTAL_PHASE]

    def phase(self, target: str, name: str) -> PhaseTiming | None:
        return next((p for p in self.phases if p.target == target and p.phase == name), None)

    def repro(self, check: CheckResult) -> str:
        """How to get a VM where ``check`` failed ("" for a passed or static check: no VM)."""
        if check.outcome not in ("failed", "broken") or check.target == TARBALL_TARGET or not self.results_dir:
            return ""
        return repro_command(self.results_dir, check.check, check.target)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"]["headline"] = self.verdict.headline
        data["counts"] = self.counts()
        data["total_s"] = self.total_s
        data["repro"] = {f"{c.check}@{c.target}": cmd for c in self.checks if (cmd := self.repro(c))}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignoffModel:
        facts = dict(data.get("facts") or {})
        return cls(
            verdict=Verdict(
                ship=bool(data["verdict"]["ship"]), reasons=tuple(data["verdict"]["reasons"])
            ),
            facts=RunFacts(
                release=ReleaseFacts(**facts.get("release", {})),
                images=tuple(ImageFacts(**i) for i in facts.get("images", [])),
                host=HostFacts(**facts.get("host", {})),
                **{
                    k: facts[k]
                    for k in (
                        "run_id",
                        "started_at",
                        "finished_at",
                        "exitstatus",
                        "workers",
                        "extra",
                    )
                    if k in facts
                },
            ),
            targets=tuple(data.get("targets", ())),
            checks=tuple(_load(CheckResult, c) for c in data.get("checks", ())),
            phases=tuple(_load(PhaseTiming, p) for p in data.get("phases", ())),
            footprints=tuple(_load(Footprint, f) for f in data.get("footprints", ())),
            digests=tuple(_load(DigestResult, d) for d in data.get("digests", ())),
            egress=tuple(_load(EgressAttempt, e) for e in data.get("egress", ())),
            evidence=tuple(_load(Evidence, e) for e in data.get("evidence", ())),
            problems=tuple(data.get("problems", ())),
            links=dict(data.get("links", {})),
            regressions=tuple(_load(Regression, r) for r in data.get("regressions", ())),
            generated_at=float(data.get("generated_at", 0.0)),
            schema=int(data.get("schema", SCHEMA)),
            results_dir=str(data.get("results_dir", "")),
            critical_paths=tuple(_load(CriticalPath, c) for c in data.get("critical_paths", ())),
        )


def _load(cls: type, data: Mapping[str, Any]) -> Any:
    values = {}
    for f in fields(cls):
        if f.name in data:
            value = data[f.name]
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def _phase_rank(name: str) -> tuple[int, int, str]:
    if name == TOTAL_PHASE:
        return (2, 0, name)
    prefix, _, base = name.rpartition("_")
    step = base if base in PHASE_ORDER else name
    rank = PHASE_ORDER.index(step) if step in PHASE_ORDER else len(PHASE_ORDER)
    return (1 if prefix and step in PHASE_ORDER else 0, rank, name)


def area_rank(area: str) -> int:
    return AREA_ORDER.index(area) if area in AREA_ORDER else len(AREA_ORDER)

