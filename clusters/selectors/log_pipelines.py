"""What the Log pipelines pages read (ops only): the clusters with their pipelines, the proxy's replicas
and pods from the cluster, and its throughput from Prometheus.

A cluster or Prometheus that cannot answer is not an error of the page: the section says why it has no
data, in words."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.conf import settings
from django.http import Http404
from django.utils.translation import gettext as _

from clusters.models import Cluster, LogPipeline
from clusters.models.logging import SERVICE_NAME
from clusters.workload import logproxy
from integrations.errors import IntegrationError
from integrations.kubernetes.client import KubeClient
from integrations.prometheus.client import PrometheusClient
from observability.monitoring.promql import logproxy_queries
from projects.access import is_ops

READ_TIMEOUT = (3, 10)  # a person waits for the page


def pipeline_clusters(*, user) -> list[tuple[Cluster, LogPipeline | None]]:
    """Every cluster with its pipeline (None when it has none), for ops; nothing for anyone else."""
    if not is_ops(user) or not user.is_active:
        return []
    pipelines = {p.cluster_id: p for p in LogPipeline.objects.all()}
    return [(cluster, pipelines.get(cluster.pk)) for cluster in Cluster.objects.order_by("name")]


def pipeline_cluster_get(*, user, pk: int) -> tuple[Cluster, LogPipeline | None]:
    """The cluster and its pipeline for ops; Http404 for anyone else, whether or not it exists."""
    if not is_ops(user) or not user.is_active:
        raise Http404("No such cluster.")
    cluster = Cluster.objects.filter(pk=pk).first()
    if cluster is None:
        raise Http404("No such cluster.")
    return cluster, LogPipeline.objects.filter(cluster=cluster).first()


@dataclass(frozen=True)
class ProxyPod:
    name: str
    phase: str
    ready: bool
    restarts: int
    reason: str
    node: str
    image: str = ""


@dataclass
class ProxyStatus:
    """The proxy's Deployment as the cluster says (``error`` when it could not be read)."""

    deployed: bool = False
    desired: int = 0
    ready: int = 0
    updated: int = 0
    image: str = ""
    hpa: str = ""  # "min–max (current)" when the HPA exists
    pods: list[ProxyPod] = field(default_factory=list)
    error: str = ""


def proxy_status(pipeline: LogPipeline) -> ProxyStatus:
    try:
        with KubeClient.from_cluster(pipeline.cluster, timeout=READ_TIMEOUT) as client:
            live = client.get("Deployment", pipeline.namespace, SERVICE_NAME)
            if live is None:
                return ProxyStatus()
            hpa = client.get("HorizontalPodAutoscaler", pipeline.namespace, SERVICE_NAME)
            pods = client.list_objects("Pod", pipeline.namespace, label_selector=logproxy.selector_text())
    except IntegrationError as exc:
        return ProxyStatus(error=_("The cluster could not be read: %(cause)s") % {"cause": exc})
    status = live.get("status") or {}
    containers = live["spec"]["template"]["spec"].get("containers") or []
    image = next((c.get("image", "") for c in containers if c.get("name") == logproxy.CONTAINER), "")
    result = ProxyStatus(
        deployed=True,
        desired=live["spec"].get("replicas", 1),
        ready=status.get("readyReplicas", 0),
        updated=status.get("updatedReplicas", 0),
        image=image,
    )
    if hpa is not None:
        spec, hpa_status = hpa.get("spec") or {}, hpa.get("status") or {}
        result.hpa = (
            f"{spec.get('minReplicas', 1)}–{spec.get('maxReplicas')} ({hpa_status.get('currentReplicas', 0)})"
        )
    for pod in sorted(pods.get("items") or [], key=lambda p: p["metadata"]["name"]):
        result.pods.append(_pod(pod))
    return result


def _pod(pod: dict) -> ProxyPod:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    reason = ""
    for container in statuses:
        state = container.get("state") or {}
        waiting = state.get("waiting") or state.get("terminated") or {}
        reason = reason or waiting.get("reason", "")
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = reason or "Terminating"
    containers = (pod.get("spec") or {}).get("containers") or []
    return ProxyPod(
        name=pod["metadata"]["name"],
        phase=status.get("phase", ""),
        ready=bool(statuses) and all(c.get("ready") for c in statuses),
        restarts=sum(c.get("restartCount", 0) for c in statuses),
        reason=reason,
        node=(pod.get("spec") or {}).get("nodeName", ""),
        image=containers[0].get("image", "") if containers else "",
    )


@dataclass(frozen=True)
class Throughput:
    """Lines per second in and out, or why there is no number (``reason``)."""

    lines_in: float | None = None
    lines_out: float | None = None
    reason: str = ""


THROUGHPUT_WINDOW_SCRAPES = 4  # rate() over four scrapes: a missed scrape still leaves two samples


def _value(result: list[dict]) -> float | None:
    if not result:
        return None
    number = float(result[0]["value"][1])
    return None if math.isnan(number) else number


def proxy_throughput(pipeline: LogPipeline) -> Throughput:
    client = PrometheusClient.from_settings()
    if client is None:
        return Throughput(reason=_("Monitoring is off (PROMETHEUS_URL is not set)."))
    queries = logproxy_queries(
        cluster=pipeline.cluster.name,
        namespace=pipeline.namespace,
        window=THROUGHPUT_WINDOW_SCRAPES * settings.PROMETHEUS_SCRAPE_INTERVAL,
    )
    try:
        lines_in = _value(client.query(queries["in"]))
        lines_out = _value(client.query(queries["out"]))
    except IntegrationError as exc:
        return Throughput(reason=_("Prometheus could not answer: %(cause)s") % {"cause": exc})
    if lines_in is None and lines_out is None:
        return Throughput(
            reason=_(
                "No data: Prometheus has no logproxy series for this cluster yet (the proxy is not deployed, "
                "its pods are not scraped yet, or it has not been scraped twice)."
            )
        )
    return Throughput(lines_in=lines_in, lines_out=lines_out)
