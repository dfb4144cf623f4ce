"""Celery tasks of alerting: thin wrappers that take ids and call one service.

Services import these tasks at module level to queue them; a task imports its service inside its body,
so the two modules never import each other at load time."""

from celery import shared_task


# A send is one HTTP or SMTP exchange with the clients' own timeouts (15 s read); retries are not Celery's:
# the delivery row holds when to try again (next_attempt_at) and the sweeper is the safety net.
@shared_task(time_limit=120, soft_time_limit=100)
def send_delivery(*, delivery_id: int) -> None:
    from alerting.services.delivery import delivery_send

    delivery_send(delivery_id=delivery_id)


@shared_task(time_limit=120, soft_time_limit=100)
def sweep_deliveries() -> None:
    from alerting.services.delivery import deliveries_sweep

    deliveries_sweep()


@shared_task(time_limit=300, soft_time_limit=280)
def route_missed_alerts() -> None:
    from alerting.services.routing import alert_transitions_route_missed

    alert_transitions_route_missed()
