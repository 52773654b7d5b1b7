"""The installed server, started through the launcher: endpoints, determinism, streaming, stop."""

from __future__ import annotations

import hashlib
import json

import psutil
from release_support import REPO, BuiltReleases, ReleaseHome, ServerClient, streamed_text

from harness.checks.shared import ask_all
from harness.completions import CompletionClient
from harness.goldens import golden_path, judge, load_goldens
from harness.profile import load_profile

PROMPT = "how do I install it?"


def test_ping_health_models(server: ServerClient) -> None:
    assert server.http.get("/ping").json() == {"message": "refapp server is running"}
    health = server.http.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "refchar"
    models = server.http.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["refchar"]


def test_temperature_zero_is_identical_and_openai_shaped(server: ServerClient) -> None:
    answers = [server.complete(PROMPT, temperature=0, max_tokens=32) for _ in range(3)]
    texts = {a["choices"][0]["message"]["content"] for a in answers}  # type: ignore[index]
    assert len(texts) == 1 and len(texts.pop()) == 32
    first = answers[0]
    assert first["object"] == "chat.completion"
    assert first["choices"][0]["finish_reason"] == "length"  # type: ignore[index]
    assert first["usage"]["completion_tokens"] == 32  # type: ignore[index]
    usage = first["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + 32  # type: ignore[index]


def test_the_model_answers_from_its_corpus(server: ServerClient) -> None:
    assert server.text(PROMPT, temperature=0).startswith("Run install.sh with --tarball")


def test_seeded_sampling_is_reproducible(server: ServerClient) -> None:
    prompt = "write a poem about cats"
    for seed in (7, 8):
        first, second = (server.text(prompt, temperature=0.9, seed=seed, max_tokens=32) for _ in range(2))
        assert first == second
    by_seed = {server.text(prompt, temperature=1.2, seed=s, max_tokens=32) for s in range(6)}
    assert len(by_seed) > 1, "different seeds should explore different text"


def test_stream_ends_with_done_and_metrics_and_matches(server: ServerClient) -> None:
    payloads = server.stream(PROMPT, temperature=0, max_tokens=32, chat_start=True, python_code="")
    assert payloads[-1] == "[DONE]"
    last = json.loads(payloads[-2])
    assert last["object"] == "chat.completion.chunk"
    assert last["choices"][0]["finish_reason"] == "length"
    assert set(last["metrics"]) == {"ttft_ms", "total_tokens", "tokens_per_second", "total_latency_s"}
    assert last["metrics"]["total_tokens"] == 32
    assert streamed_text(payloads) == server.text(PROMPT, temperature=0, max_tokens=32)


def test_stop_sequences_and_max_tokens(server: ServerClient) -> None:
    full = server.text(PROMPT, temperature=0, max_tokens=60)
    answer = server.complete(PROMPT, temperature=0, max_tokens=60, stop=["tarball"])
    text = answer["choices"][0]["message"]["content"]  # type: ignore[index]
    assert text == full[: full.index("tarball")]
    assert answer["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]
    streamed = streamed_text(server.stream(PROMPT, temperature=0, max_tokens=60, stop=["tarball"]))
    assert streamed == text
    assert len(server.text(PROMPT, temperature=0, max_tokens=5)) == 5


def test_end_of_turn_finishes_with_stop(server: ServerClient) -> None:
    answer = server.complete("hello", temperature=0, max_tokens=500)
    assert answer["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]


def test_bad_requests_get_openai_errors(server: ServerClient) -> None:
    unknown = server.http.post("/v1/chat/completions", json={"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    invalid = server.http.post("/v1/chat/completions", json={"messages": [], "temperature": -1})
    assert invalid.status_code == 400 and "invalid request" in invalid.json()["error"]["message"]


def test_server_binds_loopback_only(server: ServerClient, installed: ReleaseHome) -> None:
    pid = installed.server_pid()
    assert pid is not None
    listening = [c.laddr for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert [(a.ip, a.port) for a in listening] == [("127.0.0.1", server.http.base_url.port)]


def test_answers_on_this_host_equal_the_goldens_recorded_in_a_vm(server: ServerClient, built: BuiltReleases) -> None:
    """Inference is CPU-independent: this host's CPU answers exactly what the emulated guest's did
    when the reference goldens were recorded (same build), prompt by prompt."""
    golden = load_goldens(golden_path(REPO / "harness" / "profiles" / "goldens", "reference", "linux-x86_64"))
    built_sha = hashlib.sha256(built.tarball().read_bytes()).hexdigest()
    assert golden.provenance is not None and golden.provenance.release_sha256 == built_sha, (
        "the goldens describe another build (test_reference_goldens_describe_this_build says more)")
    profile = load_profile("reference")
    with CompletionClient(str(server.http.base_url).rstrip("/"), profile.api) as client:
        answers = [(prompt.id, completion) for prompt, completion in ask_all(client, profile)]
    verdict = judge(golden, answers, golden.provenance, rerecord="")
    assert verdict.ok, verdict.message()
