"""CLI: ``python -m sandbox.apollo serve --port P --token T --user U [--user …] --app APP[=ENV,…]``
(``--state F`` keeps the state in a file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.apollo.server import DEFAULT_ENVS, ApolloStandin
from sandbox.standin_http import serve_until_interrupted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.apollo")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Apollo portal Open API subset the portal uses")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--token", required=True, help="a consumer token granted every app below (app-wide)")
    serve.add_argument("--user", action="append", default=[], help="an Apollo portal user (repeat)")
    serve.add_argument(
        "--app",
        action="append",
        default=[],
        help="APP_ID or APP_ID=ENV,ENV: an app with the namespace 'application' in cluster 'default'",
    )
    serve.add_argument("--envs", default=",".join(DEFAULT_ENVS), help="the portal's environments")
    serve.add_argument("--state", type=Path, default=None, help="keep the state in this JSON file")
    args = parser.parse_args(argv)
    standin = ApolloStandin(
        args.user or ["apollo"],
        envs=[e for e in args.envs.split(",") if e],
        host=args.host,
        port=args.port,
        state_file=args.state,
    )
    for spec in args.app:
        app_id, _, envs = spec.partition("=")
        standin.add_app(app_id, envs=[e for e in envs.split(",") if e] or ["FAT", "PRO"])
    standin.add_consumer(args.token, {app_id.partition("=")[0]: "*" for app_id in args.app})
    serve_until_interrupted(standin, "apollo")


if __name__ == "__main__":
    main()
