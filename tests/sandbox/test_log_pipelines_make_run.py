"""`make run`'s log pipelines: once Kafka serves pods, each sandbox cluster gets a LogPipeline naming Kafka as
the pods and the portal reach it, and a relay on the pods' gateway standing in for kube-proxy in front of the
proxy's Service, on the same port in the next run."""

from __future__ import annotations

import socket

import pytest

from clusters.models import LogPipeline
from sandbox import services
from tests.fixtures.ci import unavailable

pytestmark = pytest.mark.django_db


def test_each_sandbox_cluster_gets_its_pipeline_and_a_relay_that_stays_on_its_port(
    kube_cluster, kafka_server_factory, tmp_path
):
    network = kube_cluster.cluster.network
    if network is None:
        unavailable(f"no pod network here: {kube_cluster.cluster.pods_reason}")
    kubeconfig = kube_cluster.kubeconfig.read_text()
    services.register_clusters(kubeconfig, kube_cluster.cluster.server)
    kafka = kafka_server_factory(pod_gateway=network.gateway)

    first = services.SandboxLogPipelines(tmp_path)
    first.cluster_ready(kubeconfig, network.gateway)
    first.kafka_serves_pods(kafka)
    try:
        pipelines = {p.cluster.name: p for p in LogPipeline.objects.select_related("cluster")}
        assert set(pipelines) == set(services.SANDBOX_CLUSTERS.values())
        test, prod = pipelines["sandbox-test"], pipelines["sandbox-prod"]
        assert test.kafka_bootstrap_servers == kafka.pod_bootstrap
        assert test.portal_bootstrap == kafka.bootstrap
        assert test.namespace != prod.namespace  # one control plane: the two proxies must not collide
        for pipeline in (test, prod):
            host, port = pipeline.service_address.rsplit(":", 1)
            assert host == network.gateway
            # Listening; no endpoints yet, so the relay closes the connection without a byte.
            with socket.create_connection((host, int(port)), timeout=5) as conn:
                assert conn.recv(10) == b""
        addresses = {pipeline.service_address for pipeline in (test, prod)}
        LogPipeline.objects.filter(pk=test.pk).update(default_topic="ops-tuned")
    finally:
        first.stop()

    again = services.SandboxLogPipelines(tmp_path)
    again.cluster_ready(kubeconfig, network.gateway)
    again.kafka_serves_pods(kafka)
    try:
        assert {p.service_address for p in LogPipeline.objects.all()} == addresses
        assert LogPipeline.objects.get(pk=test.pk).default_topic == "ops-tuned"  # ops' own settings stay
    finally:
        again.stop()
