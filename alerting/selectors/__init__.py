"""Reads of alerts for pages and the API, and the one access function for an alert."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from alerting.choices import AlertStatus
from alerting.models import Alert
from projects.access import Action, check, require_ops
from projects.models import Project


def alerts_for_project(*, project: Project, status: str | None = None) -> QuerySet[Alert]:
    alerts = Alert.objects.filter(project=project).select_related("acknowledged_by")
    if status:
        alerts = alerts.filter(status=status)
    return alerts.order_by("-starts_at", "-pk")


def portal_wide_alerts(*, status: str | None = None) -> QuerySet[Alert]:
    """Alerts whose ``project`` label names no project (or that have none): ops' to see."""
    alerts = Alert.objects.filter(project__isnull=True).select_related("acknowledged_by")
    if status:
        alerts = alerts.filter(status=status)
    return alerts.order_by("-starts_at", "-pk")


def firing_for_project(*, project: Project) -> QuerySet[Alert]:
    return alerts_for_project(project=project, status=AlertStatus.FIRING)


def alert_get(user, *, pk: int, project: Project | None, action: Action = Action.VIEW) -> Alert:
    """The alert ``pk`` of ``project`` (None: a portal-wide alert, which only ops see), or Http404 /
    PermissionDenied as projects.access decides."""
    if project is None:
        require_ops(user)
    else:
        check(user, action, project)
    alert = (
        Alert.objects.select_related("project", "acknowledged_by")
        .prefetch_related("transitions")
        .filter(pk=pk, project=project)
        .first()
    )
    if alert is None:
        raise Http404("No such alert.")
    return alert
