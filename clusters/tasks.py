"""Celery tasks of the clusters app: thin wrappers around one service each (see deploys.tasks)."""

from celery import shared_task

from opsportal.runs import stuck_after
from opsportal.tasks import run_step


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
