"""The reports' pytest plugin: every portability run leaves allure results, JUnit XML and a
sign-off (other pytest sessions keep their VM logs in a scratch directory and leave ``results/``
alone; see :func:`harness.run_options.is_portability_run` for which sessions are portability runs).

Roles under pytest-xdist: the *controller* owns the results directory (claims it, empties it
once, writes JUnit, the check records, the allure extras and the sign-off); *workers* only run
tests and write allure results, evidence and their own journal file. Without xdist the single
process plays both roles.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import allure_commons
import pytest

from harness.errors import HarnessError, UsageError
from harness.journal import STAGE_MARK, CheckRecord, GenericRecord, Journal, Outcome, read_journal
from harness.report import junit, progress
from harness.report.allure import glue as allure_glue
from harness.report.allure.extras import write_allure_extras
from harness.report.facts import HostFacts, facts_from_records
from harness.report.formatting import first_lines
from harness.report.history import HistoryStore
from harness.report.identity import (
    CHECK_MARKER,
    TARBALL_TARGET,
    identify,
    identify_nodeid,
    target_objects,
)
from harness.report.outcome import classify_phase, combine, failure_message, skip_reason
from harness.report.recorder import ProcessState, Reporter
from harness.report.results_dir.layout import ResultsLayout, ResultsLock, clean_for_new_run
from harness.report.results_dir.space import DiskGuard
from harness.report.signoff.model import SignoffModel, repro_command
from harness.report.signoff.write import build_signoff, write_signoff
from harness.run_options import DEFAULT_RESULTS, is_portability_run, run_options

WORKER_INPUT_KEY = "harness_results_dir"
session_key = pytest.StashKey["ReportSession"]()
_phases_key = pytest.StashKey[list[tuple[str, Outcome, str]]]()
_call_key = pytest.StashKey[tuple[float, float]]()  # the check's call: start (host clock), seconds


def _results_root(config: pytest.Config) -> Path:
    handed = getattr(config, "workerinput", {}).get(WORKER_INPUT_KEY)
    if handed:
        return Path(handed)
    chosen = run_options(config).results_dir or Path(DEFAULT_RESULTS)
    return (config.invocation_params.dir / chosen.expanduser()).absolute()


def _scratch_root(config: pytest.Config) -> Path:
    """Where a session that is not a portability run keeps VM logs and evidence: a temporary
    directory removed at its end, so that the last real run's results stay as they were."""
    root = Path(tempfile.mkdtemp(prefix="harness-scratch-"))
    config.add_cleanup(lambda: shutil.rmtree(root, ignore_errors=True))
    return root


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{CHECK_MARKER}(name=None, area=None): the check this test is and its report area "
        "(install, determinism, egress, static, server) when the test name and module do not say it",
    )
    worker = hasattr(config, "workerinput")
    active = is_portability_run(config)
    layout = ResultsLayout(_results_root(config) if active or worker else _scratch_root(config))
    session = ReportSession(config, layout, worker=worker)
    if active and not worker:
        try:
            session.claim_results_dir()
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None
        except OSError as exc:
            raise pytest.UsageError(str(UsageError(
                f"the results directory {layout.root} cannot be written: {exc.strerror or exc}",
                hint="pass --results-dir DIR on a writable file system with free space",
            ))) from None
    # Must run before allure-pytest's own pytest_configure reads these options.
    if active and getattr(config.option, "allure_report_dir", "") is None:
        config.option.allure_report_dir = str(layout.allure_results)
    if worker and getattr(config.option, "clean_alluredir", False):
        # Each worker would empty the folder its siblings are writing to; the controller cleans once.
        config.option.clean_alluredir = False
    if active and hasattr(config.option, "xmlpath") and not config.option.xmlpath:
        config.option.xmlpath = str(layout.junit)
    config.stash[session_key] = session
    config.pluginmanager.register(session, "harness-report-session")
    if active:  # in a run's xdist workers too: they write results as well
        config.pluginmanager.register(DiskGuard(layout.root), "harness-disk-guard")
        progress.register(config)
    fixer = allure_glue.OutcomeFixer()
    allure_commons.plugin_manager.register(fixer)
    config.add_cleanup(lambda: allure_commons.plugin_manager.unregister(fixer))


