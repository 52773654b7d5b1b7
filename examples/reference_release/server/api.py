"""The HTTP API: /ping, /health, /v1/models and /v1/chat/completions (JSON or SSE)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from . import __version__
from .chat import render_prompt
from .generation import Generation
from .model import CharMLP
from .modelfile import ModelDefinition
from .sampling import SamplingParams
from .schemas import ChatCompletionRequest
from .tokenizer import CharTokenizer

DEFAULT_MAX_TOKENS = 128


@dataclass(frozen=True)
class ServedModel:
    definition: ModelDefinition
    model: CharMLP
    tokenizer: CharTokenizer
    loaded_at: float

    @property
    def fingerprint(self) -> str:
        return f"refapp-{__version__}-{self.model.digest[:12]}"

    def sampling_params(self, request: ChatCompletionRequest) -> SamplingParams:
        temperature = request.temperature
        if temperature is None:
            temperature = self.definition.parameter("temperature", 0.7)
        top_k = request.top_k if request.top_k is not None else int(self.definition.parameter("top_k", 0))
        top_p = request.top_p if request.top_p is not None else self.definition.parameter("top_p", 1.0)
        return SamplingParams(temperature=temperature, top_k=top_k or None, top_p=top_p, seed=request.seed)


def error_response(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind, "code": code}})


def create_app(served: ServedModel) -> FastAPI:
    app = FastAPI(title="refapp", version=__version__)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return error_response(400, f"invalid request: {details}", "invalid_request_error")

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"message": "refapp server is running"}

    @app.get("/health")
    def health() -> dict[str, object]:
        return {
            "status": "ok",
            "model": served.definition.name,
            "version": __version__,
            "uptime_s": round(time.monotonic() - served.loaded_at, 3),
        }

    @app.get("/v1/models")
    def models() -> dict[str, object]:
        entry = {"id": served.definition.name, "object": "model", "created": 0, "owned_by": "refapp"}
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions", response_model=None)
    def chat_completions(request: ChatCompletionRequest) -> JSONResponse | StreamingResponse:
        if request.model not in (None, "", served.definition.name):
            return error_response(
                404, f"model {request.model!r} is not served here; try {served.definition.name!r}",
                "invalid_request_error", "model_not_found",
            )
        generation = Generation(
            model=served.model,
            tokenizer=served.tokenizer,
            prompt=render_prompt((m.role, m.text()) for m in request.messages),
            params=served.sampling_params(request),
            max_tokens=request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS,
            stop=request.stop_sequences(),
        )
        if request.stream:
            return StreamingResponse(stream_chunks(served, generation), media_type="text/event-stream")
        return JSONResponse(complete(served, generation))

    return app


def envelope(served: ServedModel, completion_id: str, created: int, kind: str) -> dict[str, object]:
    return {
        "id": completion_id,
        "object": kind,
        "created": created,
        "model": served.definition.name,
        "system_fingerprint": served.fingerprint,
    }


def usage(generation: Generation) -> dict[str, int]:
    prompt = generation.prompt_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": prompt + generation.completion_tokens,
    }


def complete(served: ServedModel, generation: Generation) -> dict[str, object]:
    text = generation.run()
    body = envelope(served, f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), "chat.completion")
    body["choices"] = [{
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": generation.finish_reason,
    }]
    body["usage"] = usage(generation)
    return body


def sse(payload: object) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def stream_chunks(served: ServedModel, generation: Generation) -> Iterator[str]:
    started = time.perf_counter()
    head = envelope(served, f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), "chat.completion.chunk")

    def chunk(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, object]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    yield sse(chunk({"role": "assistant", "content": ""}))
    first_token_at: float | None = None
    for piece in generation:
        if first_token_at is None:
            first_token_at = time.perf_counter()
        yield sse(chunk({"content": piece}))
    elapsed = time.perf_counter() - started
    tokens = generation.completion_tokens
    last = chunk({}, generation.finish_reason)
    last["usage"] = usage(generation)
    last["metrics"] = {
        "ttft_ms": round(((first_token_at or time.perf_counter()) - started) * 1000.0, 3),
        "total_tokens": tokens,
        "tokens_per_second": round(tokens / elapsed, 3) if elapsed > 0 else 0.0,
        "total_latency_s": round(elapsed, 6),
    }
    yield sse(last)
    yield "data: [DONE]\n\n"
