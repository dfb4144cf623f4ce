from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from observability.services import audit_record
from projects.access import Action, check, is_ops
from projects.choices import GrantEnd, Language, Role
from projects.models import ProdTerminalGrant, Project, ProjectMember, UserProfile

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
    prod_terminal: bool | None = None,
    remote_addr: str | None = None,
) -> ProjectMember:
    """Add a member or change their role; recorded with the old and new values.

    ``prod_terminal`` True grants production terminals for the default duration, False revokes them,
    None leaves them alone. Only ops may change them (PermissionDenied otherwise), before anything is
    written."""
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}.")
    member = ProjectMember.objects.select_for_update().filter(project=project, user=user).first()
    grant = ProdTerminalGrant.objects.active().filter(project=project, user=user).first() if member else None
    terminal_change = prod_terminal is not None and prod_terminal != (grant is not None)
    if terminal_change and not is_ops(actor):
        raise PermissionDenied(
            _("Only ops may grant or revoke production terminal access; ask ops on the terminal grants page.")
        )
    if member is None or member.role != role:
        before = member.role if member else None
        member, _created = ProjectMember.objects.update_or_create(
            project=project, user=user, defaults={"role": role}
        )
        audit_record(
            actor=actor,
            verb="member.set",
            target=member,
            project=project,
            changes={"user": user.get_username(), "role": [before, role]},
            remote_addr=remote_addr,
        )
    if terminal_change and prod_terminal:
        terminal_grant_create(actor=actor, project=project, user=user, remote_addr=remote_addr)
    elif terminal_change:
        terminal_grant_revoke(actor=actor, grant=grant, remote_addr=remote_addr)
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
    # A grant ends with the membership, so someone added again does not silently get prod shells back.
    for grant in ProdTerminalGrant.objects.open().select_for_update().filter(project=project, user=user):
        _grant_end(grant, reason=GrantEnd.REVOKED, actor=actor, remote_addr=remote_addr)


# --- production terminal grants ---------------------------------------------------------------


def _grant_changes(grant: ProdTerminalGrant, **extra) -> dict:
    return {
        "user": grant.user.get_username(),
        "granted_by": grant.granted_by.get_username() if grant.granted_by else None,
        "expires_at": grant.expires_at.isoformat(),
        **extra,
    }


def _grant_end(
    grant: ProdTerminalGrant,
    *,
    reason: str,
    actor: AbstractBaseUser | None,
    remote_addr: str | None = None,
    now: datetime | None = None,
) -> None:
    """End a locked open grant and record why. An expired grant ends at its expiry, whoever notices."""
    now = now or timezone.now()
    if grant.expires_at <= now:
        reason, actor = GrantEnd.EXPIRED, None
    grant.ended_at = grant.expires_at if reason == GrantEnd.EXPIRED else now
    grant.end_reason = reason
    grant.ended_by = actor if actor is not None and actor.is_authenticated else None
    grant.save(update_fields=["ended_at", "end_reason", "ended_by"])
    audit_record(
        actor=actor,
        verb=f"prod_terminal.{reason}",
        target=grant,
        project=grant.project,
        changes=_grant_changes(grant, ended_at=grant.ended_at.isoformat()),
        remote_addr=remote_addr,
    )


def grant_hours_check(hours: int | None) -> int:
    """The duration of a grant in hours: the default when None; ValidationError past the maximum."""
    if hours is None:
        return settings.PROD_TERMINAL_GRANT_HOURS
    if not 1 <= hours <= settings.PROD_TERMINAL_GRANT_MAX_HOURS:
        raise ValidationError(
            {
                "hours": _("Grant between 1 and %(max)s hours.")
                % {"max": settings.PROD_TERMINAL_GRANT_MAX_HOURS}
            }
        )
    return hours


