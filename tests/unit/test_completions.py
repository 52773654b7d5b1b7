"""Each API flavour, spoken over real HTTP to a loopback server with canned answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from httpx_sse import ServerSentEvent

from harness.completions import CompletionClient, CompletionError, parse_sse_events
from harness.determinism import all_same, counts_agree, differences, seeds_behave, usage_problems
from harness.errors import InfrastructureError
from harness.profile import Message, load_profile, select_profile

HELLO = (Message("user", "hello"),)


class Canned(BaseHTTPRequestHandler):
    """Answers like a chat server would; what it says is set per test through ``server.reply``."""

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        self.server.requests.append(body)  # type: ignore[attr-defined]
        status, content_type, payload = self.server.reply(body)  # type: ignore[attr-defined]
        data = payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    httpd.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def openai_body(text: str, tokens: int, finish: str = "length") -> str:
    return json.dumps({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens},
    })


def sse_body(pieces: list[str], last: dict[str, Any], done: bool = True) -> str:
    lines = [json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    lines += [json.dumps({"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}) for p in pieces]
    lines.append(json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}], **last}))
    out = "".join(f"data: {line}\n\n" for line in lines)
    return out + ("data: [DONE]\n\n" if done else "")


API = load_profile("reference").api
TILES_API = select_profile(load_profile("tiles"), "darwin", "0.4.3").api  # the 0.4.x-era server


def test_openai_non_stream(server: ThreadingHTTPServer) -> None:
    server.reply = lambda body: (200, "application/json", openai_body("hi there", 3))  # type: ignore[attr-defined]
    with CompletionClient(url(server), API) as client:
        c = client.complete(HELLO, max_tokens=3, temperature=0.0, seed=4, stream=False)
    assert c.text == "hi there" and c.completion_tokens == 3 and c.finish_reason == "length"
    sent = server.requests[0]  # type: ignore[attr-defined]
    assert sent["temperature"] == 0.0 and sent["seed"] == 4 and sent["stream"] is False
    assert sent["messages"] == [{"role": "user", "content": "hello"}] and sent["model"] == "refchar"
    assert usage_problems(c, "x") == []


def test_openai_sse_stream(server: ThreadingHTTPServer) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    body = sse_body(["hi", " ", "there"], {"usage": usage, "metrics": {"total_tokens": 3, "ttft_ms": 1.0}})
    server.reply = lambda _: (200, "text/event-stream", body)  # type: ignore[attr-defined]
    with CompletionClient(url(server), API) as client:
        c = client.complete(HELLO, max_tokens=3, temperature=0.0, stream=True)
    assert c.text == "hi there" and c.content_chunks == 3
    assert c.usage is not None and c.usage.total_tokens == 8
    assert c.metrics == {"total_tokens": 3, "ttft_ms": 1.0}
    assert c.first_token_s is not None and len(c.raw) == 5
    assert usage_problems(c, "stream") == []


def test_tiles_sse_sends_tiles_fields_and_reads_metrics(server: ThreadingHTTPServer) -> None:
    body = sse_body(["Paris"], {"metrics": {"ttft_ms": 3.0, "total_tokens": 1, "tokens_per_second": 9.0}})
    server.reply = lambda _: (200, "text/plain", body)  # type: ignore[attr-defined]
    with CompletionClient(url(server), TILES_API) as client:
        assert client.default_stream
        c = client.complete(HELLO, max_tokens=8, temperature=0.0)
    sent = server.requests[0]  # type: ignore[attr-defined]
    assert sent["stream"] is True and sent["chat_start"] is False and sent["python_code"] == ""
    assert c.text == "Paris" and c.usage is None and c.completion_tokens == 1
    with CompletionClient(url(server), TILES_API) as client, pytest.raises(ValueError, match="only streams"):
        client.complete(HELLO, max_tokens=8, temperature=0.0, stream=False)


def test_stream_without_done_is_a_defect(server: ThreadingHTTPServer) -> None:
    server.reply = lambda _: (200, "text/event-stream", sse_body(["a"], {}, done=False))  # type: ignore[attr-defined]
    with CompletionClient(url(server), API) as client, pytest.raises(CompletionError, match="without 'data: \\[DONE\\]'"):
        client.complete(HELLO, max_tokens=3, temperature=0.0, stream=True)


def test_a_last_event_never_closed_is_not_read(server: ThreadingHTTPServer) -> None:
    """The SSE rules: an event ends at a blank line, so a [DONE] the server cut off is not one."""
    cut = sse_body(["a"], {}, done=False) + "data: [DONE]"
    server.reply = lambda _: (200, "text/event-stream", cut)  # type: ignore[attr-defined]
    with CompletionClient(url(server), API) as client, pytest.raises(CompletionError, match="without 'data: \\[DONE\\]'"):
        client.complete(HELLO, max_tokens=3, temperature=0.0, stream=True)


def test_http_error_carries_body(server: ThreadingHTTPServer) -> None:
    server.reply = lambda _: (500, "application/json", '{"error": "model exploded"}')  # type: ignore[attr-defined]
    with CompletionClient(url(server), API) as client, pytest.raises(CompletionError) as err:
        client.complete(HELLO, max_tokens=3, temperature=0.0, stream=False)
    assert "HTTP 500" in str(err.value) and "model exploded" in err.value.detail


def test_malformed_json_reply(server: ThreadingHTTPServer) -> None:
    server.reply = lambda _: (200, "application/json", '{"choices": []}')  # type: ignore[attr-defined]
    with CompletionClient(url(server), API) as client, pytest.raises(CompletionError, match="not an OpenAI chat completion"):
        client.complete(HELLO, max_tokens=3, temperature=0.0, stream=False)


def test_connection_refused_is_reported() -> None:
    with CompletionClient("http://127.0.0.1:9", API) as client, pytest.raises(CompletionError, match="connection"):
        client.complete(HELLO, max_tokens=3, temperature=0.0, stream=False)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_refused_request_over_a_fallen_ssh_link_is_the_harness_s_trouble(stream: bool) -> None:
    """The port forward rides on SSH: with the link down, a refused connection is *broken*, not a
    product defect; with the link up, the same refusal is the server's."""
    with CompletionClient("http://127.0.0.1:9", API, link_alive=lambda: False) as client, \
            pytest.raises(InfrastructureError, match="lost the SSH connection that carries .*ConnectError"):
        client.complete(HELLO, max_tokens=3, temperature=0.0, stream=stream)
    with CompletionClient("http://127.0.0.1:9", API, link_alive=lambda: True) as client, \
            pytest.raises(CompletionError, match="the connection to .* failed"):
        client.complete(HELLO, max_tokens=3, temperature=0.0, stream=stream)


