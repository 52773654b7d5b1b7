"""The sign-off model built from journals constructed here: verdict, matrix, timings, digests."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from harness.journal import CheckRecord, DigestRecord, GenericRecord, Journal, PhaseRecord, Record
from harness.report.junit import JUnitCase, read_cases, reconcile
from harness.report.signoff.assemble import build_model
from harness.report.signoff.model import SignoffModel

IMAGES = ("linux-debian12", "linux-ubuntu24", "macos-14", "macos-15")


def records(*items: Record) -> list[dict[str, Any]]:
    return [asdict(item) for item in items]


def meta() -> list[Record]:
    return [
        GenericRecord(
            "meta",
            {
                "release": {
                    "tarball": "ref-v1.0.0-x86_64-linux.tar.gz",
                    "version": "1.0.0",
                    "sha256": "ab" * 32,
                },
                "profile": "reference",
            },
        ),
        GenericRecord(
            "run",
            {
                "run_id": "r1",
                "started_at": 100.0,
                "os": "Debian 12",
                "python": "3.11",
                "harness_version": "0.1.0",
                "git_revision": "abc",
            },
        ),
        GenericRecord("run_end", {"finished_at": 160.0, "exitstatus": 0}),
    ]


def passing_run(images: tuple[str, ...] = IMAGES[:1]) -> list[Record]:
    items: list[Record] = meta()
    for image in images:
        items += [
            PhaseRecord(image, "boot", 30.0),
            PhaseRecord(image, "install", 4.0),
            CheckRecord(
                image, "install_offline", "passed", area="install", nodeid=f"t::a[{image}]"
            ),
            CheckRecord(
                image, "determinism_repeat", "passed", area="determinism", nodeid=f"t::b[{image}]"
            ),
            DigestRecord(image, "hello", "1" * 64),
            GenericRecord(
                "footprint", {"source": "installed", "layers": {"runtime": 1000, "app": 10}}, image
            ),
        ]
    return items


def test_all_passed_means_ship() -> None:
    model = build_model(records(*passing_run()))
    assert model.verdict.ship and model.verdict.headline == "SHIP"
    assert model.verdict.reasons == ("all 2 checks passed",)
    assert model.facts.release.version == "1.0.0" and model.facts.duration_s == 60.0


def test_failed_check_blocks_and_is_named_in_the_verdict() -> None:
    items = passing_run() + [
        CheckRecord(
            "linux-debian12", "egress_none", "failed", "tried pypi.invalid:443", area="egress"
        )
    ]
    model = build_model(records(*items))
    assert not model.verdict.ship
    assert "egress_none on linux-debian12" in model.verdict.reasons[0]
    [bad] = model.problems_first()
    assert bad.category == "Egress attempt" and bad.message == "tried pypi.invalid:443"


def test_broken_check_blocks_but_says_rerun() -> None:
    items = passing_run() + [
        CheckRecord("linux-debian12", "boot", "broken", "BootTimeout", area="infrastructure")
    ]
    model = build_model(records(*items))
    assert not model.verdict.ship
    assert any("rerun" in reason for reason in model.verdict.reasons)
    assert model.problems_first()[0].category == "Infrastructure broken"


@pytest.mark.parametrize("outcome", ["skipped"])
def test_nothing_passed_is_not_a_ship(outcome: str) -> None:
    items = meta() + [CheckRecord("linux-debian12", "install_offline", outcome)]  # type: ignore[arg-type]
    model = build_model(records(*items))
    assert not model.verdict.ship
    assert "nothing was verified" in model.verdict.reasons[-1]


def test_interrupted_run_is_not_a_ship() -> None:
    items = passing_run() + [GenericRecord("run_end", {"finished_at": 170.0, "exitstatus": 2})]
    assert "interrupted" in " ".join(build_model(records(*items)).verdict.reasons)


def test_duplicate_records_for_one_check_keep_the_worst() -> None:
    items = passing_run() + [
        CheckRecord(
            "linux-debian12",
            "install_offline",
            "failed",
            "exit 1",
            area="install",
            evidence=("evidence/x/installer.txt",),
        )
    ]
    model = build_model(records(*items))
    cell = model.cell("linux-debian12", "install_offline")
    assert (
        cell is not None
        and cell.outcome == "failed"
        and cell.evidence == ("evidence/x/installer.txt",)
    )
    assert len([c for c in model.checks if c.check == "install_offline"]) == 1


def test_evidence_records_attach_to_their_check_by_node_id() -> None:
    items = passing_run() + [
        GenericRecord(
            "evidence",
            {
                "name": "server log",
                "path": "evidence/l/server.log",
                "nodeid": "t::a[linux-debian12]",
            },
            "linux-debian12",
        )
    ]
    cell = build_model(records(*items)).cell("linux-debian12", "install_offline")
    assert cell is not None and cell.evidence == ("evidence/l/server.log",)


def test_matrix_rows_follow_the_pipeline_and_cover_four_images() -> None:
    model = build_model(records(*passing_run(IMAGES)))
    assert model.targets == tuple(sorted(IMAGES))
    assert [area for area, _ in model.check_rows()] == ["install", "determinism"]
    assert all(model.cell(t, "install_offline") for t in IMAGES)


def test_phases_aggregate_per_target_with_counts() -> None:
    items = passing_run() + [PhaseRecord("linux-debian12", "boot", 40.0, ok=False)]
    model = build_model(records(*items))
    boot = model.phase("linux-debian12", "boot")
    assert boot is not None and (boot.count, boot.total_s, boot.mean_s, boot.max_s, boot.ok) == (
        2,
        70.0,
        35.0,
        40.0,
        False,
    )
    assert model.phase_names() == ["boot", "install"]


def test_two_digests_for_one_prompt_show_drift_within_the_run() -> None:
    items = passing_run() + [DigestRecord("linux-debian12", "hello", "2" * 64)]
    [digest] = build_model(records(*items)).digests
    assert not digest.stable and digest.sha256s == ("1" * 64, "2" * 64)


def test_junit_cases_the_journal_lost_become_checks_or_problems() -> None:
    lost = JUnitCase(
        "t",
        "test_x",
        "error",
        "worker crashed",
        {
            "harness.outcome": "broken",
            "harness.check": "x",
            "harness.target": "linux-debian12",
            "harness.nodeid": "t::x",
        },
    )
    collection = JUnitCase("tests.portability.test_bad", "", "error", "SyntaxError", {})
    known = JUnitCase(
        "t",
        "a",
        "passed",
        "",
        {"harness.outcome": "passed", "harness.nodeid": "t::a[linux-debian12]"},
    )
    model = build_model(records(*passing_run()), [lost, collection, known])
    assert model.cell("linux-debian12", "x") is not None
    assert len(model.checks) == 3
    assert model.problems == ("tests.portability.test_bad: SyntaxError",)
    assert not model.verdict.ship


def test_model_round_trips_through_json() -> None:
    model = build_model(records(*passing_run(IMAGES[:2])), links={"JUnit XML": "junit.xml"})
    again = SignoffModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model


def test_journal_files_of_several_writers_are_all_read(tmp_path: Path) -> None:
    from harness.journal import read_journal

    for writer, image in (("gw0", "a"), ("gw1", "b")):
        journal = Journal(tmp_path, writer_id=writer)
        journal.write(CheckRecord(image, "install_offline", "passed", area="install"))
    model = build_model(read_journal(tmp_path))
    assert model.targets == ("a", "b")


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="1"
skipped="0" tests="3"><testcase classname="t" name="a"><properties><property name="harness.outcome" value="broken"/>
</properties><failure message="BootTimeout">trace</failure></testcase><testcase classname="t" name="b"><properties>
<property name="harness.outcome" value="failed"/></properties><error message="ProductDefect">trace</error></testcase>
<testcase classname="t" name="c"><error message="collection">x</error></testcase></testsuite></testsuites>"""


