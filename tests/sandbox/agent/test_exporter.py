"""The pod agent's cAdvisor and kube-state-metrics series (sandbox/kube/agent/exporter.py), scraped as
Prometheus scrapes them, against the session cluster's agent and real pods of the busybox test image."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from integrations.prometheus.client import PrometheusClient
from observability.monitoring.promql import CONTAINER, Scope, panel_get, panel_queries
from sandbox.kube.agent.exporter import KubeStateCollector
from sandbox.kube.cluster import STATE_FILE, ClusterState, free_port, read_state
from sandbox.procs import spawn
from tests.fixtures.ci import unavailable
from tests.fixtures.kube import KubeCluster
from tests.polling import until

MI = 1024 * 1024


def _address(kube_cluster: KubeCluster) -> str:
    address = kube_cluster.cluster.exporter_address
    if not address:
        pytest.fail(f"no exporter address: pods are {kube_cluster.cluster.pods_mode!r}, the agent serves it")
    return address


def _scrape(kube_cluster: KubeCluster, path: str) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(f"http://{_address(kube_cluster)}{path}", timeout=15) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _values(samples, name: str, **labels: str) -> list[float]:
    return [
        value
        for sample_name, sample_labels, value in samples
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    ]


def _one(samples, name: str, **labels: str) -> float | None:
    found = _values(samples, name, **labels)
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def _scrape_until(
    kube_cluster: KubeCluster, path: str, what: str, check: Callable[[list], bool], timeout: float = 30.0
) -> list[tuple[str, dict[str, str], float]]:
    """Scrape ``path`` until ``check`` holds for its samples; returns them."""
    return until(
        f"{what} in {path}",
        lambda: samples if check(samples := _scrape(kube_cluster, path)) else None,
        timeout,
    )


def _running(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    pod = core.read_namespaced_pod(name, namespace)
    statuses = pod.status.container_statuses or []
    running = statuses and all(status.state.running for status in statuses)
    return pod if running else None


def _deploy_with_hpa(
    api, namespace: str, name: str, container: dict, *, replicas: int, hpa_range: tuple[int, int]
) -> None:
    """A Deployment ``name`` of ``replicas`` pods of ``container`` and an HPA ``name`` over it."""
    labels = {"app": name}
    client.AppsV1Api(api).create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
                },
            },
        },
    )
    client.AutoscalingV2Api(api).create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": hpa_range[0],
                "maxReplicas": hpa_range[1],
            },
        },
    )


def _core(kube_cluster: KubeCluster) -> client.CoreV1Api:
    return client.CoreV1Api(kube_cluster.api_client)


# ---------------------------------------------------------------------------------------------------------


def test_the_state_file_carries_the_address_and_an_old_state_file_still_reads(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    cluster = kube_cluster.cluster
    if cluster.pods_mode != "real":
        pytest.fail(f"the agent (real pods) serves the exporter; pods here: {cluster.pods_reason}")
    assert re.fullmatch(r"127\.0\.0\.1:\d+", cluster.exporter_address)
    assert read_state(cluster.workdir).exporter_address == cluster.exporter_address
    assert ClusterState.read(cluster.workdir).phase == "ready"

    # As a sandbox before the exporter wrote it: the field takes its default, the rest still reads.
    (tmp_path / STATE_FILE).write_text(
        json.dumps({"phase": "ready", "message": "m", "server": "https://127.0.0.1:1", "pods_mode": "real"})
    )
    old = ClusterState.read(tmp_path)
    assert (old.phase, old.server, old.pods_mode, old.exporter_address) == (
        "ready",
        "https://127.0.0.1:1",
        "real",
        "",
    )


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} spell them) of the sockets listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].rpartition(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # TCP_LISTEN
                found.append(address)
    return found


def test_the_exporter_listens_on_loopback_only_and_serves_only_its_two_paths(
    kube_cluster: KubeCluster,
) -> None:
    port = int(_address(kube_cluster).rsplit(":", 1)[1])
    assert _listening(port) == ["0100007F"]  # 127.0.0.1, and no wildcard or IPv6 socket beside it
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{_address(kube_cluster)}/metrics", timeout=15)
    assert refused.value.code == 404
    for path, family in (
        ("/metrics/kube-state", "kube_pod_info"),
        ("/metrics/cadvisor", "container_cpu_usage_seconds_total"),
    ):
        with urllib.request.urlopen(f"http://{_address(kube_cluster)}{path}", timeout=15) as response:
            assert f"# TYPE {family} " in response.read().decode()  # served, even with no samples yet


def test_a_running_container_has_cpu_memory_and_its_spec_in_cadvisor_and_kube_state_series(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    # The CFS quota keeps the busy loop to a tenth of a core on a machine that has two for everyone.
    burner = {
        "name": "burn",
        "image": web_image,
        "command": ["sh", "-c", "while :; do :; done"],
        "resources": {
            "requests": {"cpu": "50m", "memory": "16Mi"},
            "limits": {"cpu": "100m", "memory": "64Mi"},
        },
    }
    idle = {"name": "idle", "image": web_image, "command": ["sleep", "3600"]}
    core.create_namespaced_pod(
        kube_namespace,
        {
            "metadata": {"name": "load"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [burner, idle]},
        },
    )
    pod = until("both containers to run", lambda: _running(core, kube_namespace, "load"), 120)
    ours = {"namespace": kube_namespace, "pod": "load"}

    cadvisor = _scrape_until(
        kube_cluster,
        "/metrics/cadvisor",
        "the burner's working set",
        lambda s: (_one(s, "container_memory_working_set_bytes", **ours, container="burn") or 0) > 0,
    )
    labels = next(
        lab
        for name, lab, _ in cadvisor
        if name == "container_cpu_usage_seconds_total" and lab.get("container") == "burn"
    )
    assert labels["image"] == web_image and labels["cpu"] == "total"
    assert pod.metadata.uid in labels["id"] and labels["id"].endswith("/burn")
    assert f"sandbox://{labels['name']}" in {s.container_id for s in pod.status.container_statuses}
    for container, limit in (("burn", 64 * MI), ("idle", 0)):  # 0: no limit, as cAdvisor says it
        assert _one(cadvisor, "container_spec_memory_limit_bytes", **ours, container=container) == limit
        working_set = _one(cadvisor, "container_memory_working_set_bytes", **ours, container=container)
        usage = _one(cadvisor, "container_memory_usage_bytes", **ours, container=container)
        assert usage is not None and working_set is not None and 0 < working_set <= usage

    before = _one(cadvisor, "container_cpu_usage_seconds_total", **ours, container="burn")
    assert before is not None and before > 0
    after = _one(
        _scrape_until(
            kube_cluster,
            "/metrics/cadvisor",
            "the burner's CPU counter to grow by 50 ms",
            lambda s: (_one(s, "container_cpu_usage_seconds_total", **ours, container="burn") or 0)
            >= before + 0.05,
        ),
        "container_cpu_usage_seconds_total",
        **ours,
        container="burn",
    )
    assert after > before

    state = _scrape(kube_cluster, "/metrics/kube-state")
    node = pod.spec.node_name
    spec = {
        ("kube_pod_container_resource_requests", "cpu", "core"): 0.05,
        ("kube_pod_container_resource_requests", "memory", "byte"): 16 * MI,
        ("kube_pod_container_resource_limits", "cpu", "core"): 0.1,
        ("kube_pod_container_resource_limits", "memory", "byte"): 64 * MI,
    }
    for (name, resource, unit), expected in spec.items():
        value = _one(state, name, **ours, container="burn", node=node, resource=resource, unit=unit)
        assert value == pytest.approx(expected), (name, resource)
    assert not _values(state, "kube_pod_container_resource_requests", **ours, container="idle")
    assert _one(state, "kube_pod_status_ready", **ours, condition="true") == 1
    assert _one(state, "kube_pod_status_ready", **ours, condition="false") == 0
    assert _one(state, "kube_pod_container_status_restarts_total", **ours, container="burn") == 0
    info = next(lab for name, lab, _ in state if name == "kube_pod_info" and lab.get("pod") == "load")
    assert (info["pod_ip"], info["node"], info["created_by_kind"], info["uid"]) == (
        pod.status.pod_ip,
        node,
        "<none>",
        pod.metadata.uid,
    )


def test_a_crashing_container_shows_its_restart_count_and_the_pod_not_ready(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str
) -> None:
    core = _core(kube_cluster)
    crash = {"name": "app", "image": web_image, "command": ["sh", "-c", "exit 3"]}
    core.create_namespaced_pod(
        kube_namespace, {"metadata": {"name": "crash"}, "spec": {"containers": [crash]}}
    )
    ours = {"namespace": kube_namespace, "pod": "crash", "container": "app"}

    restarts = _one(
        _scrape_until(
            kube_cluster,
            "/metrics/kube-state",
            "two restarts",
            lambda s: (_one(s, "kube_pod_container_status_restarts_total", **ours) or 0) >= 2,
            60,
        ),
        "kube_pod_container_status_restarts_total",
        **ours,
    )
    # The series is the pod status' count, which only grows: never ahead of what the API says after it.
    status = core.read_namespaced_pod("crash", kube_namespace).status.container_statuses[0]
    assert 2 <= restarts <= status.restart_count
    state = _scrape(kube_cluster, "/metrics/kube-state")
    ready = {"namespace": kube_namespace, "pod": "crash"}
    assert _one(state, "kube_pod_status_ready", **ready, condition="false") == 1
    assert _one(state, "kube_pod_status_ready", **ready, condition="true") == 0


def test_deployment_and_hpa_series_match_the_objects_and_simulated_pods_are_in_kube_state_only(
    kube_cluster: KubeCluster, kube_namespace: str
) -> None:
    api = kube_cluster.api_client
    # An image outside the sandbox registries: the agent simulates these pods (no process, no cgroup).
    container = {
        "name": "app",
        "image": "registry.example.com/sim:1",
        "resources": {"requests": {"cpu": "100m"}},
    }
    _deploy_with_hpa(api, kube_namespace, "sim", container, replicas=2, hpa_range=(2, 4))
    autoscaling = client.AutoscalingV2Api(api)
    deployment = {"namespace": kube_namespace, "deployment": "sim"}
    state = _scrape_until(
        kube_cluster,
        "/metrics/kube-state",
        "2 available replicas",
        lambda s: _one(s, "kube_deployment_status_replicas_available", **deployment) == 2,
        60,
    )
    found = client.AppsV1Api(api).read_namespaced_deployment("sim", kube_namespace)
    assert _one(state, "kube_deployment_spec_replicas", **deployment) == found.spec.replicas == 2
    assert _one(state, "kube_deployment_status_replicas", **deployment) == 2
    hpa = {"namespace": kube_namespace, "horizontalpodautoscaler": "sim"}
    assert _one(state, "kube_horizontalpodautoscaler_spec_min_replicas", **hpa) == 2
    assert _one(state, "kube_horizontalpodautoscaler_spec_max_replicas", **hpa) == 4

    pods = [lab for name, lab, _ in state if name == "kube_pod_info" and lab["namespace"] == kube_namespace]
    assert len(pods) == 2 and {p["created_by_kind"] for p in pods} == {"ReplicaSet"}
    assert {p["created_by_name"] for p in pods} == {
        rs.metadata.name for rs in client.AppsV1Api(api).list_namespaced_replica_set(kube_namespace).items
    }
    for pod in pods:
        ours = {"namespace": kube_namespace, "pod": pod["pod"], "container": "app"}
        assert _one(state, "kube_pod_container_resource_requests", **ours, resource="cpu") == pytest.approx(
            0.1
        )
    cadvisor = _scrape(kube_cluster, "/metrics/cadvisor")
    assert not [lab for _, lab, _ in cadvisor if lab.get("namespace") == kube_namespace]

    # Read at scrape time: a change to the objects shows in the next scrape, and the HPA's status too.
    autoscaling.patch_namespaced_horizontal_pod_autoscaler(
        "sim", kube_namespace, {"spec": {"maxReplicas": 5}}
    )

    def matches_the_hpa():
        scraped = _scrape(kube_cluster, "/metrics/kube-state")
        status = autoscaling.read_namespaced_horizontal_pod_autoscaler("sim", kube_namespace).status
        current = _one(scraped, "kube_horizontalpodautoscaler_status_current_replicas", **hpa)
        desired = _one(scraped, "kube_horizontalpodautoscaler_status_desired_replicas", **hpa)
        return (
            _one(scraped, "kube_horizontalpodautoscaler_spec_max_replicas", **hpa) == 5
            and current == (status.current_replicas or 0)
            and desired == (status.desired_replicas or 0)
        )

    until("the HPA's max and status in /metrics/kube-state", matches_the_hpa)


def test_kube_state_names_other_resources_and_an_unknown_ready_as_kube_state_metrics_does() -> None:
    pod = {
        "metadata": {"namespace": "ns", "name": "p", "uid": "u1"},
        "spec": {
            "nodeName": "n1",
            "containers": [
                {
                    "name": "c",
                    "resources": {
                        "requests": {"ephemeral-storage": "1Gi", "cpu": "1500m"},
                        "limits": {"nvidia.com/gpu": "1", "hugepages-2Mi": "4Mi"},
                    },
                }
            ],
        },
        "status": {"phase": "Unknown", "conditions": [{"type": "Ready", "status": "Unknown"}]},
    }
    listed = {"/api/v1/pods": [pod]}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KubeStateCollector(lambda path: listed.get(path, [])))
    samples = [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    ]
    ours = {"namespace": "ns", "pod": "p", "uid": "u1", "container": "c", "node": "n1"}
    requests, limits = "kube_pod_container_resource_requests", "kube_pod_container_resource_limits"
    assert _one(samples, requests, **ours, resource="ephemeral_storage", unit="byte") == 1024**3
    assert _one(samples, requests, **ours, resource="cpu", unit="core") == 1.5
    assert _one(samples, limits, **ours, resource="nvidia_com_gpu", unit="integer") == 1
    assert _one(samples, limits, **ours, resource="hugepages_2Mi", unit="byte") == 4 * MI
    pod_ids = {"namespace": "ns", "pod": "p"}
    assert [
        _one(samples, "kube_pod_status_ready", **pod_ids, condition=c) for c in ("true", "false", "unknown")
    ] == [
        0,
        0,
        1,
    ]
    assert _one(samples, "kube_pod_status_phase", **pod_ids, phase="Unknown") == 1
    info = _one(samples, "kube_pod_info", **pod_ids, created_by_kind="<none>", created_by_name="<none>")
    assert info == 1
    assert not _values(samples, "kube_pod_container_status_restarts_total")  # no status yet: no series


PROMETHEUS = Path("/usr/bin/prometheus")
PROMETHEUS_CONFIG = """\
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: kubelet
    honor_labels: true
    metrics_path: /metrics/cadvisor
    static_configs: [{{targets: ["{address}"]}}]
  - job_name: kube-state-metrics
    honor_labels: true
    metrics_path: /metrics/kube-state
    static_configs: [{{targets: ["{address}"]}}]
