"""Deploying the log proxy for real: the proxy's source tagged in the GitLab stand-in, built by the Jenkins
stand-in into the real registry, and its objects applied to the local control plane, whose rollout is
followed to the end. The pods of an image outside the agent's registries are simulated (kwok), so the
rollout completes without a Kafka behind it; what the proxy itself does is logproxy's tests' business."""

import base64
import socket
import subprocess
import time
import uuid

import pytest
import yaml
from django.core.cache import cache
from kubernetes import client as k8s

from clusters.models import LogPipeline
from clusters.selectors.log_pipelines import proxy_throughput
from clusters.services.log_pipelines import log_pipeline_save
from deploys.choices import RolloutStatus
from deploys.models import LogProxyRollout
from deploys.recipes import DEFAULT_RECIPES
from deploys.services import recipe_update
from deploys.services.log_proxy import log_proxy_deploy
from integrations.registry import RegistryClient
from observability.models import AuditEvent
from tests.fixtures.ci import unavailable
from tests.fixtures.pipeline import use_sandbox_pipeline
from tests.fixtures.prometheus import apply_prometheus_config
from tests.fixtures.standins import require
from tests.helpers.api import api_as
from tests.helpers.kafka import consume, unique_topic
from tests.helpers.logproxy import command, read_replies
from tests.helpers.proxy_rollouts import run_rollout
from tests.polling import until

pytestmark = [pytest.mark.django_db, pytest.mark.kube, pytest.mark.standins]

PASSWORD = "rollout-password-77c1"  # noqa: S105 (a test value)
SD_TOKEN = "sd-token-logproxy"  # noqa: S105
LINE = '{"msg": "through the portal"}'
# Until the sandbox has a Python base image, the "python" recipe is replaced by one busybox can build:
# the source copied in, nothing installed. The Deployment's command is the portal's either way.
BUSYBOX_DOCKERFILE = "FROM {{ base_image }}\nCOPY . /app\nWORKDIR /app\n"


def _suffix(cluster) -> str:
    # local_clusters deletes the namespaces ending with its suffix afterwards.
    return cluster.namespace_template.rsplit("-", 1)[1]


@pytest.fixture
def proxy_source(people, sandbox_pipeline, settings):
    """The proxy's source as a GitLab project of the sandbox, and the portal pointed at the pipeline."""
    use_sandbox_pipeline(settings, sandbox_pipeline)
    path = f"ops/logproxy-{uuid.uuid4().hex[:6]}"
    sandbox_pipeline.add_repository(path, demo="static-site")
    settings.LOGPROXY_GIT_PROJECT = path
    recipe_update(
        actor=people.ops,
        language="python",
        dockerfile=BUSYBOX_DOCKERFILE,
        build_shell=DEFAULT_RECIPES["python"]["build_shell"],
        comment="busybox-only for the sandbox",
    )
    return path


def _git_tags(pipeline, path: str) -> list[str]:
    bare = pipeline.gitlab.find_project(path).bare
    return subprocess.run(
        ["git", "-C", str(bare), "tag", "-l"], capture_output=True, text=True, check=True
    ).stdout.split()