def reporter_for(config: pytest.Config) -> Reporter:
    """The :class:`Reporter` of this pytest process, for code that has a config but no fixture."""
    return config.stash[session_key].reporter


@pytest.fixture(scope="session")
def report(pytestconfig: pytest.Config) -> Reporter:
    """Phases, attachments and facts for the reports: see :mod:`harness.report.recorder`."""
    return reporter_for(pytestconfig)


class ReportSession:
    def __init__(self, config: pytest.Config, layout: ResultsLayout, worker: bool) -> None:
        self.config = config
        self.layout = layout
        self.worker = worker
        # Outside a portability run the session only serves the harness's fixtures (scratch
        # evidence); a user's other pytest runs get no harness labels in their JUnit or allure.
        self.active = is_portability_run(config)
        self.state = ProcessState()
        self.journal = Journal(layout.root)
        self.reporter = Reporter(layout, self.journal, config.hook, self.state)
        self.run_id = os.environ.get("HARNESS_RUN_ID") or secrets.token_hex(4)
        self.model: SignoffModel | None = None
        self.signoff_error: str = ""
        self.expected: set[str] = set()  # controller: collected node ids
        self.reported: set[str] = set()  # controller: node ids that reached a final report
        self._lock: ResultsLock | None = None

    # -- controller: the results directory ------------------------------------------------------

    def claim_results_dir(self) -> None:
        self._lock = ResultsLock(self.layout)
        self._lock.acquire()
        clean_for_new_run(self.layout)
        self.layout.allure_results.mkdir(parents=True, exist_ok=True)
        workers = getattr(self.config.option, "numprocesses", None)
        host = HostFacts.probe()
        self.journal.write(
            GenericRecord(
                kind="run",
                data={
                    "run_id": self.run_id,
                    "started_at": time.time(),
                    "workers": workers if isinstance(workers, int) else 0,
                    "os": host.os,
                    "python": host.python,
                    "harness_version": host.harness_version,
                    "git_revision": host.git_revision,
                },
            )
        )

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: hand every worker the controller's resolved results directory."""
        node.workerinput[WORKER_INPUT_KEY] = str(self.layout.root)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._lock is not None:
            self._lock.release()

    # -- every test process -----------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        self.state.current_item = item
        try:
            return (yield)
        finally:
            self.state.current_item = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        self.state.current_when = "setup"
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        self.state.current_when = "call"
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        self.state.current_when = "teardown"
        if not self.active:
            return (yield)
        # Labels and excluded parameters must be in place before allure computes the history id.
        identity = identify(item)
        allure_glue.add_test_labels(
            identity,
            self._release_labels(),
            self.state.volatile.get(identity.target, {}),
            shown={name: identity.target for name in target_objects(item)},
        )
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report: pytest.TestReport = yield
        outcome = classify_phase(report, call.excinfo)
        message = (failure_message(call.excinfo, report) if outcome in ("failed", "broken")
                   else skip_reason(report) if outcome == "skipped" else "")
        phases = item.stash.setdefault(_phases_key, [])
        phases.append((call.when, outcome, message))
        if call.when == "call":
            item.stash[_call_key] = (report.start, report.duration)
        if call.when == "teardown":
            call_start, call_s = item.stash.get(_call_key, (0.0, 0.0))
            final = combine((when, o) for when, o, _ in phases)
            deciding = next((m for _, o, m in phases if o == final and m), "")
            identity = identify(item)
            repro = (repro_command(str(self.layout.root), identity.check, identity.target)
                     if final in ("failed", "broken") and identity.target != TARBALL_TARGET else "")
            if self.active:
                allure_glue.hand_over_outcome(final, identity.area, repro)
            # Travels to the xdist controller with the report (reports keep unknown attributes).
            report.harness = {  # type: ignore[attr-defined]
                "check": identity.check,
                "area": identity.area,
                "target": identity.target,
                "outcome": final,
                "message": deciding,
                "evidence": self.state.evidence.pop(item.nodeid, []),
                "stage": _stage(item),
                "started_at": call_start,
                "duration_s": round(call_s, 3),
            }
            if self.active:
                report.user_properties.extend([
                    ("harness.check", identity.check),
                    ("harness.area", identity.area),
                    ("harness.target", identity.target),
                    ("harness.outcome", final),
                    ("harness.nodeid", item.nodeid),
                ])
        return report

    def _release_labels(self) -> dict[str, str]:
        if not self.state.labels:
            facts = facts_from_records(
                r for r in read_journal(self.layout.root) if r.get("kind") == "meta"
            )
            found = {"release": facts.release.version, "profile": facts.release.profile}
            self.state.labels.update({k: v for k, v in found.items() if v})
        return dict(self.state.labels)

    # -- controller: check records, lost tests, the sign-off ---------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.worker:
            return
        data = getattr(report, "harness", None)
        if report.when == "teardown" and isinstance(data, dict):
            self.journal.write(
                CheckRecord(
                    target=data["target"],
                    check=data["check"],
                    outcome=data["outcome"],
                    message=data["message"],
                    area=data["area"],
                    evidence=tuple(data.get("evidence", ())),
                    nodeid=report.nodeid,
                    stage=str(data.get("stage", "")),
                    started_at=float(data.get("started_at", 0.0)),
                    duration_s=float(data.get("duration_s", 0.0)),
                )
            )
            self.reported.add(report.nodeid)
        elif report.when not in ("setup", "call", "teardown"):
            # xdist's report for a test whose worker died: the test never reached its teardown.
            self.reported.add(report.nodeid)
            identity = identify_nodeid(report.nodeid)
            message = f"InfrastructureError: {first_lines(str(report.longrepr), 5)}"
            self.journal.write(
                CheckRecord(
                    target=identity.target,
                    check=identity.check,
                    outcome="broken",
                    message=message,
                    area=identity.area,
                    nodeid=report.nodeid,
                )
            )
            allure_glue.report_lost_test(report.nodeid, identity, message)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not self.worker:
            self.expected.update(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """xdist: what the workers will run, so that a test that never reports is not forgotten."""
        self.expected.update(ids)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.worker or self._lock is None:
            return
        unreported = sorted(self.expected - self.reported)
        stopped = next((str(why) for why in (session.shouldfail, session.shouldstop) if isinstance(why, str)), "")
        if unreported:
            # A run told to stop at its first failure (-x, --fail-fast) leaves the rest unrun on
            # purpose: that is said as such, not as lost tests.
            kind = "not_run" if stopped and exitstatus != pytest.ExitCode.INTERRUPTED else "unreported"
            self.journal.write(GenericRecord(kind=kind, data={"nodeids": unreported, "reason": stopped}))
        self.journal.write(
            GenericRecord(
                kind="run_end", data={"finished_at": time.time(), "exitstatus": int(exitstatus)}
            )
        )
        try:
            self.model = finish_results(self.layout)
        except Exception as exc:  # noqa: BLE001 - a broken sign-off must not hide the test results
            self.signoff_error = f"{type(exc).__name__}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.signoff_error:
            terminalreporter.write_sep("!", "sign-off could not be written", red=True)
            terminalreporter.write_line(self.signoff_error)
            return
        if self.model is None:
            return
        verdict = self.model.verdict
        terminalreporter.write_sep(
            "=",
            f"sign-off: {verdict.headline}",
            green=verdict.ship,
            red=not verdict.ship,
            bold=True,
        )
        for reason in verdict.reasons:
            terminalreporter.write_line(f"  {reason}")
        terminalreporter.write_line(f"  {self.layout.signoff_html}")


def _stage(item: pytest.Item) -> str:
    """The fixture-chain stage the suite marked the check with ("" outside the suite)."""
    mark = item.get_closest_marker(STAGE_MARK)
    return str(mark.args[0]) if mark is not None and mark.args else ""


def finish_results(layout: ResultsLayout) -> SignoffModel:
    """Everything written once all tests are done: JUnit fixed up, allure extras, sign-off, history."""
    junit.reconcile(layout.junit)
    store = HistoryStore(layout.history)
    model = build_signoff(layout)
    write_allure_extras(layout.allure_results, model.facts, store.build_order())
    write_signoff(layout, model)
    store.record(model)
    return model
