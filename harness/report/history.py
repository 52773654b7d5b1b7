"""The run history kept under ``<results>/history/`` (or a CI cache directory), and the trends
read from it.

The history holds past sign-off models and allure's own ``history/`` files for its trend graphs.
A trend is a regression between two runs: a check that passed and now does not, a phase more than
20% slower, a footprint that grew, a golden completion whose digest changed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.report.formatting import human_bytes, seconds, short_sha
from harness.report.signoff.model import Regression, SignoffModel

KEEP_RUNS = 30


@dataclass(frozen=True)
class HistoryStore:
    root: Path

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def allure(self) -> Path:
        return self.root / "allure"

    def run_files(self) -> list[Path]:
        return sorted(self.runs.glob("*.json")) if self.runs.is_dir() else []

    def contains(self, model: SignoffModel) -> bool:
        return any(_same_run(load_model(path), model) for path in self.run_files())

    def record(self, model: SignoffModel) -> Path:
        """Keep ``model`` as the newest run; the oldest beyond KEEP_RUNS are dropped."""
        self.runs.mkdir(parents=True, exist_ok=True)
        stamp = f"{model.generated_at:017.6f}".replace(".", "")
        path = self.runs / f"{stamp}-{model.facts.run_id or 'run'}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(model.to_dict(), indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
        for old in self.run_files()[:-KEEP_RUNS]:
            old.unlink(missing_ok=True)
        return path

    def previous(self, current: SignoffModel | None = None) -> SignoffModel | None:
        """The newest recorded run that is not ``current`` itself."""
        for path in reversed(self.run_files()):
            model = load_model(path)
            if current is None or not _same_run(model, current):
                return model
        return None

    def build_order(self) -> int:
        """allure's x-axis for trend graphs: one more than the runs kept so far."""
        return len(self.run_files()) + 1

    def restore_allure_history(self, allure_results: Path) -> bool:
        """Copy the kept allure history into a results folder before ``allure generate``."""
        if not self.allure.is_dir() or not any(self.allure.iterdir()):
            return False
        shutil.copytree(self.allure, allure_results / "history", dirs_exist_ok=True)
        return True

    def keep_allure_history(self, allure_report: Path) -> bool:
        """After ``allure generate``: keep the report's ``history/`` for the next run."""
        source = allure_report / "history"
        if not source.is_dir():
            return False
        self.allure.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, self.allure, dirs_exist_ok=True)
        return True


def _same_run(a: SignoffModel, b: SignoffModel) -> bool:
    if a.facts.run_id and b.facts.run_id:
        return a.facts.run_id == b.facts.run_id
    return a.generated_at == b.generated_at


def load_model(path: Path) -> SignoffModel:
    return SignoffModel.from_dict(json.loads(path.read_text(encoding="utf-8")))


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
            f"{name} +{human_bytes(fp.layers[name] - old.layers.get(name, 0))}"
            for name in sorted(fp.layers)
            if fp.layers[name] > old.layers.get(name, 0)
        ]
        found.append(
            Regression(
                "footprint",
                fp.target,
                f"{fp.source} footprint",
                human_bytes(old.total),
                human_bytes(fp.total),
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
