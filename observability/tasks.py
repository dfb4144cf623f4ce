from celery import shared_task

from observability import services


@shared_task(time_limit=30, soft_time_limit=25)
def answer_worker_ping(*, user_id: int, sent_at: float) -> None:
    services.worker_ping_answer(user_id=user_id, sent_at=sent_at)


# Ignores its result and is never retried: the health check waits for the row it writes.
@shared_task(time_limit=30, soft_time_limit=25)
def answer_health_probe(*, nonce: str) -> None:
    services.worker_health_answer(nonce=nonce)


@shared_task(time_limit=300, soft_time_limit=280)
def prune_live_events() -> None:
    services.live_events_prune(older_than_seconds=24 * 3600)
