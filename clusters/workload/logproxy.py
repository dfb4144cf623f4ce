"""The log proxy's objects in a cluster (pure: no database, no I/O).

A log pipeline (clusters.models.LogPipeline) becomes, in its namespace: the Namespace, a Secret with the
proxy's AUTH password, the Deployment running ``python -m logproxy``, a Service (the Redis port the
services push to and the metrics port), an HPA on CPU within the pipeline's bounds and a
PodDisruptionBudget. They are applied in this order with server-side apply; the Deployment's rollout is
followed afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from clusters.models.logging import PROXY_PORT, SERVICE_NAME, parse_topic_mapping, topic_mapping_env
from clusters.workload.manifests import MANAGED_BY

CONTAINER = "logproxy"
COMPONENT = "logproxy"
COMPONENT_LABEL = "opsportal.io/component"
SECRET_NAME = f"{SERVICE_NAME}-auth"
PASSWORD_KEY = "LOGPROXY_PASSWORD"  # noqa: S105 - the variable's name, not a password
# The proxy's own HTTP listener (/metrics, and /healthz: 200 while serving, 503 while draining).
HTTP_LISTEN_ENV = "LOGPROXY_METRICS_LISTEN"
METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"
# After the pod leaves the Service's endpoints, clients may still connect for a moment: the preStop sleep
# covers that; then SIGTERM makes the proxy stop reading, answer what it read and flush what Kafka has not
# acknowledged, for at most LOGPROXY_SHUTDOWN_TIMEOUT_SECONDS. The grace period covers both, with a margin
# so the kubelet's SIGKILL never cuts the flush short.
PRESTOP_SLEEP_SECONDS = 5
FLUSH_SECONDS = 30
GRACE_MARGIN_SECONDS = 5
TERMINATION_GRACE_SECONDS = PRESTOP_SLEEP_SECONDS + FLUSH_SECONDS + GRACE_MARGIN_SECONDS
PROGRESS_DEADLINE_SECONDS = 300
HPA_CPU_TARGET = 70
RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    # One asyncio loop uses one core; the memory bound holds because each connection's unacknowledged
    # values are capped (backpressure), so the limit only catches a leak.
    "limits": {"cpu": "1", "memory": "256Mi"},
}


@dataclass(frozen=True)
class ProxySpec:
    """What the objects are rendered from: a log pipeline's settings, the image and the replica count."""

    namespace: str
    image: str
    bootstrap_servers: str
    default_topic: str
    topic_mapping: str  # the pipeline's text: rules one a line or separated by commas
    password: str
    min_replicas: int
    max_replicas: int
    replicas: int  # the HPA's current count when the Deployment exists, so a redeploy does not reset it
    metrics_port: int = 9121
    service_monitor: bool = False  # the cluster's Prometheus Operator scrapes (Cluster.monitoring)
    cluster: str = ""  # the cluster's name, a label on the scraped series


def labels() -> dict[str, str]:
    return {
        "app.kubernetes.io/name": SERVICE_NAME,
        "app.kubernetes.io/component": "log-proxy",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        COMPONENT_LABEL: COMPONENT,
    }


def selector() -> dict[str, str]:
    # Selectors are immutable: only labels that never change.
    return {"app.kubernetes.io/name": SERVICE_NAME, COMPONENT_LABEL: COMPONENT}


def selector_text() -> str:
    return ",".join(f"{k}={v}" for k, v in selector().items())


def topics_env(topic_mapping: str) -> str:
    """The mapping as LOGPROXY_TOPICS (comma-separated, in order), checked by the proxy's own parser."""
    parse_topic_mapping(topic_mapping)
    return topic_mapping_env(topic_mapping)


def config_hash(spec: ProxySpec, key: str) -> str:
    """A keyed digest of the settings the pods read, on the pod template: a changed password (which lives
    in the Secret, invisible to the Deployment) still rolls the pods. Keyed, so the annotation says
    nothing about the password."""
    material = "\n".join(
        [spec.bootstrap_servers, spec.default_topic, topics_env(spec.topic_mapping), spec.password]
    )
    return hmac.new(key.encode(), material.encode(), hashlib.sha256).hexdigest()[:16]


def _metadata(spec: ProxySpec, name: str = SERVICE_NAME) -> dict[str, Any]:
    return {"name": name, "namespace": spec.namespace, "labels": labels()}


def namespace(spec: ProxySpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": spec.namespace, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
    }


