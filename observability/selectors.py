from datetime import datetime

from django.db.models import Q, QuerySet

from observability.models import AuditEvent
from projects.access import is_ops, visible_projects


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
    if not is_ops(user):
        events = events.filter(Q(project__in=visible_projects(user)) | Q(actor=user))
    if project:
        events = events.filter(project__name=project)
    if actor:
        events = events.filter(actor_name=actor)
    if verb:
        events = events.filter(verb=verb)
    if since:
        events = events.filter(created_at__gte=since)
    if until:
        events = events.filter(created_at__lt=until)
    return events
