"""Asking a server for completions, in the API dialect its profile names.

Flavours:
- ``openai``: ``POST /v1/chat/completions`` answered with one JSON body (``choices[0].message``,
  ``usage``).
- ``openai-sse``: the same request with ``stream: true``; ``data: {chunk}`` lines ending in
  ``data: [DONE]``; text is the concatenation of ``choices[0].delta.content``; ``usage`` and/or
  ``metrics`` may ride on the last chunk.
- ``tiles-sse``: Tiles 0.4.x. Only streaming is handled, every request carries ``chat_start`` and
  ``python_code``, the reply is ``text/plain`` with SSE-style lines, and the last chunk carries
  ``metrics`` (``total_tokens`` ...), no ``usage``.

Every flavour yields the same :class:`Completion`, so determinism and golden checks never care
which dialect produced it. Streams are read by httpx-sse under the SSE rules: an event ends at a
blank line, its ``data:`` lines are joined, and a last event the server never closed is dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Self

import httpx
from httpx_sse import EventSource, ServerSentEvent

from harness.errors import InfrastructureError, ProductDefect
from harness.profile import ApiSpec, Message

TILES_REQUIRED_FIELDS: Mapping[str, Any] = {"chat_start": False, "python_code": ""}


class CompletionError(ProductDefect):
    """The server answered a completion request wrongly (status, shape or stream framing)."""


@dataclass(frozen=True)
class CompletionRequest:
    messages: tuple[Message, ...]
    max_tokens: int
    temperature: float
    seed: int | None = None
    stream: bool = False


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None

    @classmethod
    def from_json(cls, data: Any) -> Usage | None:
        if not isinstance(data, dict):
            return None
        return cls(*(data.get(k) if isinstance(data.get(k), int) else None
                     for k in ("prompt_tokens", "completion_tokens", "total_tokens")))


@dataclass(frozen=True)
class Completion:
    """One answer, whatever the flavour: the text plus everything needed to judge it."""

    text: str
    finish_reason: str | None
    usage: Usage | None
    metrics: Mapping[str, Any] | None  # Tiles-style stream metrics (ttft_ms, total_tokens ...)
    content_chunks: int  # stream chunks that carried text (0 for a non-streamed answer)
    raw: tuple[str, ...]  # the JSON body, or every event's data in a stream, verbatim
    request: CompletionRequest
    duration_s: float
    first_token_s: float | None = None
    system_fingerprint: str | None = None  # the server's model/build identity, where its API gives one

    @property
    def completion_tokens(self) -> int | None:
        """The server's own count of generated tokens, from ``usage`` or stream ``metrics``."""
        if self.usage and self.usage.completion_tokens is not None:
            return self.usage.completion_tokens
        if self.metrics and isinstance(self.metrics.get("completion_tokens"), int):
            return int(self.metrics["completion_tokens"])
        if self.metrics and isinstance(self.metrics.get("total_tokens"), int):
            return int(self.metrics["total_tokens"])
        return None

    def to_json(self) -> dict[str, Any]:
        """Evidence for reports: request and response, chunks included."""
        return {
            "request": asdict(self.request),
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": asdict(self.usage) if self.usage else None,
            "metrics": dict(self.metrics) if self.metrics else None,
            "content_chunks": self.content_chunks,
            "duration_s": round(self.duration_s, 4),
            "first_token_s": None if self.first_token_s is None else round(self.first_token_s, 4),
            "system_fingerprint": self.system_fingerprint,
            "raw": list(self.raw),
        }


def build_body(api: ApiSpec, request: CompletionRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": api.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "stream": request.stream,
    }
    if request.seed is not None:
        body["seed"] = request.seed
    if api.flavour == "tiles-sse":
        body.update(TILES_REQUIRED_FIELDS)
    body.update(api.extra)
    return body


def parse_json_reply(payload: str, request: CompletionRequest, duration_s: float) -> Completion:
    try:
        data = json.loads(payload)
        choice = data["choices"][0]
        text = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise CompletionError(
            f"the completion reply is not an OpenAI chat completion ({type(exc).__name__}: {exc})",
            hint="the body must hold choices[0].message.content; see the raw reply below",
            detail=payload[:2000],
        ) from None
    if not isinstance(text, str):
        raise CompletionError("choices[0].message.content is not a string", detail=payload[:2000])
    return Completion(
        text=text,
        finish_reason=choice.get("finish_reason"),
        usage=Usage.from_json(data.get("usage")),
        metrics=data.get("metrics") if isinstance(data.get("metrics"), dict) else None,
        content_chunks=0,
        raw=(payload,),
        request=request,
        duration_s=duration_s,
        system_fingerprint=_fingerprint(data),
    )


def _fingerprint(data: Mapping[str, Any]) -> str | None:
    value = data.get("system_fingerprint")
    return value if isinstance(value, str) and value else None


