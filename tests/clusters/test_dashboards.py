"""An environment's Grafana dashboard: requested on activation, written by a real Celery worker into the
Grafana stand-in over HTTP, kept pending through a Grafana outage and caught up by the sweeper, and
annotated when a release is deployed."""

from __future__ import annotations

import os

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from clusters.choices import DashboardStatus
from clusters.models import Cluster, Dashboard
from clusters.services.dashboards import dashboard_request_remove, dashboard_request_sync
from clusters.services.environments import environment_record_provisioned
from deploys.choices import ReleaseStatus
from deploys.models import Release
from observability.models import AuditEvent
from observability.monitoring.dashboards import dashboard_uid, folder_uid
from opsportal import runs
from opsportal.celery import app
from sandbox.procs import stop
from tests.fixtures.ci import unavailable
from tests.fixtures.services import start_celery_worker
from tests.fixtures.standins import GRAFANA_TOKEN
from tests.polling import until

pytestmark = pytest.mark.django_db(transaction=True)

PROMETHEUS_SEEN_FROM_GRAFANA = "http://prometheus.internal:9090"


@pytest.fixture
def grafana_settings(settings, grafana_standin):
    settings.GRAFANA_URL = grafana_standin.url
    settings.GRAFANA_TOKEN = GRAFANA_TOKEN
    settings.GRAFANA_PROMETHEUS_URL = PROMETHEUS_SEEN_FROM_GRAFANA
    return settings


@pytest.fixture
def grafana_worker(grafana_settings, grafana_standin, tmp_path, monkeypatch):
    """A real worker (with beat, so the sweeper runs) on a private queue this process sends to, with
    short retry and sweep intervals."""
    if not django_settings.REDIS_URL:
        unavailable("needs REDIS_URL (run through sandbox.testenv)")
    queue = f"{django_settings.CELERY_TASK_DEFAULT_QUEUE}-grafana-{os.getpid()}"
    monkeypatch.setitem(app.conf, "CELERY_TASK_DEFAULT_QUEUE", queue)
    env = {
        "GRAFANA_URL": grafana_standin.url,
        "GRAFANA_TOKEN": GRAFANA_TOKEN,
        "GRAFANA_PROMETHEUS_URL": PROMETHEUS_SEEN_FROM_GRAFANA,
        "INTEGRATION_RETRY_BACKOFF_SECONDS": "0",
        "INTEGRATION_MAX_RETRIES": "1",
        "RUN_SWEEP_SECONDS": "1",
        "RUN_STALE_SECONDS": "2",
        "GRAFANA_SYNC_RETRY_SECONDS": "2",
    }
    pool = ("solo", "--beat", "--schedule", str(tmp_path / "beat"))
    proc = start_celery_worker(tmp_path / "worker.log", queue=queue, env=env, pool=pool)
    yield proc
    stop(proc)


@pytest.fixture
def cluster(db):
    return Cluster.objects.create(name="grafana-test", environment="test", api_url="https://127.0.0.1:6443")


def _activate(people, cluster):
    """What the onboarding run does in its final transaction."""
    with transaction.atomic():
        return environment_record_provisioned(
            project=people.project,
            environment="test",
            cluster=cluster,
            request={"metrics_path": "/metrics"},
            overrides={},
            secret_env_stored="",
            live_objects=[],
            at=timezone.now(),
        )


def _synced(version: int):
    def check():
        dashboard = Dashboard.objects.filter(status=DashboardStatus.SYNCED, version=version).first()
        return dashboard

    return check


