"""``python -m sandbox.kube.agent --kubeconfig F --workdir D --net-index N --node NAME ... [--registry H:P]``

Also serves the cAdvisor and kube-state-metrics series on 127.0.0.1 (sandbox.kube.agent.exporter; its
address goes to ``--exporter-file``). Runs until SIGTERM/SIGINT, then stops its containers and removes its
pod network (the blackhole route over 10.0.0.0/16 stays). Started by LocalCluster after kwok; see
docs/sandbox.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from kubernetes import config

from sandbox.kube.agent.agent import Agent, Registries
from sandbox.kube.agent.exporter import Exporter, apiserver_lister
from sandbox.kube.build import cache_dir
from sandbox.kube.podnet import PodNetwork

REGISTRIES_ENV = "SANDBOX_REGISTRIES"


def serve_metrics(agent: Agent, api_client, workdir: Path, nodes: list[str]) -> Callable[[], None] | None:
    """Serve metrics.k8s.io from the agent's containers when the metrics module and its serving
    certificate (issued by LocalCluster) are there; returns the server's stop function."""
    try:
        from sandbox.kube.agent import metrics_api
    except ImportError:
        return None
    pki = workdir / "pki"
    if not (pki / "metrics-server.crt").is_file():
        return None

    def sample() -> list:
        return [
            metrics_api.PodSample(
                namespace=pod["namespace"],
                name=pod["name"],
                labels=pod["labels"],
                node=pod["node"],
                containers=[metrics_api.ContainerSample(**container) for container in pod["containers"]],
            )
            for pod in agent.pod_samples()
        ]

    server = metrics_api.MetricsServer(pki_dir=pki, sample=sample, nodes=nodes)
    port = server.start()
    metrics_api.register_metrics_api(api_client, port=port, ca_bundle=(pki / "ca.crt").read_bytes())
    logging.info("metrics.k8s.io served on 127.0.0.1:%d", port)
    return server.stop


def serve_exporter(agent: Agent, kubeconfig: Path, address_file: Path | None) -> Exporter:
    """Start the cAdvisor/kube-state series server; its address goes to ``address_file`` (atomically,
    before the ready file, so LocalCluster reads it whole once the agent is ready)."""
    # Its own client: a scrape's lists never queue behind the pod watch's connection.
    exporter = Exporter(
        containers=agent.container_stats,
        lister=apiserver_lister(config.new_client_from_config(config_file=str(kubeconfig))),
    )
    address = exporter.start()
    if address_file is not None:
        tmp = address_file.with_name(f".{address_file.name}.{os.getpid()}")
        tmp.write_text(f"{address}\n")
        tmp.replace(address_file)
    return exporter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.kube.agent", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True, help="the cluster's work directory")
    parser.add_argument("--net-index", type=int, required=True, help="pod network index (held by the caller)")
    parser.add_argument("--node", action="append", required=True, help="a node this agent is kubelet of")
    parser.add_argument(
        "--registry", action="append", default=[], help=f"host:port to pull from (also ${REGISTRIES_ENV})"
    )
    parser.add_argument("--registries-file", type=Path, help="more host:port lines, re-read on change")
    parser.add_argument("--image-cache", type=Path, default=cache_dir() / "images")
    parser.add_argument("--backoff-base", type=float, default=10.0, help="CrashLoopBackOff first delay (s)")
    parser.add_argument("--backoff-max", type=float, default=300.0, help="CrashLoopBackOff cap (s)")
    parser.add_argument("--ready-file", type=Path, help="written once the agent watches pods")
    parser.add_argument(
        "--serve-metrics", action="store_true", help="serve metrics.k8s.io from the containers' cgroups"
    )
    parser.add_argument(
        "--exporter-file", type=Path, help="written with the cAdvisor/kube-state exporter's host:port"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")

    registries = [*args.registry, *filter(None, os.environ.get(REGISTRIES_ENV, "").split(","))]
    network = PodNetwork.attach(args.net_index)
    network.clean_leftovers()
    network.setup()  # seals 10.0.0.0/16 first; raises (no pods start) if the route cannot be installed
    api_client = config.new_client_from_config(config_file=str(args.kubeconfig))
    agent = Agent(
        api_client=api_client,
        nodes=args.node,
        workdir=args.workdir,
        network=network,
        registries=Registries(registries, args.registries_file),
        image_cache=args.image_cache,
        backoff_base=args.backoff_base,
        backoff_max=args.backoff_max,
    )
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: done.set())
    threading.Thread(target=agent.run, name="pod-watch", daemon=True).start()
    stop_metrics = serve_metrics(agent, api_client, args.workdir, args.node) if args.serve_metrics else None
    exporter = serve_exporter(agent, args.kubeconfig, args.exporter_file)
    if args.ready_file:
        args.ready_file.write_text(f"{os.getpid()}\n")
    logging.info("pod agent up: nodes %s, pod network %s, registries %s", args.node, network.cidr, registries)
    done.wait()
    logging.info("stopping: terminating containers")
    if stop_metrics is not None:
        stop_metrics()
    exporter.stop()
    agent.shutdown()
    network.clean_leftovers()
    logging.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
