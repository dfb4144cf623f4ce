"""Which pods a LocalCluster runs (real through the agent, or kwok's simulated ones) and how it says so."""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml
from kubernetes import client

from sandbox.kube import podnet
from sandbox.kube.agent.agent import SIMULATED_ANNOTATION
from sandbox.kube.cluster import AGENT, LocalCluster, read_state
from tests.fixtures.kube import KubeCluster
from tests.polling import until


def _pod_stages(workdir: Path) -> list[str]:
    docs = yaml.safe_load_all((workdir / "config" / "kwok.yaml").read_text())
    return [
        d["metadata"]["name"]
        for d in docs
        if d and d.get("kind") == "Stage" and d["spec"]["resourceRef"]["kind"] == "Pod"
    ]


def test_the_session_cluster_reports_its_pods_mode(kube_cluster: KubeCluster) -> None:
    cluster = kube_cluster.cluster
    state = read_state(cluster.workdir)
    supported, reason = podnet.pods_supported()
    assert state.phase == "ready"
    assert (state.pods_mode, state.pods_reason) == ("real" if supported else "simulated", reason)
    if state.pods_mode == "real":
        # The agent is the pods' kubelet: kwok keeps only its node stages.
        assert AGENT in cluster.alive()
        assert _pod_stages(cluster.workdir) == []
        assert podnet.route_device(f"10.0.{cluster.network.index}.250") == cluster.network.bridge


def test_simulated_mode_keeps_kwoks_pod_stages(kube_binaries: None, tmp_path: Path) -> None:
    cluster = LocalCluster(workdir=tmp_path / "kube", pods="simulated")
    cluster.start()
    try:
        state = read_state(cluster.workdir)
        assert (state.pods_mode, state.pods_reason) == ("simulated", "simulated pods were asked for")
        assert AGENT not in cluster.alive() and cluster.network is None
        assert _pod_stages(cluster.workdir) == ["pod-ready", "pod-complete", "pod-delete"]
        with cluster.api_client() as api:
            core = client.CoreV1Api(api)
            until("the default ServiceAccount", lambda: core.list_namespaced_service_account("default").items)
            name = f"p-{uuid.uuid4().hex[:6]}"
            core.create_namespaced_pod(
                "default",
                {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "x/y:1"}]}},
            )

            def ready():
                pod = core.read_namespaced_pod(name, "default")
                conditions = {c.type: c.status for c in pod.status.conditions or []}
                return pod if conditions.get("Ready") == "True" else None

            pod = until("kwok to make the pod Ready", ready, 60)
            assert SIMULATED_ANNOTATION not in (pod.metadata.annotations or {})  # kwok, not the agent
            assert pod.status.pod_ip.startswith("10.0.1.")
    finally:
        cluster.stop()
