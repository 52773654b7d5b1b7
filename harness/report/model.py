"""The sign-off model: everything a release manager needs about one run, as plain values.

Built from the run journal (the suite's facts) and JUnit XML (a cross-check that catches what
never reached the journal: collection errors, a crashed worker); rendered by
:mod:`harness.report.render_html` and :mod:`harness.report.render_markdown`; stored as JSON for
machines and for the next run's trends.
"""

from __future__ import annotations

import shlex
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from harness.journal import Outcome
from harness.report.categories import CHANGED_SINCE_APPROVED, categorize, tagged
from harness.report.critical_path import CriticalPath, critical_paths
from harness.report.facts import HostFacts, ImageFacts, ReleaseFacts, RunFacts, facts_from_records
from harness.report.identity import TARBALL_TARGET
from harness.report.junit import JUnitCase
from harness.report.outcome import worst

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
        return sorted(rows, key=lambda r: (_area_rank(r[0]), r[0], r[1]))

    def tarball_checks(self) -> list[CheckResult]:
        """Static checks: they judge the tarball itself, so they sit outside the image matrix."""
        return sorted((c for c in self.checks if c.target == TARBALL_TARGET), key=lambda c: c.check)

    def cell(self, target: str, check: str) -> CheckResult | None:
        return next((c for c in self.checks if c.target == target and c.check == check), None)

    def problems_first(self) -> list[CheckResult]:
        bad = [c for c in self.checks if c.outcome in ("failed", "broken")]
        return sorted(
            bad, key=lambda c: (c.outcome != "failed", _area_rank(c.area), c.check, c.target)
        )

    def failure_groups(self) -> list[FailureGroup]:
        """Failed and broken checks grouped by cause: one install defect is one card, not ten."""
        groups: dict[tuple[str, str, str], list[CheckResult]] = {}
        for check in self.problems_first():
            groups.setdefault((check.outcome, check.category, check.message), []).append(check)
        return [FailureGroup(tuple(members)) for members in groups.values()]

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


def _area_rank(area: str) -> int:
    return AREA_ORDER.index(area) if area in AREA_ORDER else len(AREA_ORDER)


# -- building ------------------------------------------------------------------------------------


def _checks(records: list[Mapping[str, Any]], evidence: list[Evidence]) -> list[CheckResult]:
    by_node: dict[str, list[str]] = defaultdict(list)
    # Evidence from fixture set-up (boot console, installer output) belongs to every check of the
    # target: a failing check links it even when an earlier test ran the shared fixture.
    shared: dict[str, list[str]] = defaultdict(list)
    for item in evidence:
        if item.nodeid:
            by_node[item.nodeid].append(item.path)
        if item.when == "setup" or not item.nodeid:
            shared[item.target].append(item.path)
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[(record["target"], record["check"])].append(record)
    results = []
    for (target, check), group in grouped.items():
        outcome = worst(r["outcome"] for r in group)
        lead = next(r for r in group if r["outcome"] == outcome)
        area = next((r.get("area") for r in group if r.get("area")), "") or "other"
        paths: list[str] = []
        for record in group:
            for path in [*record.get("evidence", ()), *by_node.get(record.get("nodeid", ""), ())]:
                if path not in paths:
                    paths.append(path)
        if outcome in ("failed", "broken"):
            paths += [path for path in shared.get(target, []) if path not in paths]
        message = lead.get("message", "")
        category = ""
        if outcome in ("failed", "broken"):
            found = categorize(outcome, tagged(area, message))
            category = (
                found.name if found else ("Product defect" if outcome == "failed" else "Broken")
            )
        results.append(
            CheckResult(
                target,
                check,
                area,
                outcome,
                message,
                category,
                tuple(paths),
                lead.get("nodeid", ""),
            )
        )
    return results


def _phases(records: list[Mapping[str, Any]]) -> list[PhaseTiming]:
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[(record["target"], record["phase"])].append(record)
    timings = []
    for (target, phase), group in sorted(grouped.items()):
        durations = [float(r["duration_s"]) for r in group]
        timings.append(
            PhaseTiming(
                target,
                phase,
                len(durations),
                round(sum(durations), 3),
                round(statistics.fmean(durations), 3),
                round(max(durations), 3),
                all(r.get("ok", True) for r in group),
            )
        )
    return timings