def test_reconcile_renames_failure_and_error_after_the_harness_outcome(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT, encoding="utf-8")
    assert reconcile(path) == 2
    cases = {c.name: c.status for c in read_cases(path)}
    assert cases == {"a": "error", "b": "failure", "c": "error"}
    text = path.read_text(encoding="utf-8")
    assert 'errors="2"' in text and 'failures="1"' in text
    assert reconcile(path) == 0


def test_static_checks_sit_outside_the_image_matrix() -> None:
    items = passing_run() + [
        CheckRecord(
            "tarball", "static_area[elf]", "failed", "libfoo.so.1 not in the release", area="static"
        ),
        GenericRecord(
            "footprint",
            {
                "source": "static",
                "layers": [
                    {"name": "cpython3.11", "uncompressed_bytes": 5000, "compressed_bytes": 900},
                    {"name": "app-server", "uncompressed_bytes": 70, "compressed_bytes": 10},
                ],
            },
            "debian-12",
        ),
    ]
    model = build_model(records(*items))
    assert model.targets == ("linux-debian12",)
    assert [c.check for c in model.tarball_checks()] == ["static_area[elf]"]
    assert ("static", "static_area[elf]") not in model.check_rows()
    assert model.problems_first()[0].category == "Static finding"
    static = next(f for f in model.footprints if f.source == "static")
    assert static.layers == {"cpython3.11": 5000, "app-server": 70} and static.total == 5070


def test_phases_in_pipeline_order_with_twin_phases_after_and_no_second_total() -> None:
    names = [
        "total",
        "twin_boot",
        "complete",
        "boot",
        "twin_install",
        "serve",
        "install",
        "copy",
        "warmup",
    ]
    model = build_model(records(*[PhaseRecord("linux-debian12", n, 1.0) for n in names]))
    assert model.phase_names() == [
        "boot",
        "copy",
        "install",
        "serve",
        "complete",
        "warmup",
        "twin_boot",
        "twin_install",
    ]


def test_junit_keys_match_what_pytest_writes() -> None:
    from harness.report.signoff.assemble import junit_key

    assert junit_key("tests/portability/test_install.py::test_install_offline[linux-debian12]") == (
        "tests.portability.test_install::test_install_offline[linux-debian12]"
    )
    assert junit_key("tests/a/test_b.py::TestC::test_d[x/y]") == "tests.a.test_b.TestC::test_d[x/y]"


def test_a_crashed_test_known_to_the_journal_is_not_also_a_problem() -> None:
    crash = CheckRecord(
        "linux-debian12",
        "health",
        "broken",
        "worker crashed",
        area="server",
        nodeid="sample/test_server.py::test_health[linux-debian12]",
    )
    case = JUnitCase("sample.test_server", "test_health[linux-debian12]", "error", "crashed", {})
    model = build_model(records(*passing_run(), crash), [case])
    assert model.problems == ()


def test_tests_that_never_reported_block_the_release() -> None:
    lost = GenericRecord("unreported", {"nodeids": [f"t.py::test_{i}" for i in range(7)]})
    model = build_model(records(*passing_run(), lost))
    assert not model.verdict.ship
    [problem] = model.problems
    assert problem.startswith("7 collected tests never reported a result (a worker died or the run")
    assert problem.endswith("t.py::test_3, t.py::test_4 and 2 more")
