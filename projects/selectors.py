from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from projects.access import AnyUser, require_ops, visible_projects
from projects.choices import GrantEnd
from projects.models import ProdTerminalGrant, Project, ProjectMember


def project_list(*, user, query: str = "", mine: bool = True) -> QuerySet[Project]:
    projects = visible_projects(user)
    if mine:
        projects = projects.filter(members__user=user)
    if query:
        projects = projects.filter(Q(name__icontains=query) | Q(description__icontains=query))
    return (
        projects.select_related("owner")
        .annotate(member_count=Count("members", distinct=True))
        .order_by("name")
    )


def member_list(*, project: Project) -> QuerySet[ProjectMember]:
    """The project's members, each with ``prod_terminal_expires_at``: when their grant ends, or None."""
    grant = ProdTerminalGrant.objects.active().filter(project=project, user=OuterRef("user"))
    return project.members.select_related("user").annotate(
        prod_terminal_expires_at=Subquery(grant.values("expires_at")[:1])
    )


# Ended grants shown under the active ones: enough to see what lapsed or was revoked lately.
RECENT_ENDED_GRANTS = 50


def terminal_grant_list(*, user: AnyUser) -> tuple[list[ProdTerminalGrant], list[ProdTerminalGrant]]:
    """(active grants by expiry, recently ended or lapsed ones) for ops; Http404 for everyone else."""
    require_ops(user)
    now = timezone.now()
    grants = ProdTerminalGrant.objects.select_related("project", "user", "granted_by", "ended_by")
    active = list(grants.active(now).order_by("expires_at", "id"))
    # A lapsed grant whose expiry the beat task has not recorded yet is shown with the ended ones.
    ended = list(
        grants.filter(Q(ended_at__isnull=False) | Q(expires_at__lte=now))
        .exclude(end_reason=GrantEnd.REPLACED)
        .order_by("-granted_at", "-id")[:RECENT_ENDED_GRANTS]
    )
    return active, ended


def terminal_grant_get(*, user: AnyUser, pk: int) -> ProdTerminalGrant:
    require_ops(user)
    grant = ProdTerminalGrant.objects.select_related("project", "user").filter(pk=pk).first()
    if grant is None:
        raise Http404("No such grant.")
    return grant