def secret(spec: ProxySpec) -> dict[str, Any]:
    """``data``, not ``stringData``: under server-side apply a key dropped from stringData stays."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(spec, SECRET_NAME),
        "type": "Opaque",
        "data": {PASSWORD_KEY: base64.b64encode(spec.password.encode()).decode()},
    }


def _tcp_probe(*, period: int, failures: int) -> dict[str, Any]:
    # The Redis port: the proxy's process is alive while it listens. /healthz does not follow Kafka either
    # (a proxy whose Kafka is down stays up, answers PING and says -ERR to pushes), but it turns 503 while
    # draining, which must not restart a pod that is flushing.
    return {
        "tcpSocket": {"port": "redis"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _readiness_probe() -> dict[str, Any]:
    # /healthz turns 503 as soon as SIGTERM starts the drain: the pod leaves the Service's endpoints at once.
    return {
        "httpGet": {"path": HEALTH_PATH, "port": "metrics"},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 2,
    }


def deployment(spec: ProxySpec, *, config_key: str) -> dict[str, Any]:
    env = [
        {"name": "LOGPROXY_LISTEN", "value": f"0.0.0.0:{PROXY_PORT}"},
        {"name": HTTP_LISTEN_ENV, "value": f"0.0.0.0:{spec.metrics_port}"},
        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": spec.bootstrap_servers},
        {"name": "LOGPROXY_DEFAULT_TOPIC", "value": spec.default_topic},
        {"name": "LOGPROXY_TOPICS", "value": topics_env(spec.topic_mapping)},
        {"name": "LOGPROXY_SHUTDOWN_TIMEOUT_SECONDS", "value": str(FLUSH_SECONDS)},
        {
            "name": PASSWORD_KEY,
            "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": PASSWORD_KEY}},
        },
    ]
    container = {
        "name": CONTAINER,
        "image": spec.image,
        "command": ["python", "-m", "logproxy"],
        "ports": [
            {"name": "redis", "containerPort": PROXY_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": spec.metrics_port, "protocol": "TCP"},
        ],
        "env": env,
        "resources": RESOURCES,
        # Start-up: up to 60 s to listen (imports, first Kafka metadata); then the two checks take over.
        "startupProbe": _tcp_probe(period=2, failures=30),
        "readinessProbe": _readiness_probe(),
        "livenessProbe": _tcp_probe(period=10, failures=3),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector()},
            "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
            # A new pod is ready before an old one goes: the Service never has fewer proxies than before.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": labels(),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/path": METRICS_PATH,
                        "prometheus.io/port": str(spec.metrics_port),
                        "opsportal.io/config-hash": config_hash(spec, config_key),
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                    "containers": [container],
                },
            },
        },
    }


def service(spec: ProxySpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(),
            "ports": [
                {"name": "redis", "port": PROXY_PORT, "targetPort": "redis", "protocol": "TCP"},
                {"name": "metrics", "port": spec.metrics_port, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def hpa(spec: ProxySpec) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVICE_NAME},
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": HPA_CPU_TARGET},
                    },
                }
            ],
        },
    }


def pdb(spec: ProxySpec) -> dict[str, Any]:
    """At most one proxy pod evicted at a time (maxUnavailable, so a single replica never blocks a
    node drain, as minAvailable 1 would)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector()}},
    }


def service_monitor(spec: ProxySpec) -> dict[str, Any]:
    relabel = [
        {"action": "replace", "targetLabel": name, "replacement": value}
        for name, value in (("service", SERVICE_NAME), ("cluster", spec.cluster))
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(spec),
        "spec": {
            "selector": {"matchLabels": selector()},
            "namespaceSelector": {"matchNames": [spec.namespace]},
            "endpoints": [
                {"port": "metrics", "path": METRICS_PATH, "scheme": "http", "relabelings": relabel}
            ],
        },
    }


def render(spec: ProxySpec, *, config_key: str) -> list[dict[str, Any]]:
    """Every object, in the order to apply them (the Namespace first, the Secret before the pods read it)."""
    objects = [namespace(spec), secret(spec), deployment(spec, config_key=config_key), service(spec)]
    objects += [hpa(spec), pdb(spec)]
    if spec.service_monitor:
        objects.append(service_monitor(spec))
    return objects


def clamp_replicas(live: int | None, *, minimum: int, maximum: int) -> int:
    """The replica count to apply: what runs now (the HPA's choice) within the bounds, else the minimum."""
    return min(max(live or minimum, minimum), maximum)
