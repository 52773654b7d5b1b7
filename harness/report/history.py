"""The run history kept under ``<results>/history/`` (or a CI cache directory): past sign-off
models for trends, and allure's own ``history/`` files for its trend graphs.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.report.model import SignoffModel

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
