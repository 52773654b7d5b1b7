"""Regressions between two runs: a check that passed and now does not, a phase more than 20%
slower, a footprint that grew, a golden completion whose digest changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.report.formatting import seconds, short_sha, size
from harness.report.model import Regression, SignoffModel


@dataclass(frozen=True)
class TrendPolicy:
    slower_ratio: float = 1.20
    # Below this many seconds of difference a "slower" phase is timer noise, not a regression.
    min_slower_s: float = 0.5
    footprint_tolerance_bytes: int = 0


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def check_regressions(previous: SignoffModel, current: SignoffModel) -> list[Regression]:
    before = {(c.target, c.check): c.outcome for c in previous.checks}
    found = []
    for check in current.checks:
        was = before.get((check.target, check.check))
        if was == "passed" and check.outcome in ("failed", "broken"):
            found.append(
                Regression(
                    "check",
                    check.target,
                    check.check,
                    was,
                    check.outcome,
                    _first_line(check.message),
                )
            )
    return found


def phase_regressions(
    previous: SignoffModel, current: SignoffModel, policy: TrendPolicy
) -> list[Regression]:
    before = {(p.target, p.phase): p for p in previous.phases}
    found = []
    for timing in current.phases:
        old = before.get((timing.target, timing.phase))
        if old is None or old.mean_s <= 0:
            continue
        slower = timing.mean_s - old.mean_s
        if timing.mean_s > old.mean_s * policy.slower_ratio and slower >= policy.min_slower_s:
            found.append(
                Regression(
                    "phase",
                    timing.target,
                    timing.phase,
                    seconds(old.mean_s),
                    seconds(timing.mean_s),
                    f"+{100 * slower / old.mean_s:.0f}% (mean per occurrence)",
                )
            )
    return found


def total_regressions(
    previous: SignoffModel, current: SignoffModel, policy: TrendPolicy
) -> list[Regression]:
    """The run's one total, judged as a phase is (the deployments' own clocks are not kept)."""
    old, new = previous.total_s, current.total_s
    if not old or new is None or new <= old * policy.slower_ratio or new - old < policy.min_slower_s:
        return []
    return [
        Regression(
            "phase", "run", "total time", seconds(old), seconds(new), f"+{100 * (new - old) / old:.0f}%"
        )
    ]


def footprint_regressions(
    previous: SignoffModel, current: SignoffModel, policy: TrendPolicy
) -> list[Regression]:
    before = {(f.target, f.source): f for f in previous.footprints}
    found = []
    for fp in current.footprints:
        old = before.get((fp.target, fp.source))
        if old is None or fp.total - old.total <= policy.footprint_tolerance_bytes:
            continue
        grown = [
            f"{name} +{size(fp.layers[name] - old.layers.get(name, 0))}"
            for name in sorted(fp.layers)
            if fp.layers[name] > old.layers.get(name, 0)
        ]
        found.append(
            Regression(
                "footprint",
                fp.target,
                f"{fp.source} footprint",
                size(old.total),
                size(fp.total),
                "; ".join(grown) or "total grew",
            )
        )
    return found


def digest_regressions(previous: SignoffModel, current: SignoffModel) -> list[Regression]:
    before = {(d.target, d.prompt_id): d.sha256s for d in previous.digests}
    found = []
    for digest in current.digests:
        old = before.get((digest.target, digest.prompt_id))
        if old is not None and tuple(old) != tuple(digest.sha256s):
            found.append(
                Regression(
                    "digest",
                    digest.target,
                    digest.prompt_id,
                    " ≠ ".join(short_sha(s) for s in old),
                    " ≠ ".join(short_sha(s) for s in digest.sha256s),
                    "golden completion changed",
                )
            )
    return found


def find_regressions(
    previous: SignoffModel, current: SignoffModel, policy: TrendPolicy = TrendPolicy()
) -> list[Regression]:
    return [
        *check_regressions(previous, current),
        *phase_regressions(previous, current, policy),
        *total_regressions(previous, current, policy),
        *footprint_regressions(previous, current, policy),
        *digest_regressions(previous, current),
    ]
