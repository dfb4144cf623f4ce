"""The environment page and API say where the environment's Grafana dashboard is, or why there is none."""

from __future__ import annotations

import pytest
from django.utils import timezone

from clusters.choices import DashboardStatus
from clusters.models import Cluster, Dashboard, ProjectEnvironment

pytestmark = pytest.mark.django_db

PAGE = "/projects/orders/env/test/"
API = "/api/projects/orders/environments/test/"


@pytest.fixture
def env(people):
    # Nothing listens at the cluster's address: the page renders with "could not read the cluster".
    cluster = Cluster.objects.create(name="grafana-page", environment="test", api_url="https://127.0.0.1:9")
    return ProjectEnvironment.objects.create(
        project=people.project,
        environment="test",
        cluster=cluster,
        namespace="orders-test",
        provisioned_at=timezone.now(),
    )


def _dashboard(env, **fields) -> Dashboard:
    return Dashboard.objects.create(
        environment=env, uid="svc-orders-test", folder_uid="opsportal-orders", **fields
    )


def test_without_grafana_the_page_and_api_say_so(client, people, env, settings):
    settings.GRAFANA_URL = ""
    client.force_login(people.developer)
    assert "Grafana not configured" in client.get(PAGE).content.decode()
    assert client.get(API).json()["dashboard"] == {
        "status": "off",
        "url": None,
        "error": "",
        "version": None,
        "uid": None,
    }


def test_a_synced_dashboard_is_linked_at_the_public_address(client, people, env, settings):
    settings.GRAFANA_URL = "http://grafana.internal:3000"
    settings.GRAFANA_PUBLIC_URL = "https://grafana.example.com/"
    _dashboard(env, status=DashboardStatus.SYNCED, url="/d/svc-orders-test/orders-test", version=2)
    client.force_login(people.viewer)
    html = client.get(PAGE).content.decode()
    assert 'href="https://grafana.example.com/d/svc-orders-test/orders-test"' in html
    body = client.get(API).json()["dashboard"]
    assert body["status"] == "synced" and body["version"] == 2
    assert body["url"] == "https://grafana.example.com/d/svc-orders-test/orders-test"


def test_a_pending_and_a_failed_dashboard_are_shown_with_the_cause(client, people, env, settings):
    settings.GRAFANA_URL = "http://grafana.internal:3000"
    settings.GRAFANA_PUBLIC_URL = ""
    dashboard = _dashboard(env, status=DashboardStatus.PENDING, error="Grafana answered 500")
    client.force_login(people.developer)
    html = client.get(PAGE).content.decode()
    assert "dashboard pending" in html and "Grafana answered 500" in html
    assert 'id="grafana-dashboard-link"' not in html
    Dashboard.objects.filter(pk=dashboard.pk).update(status=DashboardStatus.FAILED, error="token refused")
    assert "dashboard failed: token refused" in client.get(PAGE).content.decode()
    assert client.get(API).json()["dashboard"]["error"] == "token refused"


def test_an_outsider_learns_nothing_about_the_dashboard(client, people, env, settings):
    settings.GRAFANA_URL = "http://grafana.internal:3000"
    _dashboard(env, status=DashboardStatus.SYNCED, url="/d/svc-orders-test/orders-test")
    client.force_login(people.outsider)
    assert client.get(PAGE).status_code == 404
    assert client.get(API).status_code == 404
