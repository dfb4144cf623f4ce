"""The one place that decides who may see or do what on a project.

Every page, API endpoint and WebSocket consumer asks here. Someone who may not even see a project
gets a 404 (it is not revealed that the project exists); a member lacking a permission gets 403.
The same rule holds for what only ops may see (clusters, build recipes): 404 for everyone else; a
right only ops have on something everyone sees (creating a project in the list) is a 403. A project
environment is reached through ``clusters.environment.environment_get`` only; a project's Apollo
configuration through ``apollo_access`` (via ``configs.selectors.apollo_target``).
"""

from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from projects.choices import OPS_GROUP, QA_GROUP, Environment, Role
from projects.models import ProdTerminalGrant, Project, ProjectMember


class Action(StrEnum):
    VIEW = "view"
    EDIT_PROJECT = "edit_project"
    MANAGE_MEMBERS = "manage_members"
    FILE_TICKET = "file_ticket"
    APPROVE_TICKET = "approve_ticket"
    RELEASE_TEST = "release_test"
    RELEASE_PROD = "release_prod"
    CONFIRM_RELEASE = "confirm_release"
    EDIT_CONFIG = "edit_config"
    TERMINAL_TEST = "terminal_test"
    TERMINAL_PROD = "terminal_prod"
    # Restart, scale and delete pods of a running environment: developers and up on test, ops on prod.
    OPERATE_TEST = "operate_test"
    OPERATE_PROD = "operate_prod"


_ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.OWNER: frozenset(
        {
            Action.VIEW,
            Action.EDIT_PROJECT,
            Action.MANAGE_MEMBERS,
            Action.FILE_TICKET,
            Action.RELEASE_TEST,
            Action.RELEASE_PROD,
            Action.TERMINAL_TEST,
            Action.OPERATE_TEST,
        }
    ),
    Role.DEVELOPER: frozenset(
        {
            Action.VIEW,
            Action.FILE_TICKET,
            Action.RELEASE_TEST,
            Action.RELEASE_PROD,
            Action.TERMINAL_TEST,
            Action.OPERATE_TEST,
        }
    ),
    Role.TESTER: frozenset({Action.VIEW, Action.RELEASE_TEST, Action.CONFIRM_RELEASE}),
    Role.VIEWER: frozenset({Action.VIEW}),
}
# Global QA may look at every project and confirm test releases; approving and config stay with ops.
_QA_ACTIONS = frozenset({Action.VIEW, Action.CONFIRM_RELEASE})

AnyUser = AbstractBaseUser | AnonymousUser


def _groups(user: AnyUser) -> set[str]:
    cached = getattr(user, "_opsportal_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True)) if user.is_authenticated else set()
        user._opsportal_groups = cached
    return cached


def is_ops(user: AnyUser) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or OPS_GROUP in _groups(user)))


def require_ops(user: AnyUser) -> None:
    """Http404 for anyone but an active ops user, on what only ops may see (e.g. terminal grants)."""
    if not is_ops(user) or not user.is_active:
        raise Http404("Not found.")


class OpsOnly:
    """An API view mixin: everyone but ops gets 404, so what only ops manage (clusters, terminal grants,
    the command search, refused patterns) is not revealed. ``ops_only`` makes the schema document it."""

    ops_only = True

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        require_ops(request.user)  # Http404, turned into a JSON 404 by the exception handler


def is_qa(user: AnyUser) -> bool:
    return bool(user.is_authenticated and QA_GROUP in _groups(user))


def membership(user: AnyUser, project: Project) -> ProjectMember | None:
    if not user.is_authenticated:
        return None
    return ProjectMember.objects.filter(project=project, user=user).first()


def allowed_actions(user: AnyUser, project: Project) -> frozenset[Action]:
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    if is_ops(user):
        return frozenset(Action)
    actions: set[Action] = set()
    member = membership(user, project)
    if member is not None:
        actions |= _ROLE_ACTIONS[member.role]
        # Only a grant from ops that has not expired by the clock; a lapsed grant the beat task has not
        # recorded yet gives nothing.
        if ProdTerminalGrant.objects.active().filter(project=project, user=user).exists():
            actions.add(Action.TERMINAL_PROD)
    if is_qa(user):
        actions |= _QA_ACTIONS
    return frozenset(actions)


def can(user: AnyUser, action: Action, project: Project) -> bool:
    return action in allowed_actions(user, project)


def check(user: AnyUser, action: Action, project: Project) -> frozenset[Action]:
    """Raise Http404 for someone who may not see the project, PermissionDenied for a missing right.

    Returns everything the user may do on the project, so a caller need not ask twice."""
    actions = allowed_actions(user, project)
    if Action.VIEW not in actions:
        raise Http404("No such project.")
    if action not in actions:
        raise PermissionDenied(f"You may not {action.replace('_', ' ')} on project {project.name}.")
    return actions


def get_project(user: AnyUser, *, name: str, action: Action = Action.VIEW) -> Project:
    try:
        project = Project.objects.select_related("owner").get(name=name)
    except Project.DoesNotExist:
        raise Http404("No such project.") from None
    check(user, action, project)
    return project


def visible_projects(user: AnyUser) -> QuerySet[Project]:
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    if is_ops(user) or is_qa(user):
        return Project.objects.all()
    return Project.objects.filter(members__user=user).distinct()


def apollo_access(
    user: AnyUser,
    project: Project,
    environment: str,
    *,
    edit: bool = False,
    owner_may_edit_prod: bool = False,
) -> bool:
    """The one rule for a project's Apollo configuration in one environment (its items, releases and
    rollbacks): every member reads test and prod; developers, owners and ops change test; prod is ops',
    and the owners' too when ops turned ``owner_may_edit_prod`` on in the project's Apollo settings
    (configs sits above projects, so its caller passes the flag). Testers, viewers and global QA read.

    Http404 for someone who may not see the project and for an unknown environment; PermissionDenied when
    ``edit`` is asked and not allowed. Returns whether the user may change the configuration there."""
    actions = allowed_actions(user, project)
    if Action.VIEW not in actions:
        raise Http404("No such project.")
    if environment not in Environment.values:
        raise Http404("No such environment.")
    if is_ops(user):
        may_edit = True
    else:
        member = membership(user, project)
        role = member.role if member is not None else None
        if environment == Environment.TEST:
            may_edit = role in (Role.OWNER, Role.DEVELOPER)
        else:
            may_edit = role == Role.OWNER and owner_may_edit_prod
    if edit and not may_edit:
        raise PermissionDenied(
            f"You may not change the Apollo configuration of {project.name} in {environment}."
        )
    return may_edit
