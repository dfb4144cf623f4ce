"""metrics.k8s.io through the real apiserver's aggregation layer, from real processes' cgroup usage.

Two real processes (one busy-looping, one idle holding memory) run in cgroup v1 ``cpuacct`` and ``memory``
groups made here; ``sample()`` reads those groups for pods created in a namespace (kwok marks them
Running), exactly as the pod agent reads its containers' groups. Everything is asserted through the
apiserver: what the aggregator proxies, and what the HPA controller in kube-controller-manager does with it.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandbox.kube.agent.metrics_api import (
    APISERVICE_NAME,
    SERVICE_NAME,
    SERVICE_NAMESPACE,
    ContainerSample,
    MetricsServer,
    PodSample,
    metrics_api_available,
    register_metrics_api,
)
from sandbox.procs import die_with_parent
from tests.fixtures.ci import unavailable
from tests.polling import until

pytestmark = pytest.mark.kube

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("cpuacct", "memory")
SAMPLE_INTERVAL = 1.0
IDLE_HOLDS_BYTES = 16 << 20
BUSY = "while True: pass"
# Touches every page of what it holds, so the pages are charged to its memory group.
IDLE = (
    f"import time\nheld = bytearray({IDLE_HOLDS_BYTES})\n"
    "held[::4096] = b'x' * len(held[::4096])\ntime.sleep(3600)"
)


# ---------------------------------------------------------------------------------------------------------
# Real processes in real cgroups


@dataclass
class CgroupProcess:
    name: str
    paths: dict[str, Path]
    popen: subprocess.Popen | None = None

    def usage(self) -> tuple[int, int]:
        """Cumulative cpu ns and the working set, as the pod agent reads a container's groups."""
        cpu_ns = int((self.paths["cpuacct"] / "cpuacct.usage").read_text())
        memory = self.paths["memory"]
        stat = dict(line.split() for line in (memory / "memory.stat").read_text().splitlines())
        working_set = int((memory / "memory.usage_in_bytes").read_text()) - int(stat["total_inactive_file"])
        return cpu_ns, max(working_set, 0)


def _start_in_cgroup(group: CgroupProcess, code: str) -> None:
    procs_files = [group.paths[ctl] / "cgroup.procs" for ctl in CONTROLLERS]
    die = die_with_parent(os.getpid())

    def enter_cgroups() -> None:
        die()
        for procs in procs_files:  # before exec, so every page and cycle of the program is charged here
            procs.write_text(str(os.getpid()))

    group.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed code
        [sys.executable, "-c", code], preexec_fn=enter_cgroups, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def cgroup_processes() -> Iterator[dict[str, CgroupProcess]]:
    if os.geteuid() != 0 or not all((CGROUP_ROOT / ctl / "cgroup.procs").is_file() for ctl in CONTROLLERS):
        unavailable("needs root and the cgroup v1 cpuacct and memory controllers")
    parent = f"opsportal-test-{uuid.uuid4().hex[:10]}"
    groups = {
        name: CgroupProcess(name, {ctl: CGROUP_ROOT / ctl / parent / name for ctl in CONTROLLERS})
        for name in ("busy", "idle")
    }
    try:
        for group in groups.values():
            for path in group.paths.values():
                path.mkdir(parents=True)
        _start_in_cgroup(groups["busy"], BUSY)
        _start_in_cgroup(groups["idle"], IDLE)
        yield groups
    finally:
        for group in groups.values():
            if group.popen:
                group.popen.kill()
                group.popen.wait(timeout=10)
        for ctl in CONTROLLERS:
            for group in groups.values():
                path = group.paths[ctl]
                # A killed task leaves its group a moment later: retry rmdir briefly.
                until(f"rmdir {path}", lambda path=path: _rmdir(path), timeout=10)
            _rmdir(CGROUP_ROOT / ctl / parent)


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------
# The metrics server, registered with the session cluster


@dataclass
class MetricsApi:
    server: MetricsServer
    port: int
    pki: Path
    # What sample() reports, set by each test: pods -> the group whose usage they report.
    pods: Callable[[], list[tuple[PodSample, CgroupProcess]]] = field(default=lambda: [])

    def sample(self) -> list[PodSample]:
        samples = []
        for pod, group in self.pods():
            cpu_ns, memory = group.usage()
            samples.append(
                PodSample(
                    pod.namespace, pod.name, pod.labels, pod.node, [ContainerSample("app", cpu_ns, memory)]
                )
            )
        return samples


