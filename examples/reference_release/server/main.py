"""Entry point: `python -m server.main [--port N]`, started by the refapp launcher with cwd <lib>."""

from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULT_PORT = 6969
DEFAULT_HOST = "127.0.0.1"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m server.main", description="refapp inference server")
    parser.add_argument("--port", type=int, default=int(os.environ.get("REFAPP_PORT", DEFAULT_PORT)),
                        help="TCP port (env REFAPP_PORT, default %(default)s)")
    parser.add_argument("--host", default=os.environ.get("REFAPP_HOST", DEFAULT_HOST),
                        help="bind address (env REFAPP_HOST, default %(default)s)")
    parser.add_argument("--model", default=os.environ.get("REFAPP_MODEL", "refchar"),
                        help="model name under modelfiles/ (env REFAPP_MODEL)")
    parser.add_argument("--modelfiles", default=None,
                        help="directory holding <model>/Modelfile (env REFAPP_MODELFILES)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    # Imported here so that `--help` and argument errors answer without loading numpy.
    import uvicorn

    from .api import ServedModel, create_app
    from .modelfile import ModelNotFound, find_model, load_model
    from .tokenizer import CharTokenizer

    try:
        definition = find_model(args.model, args.modelfiles)
        served = ServedModel(definition, load_model(definition), CharTokenizer(), time.monotonic())
    except ModelNotFound as exc:
        print(f"refapp server: {exc}", file=sys.stderr)
        return 2
    print(f"refapp server: model {definition.name} ({served.fingerprint}) loaded in "
          f"{time.monotonic() - started:.3f}s; listening on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(served), host=args.host, port=args.port, log_level=args.log_level,
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
