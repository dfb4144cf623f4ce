"""Celery tasks of the projects app: thin wrappers around one service each."""

from celery import shared_task


@shared_task(time_limit=120, soft_time_limit=110)
def expire_terminal_grants() -> int:
    from projects.services import terminal_grants_expire

    return terminal_grants_expire()
