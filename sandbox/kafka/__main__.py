"""CLI: ``python -m sandbox.kafka build`` resolves the broker's jars (a no-op when current);
``python -m sandbox.kafka serve [--port N] [--gateway 10.0.N.1]`` runs a fresh broker in the foreground
until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import tempfile

from sandbox.kafka import build
from sandbox.kafka.server import KafkaServer
from sandbox.procs import serve_until_signalled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.kafka", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="resolve and cache the jars (no-op when current)")
    serve = sub.add_parser("serve", help="run a fresh broker on loopback until SIGINT/SIGTERM")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--partitions", type=int, default=3)
    serve.add_argument("--gateway", default="", help="also listen for pods on this bridge address (10.0.N.1)")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build.main()
    server = KafkaServer(
        tempfile.mkdtemp(prefix="kafka-"),
        port=args.port,
        partitions=args.partitions,
        pod_gateway=args.gateway,
    )

    def announce() -> None:
        print(f"Kafka: {server.start()}   (log {server.log_file})", flush=True)
        if args.gateway:
            print(f"Kafka for pods: {server.pod_bootstrap}", flush=True)

    return serve_until_signalled(server, announce)


if __name__ == "__main__":
    sys.exit(main())
