"""Reading channels and their delivery logs, through the one access rule: a project's channels are seen
by its members and managed by its owners and ops (projects.access); portal-wide channels (no project)
are ops only, and hidden (404) from everyone else."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from alerting.models import Channel, Delivery
from projects.access import Action, check, get_project, require_ops
from projects.models import Project

MANAGE = Action.EDIT_PROJECT  # owners and ops
DELIVERY_LOG_LIMIT = 200


def channel_scope(user, *, project_name: str | None, action: Action = Action.VIEW) -> Project | None:
    """The project whose channels ``user`` asks for (None: the portal-wide ones), checked for ``action``:
    Http404 for whoever may not see them, PermissionDenied for a member without the right."""
    if project_name is None:
        require_ops(user)
        return None
    project = get_project(user, name=project_name)
    check(user, action, project)
    return project


def channel_list(*, user, project_name: str | None) -> QuerySet[Channel]:
    project = channel_scope(user, project_name=project_name)
    return Channel.objects.filter(project=project).select_related("project").order_by("name", "pk")


def channel_get(*, user, pk: int, project_name: str | None, action: Action = Action.VIEW) -> Channel:
    """The channel ``pk`` of the project (or portal-wide), if ``user`` may do ``action`` on it."""
    project = channel_scope(user, project_name=project_name)
    channel = Channel.objects.filter(pk=pk, project=project).select_related("project").first()
    if channel is None:
        raise Http404("No such channel.")
    if project is not None and action != Action.VIEW:
        check(user, action, project)
    return channel


def delivery_log(*, channel: Channel) -> QuerySet[Delivery]:
    """The channel's deliveries, newest first."""
    return channel.deliveries.select_related("batch").order_by("-created_at", "-pk")