def _saved(api_client) -> tuple[dict | None, dict | None]:
    """The current registration (the pod agent's, when it runs), to put back afterwards."""
    from kubernetes import client

    def plain(obj) -> dict:
        data = api_client.sanitize_for_serialization(obj)
        data["metadata"] = {k: v for k, v in data["metadata"].items() if k in ("name", "namespace", "labels")}
        data.pop("status", None)
        return data

    try:
        api_service = plain(client.ApiregistrationV1Api(api_client).read_api_service(APISERVICE_NAME))
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        api_service = None
    try:
        service = plain(client.CoreV1Api(api_client).read_namespaced_service(SERVICE_NAME, SERVICE_NAMESPACE))
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        service = None
    return api_service, service


def _restore(api_client, api_service: dict | None, service: dict | None) -> None:
    from kubernetes import client

    registration, core = client.ApiregistrationV1Api(api_client), client.CoreV1Api(api_client)
    registration.delete_api_service(APISERVICE_NAME)
    core.delete_namespaced_service(SERVICE_NAME, SERVICE_NAMESPACE)
    if service is not None:
        core.create_namespaced_service(SERVICE_NAMESPACE, service)
    if api_service is not None:
        registration.create_api_service(api_service)


@pytest.fixture(scope="module")
def metrics_api(kube_cluster) -> Iterator[MetricsApi]:
    cluster, api_client = kube_cluster.cluster, kube_cluster.api_client
    holder: dict[str, MetricsApi] = {}
    server = MetricsServer(
        pki_dir=cluster.pki,
        sample=lambda: holder["api"].sample() if "api" in holder else [],
        nodes=cluster.node_names,
        interval=SAMPLE_INTERVAL,
    )
    port = server.start()
    holder["api"] = MetricsApi(server=server, port=port, pki=cluster.pki)
    previous = _saved(api_client)
    try:
        register_metrics_api(api_client, port=port, ca_bundle=(cluster.pki / "ca.crt").read_bytes())
        until(
            "the APIService v1beta1.metrics.k8s.io to be Available",
            lambda: metrics_api_available(api_client)[0],
        )
        yield holder["api"]
    finally:
        _restore(api_client, *previous)
        server.stop()


@pytest.fixture
def metered(metrics_api: MetricsApi, cgroup_processes: dict[str, CgroupProcess]) -> Iterator[MetricsApi]:
    """The metrics server with real processes for this test; it reports nothing once they are gone."""
    try:
        yield metrics_api
    finally:
        metered.pods = lambda: []


# ---------------------------------------------------------------------------------------------------------
# Helpers


def _get(api_client, path: str) -> dict:
    response = api_client.call_api(path, "GET", _preload_content=False, _return_http_data_only=True)
    return json.loads(response.data)


def _millicores(quantity: str) -> float:
    assert quantity.endswith("n") or quantity == "0", quantity
    return int(quantity.rstrip("n")) / 1e6


def _kibibytes(quantity: str) -> int:
    assert quantity.endswith("Ki") or quantity == "0", quantity
    return int(quantity.removesuffix("Ki"))


def _pod(name: str, labels: dict[str, str], cpu_request: str = "100m") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example.com/app:1",
                    "resources": {"requests": {"cpu": cpu_request}},
                }
            ]
        },
    }


def _running_pods(core, namespace: str, selector: str, count: int) -> list:
    def running():
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        running = [p for p in pods if p.status.phase == "Running" and p.spec.node_name]
        return running if len(running) >= count else None

    return until(f"{count} running pods {selector} in {namespace}", running)


def _as_sample(pod) -> PodSample:
    return PodSample(
        pod.metadata.namespace, pod.metadata.name, pod.metadata.labels or {}, pod.spec.node_name, []
    )


# ---------------------------------------------------------------------------------------------------------
# Tests


