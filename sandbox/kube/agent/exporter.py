"""The cluster series a real cluster's Prometheus scrapes, served by the pod agent on 127.0.0.1.

A real cluster has them from two places: every kubelet's cAdvisor (``/metrics/cadvisor``: per-container
CPU and memory from the cgroups) and kube-state-metrics (the API objects as gauges). Here the pod agent is
the kubelet of every node, so one small HTTP server in it answers both paths, with the real names, labels
and units, so the portal's PromQL is the one a production Prometheus answers:

- ``GET /metrics/cadvisor``: for each container the agent runs (real pods only; a simulated pod has no
  process and so no series, as a container that is not running has none on a kubelet)
  ``container_cpu_usage_seconds_total`` (cpuacct.usage in seconds), ``container_memory_usage_bytes``,
  ``container_memory_working_set_bytes`` (usage less total_inactive_file) and
  ``container_spec_memory_limit_bytes`` (0 when unlimited), labelled ``namespace``, ``pod``, ``container``,
  ``image``, ``id`` (the cgroup), ``name`` (the container id) and, on the CPU counter, ``cpu="total"``.
  There are no pod-level or machine-level series (``container=""``).
- ``GET /metrics/kube-state``: kube-state-metrics v2 series for every pod, Deployment and
  HorizontalPodAutoscaler in the cluster (simulated pods included), from one list per kind at scrape time
  (``resourceVersion=0``: the apiserver's watch cache, not etcd).

Scraped by the sandbox Prometheus as jobs ``kubelet`` and ``kube-state-metrics`` (``honor_labels``, so the
``namespace``/``pod`` labels here win over target labels). The address is recorded in the cluster's
state file (``ClusterState.exporter_address``). It listens on loopback only and needs no credentials,
like a kubelet's read-only port; nothing in it is written to.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import urlsplit

from kubernetes.utils.quantity import parse_quantity
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sandbox.kube.agent.agent import ContainerStatsSample

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # never another interface: the series name every pod and image of the cluster
CADVISOR_PATH = "/metrics/cadvisor"
KUBE_STATE_PATH = "/metrics/kube-state"
LIST_TIMEOUT = 10.0
# One list per kind per scrape, from the apiserver's watch cache.
LIST_PATHS = {
    "pods": "/api/v1/pods",
    "deployments": "/apis/apps/v1/deployments",
    "horizontalpodautoscalers": "/apis/autoscaling/v2/horizontalpodautoscalers",
}

Lister = Callable[[str], list[dict]]

# ---------------------------------------------------------------------------------------------------------
# cAdvisor


class CadvisorCollector(Collector):
    """The kubelet's ``/metrics/cadvisor`` for the agent's running containers."""

    LABELS = ("container", "id", "image", "name", "namespace", "pod")

    def __init__(self, containers: Callable[[], list[ContainerStatsSample]]) -> None:
        self.containers = containers

    def collect(self) -> Iterator:
        cpu = CounterMetricFamily(
            "container_cpu_usage_seconds_total",
            "Cumulative cpu time consumed in seconds.",
            labels=(*self.LABELS, "cpu"),
        )
        usage = GaugeMetricFamily(
            "container_memory_usage_bytes",
            "Current memory usage in bytes, including all memory regardless of when it was accessed",
            labels=self.LABELS,
        )
        working_set = GaugeMetricFamily(
            "container_memory_working_set_bytes", "Current working set in bytes.", labels=self.LABELS
        )
        limit = GaugeMetricFamily(
            "container_spec_memory_limit_bytes", "Memory limit for the container.", labels=self.LABELS
        )
        for sample in self.containers():
            labels = [
                sample.container,
                sample.cgroup,
                sample.image,
                sample.container_id.removeprefix("sandbox://"),
                sample.namespace,
                sample.pod,
            ]
            stats = sample.stats
            cpu.add_metric([*labels, "total"], stats.cpu_ns / 1e9)
            usage.add_metric(labels, stats.memory_usage_bytes)
            working_set.add_metric(labels, stats.working_set_bytes)
            limit.add_metric(labels, stats.memory_limit_bytes)
        yield from (cpu, usage, working_set, limit)


# ---------------------------------------------------------------------------------------------------------
# kube-state-metrics


def _label_name(resource: str) -> str:
    # kube-state-metrics' sanitizeLabelName: "nvidia.com/gpu" -> "nvidia_com_gpu".
    return "".join(c if c.isalnum() or c == "_" else "_" for c in resource)


def _resource_unit(resource: str) -> str:
    if resource == "cpu":
        return "core"
    if resource in ("memory", "ephemeral-storage", "storage") or resource.startswith("hugepages-"):
        return "byte"
    return "integer"


def _controller(meta: dict) -> tuple[str, str]:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("kind", ""), ref.get("name", "")
    return "<none>", "<none>"


def _pod_families(pods: Iterable[dict]) -> list:
    pod_labels = ("namespace", "pod", "uid")
    container_labels = ("namespace", "pod", "uid", "container")
    info = GaugeMetricFamily(
        "kube_pod_info",
        "Information about pod.",
        labels=(
            *pod_labels,
            "host_ip",
            "pod_ip",
            "node",
            "created_by_kind",
            "created_by_name",
            "priority_class",
            "host_network",
        ),
    )
    ready = GaugeMetricFamily(
        "kube_pod_status_ready",
        "Describes whether the pod is ready to serve requests.",
        labels=(*pod_labels, "condition"),
    )
    phase = GaugeMetricFamily(
        "kube_pod_status_phase", "The pods current phase.", labels=(*pod_labels, "phase")
    )
    resource_labels = (*container_labels, "node", "resource", "unit")
    requests = GaugeMetricFamily(
        "kube_pod_container_resource_requests",
        "The number of requested request resource by a container. It is recommended to use the "
        "kube_pod_resource_requests metric exposed by kube-scheduler instead, as it is more precise.",
        labels=resource_labels,
    )
    limits = GaugeMetricFamily(
        "kube_pod_container_resource_limits",
        "The number of requested limit resource by a container. It is recommended to use the "
        "kube_pod_resource_limits metric exposed by kube-scheduler instead, as it is more precise.",
        labels=resource_labels,
    )
    restarts = CounterMetricFamily(
        "kube_pod_container_status_restarts_total",
        "The number of container restarts per container.",
        labels=container_labels,
    )
    for pod in pods:
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        ids = [meta["namespace"], meta["name"], meta.get("uid", "")]
        node = spec.get("nodeName", "")
        kind, name = _controller(meta)
        info.add_metric(
            [
                *ids,
                status.get("hostIP", ""),
                status.get("podIP", ""),
                node,
                kind,
                name,
                spec.get("priorityClassName", ""),
                "true" if spec.get("hostNetwork") else "false",
            ],
            1,
        )
        current = status.get("phase", "")
        for value in ("Pending", "Succeeded", "Failed", "Unknown", "Running"):
            phase.add_metric([*ids, value], 1 if current == value else 0)
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Ready":
                state = (condition.get("status") or "Unknown").lower()
                for value in ("true", "false", "unknown"):
                    ready.add_metric([*ids, value], 1 if state == value else 0)
        for container in spec.get("containers") or []:
            resources = container.get("resources") or {}
            for family, key in ((requests, "requests"), (limits, "limits")):
                for resource, quantity in sorted((resources.get(key) or {}).items()):
                    family.add_metric(
                        [*ids, container["name"], node, _label_name(resource), _resource_unit(resource)],
                        float(parse_quantity(quantity)),
                    )
        for container in status.get("containerStatuses") or []:
            restarts.add_metric([*ids, container["name"]], container.get("restartCount") or 0)
    return [info, ready, phase, requests, limits, restarts]


# (name, help, value from (spec, status); None: no sample), as kube-state-metrics defines them.
Series = tuple[tuple[str, str, Callable[[dict, dict], float | None]], ...]
DEPLOYMENT_SERIES: Series = (
    (
        "kube_deployment_spec_replicas",
        "Number of desired pods for a deployment.",
        lambda spec, status: spec.get("replicas"),
    ),
    (
        "kube_deployment_status_replicas",
        "The number of replicas per deployment.",
        lambda spec, status: status.get("replicas") or 0,
    ),
    (
        "kube_deployment_status_replicas_available",
        "The number of available replicas per deployment.",
        lambda spec, status: status.get("availableReplicas") or 0,
    ),
    (
        "kube_deployment_status_replicas_ready",
        "The number of ready replicas per deployment.",
        lambda spec, status: status.get("readyReplicas") or 0,
    ),
    (
        "kube_deployment_status_replicas_updated",
        "The number of updated replicas per deployment.",
        lambda spec, status: status.get("updatedReplicas") or 0,
    ),
)
HPA_SERIES: Series = (
    (
        "kube_horizontalpodautoscaler_spec_min_replicas",
        "Lower limit for the number of pods that can be set by the autoscaler, default 1.",
        lambda spec, status: spec.get("minReplicas"),
    ),
    (
        "kube_horizontalpodautoscaler_spec_max_replicas",
        "Upper limit for the number of pods that can be set by the autoscaler; cannot be smaller than "
        "MinReplicas.",
        lambda spec, status: spec.get("maxReplicas") or 0,
    ),
    (
        "kube_horizontalpodautoscaler_status_current_replicas",
        "Current number of replicas of pods managed by this autoscaler.",
        lambda spec, status: status.get("currentReplicas") or 0,
    ),
    (
        "kube_horizontalpodautoscaler_status_desired_replicas",
        "Desired number of replicas of pods managed by this autoscaler.",
        lambda spec, status: status.get("desiredReplicas") or 0,
    ),
)


def _object_families(objects: Iterable[dict], kind_label: str, series: Series) -> list:
    """One gauge per entry of ``series``, labelled ``namespace`` and ``kind_label`` (the object's name)."""
    families = [
        (GaugeMetricFamily(name, text, labels=("namespace", kind_label)), value)
        for name, text, value in series
    ]
    for obj in objects:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        for family, value in families:
            found = value(spec, status)
            if found is not None:
                family.add_metric([meta["namespace"], meta["name"]], found)
    return [family for family, _ in families]


class KubeStateCollector(Collector):
    """kube-state-metrics' series for pods, Deployments and HPAs, listed when Prometheus scrapes."""

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    def collect(self) -> Iterator:
        # All three lists first: a failed one fails the scrape (a 503), never a partial answer.
        pods = self.lister(LIST_PATHS["pods"])
        deployments = self.lister(LIST_PATHS["deployments"])
        hpas = self.lister(LIST_PATHS["horizontalpodautoscalers"])
        yield from _pod_families(pods)
        yield from _object_families(deployments, "deployment", DEPLOYMENT_SERIES)
        yield from _object_families(hpas, "horizontalpodautoscaler", HPA_SERIES)


def apiserver_lister(api_client) -> Lister:
    """Lists a collection path with ``api_client`` (raw JSON items, no model objects to build)."""

    def items(path: str) -> list[dict]:
        response = api_client.call_api(
            path,
            "GET",
            query_params=[("resourceVersion", "0")],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=LIST_TIMEOUT,
        )
        return json.loads(response.data).get("items") or []

    return items


# ---------------------------------------------------------------------------------------------------------
# HTTP


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, registries: dict[str, CollectorRegistry]) -> None:
        self.registries = registries
        super().__init__((HOST, 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        registry = self.server.registries.get(urlsplit(self.path).path.rstrip("/"))
        if registry is None:
            paths = ", ".join(sorted(self.server.registries))
            self._send(404, f"not found; served: {paths}\n".encode(), "text/plain; charset=utf-8")
            return
        try:
            body = generate_latest(registry)
        except Exception as exc:  # the apiserver unreachable or slow: the target shows down, with why
            log.warning("%s: %s", self.path, exc)
            self._send(503, f"{type(exc).__name__}: {exc}\n".encode(), "text/plain; charset=utf-8")
            return
        self._send(200, body, CONTENT_TYPE_LATEST)


class Exporter:
    """``/metrics/cadvisor`` and ``/metrics/kube-state`` on 127.0.0.1 and a free port (module docs)."""

    def __init__(self, *, containers: Callable[[], list[ContainerStatsSample]], lister: Lister) -> None:
        self.registries: dict[str, CollectorRegistry] = {}
        for path, collector in (
            (CADVISOR_PATH, CadvisorCollector(containers)),
            (KUBE_STATE_PATH, KubeStateCollector(lister)),
        ):
            registry = CollectorRegistry(auto_describe=False)  # describing would run a scrape's lists
            registry.register(collector)
            self.registries[path] = registry
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` while serving, else empty."""
        return f"{HOST}:{self._httpd.server_address[1]}" if self._httpd else ""

    def start(self) -> str:
        self._httpd = _Server(self.registries)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="exporter", daemon=True)
        self._thread.start()
        log.info("cAdvisor and kube-state series served on http://%s", self.address)
        return self.address

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