def parse_sse_events(events: Iterable[ServerSentEvent], request: CompletionRequest, duration_s: float,
                     first_token_s: float | None = None) -> Completion:
    """Fold a stream's events into one Completion; the stream must end with ``data: [DONE]``."""
    texts: list[str] = []
    raw: list[str] = []
    finish: str | None = None
    usage: Usage | None = None
    metrics: Mapping[str, Any] | None = None
    fingerprint: str | None = None
    done = False
    for event in events:
        payload = event.data.strip()
        if not payload:
            continue  # an event of only event:/id:/retry: fields carries no chunk
        if payload == "[DONE]":
            done = True
            break
        raw.append(payload)
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise CompletionError(
                "a stream chunk is not JSON", hint="every data: line except [DONE] must be one JSON object",
                detail=payload[:500],
            ) from None
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            piece = delta.get("content")
            if isinstance(piece, str) and piece:
                texts.append(piece)
            finish = choice.get("finish_reason") or finish
        usage = Usage.from_json(chunk.get("usage")) or usage
        fingerprint = _fingerprint(chunk) or fingerprint
        if isinstance(chunk.get("metrics"), dict):
            metrics = chunk["metrics"]
    if not done:
        raise CompletionError(
            "the stream ended without 'data: [DONE]'",
            hint="the server closed the stream early (crash or timeout); see the server log",
            detail="\n".join(raw[-5:]),
        )
    return Completion(
        text="".join(texts), finish_reason=finish, usage=usage, metrics=metrics,
        content_chunks=len(texts), raw=tuple(raw), request=request, duration_s=duration_s,
        first_token_s=first_token_s, system_fingerprint=fingerprint,
    )


class _AnyContentType(EventSource):
    """Tiles 0.4.x sends its events as ``text/plain``, which httpx-sse refuses: the profile's
    flavour, not the content type, says that a reply is a stream."""

    def _check_content_type(self) -> None:
        pass


class CompletionClient:
    """Completions from one server in one flavour; thread-safe (httpx.Client is)."""

    def __init__(self, base_url: str, api: ApiSpec, client: httpx.Client | None = None,
                 link_alive: Callable[[], bool] | None = None) -> None:
        self.api = api
        self.base_url = base_url.rstrip("/")
        self._http = client or httpx.Client(timeout=httpx.Timeout(api.timeout_s, connect=10.0), trust_env=False)
        # Whether the link to the server (the SSH connection its port forward rides on) still
        # stands: when it fell, a refused or cut request says nothing about the release.
        self._link_alive = link_alive or (lambda: True)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def default_stream(self) -> bool:
        return not self.api.supports_non_stream

    def complete(self, messages: Sequence[Message], *, max_tokens: int, temperature: float,
                 seed: int | None = None, stream: bool | None = None) -> Completion:
        stream = self.default_stream if stream is None else stream
        if stream and not self.api.supports_stream:
            raise ValueError(f"profile flavour {self.api.flavour} does not stream")
        if not stream and not self.api.supports_non_stream:
            raise ValueError(f"profile flavour {self.api.flavour} only streams")
        request = CompletionRequest(tuple(messages), max_tokens, temperature, seed, stream)
        body = build_body(self.api, request)
        url = f"{self.base_url}{self.api.path}"
        started = time.monotonic()
        try:
            if not stream:
                reply = self._http.post(url, json=body)
                _raise_for_status(reply.status_code, reply.text, url)
                return parse_json_reply(reply.text, request, time.monotonic() - started)
            return self._stream(url, body, request, started)
        except httpx.TimeoutException as exc:
            self._raise_if_link_lost(url, exc)
            raise CompletionError(
                f"no complete answer from {url} within {self.api.timeout_s:.0f} s ({type(exc).__name__})",
                hint="the server hangs or is far too slow; see the server log",
            ) from None
        except httpx.TransportError as exc:
            self._raise_if_link_lost(url, exc)
            raise CompletionError(
                f"the connection to {url} failed: {type(exc).__name__}: {exc}",
                hint="the server probably died while answering; see the server log",
            ) from None

    def _raise_if_link_lost(self, url: str, exc: httpx.TransportError) -> None:
        if not self._link_alive():
            raise InfrastructureError(
                f"lost the SSH connection that carries {url} while waiting for its answer "
                f"({type(exc).__name__}); the server's answer is unknown",
                hint="the VM or its sshd went away: rerun before deciding; see the VM's console and command log",
            ) from None

    def _stream(self, url: str, body: dict[str, Any], request: CompletionRequest, started: float) -> Completion:
        events: list[ServerSentEvent] = []
        first: float | None = None
        with self._http.stream("POST", url, json=body) as reply:
            if reply.status_code >= 400:
                reply.read()
                _raise_for_status(reply.status_code, reply.text, url)
            for event in _AnyContentType(reply).iter_sse():
                if first is None and event.data:
                    first = time.monotonic() - started
                events.append(event)
        return parse_sse_events(events, request, time.monotonic() - started, first)


def _raise_for_status(status: int, text: str, url: str) -> None:
    if status >= 400:
        raise CompletionError(
            f"{url} answered HTTP {status}",
            hint="the server rejected or failed the request; the reply body and server log say why",
            detail=text[:2000],
        )