def test_non_json_chunk() -> None:
    with pytest.raises(CompletionError, match="not JSON"):
        parse_sse_events([ServerSentEvent(data="{oops"), ServerSentEvent(data="[DONE]")], None, 0.0)  # type: ignore[arg-type]


def _completion(text: str, tokens: int, seed: int | None = None, temperature: float = 0.0, stream: bool = False):
    from harness.completions import Completion, CompletionRequest, Usage

    request = CompletionRequest(HELLO, 8, temperature, seed, stream)
    return Completion(text, "length" if tokens == 8 else "stop", Usage(5, tokens, 5 + tokens), None,
                      tokens if stream else 0, (), request, 0.1)


def test_determinism_rules() -> None:
    a, b = _completion("the cat sat", 3), _completion("the cat sat", 3)
    assert differences(a, b) == [] and all_same([("1", a), ("2", b)]) == []
    c = _completion("the dog sat", 3)
    problems = all_same([("first", a), ("second", b), ("third", c)])
    assert len(problems) == 1 and "third vs first: text differs from character 4" in problems[0]
    assert differences(a, _completion("the cat sat", 4)) == ["completion token count 3 vs 4"]


def test_seed_rules() -> None:
    s7, s7b, s8 = _completion("abc", 3, 7, 0.9), _completion("abc", 3, 7, 0.9), _completion("xyz", 3, 8, 0.9)
    assert seeds_behave(s7, s7b, s8) == []
    ignored = seeds_behave(s7, s7b, _completion("abc", 3, 8, 0.9))
    assert ignored and "seeds 7 and 8 gave the same answer" in ignored[0]
    drift = seeds_behave(s7, _completion("abd", 3, 7, 0.9), s8)
    assert drift and drift[0].startswith("same seed 7, two requests")


def test_usage_rules() -> None:
    good = _completion("abcdefgh", 8)
    assert usage_problems(good, "g") == []
    bad = replace(good, usage=replace(good.usage, total_tokens=99))
    assert "does not add up" in usage_problems(bad, "b")[0]
    over = _completion("x" * 9, 9)
    assert any("more than max_tokens=8" in p for p in usage_problems(over, "o"))
    nothing = replace(good, usage=None)
    assert "no token count" in usage_problems(nothing, "n")[0]
    assert counts_agree(good, replace(good, usage=replace(good.usage, completion_tokens=7)), "json", "sse")


def test_stream_framed_by_the_sse_rules(server: ThreadingHTTPServer) -> None:
    """Comments, event:/id:/retry: fields, CRLF line ends and one chunk spread over two data: lines
    of one event, as the SSE rules allow: the same text as a plain stream."""
    hello = json.dumps({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]})
    last = json.dumps({"choices": [{"index": 0, "delta": {"content": "!"}, "finish_reason": "stop"}]}, indent=1)
    body = (": keep-alive\r\n\r\nretry: 500\r\n\r\n"
            f"event: chunk\r\nid: 1\r\ndata: {hello}\r\n\r\n"
            + "".join(f"data: {line}\r\n" for line in last.splitlines()) + "\r\n"
            "data: [DONE]\r\n\r\n")
    server.reply = lambda _: (200, "text/event-stream", body)  # type: ignore[attr-defined]
    with CompletionClient(url(server), API) as client:
        c = client.complete(HELLO, max_tokens=3, temperature=0.0, stream=True)
    assert (c.text, c.content_chunks, c.finish_reason, len(c.raw)) == ("hi!", 2, "stop", 2)


def test_non_json_chunk_over_http(server: ThreadingHTTPServer) -> None:
    server.reply = lambda _: (200, "text/event-stream", "data: {oops\n\ndata: [DONE]\n\n")  # type: ignore[attr-defined]
    with CompletionClient(url(server), API) as client, pytest.raises(CompletionError, match="not JSON") as err:
        client.complete(HELLO, max_tokens=3, temperature=0.0, stream=True)
    assert err.value.detail == "{oops"
