"""Who may read which terminal session: the one access function for sessions, their recordings and
their commands.

A session shows what was typed and shown in a pod, which may include secrets read there, so fewer
people read it than see the project: ops always, the session's own user always, and for a test
session the project's owners too. Someone who may not see the project gets 404; a member (or global
QA) who may see it but not read the session gets 403. Lists hold only what the user may read.
"""

from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from clusters.models import TerminalCommand, TerminalSession
from projects import access
from projects.choices import Environment, Role


def _readable(user) -> Q:
    own = Q(user=user)
    owned_test = Q(
        environment=Environment.TEST, project__members__user=user, project__members__role=Role.OWNER
    )
    return own | owned_test


def sessions_readable(user, *, project: str = "", username: str = "") -> QuerySet[TerminalSession]:
    if not user.is_authenticated or not user.is_active:
        return TerminalSession.objects.none()
    sessions = TerminalSession.objects.select_related("project")
    if not access.is_ops(user):
        sessions = sessions.filter(_readable(user))
    if project:
        sessions = sessions.filter(project__name=project)
    if username:
        sessions = sessions.filter(username=username)
    return sessions.distinct()


def session_get(user, *, session_id: int) -> TerminalSession:
    """The session if the user may read it; Http404 if they may not see its project, else 403."""
    session = TerminalSession.objects.select_related("project").filter(pk=session_id).first()
    if session is None or not user.is_authenticated or not user.is_active:
        raise Http404("No such terminal session.")
    actions = access.allowed_actions(user, session.project)
    if access.Action.VIEW not in actions:
        raise Http404("No such terminal session.")
    if not sessions_readable(user).filter(pk=session.pk).exists():
        if session.environment == Environment.PROD:
            message = _("Only ops and the user who opened it may read a production terminal session.")
        else:
            message = _("Only ops, the project's owners and the user who opened it may read this session.")
        raise PermissionDenied(message)
    return session


def session_commands(session: TerminalSession) -> QuerySet[TerminalCommand]:
    """The commands of a session the caller got from session_get."""
    return session.commands.order_by("position")


def commands_search(
    *,
    project: str = "",
    environment: str = "",
    user: str = "",
    q: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[TerminalCommand]:
    """Commands across every session, newest first (an ops search: the caller checks is_ops).
    ``user`` is a username, ``q`` text the command contains; the names are the search form's."""
    commands = TerminalCommand.objects.select_related("session", "session__project")
    if project:
        commands = commands.filter(session__project__name=project)
    if environment:
        commands = commands.filter(session__environment=environment)
    if user:
        commands = commands.filter(session__username=user)
    if q:
        commands = commands.filter(text__icontains=q)
    if since:
        commands = commands.filter(entered_at__gte=since)
    if until:
        commands = commands.filter(entered_at__lt=until)
    return commands.order_by("-entered_at", "-id")
