"""Onboarding against the real local control plane creates the environment's Grafana dashboard (in the
stand-in, over HTTP), and a Grafana outage never holds onboarding back: the ticket ends active, the
dashboard waits in pending, and the sweeper creates it once Grafana answers again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from clusters.choices import DashboardStatus
from clusters.models import Dashboard
from clusters.services.dashboards import dashboards_sweep
from clusters.tasks import sync_dashboard
from deploys.choices import TicketStatus
from observability.monitoring.dashboards import dashboard_uid, folder_uid
from tests.fixtures.standins import GRAFANA_TOKEN
from tests.helpers.tickets import approved_ticket, run_provisioning

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


def _sync(dashboard: Dashboard) -> Dashboard:
    sync_dashboard.apply(kwargs={"dashboard_id": dashboard.pk, "run_token": str(dashboard.run_token)})
    dashboard.refresh_from_db()
    return dashboard


def test_onboarding_through_a_grafana_outage_then_the_sweeper_creates_the_dashboard(
    people, local_clusters, kube_cluster, django_capture_on_commit_callbacks, grafana_standin, settings
):
    settings.GRAFANA_URL, settings.GRAFANA_TOKEN = grafana_standin.url, GRAFANA_TOKEN
    settings.INTEGRATION_MAX_RETRIES = 0  # give up at the first transient error: this test is the sweeper's
    grafana_standin.set_outage(True)
    ticket = approved_ticket(people, local_clusters["test"], django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        ticket = run_provisioning(ticket)
    assert ticket.status == TicketStatus.ACTIVE, ticket.error
    dashboard = Dashboard.objects.get(environment__project=people.project, environment__environment="test")
    assert dashboard.status == DashboardStatus.PENDING

    dashboard = _sync(dashboard)  # Grafana is still down
    assert dashboard.status == DashboardStatus.PENDING
    assert "500" in dashboard.error
    assert grafana_standin.dashboards == {}

    grafana_standin.set_outage(False)
    Dashboard.objects.filter(pk=dashboard.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=False):
        assert dashboards_sweep() == (1, 0)  # re-queued (the queued message is applied below)
    dashboard = _sync(dashboard)
    assert dashboard.status == DashboardStatus.SYNCED, dashboard.error
    uid = dashboard_uid("orders", "test")
    assert [d["uid"] for d in grafana_standin.search({"folderUIDs": [folder_uid("orders")]})] == [uid]
    panels = grafana_standin.dashboards[uid]["dashboard"]["panels"]
    assert panels and all(
        'namespace="' in t["expr"] or 'project="orders"' in t["expr"] for p in panels for t in p["targets"]
    )
