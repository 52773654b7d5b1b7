"""STAND-IN for Tiles' server API (see main.py), built on the reference release's model code."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

from .api import ServedModel, complete, error_response, sse, stream_chunks
from .chat import render_prompt
from .generation import Generation
from .generation_choice import API_GENERATION
from .modelfile import ModelNotFound, load_model, parse_modelfile
from .schemas import ChatCompletionRequest
from .tokenizer import CharTokenizer

DEFAULT_MAX_TOKENS = 128


class State:
    def __init__(self) -> None:
        self.served: ServedModel | None = None
        self.name = ""


def load_from_cache(model: str, cache: str) -> ServedModel:
    directory = Path(cache)
    ggufs = sorted(directory.glob("*.gguf")) if directory.is_dir() else []
    modelfile = directory / "Modelfile"
    if not ggufs or not modelfile.is_file():
        raise ModelNotFound(f"model {model} not found in cache {cache}")
    definition = parse_modelfile(model, modelfile)
    return ServedModel(definition, load_model(definition), CharTokenizer(), time.monotonic())


def create_app(started: float) -> FastAPI:
    app = FastAPI(title="tiles (stand-in)")
    state = State()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"message": "tiles server (stand-in) is up"}

    @app.post("/start")
    def start(body: dict[str, Any] = Body(...)) -> JSONResponse:
        missing = [k for k in ("model", "model_cache_path") if not isinstance(body.get(k), str) or not body[k]]
        if missing:
            return error_response(400, f"missing {', '.join(missing)}", "invalid_request_error")
        try:
            state.served = load_from_cache(body["model"], body["model_cache_path"])
        except ModelNotFound as exc:
            return error_response(404, str(exc), "not_found")
        state.name = body["model"]
        return JSONResponse({"status": "loaded", "model": state.name})

    @app.post("/v1/chat/completions", response_model=None)
    def chat(body: dict[str, Any] = Body(...)) -> Any:
        if API_GENERATION == "sse-era":
            absent = [k for k in ("chat_start", "python_code") if k not in body]
            if absent:
                return JSONResponse(status_code=422, content={"detail": f"field required: {', '.join(absent)}"})
        request = ChatCompletionRequest.model_validate({k: v for k, v in body.items() if k != "model"})
        if state.served is None:
            return error_response(503, "no model loaded: POST /start first", "server_error")
        served = state.served
        generation = Generation(
            model=served.model, tokenizer=served.tokenizer,
            prompt=render_prompt((m.role, m.text()) for m in request.messages),
            params=served.sampling_params(request),
            max_tokens=request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS,
            stop=request.stop_sequences(),
        )
        if API_GENERATION == "sse-era":
            if not request.stream:
                return JSONResponse(None)
            return StreamingResponse(sse_era_chunks(state.name, generation), media_type="text/plain")
        if request.stream:
            return StreamingResponse(stream_chunks(served, generation), media_type="text/event-stream")
        return JSONResponse(complete(served, generation))

    return app


def sse_era_chunks(model: str, generation: Generation) -> Iterator[str]:
    """0.4.x-era stream: chunk lines, the last with finish_reason and metrics, then [DONE]."""
    started = time.perf_counter()
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}
    first: float | None = None
    for piece in generation:
        first = first or time.perf_counter()
        yield sse({**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    elapsed = time.perf_counter() - started
    tokens = generation.completion_tokens
    yield sse({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": generation.finish_reason}],
               "metrics": {"ttft_ms": round(((first or time.perf_counter()) - started) * 1000, 3),
                           "total_tokens": tokens,
                           "tokens_per_second": round(tokens / elapsed, 3) if elapsed > 0 else 0.0,
                           "total_latency_s": round(elapsed, 6)}})
    yield "data: [DONE]\n\n"


