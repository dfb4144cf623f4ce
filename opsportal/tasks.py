"""How a Celery task runs one step of a run: transient integration errors (timeouts, 5xx, 429,
unreachable) are retried with exponential backoff, or after the wait the other side asked for
(Retry-After) when that is longer; permanent errors and bugs end the run at once, visibly. A lost
database connection (a PostgreSQL restart) is transient too, but nothing can be written while it
lasts: the step is retried, and if the retries run out the run's stale heartbeat resumes it later."""

from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from integrations.errors import IntegrationError
from opsportal import metrics, runs


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


def run_step(task, step: Callable[..., None], give_up: Callable[..., None], **ids) -> None:
    """Run ``step(**ids)`` inside the bound ``task``; ``give_up(**ids, error=…)`` ends the run when the
    step cannot succeed (a permanent error, retries used up, or a bug)."""
    with runs.holding():  # a run the step claims beats its heartbeat until here
        try:
            step(**ids)
        except IntegrationError as exc:
            # Every step of every run passes here: the one place integration errors are counted.
            metrics.integration_error_record(exc)
            if exc.permanent or task.request.retries >= settings.INTEGRATION_MAX_RETRIES:
                suffix = "" if exc.permanent else f" (gave up after {task.request.retries} retries)"
                give_up(**ids, error=f"{exc}{suffix}")
                return
            countdown = retry_countdown(task.request.retries, exc.retry_after)
            runs.due_in(countdown)  # not resumed by the sweeper before the retry was due
            raise task.retry(exc=exc, countdown=countdown) from exc
        except (OperationalError, InterfaceError) as exc:
            connection.close()  # the next attempt opens a new one
            if task.request.retries >= settings.INTEGRATION_MAX_RETRIES:
                raise  # the run stays in progress: its heartbeat goes stale and the sweeper resumes it
            countdown = retry_countdown(task.request.retries, None)
            raise task.retry(exc=exc, countdown=countdown) from exc
        except Exception as exc:
            # A bug must not leave the work stuck in a running state: end it visibly, then let Celery log it.
            give_up(**ids, error=f"Internal error ({exc.__class__.__name__}): {exc}. Tell the ops team.")
            raise