def test_pod_metrics_through_the_apiserver_are_the_processes_real_usage(
    kube_cluster, kube_namespace, metered, cgroup_processes
):
    from kubernetes import client

    api_client = kube_cluster.api_client
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(kube_namespace, _pod("busy", {"app": "load", "role": "busy"}))
    core.create_namespaced_pod(kube_namespace, _pod("idle", {"app": "load", "role": "idle"}))
    pods = {p.metadata.name: _as_sample(p) for p in _running_pods(core, kube_namespace, "app=load", 2)}
    metered.pods = lambda: [
        (pods["busy"], cgroup_processes["busy"]),
        (pods["idle"], cgroup_processes["idle"]),
    ]

    custom = client.CustomObjectsApi(api_client)

    def reported(name: str) -> dict | None:
        try:
            return custom.get_namespaced_custom_object(
                "metrics.k8s.io", "v1beta1", kube_namespace, "pods", name
            )
        except client.ApiException as exc:
            if exc.status == 404:  # fewer than two samples yet
                return None
            raise

    # Several windows, so one scheduling hiccup of the shared machine does not decide the test.
    busy_cpu = []
    for _ in range(3):
        busy = until("metrics of the busy pod", lambda: reported("busy"))
        busy_cpu.append(_millicores(busy["containers"][0]["usage"]["cpu"]))
        time.sleep(SAMPLE_INTERVAL)
    idle = until("metrics of the idle pod", lambda: reported("idle"))

    assert busy["metadata"] == {**busy["metadata"], "name": "busy", "namespace": kube_namespace}
    assert busy["metadata"]["labels"] == {"app": "load", "role": "busy"}
    assert busy["window"].endswith("s") and 0.5 <= float(busy["window"][:-1]) <= 3 * SAMPLE_INTERVAL
    assert busy["timestamp"].endswith("Z")
    assert [c["name"] for c in busy["containers"]] == ["app"]
    assert max(busy_cpu) >= 200, busy_cpu  # a busy loop: hundreds of millicores even on a loaded machine
    assert _millicores(idle["containers"][0]["usage"]["cpu"]) < 20
    assert _kibibytes(idle["containers"][0]["usage"]["memory"]) >= IDLE_HOLDS_BYTES // 1024
    assert _kibibytes(busy["containers"][0]["usage"]["memory"]) > 0

    # Lists: a namespace, all namespaces, and the selectors the HPA and kubectl send.
    def names(query: str, namespace: str | None = kube_namespace) -> list[str]:
        prefix = (
            f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}"
            if namespace
            else "/apis/metrics.k8s.io/v1beta1"
        )
        listed = _get(api_client, f"{prefix}/pods{query}")
        assert listed["kind"] == "PodMetricsList"
        return [
            item["metadata"]["name"]
            for item in listed["items"]
            if item["metadata"]["namespace"] == kube_namespace
        ]

    assert names("") == ["busy", "idle"]
    assert names("", namespace=None) == ["busy", "idle"]
    assert names("?labelSelector=role%3Dbusy") == ["busy"]
    assert names("?labelSelector=app%3D%3Dload,role!%3Dbusy") == ["idle"]
    assert names("?labelSelector=role+in+(idle,other)") == ["idle"]
    assert names("?labelSelector=role+notin+(idle)") == ["busy"]
    assert names("?labelSelector=app,!missing") == ["busy", "idle"]
    assert names("?labelSelector=missing") == []
    assert names("?fieldSelector=metadata.name%3Didle") == ["idle"]
    assert names("?labelSelector=app%3Dload,role%3D") == []  # an empty value is a value
    for malformed in ("role+in+idle", "role+in+()", "role+%3D+(", ",role"):
        with pytest.raises(client.ApiException) as bad:
            names(f"?labelSelector={malformed}")
        assert bad.value.status == 400, malformed

    # A node's usage is the sum of its pods'.
    node = pods["busy"].node
    node_metrics = _get(api_client, f"/apis/metrics.k8s.io/v1beta1/nodes/{node}")
    assert node_metrics["kind"] == "NodeMetrics" and node_metrics["metadata"]["name"] == node
    assert _millicores(node_metrics["usage"]["cpu"]) >= 100
    listed = _get(api_client, "/apis/metrics.k8s.io/v1beta1/nodes")
    assert sorted(item["metadata"]["name"] for item in listed["items"]) == sorted(
        kube_cluster.cluster.node_names
    )


