"""CLI: ``python -m sandbox.chatrobots serve --port P --dingtalk TOKEN[:SECRET[:KEYWORD]] --wecom KEY``."""

from __future__ import annotations

import argparse

from sandbox.chatrobots.server import ChatRobotsStandin
from sandbox.standin_http import serve_until_interrupted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.chatrobots")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the DingTalk and WeCom robot webhooks (messages in memory)")
    serve.add_argument("--host", default="127.0.0.1", help="a loopback address")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument(
        "--dingtalk",
        action="append",
        default=[],
        metavar="TOKEN[:SECRET[:KEYWORD]]",
        help="register a DingTalk robot (repeatable); SECRET turns on 加签, KEYWORD the keyword check",
    )
    serve.add_argument(
        "--wecom", action="append", default=[], metavar="KEY", help="register a WeCom robot key"
    )
    args = parser.parse_args(argv)
    standin = ChatRobotsStandin(host=args.host, port=args.port)
    for spec in args.dingtalk:
        token, secret, keyword = (spec.split(":", 2) + ["", ""])[:3]
        standin.add_dingtalk_robot(token, secret=secret, keywords=[keyword])
    for key in args.wecom:
        standin.add_wecom_robot(key)
    serve_until_interrupted(standin, "chat robots")


if __name__ == "__main__":
    main()