"""


@pytest.fixture
def prometheus(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[PrometheusClient]:
    """Debian's Prometheus scraping the agent as the sandbox's does (jobs kubelet, kube-state-metrics)."""
    if not PROMETHEUS.is_file():
        unavailable("Debian's prometheus is not installed")
    (tmp_path / "prometheus.yml").write_text(PROMETHEUS_CONFIG.format(address=_address(kube_cluster)))
    port = free_port()
    proc = spawn(
        [
            str(PROMETHEUS),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log=tmp_path / "prometheus.log",
    )
    api = PrometheusClient(f"http://127.0.0.1:{port}")
    try:
        until("Prometheus to be ready", lambda: proc.poll() is None and api.ready())
        yield api
    finally:
        proc.terminate()
        proc.wait(15)


def test_the_panels_promql_reads_these_series_through_a_real_prometheus(
    kube_cluster: KubeCluster, kube_namespace: str, web_image: str, prometheus: PrometheusClient
) -> None:
    api = kube_cluster.api_client
    container = {
        "name": CONTAINER,
        "image": web_image,
        "resources": {
            "requests": {"cpu": "50m", "memory": "16Mi"},
            "limits": {"cpu": "200m", "memory": "64Mi"},
        },
    }
    _deploy_with_hpa(api, kube_namespace, "web", container, replicas=1, hpa_range=(1, 3))
    scope = Scope(project="p", env="test", namespace=kube_namespace, deployment="web", hpa="web")

    def panel(panel_id: str) -> dict[str, list[float]] | None:
        """Each line of the panel's PromQL, as the panels API evaluates it; None until all have data."""
        lines = {}
        for legend, expr in panel_queries(panel_get(panel_id), scope, window_seconds=4):
            result = prometheus.query(expr)
            if not result:
                return None
            lines[legend] = [float(series["value"][1]) for series in result]
        return lines

    def replicas() -> dict[str, list[float]] | None:
        lines = panel("replicas")
        return lines if lines and lines["available"] == [1] else None

    assert until("the replicas panel with 1 available", replicas, 120) == {
        "available": [1],
        "desired": [1],
        "min": [1],
        "max": [3],
    }
    cpu = until("the CPU panel", lambda: panel("cpu"), 60)
    assert cpu["request"] == [0.05] and cpu["limit"] == [0.2]
    assert len(cpu["{{pod}}"]) == 1 and cpu["{{pod}}"][0] >= 0  # one pod; an idle httpd may use ~0
    memory = until("the memory panel", lambda: panel("memory"), 60)
    assert memory["request"] == [16 * MI] and memory["limit"] == [64 * MI]
    assert len(memory["{{pod}}"]) == 1 and 0 < memory["{{pod}}"][0] <= 64 * MI
    assert until("the restarts panel", lambda: panel("restarts"), 60) == {"{{pod}}": [0]}
