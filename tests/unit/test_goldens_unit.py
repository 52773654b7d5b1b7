"""Golden files: recorded, merged, compared with a readable diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.completions import Completion, CompletionRequest, Usage
from harness.goldens import GoldenEntry, GoldenMissing, compare, golden_path, load_goldens, record
from harness.profile import Message


def answer(text: str, tokens: int = 5) -> Completion:
    request = CompletionRequest((Message("user", "hi"),), 32, 0.0)
    return Completion(text, "stop", Usage(3, tokens, 3 + tokens), None, 0, (), request, 0.1)


def test_record_merge_and_compare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_STATE", str(tmp_path / "state"))
    path = golden_path(tmp_path / "goldens", "reference", "linux-x86_64")
    record(path, "reference", "linux-x86_64", "refapp-0.1.0", {"a": GoldenEntry.of(answer("the cat sat"))}, {"temperature": 0})
    record(path, "reference", "linux-x86_64", "refapp-0.1.0", {"b": GoldenEntry.of(answer("on the mat"))}, {"temperature": 0})
    doc = json.loads(path.read_text())
    assert sorted(doc["prompts"]) == ["a", "b"] and doc["platform"] == "linux-x86_64"
    goldens = load_goldens(path)
    assert compare(goldens, "a", answer("the cat sat"), path) == []
    problems = compare(goldens, "a", answer("the dog sat on it", 6), path)
    assert "text differs from character 4" in problems[0]
    assert "\n-cat\n+dog\n" in problems[0]  # a word-level unified diff
    assert problems[1] == "prompt 'a': 6 tokens, golden has 5"
    assert not list(path.parent.glob("*.lock")), "locks belong in the state dir, not beside the goldens"


def test_missing_goldens_say_how_to_record(tmp_path: Path) -> None:
    with pytest.raises(GoldenMissing) as err:
        load_goldens(tmp_path / "none.json")
    assert "--update-goldens" in err.value.hint
    with pytest.raises(GoldenMissing, match="no entry for prompt 'x'"):
        compare({}, "x", answer("t"), tmp_path / "g.json")