@transaction.atomic
def terminal_grant_create(
    *,
    actor: AbstractBaseUser,
    project: Project,
    user: AbstractBaseUser,
    hours: int | None = None,
    remote_addr: str | None = None,
) -> ProdTerminalGrant:
    """Let a member open production terminals of the project for ``hours`` (ops only).

    Granting someone who already holds a grant replaces it (the old row stays, ended as replaced)."""
    if not is_ops(actor):
        raise PermissionDenied(_("Only ops may grant production terminal access."))
    hours = grant_hours_check(hours)
    # Locking the membership serialises grants for one person (the open-grant constraint stays whole).
    if not ProjectMember.objects.select_for_update().filter(project=project, user=user).exists():
        raise ValidationError(
            {
                "username": _("%(user)s is not a member of %(project)s.")
                % {"user": user.get_username(), "project": project.name}
            }
        )
    now = timezone.now()
    replaced = None
    for old in ProdTerminalGrant.objects.open().select_for_update().filter(project=project, user=user):
        if old.expires_at > now:
            replaced = old
        _grant_end(old, reason=GrantEnd.REPLACED, actor=actor, remote_addr=remote_addr, now=now)
    grant = ProdTerminalGrant.objects.create(
        project=project,
        user=user,
        granted_by=actor,
        granted_at=now,
        expires_at=now + timedelta(hours=hours),
    )
    audit_record(
        actor=actor,
        verb="prod_terminal.granted",
        target=grant,
        project=project,
        changes=_grant_changes(grant, hours=hours, replaces=replaced.pk if replaced else None),
        remote_addr=remote_addr,
    )
    return grant


@transaction.atomic
def terminal_grant_revoke(
    *, actor: AbstractBaseUser, grant: ProdTerminalGrant, remote_addr: str | None = None
) -> ProdTerminalGrant:
    """End a grant now (ops only). An ended grant is left as it is; one past its expiry is recorded
    as expired instead, so every grant has exactly one end."""
    if not is_ops(actor):
        raise PermissionDenied(_("Only ops may revoke production terminal access."))
    grant = ProdTerminalGrant.objects.select_for_update().select_related("project", "user").get(pk=grant.pk)
    if grant.ended_at is None:
        _grant_end(grant, reason=GrantEnd.REVOKED, actor=actor, remote_addr=remote_addr)
    return grant


def terminal_grants_expire(*, now: datetime | None = None) -> int:
    """Record the end of every grant past its expiry (the beat task). Access never waits for this:
    the access check compares with the clock. Each expiry is recorded once: the row is locked and an
    ended grant is no longer open."""
    now = now or timezone.now()
    ended = 0
    with transaction.atomic():
        due = (
            ProdTerminalGrant.objects.open()
            .filter(expires_at__lte=now)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("project", "user", "granted_by")
        )
        for grant in due:
            _grant_end(grant, reason=GrantEnd.EXPIRED, actor=None, now=now)
            ended += 1
    return ended


# The release policy people may change after creation; everything else about a project is fixed at birth.
SETTINGS_FIELDS = (
    "require_tester_confirmation",
    "auto_rollback",
    "verification_window_seconds",
    "verification_min_requests",
    "verification_error_points",
    "verification_error_factor",
    "verification_latency_ms",
    "verification_latency_factor",
    "message_language",
)


@transaction.atomic
def project_update_settings(
    *,
    actor: AbstractBaseUser,
    project: Project,
    require_tester_confirmation: bool | None = None,
    auto_rollback: bool | None = None,
    message_language: str | None = None,
    verification_window_seconds: int | None = None,
    verification_min_requests: int | None = None,
    verification_error_points: float | None = None,
    verification_error_factor: float | None = None,
    verification_latency_ms: int | None = None,
    verification_latency_factor: float | None = None,
    remote_addr: str | None = None,
) -> Project:
    """Change a project's release policy (owner or ops); ``None`` keeps a setting. Recorded with the old
    and new values. The values are validated by the model's validators (the form and the API share them)."""
    check(actor, Action.EDIT_PROJECT, project)
    project = Project.objects.select_for_update().get(pk=project.pk)
    wanted = {
        "require_tester_confirmation": require_tester_confirmation,
        "auto_rollback": auto_rollback,
        "message_language": message_language,
        "verification_window_seconds": verification_window_seconds,
        "verification_min_requests": verification_min_requests,
        "verification_error_points": verification_error_points,
        "verification_error_factor": verification_error_factor,
        "verification_latency_ms": verification_latency_ms,
        "verification_latency_factor": verification_latency_factor,
    }
    changes = {
        name: [getattr(project, name), value]
        for name, value in wanted.items()
        if value is not None and value != getattr(project, name)
    }
    if not changes:
        return project
    for name, (_old, new) in changes.items():
        setattr(project, name, new)
    project.clean_fields(exclude=[f.name for f in Project._meta.fields if f.name not in changes])
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
