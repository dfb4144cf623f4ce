"""CLI: ``python -m sandbox.sms serve --port P --access-key ID:SECRET --sign NAME --template CODE=TEXT``."""

from __future__ import annotations

import argparse

from sandbox.sms.server import SmsStandin
from sandbox.standin_http import serve_until_interrupted


def _pair(value: str, separator: str) -> tuple[str, str]:
    name, found, rest = value.partition(separator)
    if not found or not name:
        raise argparse.ArgumentTypeError(f"expected NAME{separator}VALUE, got {value!r}")
    return name, rest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.sms")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve SendSms (state in memory; messages are only recorded)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--access-key", action="append", required=True, type=lambda v: _pair(v, ":"))
    serve.add_argument("--sign", action="append", required=True, help="an approved sign name")
    serve.add_argument(
        "--template",
        action="append",
        required=True,
        type=lambda v: _pair(v, "="),
        help="an approved template, CODE=text with ${var}s",
    )
    args = parser.parse_args(argv)
    standin = SmsStandin(
        dict(args.access_key),
        sign_names=args.sign,
        templates=dict(args.template),
        host=args.host,
        port=args.port,
    )
    serve_until_interrupted(standin, "sms")


if __name__ == "__main__":
    main()
