"""The Grafana dashboard of each environment: requested in the caller's transaction, written by a task.

``dashboard_request_sync`` (onboarding, a configuration change that alters what is scraped) arms a new
run on the environment's Dashboard row — pending, a new run token, an audit event — and queues
``clusters.tasks.sync_dashboard`` on commit. It never calls Grafana, so a Grafana outage never blocks
onboarding. The task claims the run (pending → syncing), ensures the project's folder and the Prometheus
data source, and saves the dashboard (a second sync updates it: Grafana's version goes up, no duplicate).

Transient errors (Grafana down, 5xx, 429, timeouts) are retried with backoff (opsportal.tasks.run_step);
if Grafana stays away through every retry the run goes back to pending, and the sweeper
(``dashboards_sweep``, beat) queues it again after GRAFANA_SYNC_RETRY_SECONDS, until Grafana is back.
Permanent errors (a rejected token, a refused dashboard) end the run failed, with the cause.

Release annotations (``dashboard_annotate``) are best effort: a task, whose failures are logged and
counted, never a reason to fail a release.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from prometheus_client import Counter

from clusters.choices import DashboardStatus
from clusters.models import Dashboard, ProjectEnvironment
from clusters.selectors.monitoring import monitoring_scope
from integrations.errors import IntegrationError
from observability.monitoring.dashboards import (
    build_dashboard,
    dashboard_title,
    dashboard_uid,
    folder_uid,
)
from observability.services import audit_record
from opsportal import runs

logger = logging.getLogger(__name__)

ANNOTATION_FAILURES = Counter(
    "opsportal_grafana_annotation_failures_total",
    "Release annotations that could not be written to Grafana.",
    ["kind"],
)


def dashboards_enabled() -> bool:
    return bool(settings.GRAFANA_URL)


def _client():
    from integrations.grafana.client import GrafanaClient

    return GrafanaClient.from_settings()


# --- in the caller's transaction ----------------------------------------------------------------------


def dashboard_request_sync(*, environment: ProjectEnvironment, reason: str) -> Dashboard | None:
    """Arm a sync of the environment's dashboard and queue it on commit; None when dashboards are off.

    A sync already pending or under way is replaced (its message finds a new run token and stops), so
    the dashboard always ends up matching the latest configuration."""
    if not dashboards_enabled():
        return None
    from clusters.tasks import sync_dashboard

    project = environment.project
    with transaction.atomic():
        dashboard, created = Dashboard.objects.select_for_update().get_or_create(
            environment=environment,
            defaults={
                "uid": dashboard_uid(project.name, environment.environment),
                "folder_uid": folder_uid(project.name),
                "reason": reason[:200],
            },
        )
        dashboard.project = project
        before = "" if created else dashboard.status
        dashboard.new_run_token()
        dashboard.reason = reason[:200]
        dashboard.error, dashboard.retrying = "", False
        dashboard.attempts, dashboard.started_at, dashboard.finished_at = 0, None, None
        dashboard.status, dashboard.requested_at = DashboardStatus.PENDING, timezone.now()
        dashboard.step_task_id, dashboard.resumes, dashboard.heartbeat_at = "", 0, timezone.now()
        dashboard.save()
        audit_record(
            actor=None,
            verb="dashboard.sync.request",
            target=dashboard,
            project=project,
            changes={
                "status": [before, DashboardStatus.PENDING],
                "reason": reason[:200],
                "uid": dashboard.uid,
            },
        )
        runs.publish(dashboard)
        runs.queue(sync_dashboard, dashboard_id=dashboard.pk, run_token=str(dashboard.run_token))
    return dashboard


def dashboard_request_remove(*, environment: ProjectEnvironment) -> bool:
    """Forget the environment's dashboard and delete it from Grafana on commit (the environment is torn
    down). False when it had none. The folder stays: the project's other environment may use it."""
    from clusters.tasks import delete_dashboard

    with transaction.atomic():
        dashboard = Dashboard.objects.select_for_update().filter(environment=environment).first()
        if dashboard is None:
            return False
        uid = dashboard.uid
        audit_record(
            actor=None,
            verb="dashboard.remove",
            target=dashboard,
            project=environment.project,
            changes={"uid": uid, "status": [dashboard.status, ""]},
        )
        dashboard.delete()  # a sync still in flight finds no row and stops
        if dashboards_enabled():
            runs.queue(delete_dashboard, uid=uid)
    return True


def dashboard_annotate(*, environment: ProjectEnvironment, text: str, tags: list[str]) -> None:
    """Queue a marker on the environment's dashboard (a release deployed, a rollback) on commit. Nothing
    when dashboards are off or the environment has none."""
    if not dashboards_enabled() or not Dashboard.objects.filter(environment=environment).exists():
        return
    from clusters.tasks import annotate_dashboard

    runs.queue(
        annotate_dashboard,
        environment_id=environment.pk,
        text=text[:1000],
        tags=[t[:50] for t in tags],
        time_ms=int(time.time() * 1000),
    )


# --- in the worker ------------------------------------------------------------------------------------


SYNC = runs.Step(Dashboard, DashboardStatus.PENDING, DashboardStatus.SYNCING, "dashboard.sync.start")


def _mark_retrying(dashboard_id: int, run_token: str, error: str) -> None:
    Dashboard.objects.filter(pk=dashboard_id, run_token=run_token).update(retrying=True, error=error[:8000])