def _layer_sizes(data: Mapping[str, Any]) -> dict[str, int]:
    """Bytes per layer from ``{"layers": {name: bytes}}``, static inspection's
    ``{"layers": [{"name", "uncompressed_bytes"}]}``, or plain ``{name: bytes}``."""
    layers = data.get("layers")
    if isinstance(layers, Mapping):
        return {str(k): int(v) for k, v in layers.items()}
    if isinstance(layers, list):
        return {
            str(layer.get("name")): int(layer.get("uncompressed_bytes", layer.get("bytes", 0)))
            for layer in layers
            if isinstance(layer, Mapping)
        }
    return {str(k): v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}


def _footprints(records: list[Mapping[str, Any]]) -> list[Footprint]:
    latest: dict[tuple[str, str], Footprint] = {}
    for record in records:
        data = record.get("data") or {}
        source = str(data.get("source", "installed"))
        latest[(record.get("target", ""), source)] = Footprint(
            record.get("target", ""), source, _layer_sizes(data)
        )
    return [latest[k] for k in sorted(latest)]


def _digests(records: list[Mapping[str, Any]]) -> list[DigestResult]:
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in records:
        shas = seen[(record["target"], record["prompt_id"])]
        if record["sha256"] not in shas:
            shas.append(record["sha256"])
    return [DigestResult(t, p, tuple(s)) for (t, p), s in sorted(seen.items())]


def _egress(records: list[Mapping[str, Any]]) -> list[EgressAttempt]:
    found: list[EgressAttempt] = []
    for record in records:
        for attempt in (record.get("data") or {}).get("attempts", []):
            entry = EgressAttempt(record.get("target", ""), dict(attempt))
            if entry not in found:
                found.append(entry)
    return found


def _as_outcome(text: str) -> Outcome:
    for known in ("passed", "failed", "broken", "skipped"):
        if text == known:
            return known
    return "broken"


def junit_key(nodeid: str) -> str:
    """How pytest's JUnit writer names a node id (``classname::name``), to match the two up."""
    path, _, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = names[0].replace("/", ".").removesuffix(".py")
    names[-1] += f"[{params}" if params else ""
    return "::".join(part for part in (".".join(names[:-1]), names[-1]) if part)


def _lost_checks(
    cases: Iterable[JUnitCase], known_nodes: set[str]
) -> tuple[list[CheckResult], list[str]]:
    """JUnit cases the journal does not know: harness-tagged ones become checks, the rest problems."""
    checks: list[CheckResult] = []
    problems: list[str] = []
    known_keys = {junit_key(n) for n in known_nodes}
    for case in cases:
        props = case.properties
        nodeid = props.get("harness.nodeid", "")
        if (nodeid and nodeid in known_nodes) or case.nodeid_hint in known_keys:
            continue
        if "harness.outcome" in props:
            outcome = props["harness.outcome"]
            area = props.get("harness.area", "other")
            checks.append(
                CheckResult(
                    props.get("harness.target", "local"),
                    props.get("harness.check", case.name),
                    area,
                    _as_outcome(outcome),
                    case.message,
                    "",
                    (),
                    nodeid,
                )
            )
        elif case.status == "error":
            problems.append(f"{case.nodeid_hint}: {case.message or 'error outside any check'}")
    return checks, problems


def _unreported(records: list[Mapping[str, Any]]) -> list[str]:
    nodeids = sorted({n for r in records for n in (r.get("data") or {}).get("nodeids", [])})
    if not nodeids:
        return []
    shown = ", ".join(nodeids[:5]) + (f" and {len(nodeids) - 5} more" if len(nodeids) > 5 else "")
    cause = "a worker died or the run stopped early"
    return [f"{_plural(len(nodeids), 'collected test')} never reported a result ({cause}): {shown}"]


