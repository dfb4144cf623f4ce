"""CLI: ``python -m sandbox.jenkins serve --root DIR --port P --user U --token T [--env K=V ...]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.jenkins.server import JenkinsStandin
from sandbox.standin_http import serve_until_interrupted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.jenkins")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the jobs under --root/jobs and run their shell steps")
    serve.add_argument(
        "--root", type=Path, required=True, help="state dir: jobs/<name>/config.xml, workspaces"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--user", required=True)
    serve.add_argument("--token", required=True, help="API token accepted as the Basic auth password")
    serve.add_argument("--quiet-period", type=float, default=1.0, help="seconds a queued build waits")
    serve.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="extra environment for every build (repeatable)",
    )
    args = parser.parse_args(argv)
    extra_env = dict(item.partition("=")[::2] for item in args.env)
    standin = JenkinsStandin(
        args.root,
        args.user,
        args.token,
        host=args.host,
        port=args.port,
        quiet_period=args.quiet_period,
        extra_env=extra_env,
    )
    serve_until_interrupted(standin, "jenkins")


if __name__ == "__main__":
    main()