def dashboard_sync(*, dashboard_id: int, run_token: str) -> None:
    """The task's work: write the folder, the data source and the dashboard. Transient errors are raised
    for the task to retry; permanent ones end the run failed with the cause."""
    dashboard = SYNC.claim(dashboard_id, run_token)
    if dashboard is None:
        return
    Dashboard.objects.filter(pk=dashboard_id).update(retrying=False)
    client = _client()
    if client is None:
        _end_failed(dashboard_id, run_token, _("Grafana is not configured (GRAFANA_URL is empty)."))
        return
    env = ProjectEnvironment.objects.select_related("project").get(pk=dashboard.environment_id)
    project = env.project.name
    model = build_dashboard(
        monitoring_scope(env),
        datasource_uid=settings.GRAFANA_DATASOURCE_UID,
        title=dashboard_title(project, env.environment),
    )
    try:
        client.folder_ensure(dashboard.folder_uid, project)
        client.datasource_ensure(
            settings.GRAFANA_DATASOURCE_UID,
            name=settings.GRAFANA_DATASOURCE_NAME,
            type="prometheus",
            url=settings.GRAFANA_PROMETHEUS_URL,
            json_data={"httpMethod": "POST"},
        )
        saved = client.dashboard_save(
            {**model, "uid": dashboard.uid},
            folder_uid=dashboard.folder_uid,
            message=f"OpsPortal: {dashboard.reason}"[:500],
        )
    except IntegrationError as exc:
        if not exc.permanent:
            _mark_retrying(
                dashboard_id, run_token, _("Grafana is unavailable, will retry: %(e)s") % {"e": exc}
            )
            raise
        _end_failed(dashboard_id, run_token, _("Grafana refused the dashboard: %(e)s") % {"e": exc})
        return
    with transaction.atomic():
        dashboard = runs.locked_run(Dashboard, dashboard_id, run_token, DashboardStatus.SYNCING)
        if dashboard is None:
            return  # a newer sync replaced this one: it will write the dashboard again
        dashboard.url = str(saved.get("url") or "")
        dashboard.version = int(saved.get("version") or 0)
        dashboard.synced_at = timezone.now()
        dashboard.retrying = False
        runs.finish(
            dashboard,
            DashboardStatus.SYNCED,
            verb="dashboard.sync.succeed",
            changes={"version": dashboard.version, "url": dashboard.url},
        )


def _end_failed(dashboard_id: int, run_token: str, error: str) -> None:
    with transaction.atomic():
        dashboard = runs.locked_run(Dashboard, dashboard_id, run_token)
        if dashboard is None:
            return
        dashboard.retrying = False
        runs.finish(dashboard, DashboardStatus.FAILED, verb="dashboard.sync.fail", error=error)


def dashboard_sync_give_up(*, dashboard_id: int, run_token: str, error: str) -> None:
    """The task could not finish: after transient errors the run waits in pending for the sweeper
    (Grafana is down, and will come back); after anything else it fails with the cause."""
    with transaction.atomic():
        dashboard = runs.locked_run(Dashboard, dashboard_id, run_token)
        if dashboard is None:
            return
        if not dashboard.retrying or dashboard.status != DashboardStatus.SYNCING:
            runs.finish(dashboard, DashboardStatus.FAILED, verb="dashboard.sync.fail", error=error)
            return
        dashboard.error = error[:8000]
        runs.move(
            dashboard,
            DashboardStatus.PENDING,
            actor=None,
            verb="dashboard.sync.wait",
            changes={"error": error[:500]},
        )
        # move() set the heartbeat to now; the sweeper re-queues a pending run once it is RUN_STALE_SECONDS
        # old, so this makes it wait GRAFANA_SYNC_RETRY_SECONDS instead.
        wait = settings.GRAFANA_SYNC_RETRY_SECONDS - settings.RUN_STALE_SECONDS
        Dashboard.objects.filter(pk=dashboard_id).update(
            heartbeat_at=timezone.now() + timedelta(seconds=wait)
        )


def dashboards_sweep() -> tuple[int, int]:
    """Queue again the syncs waiting in pending (Grafana was down; a lost message) and resume the ones
    whose worker was lost. Returns (queued or resumed, given up)."""
    from clusters.tasks import sync_dashboard

    return runs.resume_stale(
        Dashboard,
        step_task=lambda d: (sync_dashboard, {"dashboard_id": d.pk, "run_token": str(d.run_token)}),
        give_up=lambda pk, token, error: _end_failed(pk, token, error),
        verb="dashboard.sync.resume",
        queued_statuses=frozenset({DashboardStatus.PENDING}),
    )


def dashboard_delete(*, uid: str) -> None:
    """Delete the dashboard ``uid`` from Grafana (gone already is fine)."""
    client = _client()
    if client is not None:
        client.dashboard_delete(uid)


def dashboard_annotation_write(*, environment_id: int, text: str, tags: list[str], time_ms: int) -> None:
    """Write one annotation. Transient errors are raised for the task to retry; the task logs and counts
    what it gives up on."""
    dashboard = Dashboard.objects.filter(environment_id=environment_id).first()
    client = _client()
    if dashboard is None or client is None:
        return
    client.annotation_create(dashboard.uid, text=text, tags=tags, time_ms=time_ms)


def dashboard_annotation_failed(*, environment_id: int, error: str, kind: str) -> None:
    logger.warning(
        "release annotation on the dashboard of environment %s not written: %s", environment_id, error
    )
    ANNOTATION_FAILURES.labels(kind=kind).inc()
