"""Who listens to what: the workflow notices of the lower layers (opsportal.notices) and the alerts'
firing/resolved transitions (alerting.signals) are routed to channels here.

Both signals are sent after the sender's transaction committed: the workflow step or the alert is done,
so a routing error is logged here and never surfaces in the request or task that sent it."""

import logging

from django.dispatch import receiver

from alerting.services.routing import alert_route, notice_route
from alerting.signals import alert_transitioned
from opsportal.notices import workflow_notice

logger = logging.getLogger(__name__)


@receiver(alert_transitioned, dispatch_uid="alerting.route_alert")
def route_alert(sender, alert_id: int, transition: str, **kwargs) -> None:
    try:
        alert_route(alert_id=alert_id, transition=transition)
    except Exception:
        logger.exception("routing alert %s (%s) failed", alert_id, transition)


@receiver(workflow_notice, dispatch_uid="alerting.route_notice")
def route_notice(sender, notice, **kwargs) -> None:
    try:
        notice_route(notice=notice)
    except Exception:
        logger.exception("routing notice %s of project %s failed", notice.kind, notice.project_id)
