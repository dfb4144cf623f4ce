"""What the monitoring of an environment reads: its label values and where its pods are scraped."""

from __future__ import annotations

from dataclasses import fields

from django.conf import settings
from django.core.cache import cache

from clusters.models import Cluster, ProjectEnvironment
from clusters.workload import manifests
from integrations.kubernetes.client import KubeClient, PodInfo
from observability.monitoring.promql import Scope

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
    if not environments:
        return []
    with KubeClient.from_cluster(cluster, timeout=SD_TIMEOUT) as client:
        pods = client.list_pods(None, label_selector=f"app.kubernetes.io/managed-by={manifests.MANAGED_BY}")
    groups = []
    for pod in pods:
        key = (pod.namespace, pod.labels.get(PROJECT_LABEL), pod.labels.get(ENVIRONMENT_LABEL))
        environment = environments.get(key)
        if environment is None or pod.phase != "Running" or not pod.pod_ip or pod.terminating:
            continue
        groups.append(_target_group(pod, environment))
    return groups


def scrape_targets_cached(*, cluster: Cluster) -> list[dict]:
    key = f"monitoring:sd:{cluster.pk}"
    groups = cache.get(key)
    if groups is None:
        groups = scrape_targets(cluster=cluster)
        cache.set(key, groups, settings.MONITORING_SD_CACHE_SECONDS)
    return groups
