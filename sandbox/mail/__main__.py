"""CLI: ``python -m sandbox.mail serve --port P`` accepts mail on a loopback port (nothing is relayed)."""

from __future__ import annotations

import argparse
import signal
import threading

from sandbox.mail.server import SmtpServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.mail")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="accept mail on a loopback port and record it")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = SmtpServer(args.host, args.port)
    host, port = server.start()
    print(f"smtp sandbox listening on {host}:{port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    server.stop()


if __name__ == "__main__":
    main()
