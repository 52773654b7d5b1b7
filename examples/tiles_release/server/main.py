"""STAND-IN for Tiles' server (server/main.py), for the harness's own tests.

`python -m server.main` with cwd <lib>, as the Tiles CLI starts it: uvicorn on 127.0.0.1:6969,
GET /ping, POST /start {model, memory_path, system_prompt, model_cache_path}, and
/v1/chat/completions in the API generation this build was made for (server/generation_choice.py):

- ``sse-era`` (0.4.x): chat_start and python_code required; only stream true is handled (else
  ``null`` with 200); text/plain ``data:`` lines, metrics on the last chunk, no usage.
- ``current``: chat_start/python_code optional; stream true -> text/event-stream OpenAI SSE,
  stream false -> a JSON chat completion; errors as {"error": {...}}.

The model is the reference release's character model; on Linux, as Tiles, it is loaded from a
model directory that must hold a GGUF file (here: the reference weights under a .gguf name).
"""

from __future__ import annotations

import sys
import time

HOST, PORT = "127.0.0.1", 6969


def main() -> int:
    import uvicorn

    from .tiles_api import create_app

    print(f"tiles server (stand-in) listening on http://{HOST}:{PORT}", flush=True)
    uvicorn.run(create_app(time.monotonic()), host=HOST, port=PORT, log_level="info", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
