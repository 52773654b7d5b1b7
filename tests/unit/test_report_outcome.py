"""Outcome classification, categories, allure extras, results-directory claiming and identity."""

from __future__ import annotations

import fcntl
import json
import re
from pathlib import Path

import pytest

from harness.errors import (
    BootTimeout,
    InfrastructureError,
    ProductDefect,
    RemoteTimeout,
    UsageError,
)
from harness.report.allure.extras import environment_entries, executor_info, render_properties
from harness.report.categories import CATEGORIES, categories_json, categorize, tagged
from harness.report.facts import HostFacts, ImageFacts, ReleaseFacts, RunFacts
from harness.report.identity import area_from_module, identify_nodeid
from harness.report.outcome import classify_exception, combine, worst
from harness.report.results_dir.layout import (
    LOCK_NAME,
    ResultsLayout,
    ResultsLock,
    clean_for_new_run,
)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (None, "passed"),
        (AssertionError("x"), "failed"),
        (ProductDefect("installer exited 1"), "failed"),
        (pytest.fail.Exception("explicit"), "failed"),
        (InfrastructureError("ssh"), "broken"),
        (BootTimeout("no ssh"), "broken"),
        (RemoteTimeout("stuck"), "broken"),
        (KeyError("harness bug"), "broken"),
        (pytest.skip.Exception("no release"), "skipped"),
    ],
)
def test_classify_exception(exc: BaseException | None, expected: str) -> None:
    assert classify_exception(exc) == expected


def test_combine_lets_setup_decide_and_teardown_only_spoil_a_pass() -> None:
    assert combine([("setup", "broken"), ("teardown", "failed")]) == "broken"
    assert combine([("setup", "passed"), ("call", "failed"), ("teardown", "broken")]) == "failed"
    assert combine([("setup", "passed"), ("call", "passed"), ("teardown", "broken")]) == "broken"
    assert combine([("setup", "skipped"), ("teardown", "passed")]) == "skipped"
    assert (
        worst(["passed", "failed", "skipped"]) == "failed"
        and worst(["failed", "broken"]) == "broken"
    )


@pytest.mark.parametrize(
    ("area", "status", "name"),
    [
        ("install", "failed", "Install defect"),
        ("determinism", "failed", "Determinism drift"),
        ("egress", "failed", "Egress attempt"),
        ("static", "failed", "Static finding"),
        ("server", "failed", "Server defect"),
        ("install", "broken", "Infrastructure broken"),
        ("anything", "broken", "Infrastructure broken"),
    ],
)
def test_each_area_tag_lands_in_exactly_one_category(area: str, status: str, name: str) -> None:
    message = tagged(area, "harness.errors.ProductDefect: line one\nhint: line two")
    matching = [c.name for c in CATEGORIES if c.matches(status, message)]
    assert matching == [name]


def test_a_failure_outside_the_named_areas_still_has_exactly_one_category() -> None:
    for message in ("AssertionError: x", tagged("macos", "Gatekeeper refused\nthe launcher")):
        matching = [c.name for c in CATEGORIES if c.matches("failed", message)]
        assert matching == ["Other product defect"]
    assert categorize("passed", "x") is None
    assert tagged("install", tagged("install", "m")) == "[install] m"


def test_categories_json_is_what_allure_reads() -> None:
    data = categories_json()
    assert [c["name"] for c in data][:5] == [
        "Install defect",
        "Changed since approved",  # before drift: allure files a result under the first match
        "Determinism drift",
        "Egress attempt",
        "Static finding",
    ]
    for category in data:
        assert set(category) == {"name", "description", "matchedStatuses", "messageRegex"}
        re.compile(category["messageRegex"])


def facts(images: tuple[ImageFacts, ...]) -> RunFacts:
    return RunFacts(
        release=ReleaseFacts("ref.tar.gz", "1.0", "ab" * 32, "reference"),
        images=images,
        host=HostFacts("Debian 12", "3.11", "0.1.0", "abc+dirty"),
        run_id="r1",
    )


def test_environment_properties_escape_what_java_properties_would_misread() -> None:
    entries = environment_entries(facts((ImageFacts("linux-debian12", "debian12", "sha256:12"),)))
    assert entries["image.id"] == "debian12" and entries["image.digest"] == "sha256:12"
    text = render_properties({"a key": "x=y:z", "k": " lead\\back\nline", "u": "naïve ☃"})
    assert text == "a\\ key=x\\=y\\:z\nk=\\ lead\\\\back\\nline\nu=na\\u00efve \\u2603\n"


def test_several_images_get_a_key_pair_each() -> None:
    entries = environment_entries(
        facts((ImageFacts("a", "a-img", "d1"), ImageFacts("b", "b-img", "")))
    )
    assert entries["image.a.id"] == "a-img" and entries["image.b.digest"] == "unknown"


def test_executor_on_github_actions_links_the_run() -> None:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_RUN_ID": "99",
        "GITHUB_RUN_NUMBER": "7",
        "GITHUB_WORKFLOW": "nightly",
    }
    info = executor_info(facts(()), 3, env)
    assert info["buildUrl"] == "https://github.com/o/r/actions/runs/99" and info["buildOrder"] == 7
    assert executor_info(facts(()), 3, {})["buildOrder"] == 3
    json.dumps(info)


def test_cleaning_keeps_history_and_the_lock(tmp_path: Path) -> None:
    layout = ResultsLayout(tmp_path / "results")
    for rel in (
        "allure-results/x.json",
        "journal/main.jsonl",
        "history/runs/1.json",
        "junit.xml",
        LOCK_NAME,
    ):
        (layout.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (layout.root / rel).write_text("x", encoding="utf-8")
    removed = {p.name for p in clean_for_new_run(layout)}
    assert removed == {"allure-results", "journal", "junit.xml"}
    assert sorted(p.name for p in layout.root.iterdir()) == [LOCK_NAME, "history"]


def test_a_second_run_on_the_same_results_dir_is_refused_with_a_hint(tmp_path: Path) -> None:
    layout = ResultsLayout(tmp_path / "results")
    first = ResultsLock(layout)
    first.acquire()
    try:
        with pytest.raises(UsageError) as caught:
            ResultsLock(layout).acquire()
        assert "in use by another run" in str(caught.value) and "--results-dir" in caught.value.hint
    finally:
        first.release()
    with (layout.root / LOCK_NAME).open("a") as handle:  # released: anyone may take it now
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_identity_from_module_names_and_node_ids() -> None:
    assert (
        area_from_module("test_goldens") == "determinism"
        and area_from_module("test_install") == "install"
    )
    crashed = identify_nodeid(
        "tests/portability/test_egress.py::test_offline_install[linux-debian12]"
    )
    assert (crashed.check, crashed.area) == ("offline_install", "egress")
