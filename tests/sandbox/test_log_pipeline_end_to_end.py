"""Acceptance (issue 16): a demo service's request log lines appear in the portal's pipeline view within a
few seconds, the whole way for real.

go-hello runs as a real pod the portal rendered with "send logs to the cluster's log pipeline", so it gets
LOG_REDIS_URL and LOG_REDIS_KEY. It pushes every JSON line with RPUSH to the proxy's Service address; the
sandbox has no kube-proxy, so a ServiceRelay on the pods' gateway stands in for it. The proxy runs as real
pods the portal built (python recipe, sandbox pipeline) and rolled out. It writes each line to a real Kafka
broker, which the pods reach on its gateway listener. The environment page's live tail reads Kafka from a
Celery worker and sends the lines to Chromium over the WebSocket."""

import time
import urllib.error
import urllib.request
import uuid

import pytest
from django.db import transaction
from kubernetes import client as k8s

from clusters.services.log_pipelines import log_pipeline_save
from deploys.choices import RolloutStatus
from deploys.services.log_proxy import log_proxy_deploy
from sandbox.service_relay import ServiceRelay
from tests.browser import CspWatch, sign_in
from tests.fixtures.ci import unavailable
from tests.fixtures.pipeline import use_sandbox_pipeline
from tests.fixtures.standins import require
from tests.helpers.environments import provision
from tests.helpers.kafka import unique_topic
from tests.helpers.proxy_rollouts import run_rollout
from tests.polling import until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
    pytest.mark.kube,
    pytest.mark.services,
    pytest.mark.standins,
]


def _ready_pod_ip(kube_cluster, namespace: str, selector: str) -> str | None:
    pods = (
        k8s.CoreV1Api(kube_cluster.api_client).list_namespaced_pod(namespace, label_selector=selector).items
    )
    for pod in pods:
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        if ready and not pod.metadata.deletion_timestamp:
            return pod.status.pod_ip
    return None


@pytest.mark.timeout(900)
def test_a_demo_services_request_lines_reach_the_pipeline_view_through_the_proxy_and_kafka(
    people,
    local_clusters,
    kube_cluster,
    demo_pipeline,
    demo_images,
    logproxy_repository,
    kafka_server_factory,
    settings,
    chromium,
    daphne_server,
    celery_worker_process,
):
    network = kube_cluster.cluster.network
    if network is None:
        unavailable(f"no pod network here: {kube_cluster.cluster.pods_reason}")
    require("python" in demo_pipeline.base_images, "the python base image (see sandbox/images)")
    broker = kafka_server_factory(pod_gateway=network.gateway)
    use_sandbox_pipeline(settings, demo_pipeline)
    settings.LOGPROXY_GIT_PROJECT = logproxy_repository
    cluster = local_clusters["test"]
    namespace = f"logging-{cluster.namespace_template.rsplit('-', 1)[1]}"
    relay = ServiceRelay(
        network.gateway,
        0,
        api_client=kube_cluster.api_client,
        namespace=namespace,
        service="logproxy",
        port=6379,
    ).start()
    try:
        log_pipeline_save(
            actor=people.ops,
            cluster=cluster,
            kafka_bootstrap_servers=broker.pod_bootstrap,
            portal_bootstrap_servers=broker.bootstrap,
            default_topic=unique_topic(),
            namespace=namespace,
            service_address=relay.address,
            min_replicas=1,
            max_replicas=1,
        )
        # The steps run here, with this process's settings (the sandbox pipeline's): inside one transaction,
        # the tasks the service queues on commit reach the session's worker only once the rollout has ended,
        # and there they find nothing left to claim.
        with transaction.atomic():
            rollout = run_rollout(log_proxy_deploy(actor=people.ops, cluster=cluster), timeout=600)
        assert rollout.status == RolloutStatus.DEPLOYED, f"{rollout.error}\n{rollout.console[-3000:]}"

        env = provision(
            people,
            cluster,
            image=demo_images["go-hello"],
            replicas=1,
            hpa_min=1,
            hpa_max=1,
            cpu_request="100m",
            memory_request="64Mi",
            health_path="/healthz",
            startup_seconds=10,
            runtime_options="",
            eureka_enabled=False,
            env_vars=[],
            logs_to_pipeline=True,
        )
        service_ip = until(
            "a Ready go-hello pod",
            lambda: _ready_pod_ip(kube_cluster, env.namespace, f"app.kubernetes.io/name={env.project.name}"),
            60,
        )

        page = sign_in(chromium, daphne_server, people.viewer.username)
        csp = CspWatch(page)
        page.goto(f"{daphne_server}/projects/{env.project.name}/env/test/")
        page.click("#pipeline-tail-start")
        page.wait_for_selector('#pipeline-tail-status[data-state="live"]', timeout=15_000)

        mark = f"e2e-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        # go-hello answers 404 for a path it does not serve, and logs the request like any other.
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"http://{service_ip}:8080/{mark}", timeout=5)  # noqa: S310
        assert answer.value.code == 404
        line = page.locator("#pipeline-tail-lines li.pipeline-line", has_text=mark)
        line.wait_for(timeout=20_000)
        seen_after = time.monotonic() - started
        print(f"go-hello's request line in the pipeline view after {seen_after:.1f} s")
        assert seen_after < 10, seen_after
        assert line.get_attribute("data-level") == "INFO"
        assert "status=" in line.inner_text()
        assert csp.violations() == []
    finally:
        relay.stop()