def _stopped_early(records: list[Mapping[str, Any]]) -> str:
    """The verdict's note for a run that stopped at its first failure, or ""."""
    nodeids = sorted({n for r in records for n in (r.get("data") or {}).get("nodeids", [])})
    if not nodeids:
        return ""
    reason = next((str(r["data"]["reason"]) for r in records if (r.get("data") or {}).get("reason")), "")
    return (f"the run stopped at its first failure ({reason or 'fail-fast'}): "
            f"{_plural(len(nodeids), 'check')} not run, so this is not the whole picture")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _names(checks: list[CheckResult], shown: int = 3) -> str:
    names = [f"{c.check} on {c.target}" for c in checks[:shown]]
    more = f" and {len(checks) - shown} more" if len(checks) > shown else ""
    return ", ".join(names) + more


def _verdict(checks: list[CheckResult], problems: list[str], facts: RunFacts, stopped: str = "") -> Verdict:
    reasons: list[str] = []
    ordered = sorted(checks, key=lambda c: (_area_rank(c.area), c.check, c.target))
    changed = [c for c in ordered if c.outcome == "failed" and c.category == CHANGED_SINCE_APPROVED]
    failed = [c for c in ordered if c.outcome == "failed" and c not in changed]
    broken = [c for c in ordered if c.outcome == "broken"]
    if failed:
        reasons.append(
            f"{_plural(len(failed), 'check')} failed, the release has a defect: {_names(failed)}"
        )
    if changed:
        reasons.append(
            f"answers changed since the approved build ({_names(changed)}): review the diff and"
            " approve by re-recording the goldens, or fix the release"
        )
    if broken:
        reasons.append(
            f"{_plural(len(broken), 'check')} broken, the harness could not judge the release"
            f" (infrastructure; rerun before deciding): {_names(broken)}"
        )
    if problems:
        reasons.append(
            f"{_plural(len(problems), 'problem')} outside the checks (collection errors or lost tests)"
        )
    if stopped:
        reasons.append(stopped)
    if facts.exitstatus in INCOMPLETE_EXIT:
        reasons.append(f"incomplete run: {INCOMPLETE_EXIT[facts.exitstatus]}")
    if not any(c.outcome == "passed" for c in checks):
        reasons.append("no check passed: nothing was verified")
    if reasons:
        return Verdict(False, tuple(reasons))
    skipped = sum(1 for c in checks if c.outcome == "skipped")
    note = f"; {skipped} skipped" if skipped else ""
    return Verdict(True, (f"all {len(checks) - skipped} checks passed{note}",))


def build_model(
    records: Iterable[Mapping[str, Any]],
    junit_cases: Iterable[JUnitCase] = (),
    links: Mapping[str, str] | None = None,
    now: float | None = None,
) -> SignoffModel:
    by_kind: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    all_records = list(records)
    for record in all_records:
        by_kind[str(record.get("kind", ""))].append(record)
    facts = facts_from_records(all_records)
    evidence = [
        Evidence(
            r.get("target", ""),
            r["data"].get("name", ""),
            r["data"].get("path", ""),
            r["data"].get("nodeid", ""),
            r["data"].get("when", ""),
        )
        for r in by_kind["evidence"]
        if r.get("data")
    ]
    checks = _checks(by_kind["check"], evidence)
    lost, problems = _lost_checks(junit_cases, {c.nodeid for c in checks if c.nodeid})
    checks.extend(lost)
    problems += _unreported(by_kind["unreported"])
    phases = _phases(by_kind["phase"])
    footprints = _footprints(by_kind["footprint"])
    digests = _digests(by_kind["digest"])
    # Matrix columns: the images. Static footprints name the inspection target and static checks
    # the tarball; neither is an image.
    targets = sorted(
        (
            {c.target for c in checks}
            | {p.target for p in phases}
            | {i.target for i in facts.images}
            | {d.target for d in digests}
        )
        - {TARBALL_TARGET}
    )
    return SignoffModel(
        verdict=_verdict(checks, problems, facts, _stopped_early(by_kind["not_run"])),
        facts=facts,
        targets=tuple(targets),
        checks=tuple(sorted(checks, key=lambda c: (c.target, c.check))),
        phases=tuple(phases),
        footprints=tuple(footprints),
        digests=tuple(digests),
        egress=tuple(_egress(by_kind["egress"])),
        evidence=tuple(evidence),
        problems=tuple(problems),
        links=dict(links or {}),
        generated_at=time.time() if now is None else now,
        critical_paths=tuple(critical_paths(by_kind["phase"] + by_kind["check"])),
    )
