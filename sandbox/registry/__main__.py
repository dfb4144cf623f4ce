"""CLI: ``python -m sandbox.registry serve --root DIR --port P``."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from types import FrameType

from sandbox.registry.server import RegistryServer


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (from `make run`, systemd or a test) must run the same cleanup as Ctrl-C.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.registry")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run docker-registry with filesystem storage under --root")
    serve.add_argument("--root", type=Path, required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    registry = RegistryServer(args.root, port=args.port, host=args.host)
    url = registry.start()
    print(f"registry listening on {url} (storage {registry.root / 'data'})", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        registry.serve_forever()
    except KeyboardInterrupt:
        registry.stop()


if __name__ == "__main__":
    main()