def test_deploy_builds_the_image_applies_the_objects_and_follows_the_rollout(
    people, local_clusters, kube_cluster, sandbox_pipeline, proxy_source, settings, client
):
    cluster = local_clusters["test"]
    namespace = f"logging-{_suffix(cluster)}"
    log_pipeline_save(
        actor=people.ops,
        cluster=cluster,
        kafka_bootstrap_servers="kafka-0.kafka.invalid:9092",
        topic_mapping="logs:orders:*=orders-logs",
        namespace=namespace,
        min_replicas=2,
        max_replicas=3,
        password=PASSWORD,
    )
    rollout = run_rollout(log_proxy_deploy(actor=people.ops, cluster=cluster))
    assert rollout.status == RolloutStatus.DEPLOYED, rollout.error

    # The tag is in the proxy's repository, the job was copied from the Python template, the image is
    # in the registry under the rollout's version, and the cluster runs it by digest.
    assert rollout.version in _git_tags(sandbox_pipeline, proxy_source)
    job = sandbox_pipeline.jenkins.jobs["opsportal-logproxy"]
    assert "git clone" in job.config_xml and "IMAGE_BUILDER" in job.config_xml
    assert "==> Building and pushing" in rollout.console
    registry = RegistryClient(sandbox_pipeline.registry.url)
    assert registry.resolve("logproxy", rollout.version).digest == rollout.image_digest
    assert rollout.image.startswith(f"{sandbox_pipeline.registry.host}/logproxy@sha256:")

    apps = k8s.AppsV1Api(kube_cluster.api_client)
    deployment = apps.read_namespaced_deployment("logproxy", namespace)
    container = deployment.spec.template.spec.containers[0]
    assert container.image == rollout.image and container.command == ["python", "-m", "logproxy"]
    env = {e.name: e.value for e in container.env}
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-0.kafka.invalid:9092"
    assert env["LOGPROXY_TOPICS"] == "logs:orders:*=orders-logs"
    assert deployment.spec.replicas == 2 and deployment.status.ready_replicas == 2
    service = k8s.CoreV1Api(kube_cluster.api_client).read_namespaced_service("logproxy", namespace)
    assert {p.name: p.port for p in service.spec.ports} == {"redis": 6379, "metrics": 9121}
    hpa = k8s.AutoscalingV2Api(kube_cluster.api_client).read_namespaced_horizontal_pod_autoscaler(
        "logproxy", namespace
    )
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 3)
    pdb = k8s.PolicyV1Api(kube_cluster.api_client).read_namespaced_pod_disruption_budget(
        "logproxy", namespace
    )
    assert pdb.spec.max_unavailable == 1
    secret = k8s.CoreV1Api(kube_cluster.api_client).read_namespaced_secret("logproxy-auth", namespace)
    assert base64.b64decode(secret.data["LOGPROXY_PASSWORD"]).decode() == PASSWORD

    # Every step is in the audit trail, in order, and nothing there carries the password.
    verbs = list(
        AuditEvent.objects.filter(target_type="deploys.logproxyrollout", target_id=str(rollout.pk))
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs == [
        "log_proxy.deploy",
        "log_proxy.tag.start",
        "log_proxy.tag",
        "log_proxy.build",  # the build step continues in "building": its claim is no status change
        "log_proxy.built",
        "log_proxy.apply.start",
        "log_proxy.deployed",
    ]
    assert not AuditEvent.objects.filter(changes__icontains=PASSWORD).exists()
    lines = [entry["message"] for entry in rollout.progress]
    assert "Applied Deployment/logproxy in " + namespace + "." in lines
    assert any(line.startswith("Rollout:") for line in lines)

    # The page's status section and its API twin read the replicas and pods from the cluster.
    status = api_as(people.ops).get(f"/api/log-pipelines/{cluster.pk}/status/").json()
    assert status["proxy"]["deployed"] and (status["proxy"]["ready"], status["proxy"]["desired"]) == (2, 2)
    assert len(status["proxy"]["pods"]) == 2 and status["proxy"]["image"] == rollout.image
    client.force_login(people.ops)
    section = client.get(f"/log-pipelines/{cluster.pk}/status/").content.decode()
    assert 'data-ready="2" data-desired="2"' in section

    # Prometheus' discovery lists the proxy's pods with the labels the throughput query selects on.
    settings.MONITORING_TOKEN, settings.MONITORING_SD_CACHE_SECONDS = SD_TOKEN, 0
    cache.clear()
    groups = client.get(f"/api/monitoring/sd/{cluster.name}/", HTTP_AUTHORIZATION=f"Bearer {SD_TOKEN}").json()
    proxies = [g for g in groups if g["labels"].get("service") == "logproxy"]
    assert len(proxies) == 2
    for group in proxies:
        assert group["labels"]["cluster"] == cluster.name and group["labels"]["namespace"] == namespace
        assert group["targets"][0].endswith(":9121") and group["labels"]["__metrics_path__"] == "/metrics"


def test_a_refused_object_fails_the_rollout_with_the_cause_and_the_next_step(
    people, local_clusters, settings
):
    cluster = local_clusters["test"]
    pipeline = LogPipeline.objects.create(cluster=cluster, kafka_bootstrap_servers="kafka:9092")
    # A namespace the service would refuse, written behind its back: the apiserver must say no.
    LogPipeline.objects.filter(pk=pipeline.pk).update(namespace=f"Bad_Namespace-{_suffix(cluster)}")
    rollout = LogProxyRollout.objects.create(
        pipeline=pipeline,
        created_by=people.ops,
        git_project="ops/logproxy",
        branch="main",
        version="v-refused",
        status=RolloutStatus.BUILT,
        image_repository="registry.invalid/logproxy",
        image_digest="sha256:" + "0" * 64,
    )
    rollout = run_rollout(rollout)
    assert rollout.status == RolloutStatus.FAILED
    assert "The cluster refused Namespace/Bad_Namespace" in rollout.error
    assert "fix the pipeline's settings and deploy again" in rollout.error
    fail = AuditEvent.objects.filter(verb="log_proxy.fail", target_id=str(rollout.pk)).get()
    assert "Bad_Namespace" in fail.changes["error"] and fail.changes["applied"] == []


def test_a_proxy_that_cannot_start_fails_the_rollout_with_the_cause(
    people, local_clusters, demo_pipeline, settings
):
    """A real pod (the agent pulls from the demo registry) of an image without Python: the proxy's command
    cannot start, and the rollout fails with the pod's words and the next step within seconds, not at
    the progress deadline."""
    settings.RELEASE_POD_CHECK_SECONDS = 1
    cluster = local_clusters["test"]
    pipeline = LogPipeline.objects.create(
        cluster=cluster,
        kafka_bootstrap_servers="kafka:9092",
        namespace=f"logging-{_suffix(cluster)}",
        min_replicas=1,
        max_replicas=2,
    )
    busybox = demo_pipeline.base_images["default"]  # host/opsportal-base/busybox:<key>, no python inside
    repository, tag = busybox.rsplit(":", 1)
    path = repository.split("/", 1)[1]
    digest = RegistryClient(demo_pipeline.registry.url).resolve(path, tag).digest
    rollout = LogProxyRollout.objects.create(
        pipeline=pipeline,
        created_by=people.ops,
        git_project="ops/logproxy",
        branch="main",
        version="v-no-python",
        status=RolloutStatus.BUILT,
        image_repository=repository,
        image_digest=digest,
    )
    started = time.monotonic()
    rollout = run_rollout(rollout, timeout=240)
    assert rollout.status == RolloutStatus.FAILED, rollout.progress
    assert time.monotonic() - started < 120
    # The pod is named, with the kubelet's words and the next step.
    assert rollout.error.startswith("logproxy-"), rollout.error
    assert "python" in rollout.error and "→" in rollout.error, rollout.error
    assert rollout.applied == [
        "Namespace/" + pipeline.namespace,
        "Secret/logproxy-auth",
        "Deployment/logproxy",
        "Service/logproxy",
        "HorizontalPodAutoscaler/logproxy",
        "PodDisruptionBudget/logproxy",
    ]


@pytest.mark.timeout(900)
def test_the_portal_deploys_the_real_proxy_and_a_pushed_line_reaches_kafka(
    people,
    local_clusters,
    kube_cluster,
    demo_pipeline,
    logproxy_repository,
    kafka_server_factory,
    prometheus_server,
    settings,
    tmp_path,
):
    """The whole way: the proxy's sources (ops/logproxy) tagged and built by the python recipe into an image
    the pod agent really runs, with the pipeline's Kafka (a real broker, reached from the pods) and topic;
    the rollout ends when the pods are Ready (/healthz), and a line pushed to a pod is in Kafka."""
    network = kube_cluster.cluster.network
    if network is None:
        unavailable(f"no pod network here: {kube_cluster.cluster.pods_reason}")
    require("python" in demo_pipeline.base_images, "the python base image (see sandbox/images)")
    broker = kafka_server_factory(pod_gateway=network.gateway)
    topic = unique_topic()
    use_sandbox_pipeline(settings, demo_pipeline)
    settings.LOGPROXY_GIT_PROJECT = logproxy_repository
    cluster = local_clusters["test"]
    namespace = f"logging-{_suffix(cluster)}"
    log_pipeline_save(
        actor=people.ops,
        cluster=cluster,
        kafka_bootstrap_servers=broker.pod_bootstrap,
        default_topic=topic,
        namespace=namespace,
        min_replicas=1,
        max_replicas=2,
    )
    rollout = run_rollout(log_proxy_deploy(actor=people.ops, cluster=cluster), timeout=600)
    assert rollout.status == RolloutStatus.DEPLOYED, f"{rollout.error}\n{rollout.console[-3000:]}"
    core = k8s.CoreV1Api(kube_cluster.api_client)
    [pod] = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=logproxy").items
    assert pod.spec.containers[0].image == rollout.image
    # Ready as soon as it serves; the producer may still be connecting, when a push gets -ERR (retried).
    address = pod.status.pod_ip

    def push() -> list[bytes] | None:
        with socket.create_connection((address, 6379), timeout=10) as conn:
            conn.sendall(
                command("PING") + command("LPUSH", "logs:orders:test", '{"msg": "through the portal"}')
            )
            replies = read_replies(conn, 2, timeout=10)
        return replies if replies[1] == b":1\r\n" else None

    replies = until("PING and an acknowledged LPUSH on the proxy's pod", push, 60)
    assert replies[0] == b"+PONG\r\n"
    [record, *_] = consume(broker.bootstrap, topic, 1)
    assert (record.key(), record.value()) == (b"logs:orders:test", LINE.encode())
    status = api_as(people.ops).get(f"/api/log-pipelines/{cluster.pk}/status/").json()["proxy"]
    assert (status["ready"], status["desired"]) == (1, 1) and status["pods"][0]["ready"]

    # Throughput from the real Prometheus, scraping the pod's metrics port with the labels the portal's
    # discovery gives the proxy's pods (a static job here: Prometheus cannot reach this test's portal).
    base = yaml.safe_load(prometheus_server.base_file.read_text())
    labels = {"service": "logproxy", "cluster": cluster.name, "namespace": namespace}
    base.setdefault("scrape_configs", []).append(
        {
            "job_name": "logproxy-under-test",
            "scrape_interval": "1s",
            "static_configs": [{"targets": [f"{address}:9121"], "labels": labels}],
        }
    )
    base_file = tmp_path / "base.yml"
    base_file.write_text(yaml.safe_dump(base, sort_keys=False))
    state = apply_prometheus_config(settings, prometheus_server, base=base_file, scrape_interval=2)
    assert state.status == "applied", state.error
    pipeline = LogPipeline.objects.get(cluster=cluster)

    def flowing():
        push()
        throughput = proxy_throughput(pipeline)
        return throughput if throughput.lines_in and throughput.lines_out else None

    throughput = until("Prometheus to see lines going through the proxy", flowing, 90)
    assert throughput.lines_in > 0 and throughput.lines_out > 0 and not throughput.reason
