"""CLI: ``python -m sandbox.eureka build`` builds the Eureka server jar (a no-op when current);
``python -m sandbox.eureka serve [--port N]`` runs it in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import tempfile

from sandbox.eureka import build
from sandbox.eureka.server import EurekaServer
from sandbox.procs import serve_until_signalled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.eureka", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build and cache the jar (no-op when current)")
    serve = sub.add_parser("serve", help="run the server on loopback until SIGINT/SIGTERM")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--gateway", help="also relay from this address (a pod bridge's 10.0.N.1)")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build.main()
    server = EurekaServer(tempfile.mkdtemp(prefix="eureka-"), port=args.port)

    def announce() -> None:
        print(f"Eureka: {server.start()}   (log {server.log_file})", flush=True)
        if args.gateway:
            print(f"Eureka for pods: {server.pod_url(args.gateway)}", flush=True)

    return serve_until_signalled(server, announce)


if __name__ == "__main__":
    sys.exit(main())
