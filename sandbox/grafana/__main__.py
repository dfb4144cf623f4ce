"""CLI: ``python -m sandbox.grafana serve --port P --token T [--viewer-token V]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.grafana.server import GrafanaStandin
from sandbox.standin_http import serve_until_interrupted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.grafana")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="serve the Grafana HTTP API subset the portal uses (state in memory)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--token", required=True, help="the service-account token with the Editor role")
    serve.add_argument("--viewer-token", default="", help="a token with the Viewer role (reads only)")
    serve.add_argument("--state", type=Path, default=None, help="keep the state in this JSON file")
    args = parser.parse_args(argv)
    standin = GrafanaStandin(
        args.token, viewer_token=args.viewer_token, host=args.host, port=args.port, state_file=args.state
    )
    serve_until_interrupted(standin, "grafana")


if __name__ == "__main__":
    main()
