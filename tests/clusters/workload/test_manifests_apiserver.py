"""Rendered objects against the real local apiserver: accepted under strict field validation, kept as sent.

Needs the ``kube_cluster``/``kube_namespace`` fixtures (tests/fixtures/kube.py), registered by the suite's
conftest or with ``-p tests.fixtures.kube``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from clusters.workload.manifests import WorkloadSpec, render
from tests.fixtures.kube import KubeCluster

pytestmark = pytest.mark.kube

FIELD_MANAGER = "opsportal"


def java_load_balancer(namespace: str) -> WorkloadSpec:
    return WorkloadSpec(
        project="orders",
        environment="prod",
        namespace=namespace,
        language="java",
        image="hub.example.com/orders:20250101-42",
        replicas=3,
        hpa_min=2,
        hpa_max=10,
        cpu_request="1",
        memory_request="2Gi",
        cpu_limit="1500m",
        memory_limit="3Gi",
        service_type="LoadBalancer",
        health_path="/actuator/health",
        startup_seconds=75,
        runtime_options="-Dspring.profiles.active=prod",
        env_vars=(("TZ", "Asia/Shanghai"),),
        eureka_enabled=True,
        overrides=(("probe_timeout_seconds", 5),),
    )


def go_cluster_ip(namespace: str) -> WorkloadSpec:
    return WorkloadSpec(
        project="gateway",
        environment="test",
        namespace=namespace,
        language="go",
        image="hub.example.com/gateway:20250101-7",
        replicas=1,
        hpa_min=1,
        hpa_max=3,
        cpu_request="250m",
        memory_request="128Mi",
        hpa_memory_target=80,
    )


# Collection paths per kind. kubernetes==34.x typed patch_* methods cannot send the apply content type
# (``_content_type`` arrived in a later client), so apply goes through ApiClient.call_api.
PATHS = {
    "Service": "/api/v1/namespaces/{namespace}/services/{name}",
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
    "HorizontalPodAutoscaler": "/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/{name}",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/{name}",
}


def apply(api_client: Any, obj: dict, *, dry_run: bool) -> dict:
    """Server-side apply one rendered object; Strict validation makes an unknown field a 422."""
    query = [("fieldManager", FIELD_MANAGER), ("force", "true"), ("fieldValidation", "Strict")]
    if dry_run:
        query.append(("dryRun", "All"))
    response = api_client.call_api(
        PATHS[obj["kind"]],
        "PATCH",
        path_params={"namespace": obj["metadata"]["namespace"], "name": obj["metadata"]["name"]},
        query_params=query,
        header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        body=obj,
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=False,
    )
    return json.loads(response.data)


def assert_kept(rendered: Any, stored: Any, path: str = "") -> None:
    """Everything rendered is stored unchanged (the server may add defaults, nothing else)."""
    if isinstance(rendered, dict):
        assert isinstance(stored, dict), path
        for key, value in rendered.items():
            assert key in stored, f"{path}.{key} was dropped by the apiserver"
            assert_kept(value, stored[key], f"{path}.{key}")
    elif isinstance(rendered, list):
        assert isinstance(stored, list) and len(stored) == len(rendered), path
        for i, (mine, theirs) in enumerate(zip(rendered, stored, strict=True)):
            assert_kept(mine, theirs, f"{path}[{i}]")
    else:
        assert stored == rendered, f"{path}: rendered {rendered!r}, stored {stored!r}"


def test_java_load_balancer_objects_are_accepted(kube_cluster: KubeCluster, kube_namespace: str):
    objects = render(java_load_balancer(kube_namespace)).objects
    assert [o["kind"] for o in objects][-1] == "PodDisruptionBudget"

    for obj in objects:
        stored = apply(kube_cluster.api_client, obj, dry_run=True)
        assert (stored["kind"], stored["metadata"]["name"]) == (obj["kind"], "orders")
        assert_kept(obj["spec"], stored["spec"], obj["kind"])
        assert_kept(obj["metadata"]["labels"], stored["metadata"]["labels"])

    # Dry run: nothing was created.
    assert not client.AppsV1Api(kube_cluster.api_client).list_namespaced_deployment(kube_namespace).items


def test_go_cluster_ip_objects_are_applied_and_reapplying_changes_nothing(
    kube_cluster: KubeCluster, kube_namespace: str
):
    objects = render(go_cluster_ip(kube_namespace)).objects
    assert [o["kind"] for o in objects] == ["Service", "Deployment", "HorizontalPodAutoscaler"]

    first = [apply(kube_cluster.api_client, obj, dry_run=False) for obj in objects]
    for obj, stored in zip(objects, first, strict=True):
        assert_kept(obj["spec"], stored["spec"], obj["kind"])
    assert first[0]["spec"]["type"] == "ClusterIP"

    # Same spec, same objects: a second apply changes no stored spec and starts no new rollout.
    again = [
        apply(kube_cluster.api_client, obj, dry_run=False)
        for obj in render(go_cluster_ip(kube_namespace)).objects
    ]
    assert [o["spec"] for o in again] == [o["spec"] for o in first]
    assert again[1]["metadata"]["generation"] == first[1]["metadata"]["generation"] == 1
