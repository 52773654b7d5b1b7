"""Building the sign-off model from a run: the journal's records, cross-checked against JUnit.

The values themselves live in :mod:`.model`; this module only decides what a run's
facts add up to (each check's worst outcome and category, lost tests, the verdict).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from harness.journal import Outcome
from harness.report.categories import CHANGED_SINCE_APPROVED, categorize, tagged
from harness.report.critical_path import critical_paths
from harness.report.facts import RunFacts, facts_from_records
from harness.report.identity import TARBALL_TARGET
from harness.report.junit import JUnitCase
from harness.report.outcome import worst
from harness.report.signoff.model import (
    INCOMPLETE_EXIT,
    TOTAL_PHASE,
    CheckResult,
    DigestResult,
    EgressAttempt,
    Evidence,
    Footprint,
    PhaseTiming,
    SignoffModel,
    Verdict,
    area_rank,
)


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
    """Each step's timing. A deployment's own ``total`` clock is left out: the run has one total
    (:attr:`SignoffModel.total_s`), and a second, seconds apart, only makes a reader wonder."""
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        if record["phase"] == TOTAL_PHASE:
            continue
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
        # A static footprint measures the tarball; the inspection target it names (debian-12) is
        # a list of what a system provides, not one of the run's images.
        target = TARBALL_TARGET if source == "static" else str(record.get("target", ""))
        latest[(target, source)] = Footprint(target, source, _layer_sizes(data))
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
    ordered = sorted(checks, key=lambda c: (area_rank(c.area), c.check, c.target))
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
        critical_paths=tuple(
            critical_paths(by_kind["run"] + by_kind["run_end"] + by_kind["phase"] + by_kind["check"])
        ),
    )
