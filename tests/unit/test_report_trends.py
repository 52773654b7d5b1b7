"""Trends between two runs built from constructed journals: each regression kind, and no false alarm."""

from __future__ import annotations

from pathlib import Path

from harness.journal import CheckRecord, DigestRecord, GenericRecord, PhaseRecord, Record
from harness.report.history import HistoryStore, TrendPolicy, find_regressions
from harness.report.signoff.assemble import build_model
from harness.report.signoff.model import SignoffModel
from tests.unit.test_report_model import passing_run, records

IMAGE = "linux-debian12"


def model(*extra: Record, run_id: str = "r", now: float = 1.0) -> SignoffModel:
    base = [r for r in passing_run() if getattr(r, "kind", "") != "run"]
    items = base + list(extra) + [GenericRecord("run", {"run_id": run_id, "started_at": 0.0})]
    return build_model(records(*items), now=now)


def test_identical_runs_have_no_regressions() -> None:
    assert find_regressions(model(), model()) == []


def test_a_check_that_passed_and_now_fails_or_breaks() -> None:
    after = model(
        CheckRecord(IMAGE, "install_offline", "failed", "exit 1\nmore", area="install"),
        CheckRecord(IMAGE, "determinism_repeat", "broken", "SSH lost", area="determinism"),
    )
    found = {(r.kind, r.subject, r.after, r.detail) for r in find_regressions(model(), after)}
    assert found == {
        ("check", "install_offline", "failed", "exit 1"),
        ("check", "determinism_repeat", "broken", "SSH lost"),
    }


def test_a_check_that_was_already_failing_is_not_a_regression() -> None:
    failing = model(CheckRecord(IMAGE, "install_offline", "failed", area="install"))
    assert find_regressions(failing, failing) == []


def test_a_phase_more_than_20_percent_slower() -> None:
    # passing_run() records install at 4.0 s; 4.9 s is +22.5 %, 4.7 s is +17.5 %.
    slower = find_regressions(model(), model(PhaseRecord(IMAGE, "install", 5.8)))  # mean 4.9
    assert [(r.kind, r.subject, r.before, r.after) for r in slower] == [
        ("phase", "install", "4.00 s", "4.90 s")
    ]
    assert find_regressions(model(), model(PhaseRecord(IMAGE, "install", 5.4))) == []  # mean 4.7


def test_slower_by_less_than_the_noise_floor_is_ignored() -> None:
    before = build_model(records(PhaseRecord(IMAGE, "copy", 0.10)))
    after = build_model(records(PhaseRecord(IMAGE, "copy", 0.30)))
    assert find_regressions(before, after) == []
    assert len(find_regressions(before, after, TrendPolicy(min_slower_s=0.1))) == 1


def test_a_footprint_that_grew_names_the_layer() -> None:
    grown = GenericRecord(
        "footprint", {"source": "installed", "layers": {"runtime": 1000, "app": 5000}}, IMAGE
    )
    [reg] = find_regressions(model(), model(grown))
    assert (reg.kind, reg.before, reg.after) == ("footprint", "1010 B", "5.9 KiB")
    assert reg.detail == "app +4.9 KiB"


def test_a_golden_digest_that_changed() -> None:
    before = build_model(records(DigestRecord(IMAGE, "hello", "1" * 64)))
    after = build_model(records(DigestRecord(IMAGE, "hello", "2" * 64)))
    [reg] = find_regressions(before, after)
    assert (reg.kind, reg.subject, reg.before, reg.after) == ("digest", "hello", "1" * 12, "2" * 12)


def test_history_returns_the_newest_other_run_and_keeps_a_bounded_number(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history")
    assert store.previous() is None and store.build_order() == 1
    for index in range(35):
        store.record(model(run_id=f"run{index}", now=1000.0 + index))
    assert len(store.run_files()) == 30
    current = model(run_id="run34", now=2000.0)
    previous = store.previous(current)
    assert previous is not None and previous.facts.run_id == "run33"
    assert store.contains(current)


def test_allure_history_is_carried_between_results_and_report(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history")
    report, results = tmp_path / "allure-report", tmp_path / "allure-results"
    assert not store.restore_allure_history(results)
    (report / "history").mkdir(parents=True)
    (report / "history" / "history-trend.json").write_text("[]", encoding="utf-8")
    assert store.keep_allure_history(report)
    assert store.restore_allure_history(results)
    assert (results / "history" / "history-trend.json").read_text(encoding="utf-8") == "[]"
