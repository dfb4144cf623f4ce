"""CLI: ``python -m sandbox.kafka build`` resolves the broker's jars (a no-op when current);
``python -m sandbox.kafka serve [--port N] [--gateway 10.0.N.1]`` runs a fresh broker in the foreground
until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading

from sandbox.kafka import build
from sandbox.kafka.server import KafkaError, KafkaServer


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
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = KafkaServer(
        tempfile.mkdtemp(prefix="kafka-"),
        port=args.port,
        partitions=args.partitions,
        pod_gateway=args.gateway,
    )
    try:
        print(f"Kafka: {server.start()}   (log {server.log_file})", flush=True)
        if args.gateway:
            print(f"Kafka for pods: {server.pod_bootstrap}", flush=True)
        stop.wait()
    except KafkaError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
