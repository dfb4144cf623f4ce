"""The sandbox that `make run` serves the portal with: the release pipeline's stand-ins, and the local
Kubernetes control plane registered as the "test" and "prod" clusters.

The control plane may need a first build of several minutes; it runs in the background and the
clusters page shows its progress (SANDBOX_KUBE_DIR) until it is registered.
"""

import logging
import threading
import time
from pathlib import Path

from django.db import transaction

from clusters.models import Cluster
from sandbox.kube.cluster import read_state, start_in_background
from sandbox.pipeline import SandboxPipeline
from sandbox.seed import DEMO_PROJECT

logger = logging.getLogger(__name__)
SANDBOX_CLUSTERS = {"test": "sandbox-test", "prod": "sandbox-prod"}


def start_pipeline(root: Path) -> SandboxPipeline:
    pipeline = SandboxPipeline(root).start()
    pipeline.add_repository(f"demo/{DEMO_PROJECT}")
    return pipeline


def register_clusters(kubeconfig: str, server: str) -> None:
    """One control plane serves both environments: the namespace template keeps them apart."""
    with transaction.atomic():
        for environment, name in SANDBOX_CLUSTERS.items():
            Cluster.objects.update_or_create(
                name=name,
                defaults={
                    "environment": environment,
                    "api_url": server,
                    "auth_type": "kubeconfig",
                    "credential": kubeconfig,
                    "namespace_template": "{project}-{environment}",
                    "last_check_message": "local sandbox control plane (sandbox/kube)",
                },
            )


def real_clusters_configured() -> bool:
    return Cluster.objects.exclude(name__in=SANDBOX_CLUSTERS.values()).exists()


def start_cluster(workdir: Path, on_ready=register_clusters) -> threading.Thread:
    """Start (building first if needed) the local control plane; register it once it is ready."""
    start_in_background(workdir)

    def follow() -> None:
        last = ""
        while True:
            state = read_state(workdir)
            if state.message != last:
                logger.info("sandbox cluster: %s %s", state.phase, state.message)
                last = state.message
            if state.phase == "ready" and state.kubeconfig:
                on_ready(Path(state.kubeconfig).read_text(), state.server or "")
                logger.info("sandbox cluster registered as %s", ", ".join(SANDBOX_CLUSTERS.values()))
                return
            if state.phase in ("failed", "stopped"):
                return
            time.sleep(1)

    thread = threading.Thread(target=follow, name="sandbox-cluster", daemon=True)
    thread.start()
    return thread
