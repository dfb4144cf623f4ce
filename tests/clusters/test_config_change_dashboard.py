"""A configuration change that alters what Prometheus scrapes (metrics path or port) re-syncs the
environment's Grafana dashboard once it is applied; other changes leave the dashboard alone."""

import pytest

from clusters.choices import ConfigChangeStatus, DashboardStatus
from clusters.models import Dashboard, ProjectEnvironment
from clusters.selectors.environments import EnvironmentRef
from clusters.services import config_changes
from tests.fixtures.standins import GRAFANA_TOKEN
from tests.helpers.environments import provision, run_change

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


def _change(people, env, django_capture_on_commit_callbacks, **request):
    ref = EnvironmentRef(project=people.project, environment=ProjectEnvironment.objects.get(pk=env.pk))
    with django_capture_on_commit_callbacks(execute=False):
        _plan, change = config_changes.config_change_create(actor=people.ops, ref=ref, request=request)
    change = run_change(change)
    assert change.status == ConfigChangeStatus.APPLIED, change.error
    return change


def test_only_a_scrape_change_resyncs_the_dashboard(
    people, local_clusters, django_capture_on_commit_callbacks, grafana_standin, settings
):
    env = provision(people, local_clusters["test"])
    settings.GRAFANA_URL, settings.GRAFANA_TOKEN = grafana_standin.url, GRAFANA_TOKEN

    _change(people, env, django_capture_on_commit_callbacks, memory_request="640Mi")
    assert not Dashboard.objects.filter(environment=env).exists()

    _change(people, env, django_capture_on_commit_callbacks, metrics_path="/stats")
    dashboard = Dashboard.objects.get(environment=env)
    assert dashboard.status == DashboardStatus.PENDING
    assert dashboard.reason == "metrics path or port changed"
