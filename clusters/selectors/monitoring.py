"""What the monitoring of an environment reads: its label values, where its pods are scraped, its panels'
series and release markers.

Every expression comes from the fixed templates of ``observability.monitoring.promql``; the values of
the environment go in through ``label_value``. A user chooses a panel by id and a time range, never PromQL.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache

from clusters.models import Cluster, LogPipeline, ProjectEnvironment
from clusters.models.logging import SERVICE_NAME
from clusters.workload import logproxy, manifests
from integrations.kubernetes.client import KubeClient, PodInfo
from integrations.prometheus.client import PrometheusClient
from observability.monitoring.promql import PANELS, Panel, Scope, panel_queries, rate_window

PROJECT_LABEL = "opsportal.io/project"
ENVIRONMENT_LABEL = "opsportal.io/environment"
SD_TIMEOUT = (3, 10)  # Prometheus waits for the answer; a slow apiserver must not hold it long


def monitoring_scope(environment: ProjectEnvironment) -> Scope:
    """The label values of one environment's series. The Deployment, Service and HPA carry the project's
    name (clusters.workload.manifests), the namespace is the environment's own."""
    name = environment.project.name
    return Scope(
        project=name,
        env=environment.environment,
        namespace=environment.namespace,
        deployment=name,
        hpa=name,
    )


# --- scrape-target discovery (Prometheus http_sd) --------------------------------------------------


def _default_metrics_path() -> str:
    return next(f.default for f in fields(manifests.WorkloadSpec) if f.name == "metrics_path")


def _address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _target_group(pod: PodInfo, environment: ProjectEnvironment) -> dict:
    """One pod as an http_sd target group. The pod's own ``prometheus.io/*`` annotations say where it
    serves metrics (they are rendered from the environment's request); a pod from before they existed
    falls back to the request."""
    request = (environment.spec or {}).get("request") or {}
    path = pod.annotations.get("prometheus.io/path") or request.get("metrics_path") or _default_metrics_path()
    port = (
        pod.annotations.get("prometheus.io/port")
        or request.get("metrics_port")
        or request.get("container_port", 8080)
    )
    return {
        "targets": [_address(pod.pod_ip, int(port))],
        "labels": {
            "project": environment.project.name,
            "env": environment.environment,
            "service": environment.project.name,
            "namespace": pod.namespace,
            "pod": pod.name,
            "__metrics_path__": path,
        },
    }


def scrape_targets(*, cluster: Cluster) -> list[dict]:
    """Prometheus' http_sd answer for ``cluster``: one target group per running pod of every environment
    that is active there. One pod list for the whole cluster (the portal's label), matched to the
    environments by namespace and the project/environment labels, so a pod that only looks like ours
    in a namespace that is not the environment's is never a target."""
    environments = {
        (env.namespace, env.project.name, env.environment): env
        for env in ProjectEnvironment.objects.filter(
            cluster=cluster, provisioned_at__isnull=False
        ).select_related("project")
    }
    pipeline = LogPipeline.objects.filter(cluster=cluster).first()
    if not environments and pipeline is None:
        return []
    with KubeClient.from_cluster(cluster, timeout=SD_TIMEOUT) as client:
        pods = client.list_pods(None, label_selector=f"app.kubernetes.io/managed-by={manifests.MANAGED_BY}")
    groups = []
    for pod in pods:
        if pod.phase != "Running" or not pod.pod_ip or pod.terminating:
            continue
        if pipeline is not None and _is_log_proxy(pod, pipeline):
            groups.append(_log_proxy_group(pod, cluster))
            continue
        key = (pod.namespace, pod.labels.get(PROJECT_LABEL), pod.labels.get(ENVIRONMENT_LABEL))
        environment = environments.get(key)
        if environment is None:
            continue
        groups.append(_target_group(pod, environment))
    return groups


def _is_log_proxy(pod: PodInfo, pipeline: LogPipeline) -> bool:
    """A pod of the cluster's log proxy: its component label, in the pipeline's namespace only."""
    return (
        pod.namespace == pipeline.namespace and pod.labels.get(logproxy.COMPONENT_LABEL) == logproxy.COMPONENT
    )