def test_activation_creates_one_dashboard_in_the_folder_and_a_second_one_updates_it(
    people, cluster, grafana_standin, grafana_worker
):
    env = _activate(people, cluster)
    dashboard = until("the dashboard is synced", _synced(1), timeout=60)
    uid = dashboard_uid("orders", "test")
    assert dashboard.environment_id == env.pk and dashboard.uid == uid
    assert dashboard.url == f"/d/{uid}/orders-test"
    assert grafana_standin.folders[folder_uid("orders")]["title"] == "orders"
    stored = grafana_standin.dashboards[uid]
    assert stored["folderUid"] == folder_uid("orders") and stored["version"] == 1
    assert stored["dashboard"]["tags"] == ["opsportal", "orders", "test"]
    source = grafana_standin.datasources[django_settings.GRAFANA_DATASOURCE_UID]
    assert source["type"] == "prometheus" and source["url"] == PROMETHEUS_SEEN_FROM_GRAFANA

    _activate(people, cluster)  # the environment is activated again (re-provisioned)
    dashboard = until("the dashboard is updated", _synced(2), timeout=60)
    assert Dashboard.objects.count() == 1
    assert len(grafana_standin.search({"folderUIDs": [folder_uid("orders")]})) == 1
    assert grafana_standin.dashboards[uid]["version"] == 2
    verbs = list(
        AuditEvent.objects.filter(target_type="clusters.dashboard")
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs.count("dashboard.sync.succeed") == 2


def test_a_grafana_outage_never_blocks_activation_and_the_sweeper_catches_up(
    people, cluster, grafana_standin, grafana_worker
):
    grafana_standin.set_outage(True)
    env = _activate(people, cluster)
    assert env.provisioned_at is not None  # the onboarding transaction committed regardless

    def waiting():
        dashboard = Dashboard.objects.get(environment=env)
        return dashboard.status == DashboardStatus.PENDING and dashboard.attempts >= 2 and dashboard

    dashboard = until("the sync gives up its retries and waits", waiting, timeout=60)
    assert "500" in dashboard.error
    assert grafana_standin.dashboards == {}
    assert grafana_standin.request_count(r"^/api/") >= 2

    grafana_standin.set_outage(False)
    dashboard = until("the sweeper syncs it after recovery", _synced(1), timeout=60)
    assert dashboard.error == ""
    assert dashboard_uid("orders", "test") in grafana_standin.dashboards
    assert AuditEvent.objects.filter(verb="dashboard.sync.resume").exists()


def test_a_deployed_release_annotates_the_dashboard(people, cluster, grafana_standin, grafana_worker):
    env = _activate(people, cluster)
    until("the dashboard is synced", _synced(1), timeout=60)
    release = Release.objects.create(
        project=people.project,
        environment="test",
        status=ReleaseStatus.DEPLOYING,
        created_by=people.developer,
        version="1.4.0",
        image_repository="registry.local/orders",
        image_digest="sha256:" + "a" * 64,
    )
    with transaction.atomic():
        locked = runs.locked(Release, release.pk)
        runs.move(locked, ReleaseStatus.DEPLOYED, actor=None, verb="release.deploy")
    uid = dashboard_uid("orders", "test")
    annotation = until(
        "the annotation is written", lambda: grafana_standin.annotations_find({"dashboardUID": [uid]})
    )
    assert len(annotation) == 1
    assert "1.4.0" in annotation[0]["text"]
    assert annotation[0]["tags"] == ["release", "test", "1.4.0"]
    assert Dashboard.objects.get(environment=env).status == DashboardStatus.SYNCED


def test_removing_the_dashboard_deletes_it_from_grafana(people, cluster, grafana_standin, grafana_worker):
    env = _activate(people, cluster)
    until("the dashboard is synced", _synced(1), timeout=60)
    assert dashboard_request_remove(environment=env) is True
    until("the dashboard is gone", lambda: dashboard_uid("orders", "test") not in grafana_standin.dashboards)
    assert not Dashboard.objects.filter(environment=env).exists()
    assert dashboard_request_remove(environment=env) is False


def test_a_refused_token_fails_the_sync_with_the_cause(people, cluster, grafana_settings, grafana_standin):
    from clusters.tasks import sync_dashboard

    grafana_settings.GRAFANA_TOKEN = "glsa_revoked"
    env = _activate(people, cluster)
    dashboard = Dashboard.objects.get(environment=env)
    sync_dashboard.apply(kwargs={"dashboard_id": dashboard.pk, "run_token": str(dashboard.run_token)})
    dashboard.refresh_from_db()
    assert dashboard.status == DashboardStatus.FAILED
    assert "token" in dashboard.error and "401" in dashboard.error
    assert dashboard.url == "" and grafana_standin.dashboards == {}


def test_without_grafana_nothing_is_requested(people, cluster, settings):
    settings.GRAFANA_URL = ""
    env = _activate(people, cluster)
    assert dashboard_request_sync(environment=env, reason="test") is None
    assert not Dashboard.objects.exists()


def test_an_annotation_grafana_refuses_is_logged_and_counted_not_raised(
    people, cluster, grafana_settings, grafana_standin, caplog
):
    from clusters.services.dashboards import ANNOTATION_FAILURES
    from clusters.tasks import annotate_dashboard

    grafana_settings.INTEGRATION_MAX_RETRIES = 0
    env = _activate(people, cluster)
    counter = ANNOTATION_FAILURES.labels(kind="ServerError")
    before = counter._value.get()
    grafana_standin.set_outage(True)
    result = annotate_dashboard.apply(
        kwargs={"environment_id": env.pk, "text": "Release 2 deployed", "tags": ["release"], "time_ms": 1}
    )
    assert result.successful()
    assert counter._value.get() == before + 1
    assert "not written" in caplog.text
