"""Taking a project out of an environment: ops only, the portal's objects deleted from the real cluster,
the environment forgotten (so Prometheus' discovery drops its pods), audited; a second try is clean."""

import pytest
from django.core.cache import cache

from clusters.models import ProjectEnvironment
from integrations.kubernetes.client import KubeClient
from observability.models import AuditEvent
from tests.helpers.environments import provision

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = "teardown-sd-token"  # noqa: S105 (a test value)


def api(env) -> str:
    return f"/api/projects/{env.project.name}/environments/{env.environment}/"


def test_only_ops_tear_down(client, local_clusters, people):
    env = provision(people, local_clusters["test"], wait=False)
    client.force_login(people.owner)
    refused = client.delete(api(env))
    assert refused.status_code == 403 and "Only ops" in refused.json()["detail"]
    client.force_login(people.outsider)
    assert client.delete(api(env)).status_code == 404
    assert ProjectEnvironment.objects.filter(pk=env.pk).exists()


def test_teardown_deletes_the_objects_and_the_targets(client, local_clusters, people, settings):
    settings.MONITORING_TOKEN = TOKEN
    settings.MONITORING_SD_CACHE_SECONDS = 0
    cache.clear()
    cluster = local_clusters["test"]
    env = provision(people, cluster)
    sd = f"/api/monitoring/sd/{cluster.name}/"
    assert len(client.get(sd, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()) == 2

    client.force_login(people.ops)
    answer = client.delete(api(env))
    assert answer.status_code == 200, answer.content
    assert set(answer.json()["deleted"]) >= {
        "Deployment/orders",
        "Service/orders",
        "HorizontalPodAutoscaler/orders",
    }
    with KubeClient.from_cluster(cluster) as kube:
        assert kube.get("Deployment", env.namespace, "orders") is None
        assert kube.get("Service", env.namespace, "orders") is None
        assert kube.get("HorizontalPodAutoscaler", env.namespace, "orders") is None
    assert not ProjectEnvironment.objects.filter(pk=env.pk).exists()
    assert client.get(sd, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json() == []
    event = AuditEvent.objects.get(verb="environment.teardown")
    assert event.actor == people.ops and event.changes["namespace"] == [env.namespace, None]
    # The environment is gone for everyone now.
    assert client.delete(api(env)).status_code == 404


def test_the_page_button_is_for_ops_and_tears_down(client, local_clusters, people):
    env = provision(people, local_clusters["test"], wait=False)
    page = f"/projects/{env.project.name}/env/{env.environment}/"
    client.force_login(people.developer)
    assert b"teardown-button" not in client.get(page).content
    assert client.post(page + "teardown/").status_code == 403
    client.force_login(people.ops)
    assert b"teardown-button" in client.get(page).content
    answer = client.post(page + "teardown/", follow=True)
    assert answer.redirect_chain[-1][0].endswith("?tab=environments")
    assert "is no longer in" in answer.content.decode()
    assert not ProjectEnvironment.objects.filter(pk=env.pk).exists()


def test_a_cluster_that_refuses_leaves_the_environment_recorded(client, local_clusters, people, settings):
    env = provision(people, local_clusters["test"], wait=False)
    cluster = env.cluster
    cluster.api_url = "https://127.0.0.1:9"  # nothing listens there
    cluster.save()
    client.force_login(people.ops)
    answer = client.delete(api(env))
    assert answer.status_code == 502, answer.content
    assert answer.json()["detail"]
    # The page says so and keeps the environment too.
    page = client.post(f"/projects/{env.project.name}/env/test/teardown/", follow=True)
    assert "The cluster refused" in page.content.decode()
    assert ProjectEnvironment.objects.filter(pk=env.pk).exists()
    assert not AuditEvent.objects.filter(verb="environment.teardown").exists()
