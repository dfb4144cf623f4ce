from celery import shared_task

from clusters import terminal


@shared_task(time_limit=600, soft_time_limit=570)
def prune_terminal_recordings() -> None:
    terminal.recordings_prune()


@shared_task(time_limit=120, soft_time_limit=110)
def reap_stale_terminal_sessions() -> None:
    terminal.sessions_reap_stale()
