"""Prometheus' scrape-target discovery (http_sd) against the local control plane: one target group per
running pod of each active environment, with the project/env/service labels, behind the monitoring token."""

import ipaddress

import pytest
from django.core.cache import cache

from clusters.models import ProjectEnvironment
from integrations.kubernetes.client import KubeClient
from tests.helpers.environments import pod_names, provision
from tests.polling import until

TOKEN = "sd-token-3f9a"  # noqa: S105 (a test value)
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def monitoring(settings):
    settings.MONITORING_TOKEN = TOKEN
    settings.MONITORING_ALLOWED_NETWORKS = []
    settings.MONITORING_SD_CACHE_SECONDS = 0
    cache.clear()


def sd(client, cluster, token=TOKEN, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return client.get(f"/api/monitoring/sd/{cluster.name}/", **headers, **extra)


def test_only_the_token_or_an_allowed_network_may_read_targets(client, local_clusters, settings, people):
    cluster = local_clusters["test"]
    assert sd(client, cluster, token=None).status_code == 403
    assert sd(client, cluster, token="wrong").status_code == 403
    # A signed-in person is no scraper.
    client.force_login(people.ops)
    refused = sd(client, cluster, token=None)
    assert refused.status_code == 403 and "token" in refused.json()["detail"]
    assert sd(client, cluster).json() == []  # nothing active there yet
    settings.MONITORING_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    assert sd(client, cluster, token=None).status_code == 200  # the test client comes from 127.0.0.1
    missing = client.get("/api/monitoring/sd/no-such-cluster/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert missing.status_code == 404 and missing.json()["errors"] == {}


def _groups(client, cluster) -> list[dict]:
    response = sd(client, cluster)
    assert response.status_code == 200, response.content
    return response.json()


def test_one_group_per_running_pod_with_the_environment_labels(client, local_clusters, people, kube_cluster):
    cluster = local_clusters["test"]
    env = provision(people, cluster, metrics_path="/actuator/prometheus", metrics_port=9091)
    groups = _groups(client, cluster)
    pods = pod_names(kube_cluster, env.namespace)
    assert len(pods) == 2 and sorted(g["labels"]["pod"] for g in groups) == pods
    for group in groups:
        assert group["labels"] == {
            "project": "orders",
            "env": "test",
            "service": "orders",
            "namespace": env.namespace,
            "pod": group["labels"]["pod"],
            "__metrics_path__": "/actuator/prometheus",
        }
        (target,) = group["targets"]
        ip, port = target.rsplit(":", 1)
        assert port == "9091" and ipaddress.ip_address(ip) in ipaddress.ip_network("10.0.0.0/16")
    # The other cluster (same apiserver, another environment) does not list this one's pods.
    assert _groups(client, local_clusters["prod"]) == []

    # Scaling out adds targets; the apiserver is the truth, not the database.
    with KubeClient.from_cluster(cluster) as kube:
        kube.scale_deployment(env.namespace, "orders", 3)
    until("a third target", lambda: len(_groups(client, cluster)) == 3, timeout=60)


def kube_pod_ip(cluster, namespace: str, name: str) -> str:
    with KubeClient.from_cluster(cluster) as kube:
        return ((kube.get("Pod", namespace, name) or {}).get("status") or {}).get("podIP", "")


def test_a_pod_that_only_looks_like_ours_is_not_a_target(client, local_clusters, people, kube_cluster):
    cluster = local_clusters["test"]
    env = provision(people, cluster)
    # The same labels in a namespace that is not the environment's: never scraped.
    stray = f"{env.namespace}-stray"
    with KubeClient.from_cluster(cluster) as kube:
        kube.ensure_namespace(stray)
        pod = kube.get("Pod", env.namespace, pod_names(kube_cluster, env.namespace)[0])
        copy = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "lookalike", "namespace": stray, "labels": pod["metadata"]["labels"]},
            "spec": {
                "containers": [{"name": "app", "image": pod["spec"]["containers"][0]["image"]}],
                "nodeName": pod["spec"]["nodeName"],
            },
        }
        kube.apply(copy)
    until("the lookalike runs", lambda: kube_pod_ip(cluster, stray, "lookalike"), timeout=60)
    assert len(_groups(client, cluster)) == 2
    # An environment no longer active (its row gone) has no targets, whatever still runs.
    ProjectEnvironment.objects.filter(pk=env.pk).delete()
    assert _groups(client, cluster) == []
