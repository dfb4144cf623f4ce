from collections.abc import Callable
from datetime import datetime

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q, QuerySet

from observability.models import AuditEvent

# Which projects' events a user may read: a queryset of projects, or None for all of them. The projects
# app registers it (ProjectsConfig.ready) with the access function; observability sits below projects.
_readable_projects: Callable[..., QuerySet | None] | None = None


def register_project_scope(readable_projects: Callable[..., QuerySet | None]) -> None:
    global _readable_projects
    _readable_projects = readable_projects


def audit_events_for(
    *,
    user,
    project: str = "",
    actor: str = "",
    verb: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Audit events the user may read: ops read everything, others their projects' events."""
    events = AuditEvent.objects.select_related("project")
    if _readable_projects is None:
        raise ImproperlyConfigured("No project scope is registered for audit reads.")
    readable = _readable_projects(user)
    if readable is not None:
        events = events.filter(Q(project__in=readable) | Q(actor=user))
    if project:
        events = events.filter(project_name=project)
    if actor:
        events = events.filter(actor_name=actor)
    if verb:
        events = events.filter(verb=verb)
    if since:
        events = events.filter(created_at__gte=since)
    if until:
        events = events.filter(created_at__lt=until)
    return events
