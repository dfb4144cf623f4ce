from django.db.models import Count, Q, QuerySet

from projects.access import visible_projects
from projects.models import Project


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
