"""Golden files: recorded with the build they describe, merged, compared with a readable diff,
and a difference judged by whether this is the approved build or another one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.checks.goldens import GoldensChanged, GoldensDrift, raise_for
from harness.completions import Completion, CompletionRequest, Usage
from harness.goldens import (
    GoldenEntry,
    GoldenFile,
    GoldenMissing,
    Judgement,
    Provenance,
    compare,
    golden_path,
    judge,
    load_goldens,
    record,
)
from harness.profile import Message
from harness.report.categories import CHANGED_SINCE_APPROVED, categorize, tagged
from harness.report.signoff.assemble import build_model

APPROVED = Provenance("refapp-0.1.0", "5b7e" + "0" * 60, "fp-approved", "linux-debian12", "abc123")
REBUILT = Provenance("refapp-0.1.0", "9c1d" + "1" * 60, "fp-rebuilt", "linux-debian12", "abc123")
RERECORD = "harness run --release r.tar.gz --image linux-debian12 --update-goldens"


def answer(text: str, tokens: int = 5) -> Completion:
    request = CompletionRequest((Message("user", "hi"),), 32, 0.0)
    return Completion(text, "stop", Usage(3, tokens, 3 + tokens), None, 0, (), request, 0.1)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_STATE", str(tmp_path / "state"))
    return tmp_path


def recorded(state: Path, provenance: Provenance = APPROVED, **texts: str) -> GoldenFile:
    path = golden_path(state / "goldens", "reference", "linux-x86_64")
    record(path, "reference", "linux-x86_64", provenance,
           {k: GoldenEntry.of(answer(v)) for k, v in texts.items()}, {"temperature": 0})
    return load_goldens(path)


def test_record_merge_and_compare(state: Path) -> None:
    recorded(state, a="the cat sat")
    golden = recorded(state, b="on the mat")
    doc = json.loads(golden.path.read_text())
    assert sorted(doc["prompts"]) == ["a", "b"] and doc["platform"] == "linux-x86_64"
    assert compare(golden.entries, "a", answer("the cat sat"), golden.path) == []
    problems = compare(golden.entries, "a", answer("the dog sat on it", 6), golden.path)
    assert "text differs from character 4" in problems[0]
    assert "\n-cat\n+dog\n" in problems[0]  # a word-level unified diff
    assert problems[1] == "prompt 'a': 6 tokens, golden has 5"
    assert not list(golden.path.parent.glob("*.lock")), "locks belong in the state dir, not beside the goldens"


def test_a_golden_file_says_which_build_it_describes(state: Path) -> None:
    golden = recorded(state, a="the cat sat")
    doc = json.loads(golden.path.read_text())
    assert doc["format"] == 2
    seen = doc["recorded_from"]
    assert seen["release_sha256"] == APPROVED.release_sha256 and seen["system_fingerprint"] == "fp-approved"
    assert seen["image"] == "linux-debian12" and seen["image_digest"] == "abc123"
    assert seen["harness_version"] and seen["recorded_at"].endswith("Z")
    assert golden.provenance is not None and golden.provenance.same_build(APPROVED)


def test_recording_another_build_starts_a_fresh_file(state: Path) -> None:
    recorded(state, a="old answer", b="old other")
    golden = recorded(state, REBUILT, a="new answer")
    assert sorted(golden.entries) == ["a"], "entries of another build must not survive a re-record"
    assert golden.provenance is not None and golden.provenance.same_build(REBUILT)


def test_same_build_answering_differently_is_drift(state: Path) -> None:
    golden = recorded(state, a="the cat sat", b="on the mat")
    verdict = judge(golden, [("a", answer("the cat sat")), ("b", answer("on a hat"))], APPROVED, RERECORD)
    assert verdict.judgement is Judgement.DRIFT and (verdict.changed, verdict.total) == (1, 2)
    assert verdict.headline.startswith(f"answers differ from the goldens in {golden.path} (1 of 2)")
    assert "the same build 5b7e00000000" in verdict.headline
    assert RERECORD not in verdict.message(), "drift of the approved build is not fixed by re-recording"
    with pytest.raises(GoldensDrift):
        raise_for(verdict, "fail")
    with pytest.raises(GoldensDrift):
        raise_for(verdict, "report")


def test_another_build_answering_differently_is_changed_since_approved(state: Path) -> None:
    golden = recorded(state, a="the cat sat", b="on the mat", c="same")
    answers = [("a", answer("the dog sat")), ("b", answer("on the mat")), ("c", answer("differs"))]
    verdict = judge(golden, answers, REBUILT, RERECORD)
    assert verdict.judgement is Judgement.CHANGED_SINCE_APPROVED
    first = verdict.message().splitlines()[0]
    assert first.startswith("goldens describe build 5b7e00000000 (refapp-0.1.0, recorded ")
    assert "on linux-debian12 (abc123), model fp-approved" in first
    assert first.endswith("this is build 9c1d11111111 (refapp-0.1.0): 2 of 3 answers changed since that build")
    assert verdict.message().splitlines()[-1] == f"re-record after review: {RERECORD}"
    assert any("-cat\n+dog" in p for p in verdict.problems), "the diff goes with it"
    with pytest.raises(GoldensChanged) as err:
        raise_for(verdict, "fail")
    assert raise_for(verdict, "report") == verdict.message()
    category = categorize("failed", tagged("determinism", f"GoldensChanged: {err.value}"))
    assert category is not None and category.name == CHANGED_SINCE_APPROVED
    drift = categorize("failed", tagged("determinism", "GoldensDrift: answers differ from the goldens"))
    assert drift is not None and drift.name == "Determinism drift"


def test_another_build_with_the_same_answers_passes(state: Path) -> None:
    golden = recorded(state, a="the cat sat")
    verdict = judge(golden, [("a", answer("the cat sat"))], REBUILT, RERECORD)
    assert verdict.ok and raise_for(verdict, "fail") is None


def test_goldens_from_before_provenance_are_read_and_named_unknown(state: Path) -> None:
    path = state / "old.json"
    path.write_text(json.dumps({"format": 1, "recorded_with": "refapp-0.1.0",
                                "prompts": {"a": vars(GoldenEntry.of(answer("x")))}}))
    golden = load_goldens(path)
    assert golden.provenance is None
    verdict = judge(golden, [("a", answer("y"))], REBUILT, RERECORD)
    assert verdict.judgement is Judgement.DRIFT
    assert "a build the goldens do not name" in verdict.headline and RERECORD in verdict.message()


def test_sign_off_files_a_changed_build_apart_from_defects(state: Path) -> None:
    golden = recorded(state, a="the cat sat")
    verdict = judge(golden, [("a", answer("the dog sat"))], REBUILT, RERECORD)
    records = [{"kind": "check", "target": "linux-debian12", "check": "goldens_match", "area": "determinism",
                "outcome": "failed", "message": f"GoldensChanged: {verdict.message()}", "nodeid": "n1"},
               {"kind": "check", "target": "linux-debian12", "check": "install_offline", "area": "install",
                "outcome": "passed", "message": "", "nodeid": "n2"}]
    model = build_model(records)
    assert not model.verdict.ship
    assert model.verdict.reasons[0].startswith("answers changed since the approved build (goldens_match on linux-debian12)")
    assert not any("the release has a defect" in r for r in model.verdict.reasons)


def test_missing_goldens_say_how_to_record(tmp_path: Path) -> None:
    with pytest.raises(GoldenMissing) as err:
        load_goldens(tmp_path / "none.json")
    assert "--update-goldens" in err.value.hint
    with pytest.raises(GoldenMissing, match="no entry for prompt 'x'"):
        compare({}, "x", answer("t"), tmp_path / "g.json")