def _log_proxy_group(pod: PodInfo, cluster: Cluster) -> dict:
    port = pod.annotations.get("prometheus.io/port") or str(settings.LOGPROXY_METRICS_PORT)
    return {
        "targets": [_address(pod.pod_ip, int(port))],
        "labels": {
            "service": SERVICE_NAME,
            "cluster": cluster.name,
            "namespace": pod.namespace,
            "pod": pod.name,
            "__metrics_path__": pod.annotations.get("prometheus.io/path") or logproxy.METRICS_PATH,
        },
    }


def scrape_targets_cached(*, cluster: Cluster) -> list[dict]:
    key = f"monitoring:sd:{cluster.pk}"
    groups = cache.get(key)
    if groups is None:
        groups = scrape_targets(cluster=cluster)
        cache.set(key, groups, settings.MONITORING_SD_CACHE_SECONDS)
    return groups


# --- the panels (the metrics API and the environment page) -----------------------------------------

# Releases, promotions and rollbacks live in deploys, above clusters: deploys registers the function
# that reads them (DeploysConfig.ready), so the panels can mark them without clusters importing deploys.
# A source is called as ``source(environment=, start=, end=)`` (datetimes, UTC) and returns markers:
# ``{"at": unix seconds, "kind": str, "label": str, "url": str}``.
MarkerSource = Callable[..., list[dict]]
_marker_sources: list[MarkerSource] = []


def register_marker_source(source: MarkerSource) -> None:
    if source not in _marker_sources:
        _marker_sources.append(source)


def monitoring_enabled() -> bool:
    return bool(getattr(settings, "PROMETHEUS_URL", ""))


def panel_summary(panel: Panel) -> dict:
    return {
        "id": panel.id,
        "title": str(panel.title),
        "unit": panel.unit,
        "legends": [query.legend for query in panel.queries],
    }


def panels_list() -> list[dict]:
    """The panels every environment has, in page order (no Prometheus call: the page renders them as
    placeholders and the browser fetches each one's series)."""
    return [panel_summary(panel) for panel in PANELS]


def _number(value: str) -> float | None:
    """A sample as JSON can carry it: Prometheus' NaN and ±Inf (a ratio over no traffic) are gaps."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _series_name(legend: str, labels: dict) -> str:
    if legend.startswith("{{") and legend.endswith("}}"):
        return labels.get(legend[2:-2].strip(), "") or legend[2:-2].strip()
    return legend


def release_markers(environment: ProjectEnvironment, *, start: float, end: float) -> list[dict]:
    """The releases, promotions and rollbacks of the environment between ``start`` and ``end`` (unix
    seconds), oldest first, from the registered sources."""
    since, until = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    markers = [
        marker
        for source in _marker_sources
        for marker in source(environment=environment, start=since, end=until)
        if start <= marker["at"] <= end
    ]
    return sorted(markers, key=lambda marker: marker["at"])


def panel_series(
    environment: ProjectEnvironment,
    panel: Panel,
    *,
    start: float,
    end: float,
    step: float,
    client: PrometheusClient | None = None,
) -> dict:
    """One panel of one environment over a time range: each line as ``{"name", "values": [[ts, value
    or None], ...]}`` and the release markers in range. Raises integrations.errors when Prometheus
    cannot answer; answers no series (``enabled`` false) when monitoring is off."""
    client = client or PrometheusClient.from_settings()
    answer = {
        "panel": panel.id,
        "title": str(panel.title),
        "unit": panel.unit,
        "start": start,
        "end": end,
        "step": step,
        "enabled": client is not None,
        "series": [],
        "markers": release_markers(environment, start=start, end=end),
    }
    if client is None:
        return answer
    window = rate_window(step, getattr(settings, "PROMETHEUS_SCRAPE_INTERVAL", 15))
    for legend, expr in panel_queries(panel, monitoring_scope(environment), window_seconds=window):
        for item in client.query_range(expr, start=start, end=end, step=step):
            answer["series"].append(
                {
                    "name": _series_name(legend, item.get("metric") or {}),
                    "values": [[float(ts), _number(value)] for ts, value in item.get("values") or []],
                }
            )
    return answer
