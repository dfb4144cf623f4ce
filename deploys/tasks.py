from celery import shared_task
from django.conf import settings

from deploys import services
from integrations.errors import IntegrationError


def backoff(retries: int) -> int:
    return settings.INTEGRATION_RETRY_BACKOFF_SECONDS * (2**retries)


@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def provision_ticket(self, *, ticket_id: int, run_token: str) -> None:
    try:
        services.ticket_provision(ticket_id=ticket_id, run_token=run_token)
    except IntegrationError as exc:
        # Only transient errors reach here: ticket_provision ends the ticket on permanent ones.
        if self.request.retries >= settings.INTEGRATION_MAX_RETRIES:
            services.ticket_provision_failed(
                ticket_id=ticket_id,
                run_token=run_token,
                error=f"{exc} (gave up after {self.request.retries} retries)",
            )
            return
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc


@shared_task(time_limit=120, soft_time_limit=110)
def fail_stuck_tickets() -> None:
    services.tickets_fail_stuck(older_than_seconds=settings.CELERY_TASK_TIME_LIMIT + 300)
