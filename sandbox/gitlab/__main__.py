"""CLI: ``python -m sandbox.gitlab serve --root DIR --port P --token T [--import NS/NAME=SRC_DIR ...]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.gitlab.server import GitLabStandin
from sandbox.standin_http import serve_until_interrupted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.gitlab")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the bare repositories under --root")
    serve.add_argument(
        "--root", type=Path, required=True, help="directory of <namespace>/<name>.git bare repos"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--token", required=True, help="the only accepted PRIVATE-TOKEN")
    serve.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="NS/NAME=SRC_DIR",
        help="create project NS/NAME from SRC_DIR unless it already exists (repeatable)",
    )
    args = parser.parse_args(argv)
    standin = GitLabStandin(args.root, args.token, host=args.host, port=args.port)
    for spec in args.imports:
        path, _, source = spec.partition("=")
        if standin.find_project(path) is None:
            standin.create_project(path, Path(source))
    serve_until_interrupted(standin, "gitlab")


if __name__ == "__main__":
    main()
