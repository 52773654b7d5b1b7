"""Serve a generated report on loopback: allure's page loads its data with requests that browsers
refuse over ``file://``, so it must come from an HTTP server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_server(directory: Path, port: int = 0) -> ThreadingHTTPServer:
    handler = partial(_QuietHandler, directory=str(directory))
    return ThreadingHTTPServer((LOOPBACK, port), handler)


@contextmanager
def serving(directory: Path, port: int = 0) -> Iterator[str]:
    """Serve ``directory`` in a background thread; yields the base URL; stops on exit."""
    server = make_server(directory, port)
    thread = threading.Thread(target=server.serve_forever, name="report-http", daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
