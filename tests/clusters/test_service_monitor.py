"""Clusters whose Prometheus is the Prometheus Operator get a ServiceMonitor per environment, applied with
its workload to the real apiserver (which checks it against a structural schema of the fields used)."""

import time

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from clusters.choices import ClusterMonitoring
from clusters.workload import manifests
from clusters.workload.request import build_spec
from integrations.kubernetes.client import KubeClient
from tests.fixtures.clusters import VALID_REQUEST
from tests.helpers.environments import provision

pytestmark = pytest.mark.django_db(transaction=True)

_STRINGS = {"type": "array", "items": {"type": "string"}}
# The fields the portal renders, as the Prometheus Operator's CRD types them; anything else is pruned, so a
# misspelt field in the renderer shows up as a difference below.
_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "properties": {
                        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}
                    },
                },
                "namespaceSelector": {"type": "object", "properties": {"matchNames": _STRINGS}},
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"type": "string", "enum": ["http", "https"]},
                            "relabelings": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "action": {"type": "string"},
                                        "sourceLabels": _STRINGS,
                                        "targetLabel": {"type": "string"},
                                        "replacement": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": _SCHEMA}}],
    },
}


@pytest.fixture
def operator_crd(kube_cluster):
    api = k8s.ApiextensionsV1Api(kube_cluster.api_client)
    try:
        api.create_custom_resource_definition(CRD)
    except ApiException as exc:
        if exc.status != 409:
            raise
    deadline = time.monotonic() + 30
    while True:
        conditions = api.read_custom_resource_definition(CRD["metadata"]["name"]).status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        assert time.monotonic() < deadline, "the ServiceMonitor CRD was not established"
        time.sleep(0.2)


@pytest.fixture
def operator_cluster(local_clusters):
    cluster = local_clusters["test"]
    cluster.monitoring = ClusterMonitoring.SERVICE_MONITOR
    cluster.save()
    return cluster


def test_portal_clusters_get_no_service_monitor(local_clusters, people):
    spec = build_spec(
        project=people.project,
        environment="test",
        cluster=local_clusters["test"],
        request=VALID_REQUEST,
        overrides={},
    )
    assert "ServiceMonitor" not in {o["kind"] for o in manifests.render(spec).objects}


def test_operator_clusters_get_a_service_monitor_with_the_workload(operator_crd, operator_cluster, people):
    env = provision(
        people, operator_cluster, wait=False, metrics_path="/actuator/prometheus", metrics_port=9100
    )
    with KubeClient.from_cluster(operator_cluster) as kube:
        monitor = kube.get("ServiceMonitor", env.namespace, "orders")
        service = kube.get("Service", env.namespace, "orders")
    assert monitor is not None and {"kind": "ServiceMonitor", "name": "orders"} in env.live_objects
    spec = build_spec(
        project=people.project,
        environment="test",
        cluster=operator_cluster,
        request=env.spec["request"],
        overrides={},
    )
    rendered = next(o for o in manifests.render(spec).objects if o["kind"] == "ServiceMonitor")
    assert monitor["spec"] == rendered["spec"]  # nothing pruned: every field is one the Operator knows
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [env.namespace]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/actuator/prometheus" and endpoint["port"] == "metrics"
    labels = {r["targetLabel"]: r.get("replacement") for r in endpoint["relabelings"]}
    assert labels["project"] == "orders" and labels["env"] == "test" and labels["service"] == "orders"
    # The Service carries the metrics port, so the Operator finds it in the endpoints.
    assert {"name": "metrics", "port": 9100} in [
        {"name": p["name"], "port": p["port"]} for p in service["spec"]["ports"]
    ]
    # The ServiceMonitor's selector picks exactly the environment's Service.
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_teardown_removes_the_service_monitor(operator_crd, operator_cluster, people, client):
    env = provision(people, operator_cluster, wait=False)
    client.force_login(people.ops)
    answer = client.delete("/api/projects/orders/environments/test/")
    assert answer.status_code == 200 and "ServiceMonitor/orders" in answer.json()["deleted"]
    with KubeClient.from_cluster(operator_cluster) as kube:
        assert kube.get("ServiceMonitor", env.namespace, "orders") is None
