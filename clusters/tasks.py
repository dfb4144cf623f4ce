"""Celery tasks of the clusters app: thin wrappers around one service each (see deploys.tasks)."""

import logging

from celery import shared_task
from django.conf import settings

from integrations.errors import IntegrationError
from opsportal.runs import stuck_after
from opsportal.tasks import retry_countdown, run_step

logger = logging.getLogger(__name__)


@shared_task(time_limit=600, soft_time_limit=570)
def prune_terminal_recordings() -> None:
    from clusters.services.terminal import recordings_prune

    recordings_prune()


@shared_task(time_limit=120, soft_time_limit=110)
def reap_stale_terminal_sessions() -> None:
    from clusters.services.terminal import sessions_reap_stale

    sessions_reap_stale()


# Longer than the rollout wait (OPSPORTAL_ROLLOUT_TIMEOUT) plus the applies before it.
@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def apply_config_change(self, *, change_id: int, run_token: str) -> None:
    from clusters.services.config_changes import config_change_apply, config_change_fail

    run_step(self, config_change_apply, config_change_fail, change_id=change_id, run_token=run_token)


@shared_task(time_limit=120, soft_time_limit=110)
def fail_stuck_config_changes() -> None:
    from clusters.services.config_changes import config_changes_fail_stuck

    config_changes_fail_stuck(older_than_seconds=stuck_after(apply_config_change))


@shared_task(time_limit=60, soft_time_limit=50)
def resume_stale_config_changes() -> None:
    from clusters.services.config_changes import config_changes_resume_stale

    config_changes_resume_stale()


# promtool and the reload take a second or two; the state row is locked while they run.
@shared_task(time_limit=120, soft_time_limit=110)
def apply_prometheus_config(*, reason: str) -> None:
    from clusters.services.monitoring_config import prometheus_config_apply

    prometheus_config_apply(reason=reason)


@shared_task(bind=True, time_limit=120, soft_time_limit=110, max_retries=None)
def sync_dashboard(self, *, dashboard_id: int, run_token: str) -> None:
    from clusters.services.dashboards import dashboard_sync, dashboard_sync_give_up

    run_step(self, dashboard_sync, dashboard_sync_give_up, dashboard_id=dashboard_id, run_token=run_token)


@shared_task(time_limit=60, soft_time_limit=50)
def sweep_dashboards() -> None:
    from clusters.services.dashboards import dashboards_sweep

    dashboards_sweep()


@shared_task(bind=True, time_limit=60, soft_time_limit=50, max_retries=None)
def delete_dashboard(self, *, uid: str) -> None:
    from clusters.services.dashboards import dashboard_delete

    _best_effort(self, dashboard_delete, what=f"dashboard {uid}", uid=uid)


@shared_task(bind=True, time_limit=60, soft_time_limit=50, max_retries=None)
def annotate_dashboard(self, *, environment_id: int, text: str, tags: list[str], time_ms: int) -> None:
    from clusters.services.dashboards import dashboard_annotation_failed, dashboard_annotation_write

    try:
        dashboard_annotation_write(environment_id=environment_id, text=text, tags=tags, time_ms=time_ms)
    except IntegrationError as exc:
        if exc.permanent or self.request.retries >= settings.INTEGRATION_MAX_RETRIES:
            dashboard_annotation_failed(
                environment_id=environment_id, error=str(exc), kind=type(exc).__name__
            )
            return
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries, exc.retry_after)) from exc


def _best_effort(task, work, *, what: str, **kwargs) -> None:
    """Run ``work``: transient errors are retried with backoff, the rest logged (nothing waits on it)."""
    try:
        work(**kwargs)
    except IntegrationError as exc:
        if exc.permanent or task.request.retries >= settings.INTEGRATION_MAX_RETRIES:
            logger.warning("%s: gave up: %s", what, exc)
            return
        raise task.retry(exc=exc, countdown=retry_countdown(task.request.retries, exc.retry_after)) from exc


# promtool and the reload take a second or two; the environment row is locked while the file is written.
@shared_task(time_limit=120, soft_time_limit=110)
def apply_alert_rules(*, environment_id: int, reason: str = "") -> None:
    from clusters.services.alert_rules import alert_rules_apply

    alert_rules_apply(environment_id=environment_id, reason=reason)


@shared_task(time_limit=60, soft_time_limit=50)
def remove_alert_rules(*, file_name: str) -> None:
    from clusters.services.alert_rules import alert_rules_remove

    alert_rules_remove(file_name=file_name)


# One run of an environment's live log tail (clusters.services.pipeline_tail): it reads for about a second
# and queues the next run itself while someone watches. A run that fails or is lost ends the chain; the
# chain's key expires and the next viewer refresh starts a new one. So no late acknowledgement: a
# redelivered run would only be a duplicate (its token check would stop it anyway).
@shared_task(time_limit=60, soft_time_limit=50, acks_late=False)
def pipeline_tail(*, environment_id: int, token: str, start_ms: int | None = None) -> None:
    from clusters.services.pipeline_tail import tail_run

    tail_run(environment_id=environment_id, token=token, start_ms=start_ms)
