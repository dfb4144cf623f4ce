from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from observability.services import audit_record
from projects.choices import Language, Role
from projects.models import Project, ProjectMember, UserProfile


def user_language_set(*, user: AbstractBaseUser, language: str) -> None:
    UserProfile.objects.update_or_create(user=user, defaults={"language": language})


@transaction.atomic
def project_create(
    *,
    actor: AbstractBaseUser,
    name: str,
    owner: AbstractBaseUser,
    description: str = "",
    language: str = Language.JAVA,
    gitlab_repository: str = "",
    remote_addr: str | None = None,
) -> Project:
    project = Project(
        name=name,
        owner=owner,
        description=description,
        language=language,
        gitlab_repository=gitlab_repository,
    )
    project.full_clean()
    project.save()
    ProjectMember.objects.create(project=project, user=owner, role=Role.OWNER)
    audit_record(
        actor=actor,
        verb="project.create",
        target=project,
        project=project,
        changes={"name": name, "owner": owner.get_username(), "language": language},
        remote_addr=remote_addr,
    )
    return project


@transaction.atomic
def member_set(
    *,
    actor: AbstractBaseUser,
    project: Project,
    user: AbstractBaseUser,
    role: str,
    prod_terminal: bool = False,
    remote_addr: str | None = None,
) -> ProjectMember:
    """Add a member or change their role; recorded with the old and new values."""
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}.")
    member = ProjectMember.objects.select_for_update().filter(project=project, user=user).first()
    before = {"role": member.role, "prod_terminal": member.prod_terminal} if member else {}
    after = {"role": role, "prod_terminal": prod_terminal}
    if before == after:
        return member
    member, _ = ProjectMember.objects.update_or_create(project=project, user=user, defaults=after)
    audit_record(
        actor=actor,
        verb="member.set",
        target=member,
        project=project,
        changes={"user": user.get_username(), **{k: [before.get(k), v] for k, v in after.items()}},
        remote_addr=remote_addr,
    )
    return member
