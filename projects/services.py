from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from observability.services import audit_record
from projects.access import Action, check
from projects.choices import Language, Role
from projects.models import Project, ProjectMember, UserProfile

# Names that collide with the portal's own URLs under /projects/.
RESERVED_NAMES = frozenset({"new"})


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
    if name in RESERVED_NAMES:
        raise ValidationError({"name": _("%(name)s is reserved; choose another name.") % {"name": name}})
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


@transaction.atomic
def member_remove(
    *, actor: AbstractBaseUser, project: Project, user: AbstractBaseUser, remote_addr: str | None = None
) -> None:
    member = ProjectMember.objects.select_for_update().filter(project=project, user=user).first()
    if member is None:
        return
    if user.pk == project.owner_id:
        raise ValidationError(_("The owner cannot be removed; make someone else the owner first."))
    member.delete()
    audit_record(
        actor=actor,
        verb="member.remove",
        target=project,
        project=project,
        changes={"user": user.get_username(), "role": [member.role, None]},
        remote_addr=remote_addr,
    )


# The release policy people may change after creation; everything else about a project is fixed at birth.
SETTINGS_FIELDS = ("require_tester_confirmation", "auto_rollback")


@transaction.atomic
def project_update_settings(
    *,
    actor: AbstractBaseUser,
    project: Project,
    require_tester_confirmation: bool | None = None,
    auto_rollback: bool | None = None,
    remote_addr: str | None = None,
) -> Project:
    """Change a project's release policy (owner or ops); ``None`` keeps a setting. Recorded with the old
    and new values."""
    check(actor, Action.EDIT_PROJECT, project)
    project = Project.objects.select_for_update().get(pk=project.pk)
    wanted = {"require_tester_confirmation": require_tester_confirmation, "auto_rollback": auto_rollback}
    changes = {
        name: [getattr(project, name), value]
        for name, value in wanted.items()
        if value is not None and value != getattr(project, name)
    }
    if not changes:
        return project
    for name, (_old, new) in changes.items():
        setattr(project, name, new)
    project.save(update_fields=[*changes, "updated_at"])
    audit_record(
        actor=actor,
        verb="project.settings",
        target=project,
        project=project,
        changes=changes,
        remote_addr=remote_addr,
    )
    return project
