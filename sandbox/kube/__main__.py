"""CLI: ``python -m sandbox.kube build | up [--dir DIR] [--port N] | status [--dir DIR]``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from sandbox.kube import build
from sandbox.kube.cluster import (
    AGENT,
    COMPONENTS,
    DEFAULT_API_PORT,
    POD_MODES,
    LocalCluster,
    free_port,
    pid_alive,
    read_state,
)


def _print(message: str) -> None:
    print(message, flush=True)


def _interrupt(signum: int, _frame) -> None:
    # Raising lets the context manager tear the cluster down, even in the middle of a build or start.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _exit_with(pid: int) -> None:
    """Stop (via SIGTERM to ourselves) once ``pid`` is gone, even during a long build."""

    def watch() -> None:
        while pid_alive(pid):
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with", daemon=True).start()


def _up(
    workdir: Path | None,
    port: int | None,
    exit_with: int | None,
    keep_data: bool = False,
    pods: str = "auto",
    registries: list[str] | None = None,
) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    if exit_with:
        _exit_with(exit_with)
    cluster = LocalCluster(
        workdir=workdir,
        api_port=port or free_port(DEFAULT_API_PORT),
        progress=_print,
        keep_data=keep_data,
        build_missing=True,
        pods=pods,
        registries=registries or [],
    )
    code = 0
    try:
        with cluster:
            _print(f"kubeconfig: {cluster.kubeconfig}")
            _print(f"server: {cluster.server}")
            _print(f"export KUBECONFIG={cluster.kubeconfig}")
            _print(f"pods: {cluster.pods_mode} ({cluster.pods_reason})")
            _print("running; press Ctrl-C to stop")
            code = _supervise(cluster)
    except KeyboardInterrupt:
        pass
    _print("stopped")
    return code


def _supervise(cluster: LocalCluster) -> int:
    """Block until interrupted; a component that dies leaves a half-working cluster, so give up then."""
    tick = threading.Event()
    while not tick.wait(2.0):
        expected = set(COMPONENTS) | ({AGENT} if cluster.agent_running else set())
        dead = sorted(expected - set(cluster.alive()))
        if dead:
            _print(f"component(s) exited: {', '.join(dead)}; logs in {cluster.logs_dir}")
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.kube", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build and cache the pinned binaries (no-op when up to date)")
    up = sub.add_parser("up", help="start the control plane in the foreground until SIGINT/SIGTERM")
    up.add_argument("--dir", type=Path, help="work directory (default: a new temporary directory)")
    up.add_argument("--port", type=int, help="apiserver port (default: 16443 if free, else any free port)")
    up.add_argument("--exit-with", type=int, metavar="PID", help="tear down when process PID exits")
    up.add_argument(
        "--keep-data", action="store_true", help="resume what an earlier start left in --dir (certs, etcd)"
    )
    up.add_argument(
        "--pods",
        choices=POD_MODES,
        default="auto",
        help="real: run pods as processes (root); simulated: kwok only; auto: real where possible",
    )
    up.add_argument(
        "--registry", action="append", default=[], help="host:port real pods may pull images from"
    )
    status = sub.add_parser("status", help="binary cache state, and cluster state of --dir if given")
    status.add_argument("--dir", type=Path)
    args = parser.parse_args(argv)

    if args.command == "build":
        return build.main()
    if args.command == "up":
        return _up(args.dir, args.port, args.exit_with, args.keep_data, args.pods, args.registry)
    report = {
        "cache": str(build.bin_dir()),
        "binaries_ready": build.binaries_ready(),
        "pinned": {
            "kubernetes": build.KUBERNETES_VERSION,
            "etcd": build.ETCD_VERSION,
            "kwok": build.KWOK_VERSION,
        },
    }
    if args.dir:
        report["cluster"] = read_state(args.dir).__dict__
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
