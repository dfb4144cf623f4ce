"""Celery tasks: thin wrappers that take ids, call one service, and retry transient integration errors
(timeouts, 5xx, 429, unreachable) with exponential backoff, or after the wait the other side asked for
(Retry-After) when that is longer — never permanent ones."""

from celery import shared_task
from django.conf import settings

from deploys import services
from opsportal.tasks import run_step


@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def provision_ticket(self, *, ticket_id: int, run_token: str) -> None:
    run_step(
        self,
        services.ticket_provision,
        services.ticket_provision_failed,
        ticket_id=ticket_id,
        run_token=run_token,
    )


@shared_task(time_limit=120, soft_time_limit=110)
def fail_stuck_tickets() -> None:
    services.tickets_fail_stuck(older_than_seconds=settings.CELERY_TASK_TIME_LIMIT + 300)


@shared_task(time_limit=120, soft_time_limit=110)
def fail_stuck_releases() -> None:
    # Longer than the longest step (the build task's hard limit), so only abandoned runs are caught.
    services.releases_fail_stuck(older_than_seconds=3600 + 300)


@shared_task(bind=True, time_limit=300, soft_time_limit=280, max_retries=None)
def release_tag(self, *, release_id: int, run_token: str) -> None:
    run_step(self, services.release_tag, services.release_fail, release_id=release_id, run_token=run_token)


@shared_task(bind=True, time_limit=3600, soft_time_limit=3540, max_retries=None)
def release_build(self, *, release_id: int, run_token: str) -> None:
    run_step(self, services.release_build, services.release_fail, release_id=release_id, run_token=run_token)


@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def release_deploy(self, *, release_id: int, run_token: str) -> None:
    run_step(self, services.release_deploy, services.release_fail, release_id=release_id, run_token=run_token)


@shared_task(bind=True, time_limit=120, soft_time_limit=110, max_retries=3)
def release_stop_build(self, *, release_id: int, run_token: str) -> None:
    run_step(self, services.release_stop_build, lambda **_: None, release_id=release_id, run_token=run_token)


@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def rollback_deploy(self, *, record_id: int) -> None:
    run_step(self, services.rollback_deploy, services.rollback_failed, record_id=record_id)