def test_hpa_controller_reads_the_metrics_and_scales_out_under_load(
    kube_cluster, kube_namespace, metered, cgroup_processes
):
    from kubernetes import client

    api_client = kube_cluster.api_client
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        kube_namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {
                    "matchLabels": labels,
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}],
                },
                "template": {
                    "metadata": {"labels": {**labels, "tier": "front"}},
                    "spec": _pod("web", labels)["spec"],
                },
            },
        },
    )
    first = _running_pods(core, kube_namespace, "app=web", 1)[0].metadata.name
    lock = threading.Lock()
    seen: dict[str, PodSample] = {}

    def deployment_pods() -> list[tuple[PodSample, CgroupProcess]]:
        # The load lands on the first replica; replicas the HPA adds are idle, as new pods are.
        with lock:
            for pod in core.list_namespaced_pod(kube_namespace, label_selector="app=web").items:
                if pod.status.phase == "Running" and pod.spec.node_name:
                    seen.setdefault(pod.metadata.name, _as_sample(pod))
            return [
                (pod, cgroup_processes["busy" if name == first else "idle"]) for name, pod in seen.items()
            ]

    metered.pods = deployment_pods
    # As metrics-server would have before anyone creates an HPA: the pod's usage is already served.
    until(
        "metrics of the Deployment's pod",
        lambda: _get(api_client, f"/apis/metrics.k8s.io/v1beta1/namespaces/{kube_namespace}/pods")["items"],
    )
    client.AutoscalingV2Api(api_client).create_namespaced_horizontal_pod_autoscaler(
        kube_namespace,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 50},
                        },
                    }
                ],
            },
        },
    )

    def hpa_status() -> dict:
        return (
            client.AutoscalingV2Api(api_client)
            .read_namespaced_horizontal_pod_autoscaler_status("web", kube_namespace)
            .to_dict()["status"]
        )

    def scaled() -> dict | None:
        status = hpa_status()
        return status if (status.get("desired_replicas") or 0) > 1 else None

    status = until("the HPA to scale the Deployment out", scaled, timeout=90)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["ScalingActive"]["status"] == "True", conditions
    assert conditions["ScalingActive"]["reason"] == "ValidMetricFound"
    current = status["current_metrics"][0]["resource"]
    assert current["name"] == "cpu"
    # ~1 core against a 100m request: far above the 50 % target (the HPA's 0.1 tolerance aside).
    assert current["current"]["average_utilization"] > 100, current
    assert status["desired_replicas"] == 3
    until(
        "the Deployment scaled to 3",
        lambda: apps.read_namespaced_deployment_scale("web", kube_namespace).spec.replicas == 3,
    )

    def event_reasons() -> set[str]:
        return {event.reason for event in core.list_namespaced_event(kube_namespace).items}

    until("the HPA's SuccessfulRescale event", lambda: "SuccessfulRescale" in event_reasons())
    assert "FailedGetResourceMetric" not in event_reasons()


def test_the_metrics_server_refuses_clients_without_the_front_proxy_certificate(metrics_api):
    url = f"https://127.0.0.1:{metrics_api.port}/apis/metrics.k8s.io/v1beta1/pods"
    anonymous = ssl.create_default_context(cafile=str(metrics_api.pki / "ca.crt"))
    # Signed by the same CA, but the admin's certificate is not the aggregator's.
    admin = ssl.create_default_context(cafile=str(metrics_api.pki / "ca.crt"))
    admin.load_cert_chain(metrics_api.pki / "admin.crt", metrics_api.pki / "admin.key")
    for context in (anonymous, admin):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, context=context, timeout=10)  # noqa: S310 - a fixed https URL
        assert refused.value.code == 401
        assert json.loads(refused.value.read())["reason"] == "Unauthorized"

    proxy = ssl.create_default_context(cafile=str(metrics_api.pki / "ca.crt"))
    proxy.load_cert_chain(
        metrics_api.pki / "front-proxy-client.crt", metrics_api.pki / "front-proxy-client.key"
    )
    with urllib.request.urlopen(url, context=proxy, timeout=10) as accepted:  # noqa: S310
        assert json.loads(accepted.read())["kind"] == "PodMetricsList"
