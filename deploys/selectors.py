from django.db.models import QuerySet

from deploys.models import OnboardingTicket, ProjectEnvironment
from projects.access import visible_projects
from projects.models import Project


def tickets_for_project(*, project: Project) -> QuerySet[OnboardingTicket]:
    return project.tickets.select_related("created_by", "reviewed_by", "cluster")


def tickets_visible(*, user, status: str = "") -> QuerySet[OnboardingTicket]:
    tickets = OnboardingTicket.objects.filter(project__in=visible_projects(user)).select_related(
        "project", "created_by", "cluster"
    )
    return tickets.filter(status=status) if status else tickets


def environments_for_project(*, project: Project) -> list[ProjectEnvironment]:
    return list(project.environments.select_related("cluster"))
