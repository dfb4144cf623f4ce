"""The log proxy's objects (clusters/workload/logproxy.py): pure rendering, then the same objects against
the real apiserver under strict field validation (dry run)."""

import base64

import pytest

from clusters.workload import logproxy
from clusters.workload.logproxy import ProxySpec
from integrations.errors import IntegrationError
from integrations.kubernetes.client import KubeClient

KEY = "test-config-key"


def spec(**changes) -> ProxySpec:
    values = {
        "namespace": "opsportal-logging",
        "image": "registry.example:5000/logproxy@sha256:" + "a" * 64,
        "bootstrap_servers": "kafka-0.kafka:9092,kafka-1.kafka:9092",
        "default_topic": "app-logs",
        "topic_mapping": "logs:orders:*=orders-logs\nlogs:pay:*=pay-logs",
        "password": "s3cret pass",
        "min_replicas": 2,
        "max_replicas": 6,
        "replicas": 3,
        "metrics_port": 9121,
        "cluster": "prod-a",
    }
    return ProxySpec(**{**values, **changes})


def by_kind(objects) -> dict[str, dict]:
    return {obj["kind"]: obj for obj in objects}


def test_the_objects_in_the_order_they_are_applied():
    objects = logproxy.render(spec(), config_key=KEY)
    kinds = [obj["kind"] for obj in objects]
    assert kinds == [
        "Namespace",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]
    assert {obj["metadata"].get("namespace") for obj in objects[1:]} == {"opsportal-logging"}
    with_monitor = logproxy.render(spec(service_monitor=True), config_key=KEY)
    monitor = with_monitor[-1]
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    relabel = {r["targetLabel"]: r["replacement"] for r in monitor["spec"]["endpoints"][0]["relabelings"]}
    assert relabel == {"service": "logproxy", "cluster": "prod-a"}


def test_the_deployment_runs_the_proxy_with_the_pipelines_settings():
    deployment = by_kind(logproxy.render(spec(), config_key=KEY))["Deployment"]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "logproxy"]
    assert container["image"] == spec().image
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-0.kafka:9092,kafka-1.kafka:9092"
    assert env["LOGPROXY_DEFAULT_TOPIC"] == "app-logs"
    # The mapping in the proxy's own syntax, its rules in order.
    assert env["LOGPROXY_TOPICS"] == "logs:orders:*=orders-logs,logs:pay:*=pay-logs"
    assert env["LOGPROXY_LISTEN"] == "0.0.0.0:6379"
    assert env["LOGPROXY_METRICS_LISTEN"] == "0.0.0.0:9121"
    assert env["LOGPROXY_SHUTDOWN_TIMEOUT_SECONDS"] == str(logproxy.FLUSH_SECONDS)
    # The password only through the Secret, never as a value in the Deployment.
    assert env["LOGPROXY_PASSWORD"] == {"secretKeyRef": {"name": "logproxy-auth", "key": "LOGPROXY_PASSWORD"}}
    assert "s3cret" not in str(deployment)
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"redis": 6379, "metrics": 9121}
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


def test_probes_stop_and_resources():
    container = by_kind(logproxy.render(spec(), config_key=KEY))["Deployment"]["spec"]["template"]["spec"]
    grace = container["terminationGracePeriodSeconds"]
    container = container["containers"][0]
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "redis"}, probe
    # Ready while serving; /healthz turns 503 when the drain starts, so the pod leaves the Service.
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    # The grace period covers the preStop sleep and the proxy's whole flush after SIGTERM.
    assert grace > sleep + logproxy.FLUSH_SECONDS
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]


def test_prometheus_finds_the_metrics_port_on_the_pods_and_the_service():
    objects = by_kind(logproxy.render(spec(metrics_port=9200), config_key=KEY))
    annotations = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9200"
    assert annotations["prometheus.io/path"] == "/metrics"
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "opsportal"
    assert labels[logproxy.COMPONENT_LABEL] == logproxy.COMPONENT
    service = objects["Service"]
    assert service["metadata"]["name"] == "logproxy"  # LogPipeline.proxy_address names it
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"redis": 6379, "metrics": 9200}
    assert service["spec"]["selector"] == objects["Deployment"]["spec"]["selector"]["matchLabels"]


def test_hpa_pdb_and_secret():
    objects = by_kind(logproxy.render(spec(min_replicas=1, max_replicas=4), config_key=KEY))
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 4)
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "logproxy"}
    pdb = objects["PodDisruptionBudget"]["spec"]
    # maxUnavailable: a single replica never blocks a node drain.
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": logproxy.selector()}}
    data = objects["Secret"]["data"]
    assert base64.b64decode(data["LOGPROXY_PASSWORD"]).decode() == "s3cret pass"
    assert "stringData" not in objects["Secret"]


def test_a_changed_password_rolls_the_pods_without_showing_it():
    def digest(**changes) -> str:
        deployment = by_kind(logproxy.render(spec(**changes), config_key=KEY))["Deployment"]
        return deployment["spec"]["template"]["metadata"]["annotations"]["opsportal.io/config-hash"]

    assert digest() == digest()
    assert digest(password="other") != digest()
    assert digest(topic_mapping="logs:*=all") != digest()
    assert "s3cret" not in digest()


@pytest.mark.parametrize(("live", "expected"), [(None, 2), (0, 2), (1, 2), (4, 4), (9, 6)])
def test_the_replicas_keep_the_autoscalers_choice_within_bounds(live, expected):
    assert logproxy.clamp_replicas(live, minimum=2, maximum=6) == expected


@pytest.mark.kube
def test_the_apiserver_accepts_every_object_under_strict_validation(kube_cluster, kube_namespace):
    """A dry-run server-side apply of each object in a real namespace: a misspelt field is refused."""
    objects = logproxy.render(spec(namespace=kube_namespace), config_key=KEY)
    with KubeClient.from_kubeconfig_text(kube_cluster.kubeconfig.read_text()) as client:
        for obj in objects[1:]:
            stored = client.apply_dry_run(obj, field_manager="opsportal-logproxy")
            assert stored["metadata"]["name"] == obj["metadata"]["name"]
        broken = logproxy.deployment(spec(namespace=kube_namespace), config_key=KEY)
        broken["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["slep"] = {}
        # Strict field validation: the apiserver names the unknown field instead of dropping it.
        with pytest.raises(IntegrationError, match="slep"):
            client.apply_dry_run(broken, field_manager="opsportal-logproxy")
