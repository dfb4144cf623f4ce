"""Celery tasks: thin wrappers that take ids, call one service, and retry transient integration errors
(timeouts, 5xx, 429, unreachable) with exponential backoff, or after the wait the other side asked for
(Retry-After) when that is longer — never permanent ones."""

from celery import shared_task
from django.conf import settings

from deploys import services
from integrations.errors import IntegrationError


def backoff(retries: int) -> int:
    return settings.INTEGRATION_RETRY_BACKOFF_SECONDS * (2**retries)


def retry_countdown(retries: int, retry_after: float | None) -> float:
    """Seconds before retry number ``retries + 1``: the backoff, or the server's Retry-After if longer.

    Only the Retry-After part is capped (INTEGRATION_MAX_RETRY_AFTER_SECONDS): the backoff is ours and
    already bounded by INTEGRATION_MAX_RETRIES.
    """
    countdown = backoff(retries)
    if retry_after is not None and retry_after > 0:
        countdown = max(countdown, min(retry_after, settings.INTEGRATION_MAX_RETRY_AFTER_SECONDS))
    return countdown


def _run_step(task, step, give_up, **ids) -> None:
    try:
        step(**ids)
    except IntegrationError as exc:
        if exc.permanent or task.request.retries >= settings.INTEGRATION_MAX_RETRIES:
            suffix = "" if exc.permanent else f" (gave up after {task.request.retries} retries)"
            give_up(**ids, error=f"{exc}{suffix}")
            return
        countdown = retry_countdown(task.request.retries, exc.retry_after)
        raise task.retry(exc=exc, countdown=countdown) from exc
    except Exception as exc:
        # A bug must not leave the work stuck in a running state: end it visibly, then let Celery log it.
        give_up(**ids, error=f"Internal error ({exc.__class__.__name__}): {exc}. Tell the ops team.")
        raise


@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def provision_ticket(self, *, ticket_id: int, run_token: str) -> None:
    _run_step(
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
    _run_step(self, services.release_tag, services.release_fail, release_id=release_id, run_token=run_token)


@shared_task(bind=True, time_limit=3600, soft_time_limit=3540, max_retries=None)
def release_build(self, *, release_id: int, run_token: str) -> None:
    _run_step(self, services.release_build, services.release_fail, release_id=release_id, run_token=run_token)


@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def release_deploy(self, *, release_id: int, run_token: str) -> None:
    _run_step(
        self, services.release_deploy, services.release_fail, release_id=release_id, run_token=run_token
    )


@shared_task(bind=True, time_limit=120, soft_time_limit=110, max_retries=3)
def release_stop_build(self, *, release_id: int, run_token: str) -> None:
    _run_step(self, services.release_stop_build, lambda **_: None, release_id=release_id, run_token=run_token)


@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def rollback_deploy(self, *, record_id: int) -> None:
    _run_step(self, services.rollback_deploy, services.rollback_failed, record_id=record_id)
