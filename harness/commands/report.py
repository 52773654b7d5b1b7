"""`harness report`: rebuild a run's sign-off with trends against an earlier run, and on request
build the full allure HTML report (``--open``), serve it on loopback and take screenshots.

    harness report                          # results/ vs. the previous run kept in results/history/
    harness report --previous old-results/  # vs. another results directory
    harness report --history ci-cache/      # vs. a history kept between CI runs (this run is added)
    harness report --open [--serve]         # allure HTML report, path printed (no browser launched)
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, replace
from pathlib import Path

from harness.errors import UsageError
from harness.report.allure.cli import AllureCommandLine
from harness.report.browser import HeadlessChromium
from harness.report.history import HistoryStore, find_regressions, load_model
from harness.report.results_dir.layout import ResultsLayout
from harness.report.screenshots import render_allure, render_signoff
from harness.report.serve import make_server
from harness.report.signoff.model import Regression, SignoffModel
from harness.report.signoff.write import build_signoff, evidence_links, write_signoff


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="sign-off with trends; --open builds the allure HTML report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--results-dir",
        "--results",  # the older spelling, kept working
        dest="results",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="the run's results directory, as given to `harness run --results-dir` (default: ./results)",
    )
    earlier = parser.add_mutually_exclusive_group()
    earlier.add_argument(
        "--previous", type=Path, metavar="DIR", help="results directory of the run to compare with"
    )
    earlier.add_argument(
        "--history",
        type=Path,
        metavar="DIR",
        help="history kept between runs (e.g. a CI cache): compare with its newest run, then add this one",
    )
    parser.add_argument(
        "--open",
        action="store_true",
        help="build the allure HTML report into <results>/allure-report and print where it is",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="with --open: serve the report on 127.0.0.1 until Ctrl-C",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port for --serve (default: any free port)"
    )
    parser.add_argument(
        "--screenshots",
        action="store_true",
        help="render the sign-off (and the allure report with --open) in headless Chromium "
        "into <results>/screenshots/",
    )
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="only install Allure's command line (npm) into the cache and check Java and Chromium: "
        "the step a CI set-up runs once",
    )
    parser.add_argument(
        "--fail-on-regression", action="store_true", help="exit 1 when a regression is found"
    )
    parser.add_argument(
        "--step-summary",
        action="store_true",
        help="append the Markdown sign-off to $GITHUB_STEP_SUMMARY (the test run already does)",
    )
    parser.set_defaults(handler=run)


def load_current(layout: ResultsLayout) -> SignoffModel:
    if layout.journal.is_dir():
        return build_signoff(layout)
    if layout.signoff_json.is_file():
        return load_model(layout.signoff_json)
    raise UsageError(
        f"no results of a run in {layout.root} (neither journal/ nor signoff.json)",
        hint="run the suite first (harness run, or pytest --results-dir DIR), or pass --results-dir DIR",
    )


def load_previous(
    args: argparse.Namespace, store: HistoryStore, current: SignoffModel
) -> SignoffModel | None:
    if args.previous is None:
        return store.previous(current)
    earlier = ResultsLayout(args.previous.absolute())
    if not earlier.signoff_json.is_file():
        raise UsageError(
            f"{earlier.signoff_json} does not exist: --previous needs a results directory of a "
            "finished run",
            hint="pass the directory that holds signoff.json",
        )
    return load_model(earlier.signoff_json)


def write_trends(
    layout: ResultsLayout, previous: SignoffModel | None, regressions: list[Regression]
) -> None:
    summary = (
        None
        if previous is None
        else {
            "run_id": previous.facts.run_id,
            "generated_at": previous.generated_at,
            "tarball": previous.facts.release.tarball,
            "version": previous.facts.release.version_label,
            "verdict": previous.verdict.headline,
        }
    )
    data = {"previous": summary, "regressions": [asdict(r) for r in regressions]}
    layout.trends_json.write_text(json.dumps(data, indent=2), encoding="utf-8")


def build_allure_report(layout: ResultsLayout, store: HistoryStore) -> Path:
    if not layout.allure_results.is_dir():
        raise UsageError(
            f"{layout.allure_results} does not exist",
            hint="run the suite first; it writes allure results",
        )
    store.restore_allure_history(layout.allure_results)
    index = AllureCommandLine.from_cache().generate(layout.allure_results, layout.allure_report)
    store.keep_allure_history(layout.allure_report)
    return index


def print_summary(
    model: SignoffModel, previous: SignoffModel | None, layout: ResultsLayout
) -> None:
    print(f"{model.verdict.headline}: {'; '.join(model.verdict.reasons)}")
    if previous is None:
        print("trends: no earlier run to compare with")
    elif not model.regressions:
        print(f"trends: no regressions since run {previous.facts.run_id or '(unnamed)'}")
    for reg in model.regressions:
        print(
            f"regression: {reg.kind} {reg.subject} on {reg.target}: {reg.before} -> {reg.after} ({reg.detail})"
        )
    print(f"sign-off: {layout.signoff_html}")


def serve_forever(report_dir: Path, port: int) -> None:
    server = make_server(report_dir, port)
    print(
        f"serving the allure report at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def prepare() -> int:
    """Fetch and check the report tools now, so that a run never waits on npm."""
    allure = AllureCommandLine.from_cache().ensure()
    print(f"allure command line: {allure}")
    print(f"chromium: {HeadlessChromium.find().executable}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.prepare:
        return prepare()
    if args.serve and not args.open:
        raise UsageError("--serve needs --open", hint="harness report --open --serve")
    layout = ResultsLayout(args.results.absolute())
    current = load_current(layout)
    store = HistoryStore(args.history.absolute() if args.history else layout.history)
    previous = load_previous(args, store, current)
    regressions = find_regressions(previous, current) if previous is not None else []
    write_trends(layout, previous, regressions)
    index = build_allure_report(layout, store) if args.open else None
    model = replace(current, regressions=tuple(regressions), links=evidence_links(layout))
    write_signoff(layout, model, environ=None if args.step_summary else {})
    if args.history and not store.contains(model):
        store.record(model)
    print_summary(model, previous, layout)
    if index is not None:
        print(f"allure report: {index}")
    if args.screenshots:
        chromium = HeadlessChromium.find()
        shots = render_signoff(layout, chromium).screenshots
        if index is not None:
            shots |= render_allure(layout, chromium).screenshots
        for path in shots.values():
            print(f"screenshot: {os.path.relpath(path)}")
    if args.serve and index is not None:
        serve_forever(layout.allure_report, args.port)
    return 1 if args.fail_on_regression and regressions else 0
