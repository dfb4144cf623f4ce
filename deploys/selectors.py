from django.db.models import QuerySet
from django.utils.translation import gettext as _

from clusters.models import Cluster, ProjectEnvironment
from deploys.models import OnboardingTicket
from observability.models import AuditEvent
from opsportal.versions import combine_changes, content_version, stale_message
from projects.access import visible_projects
from projects.models import Project


def tickets_for_project(*, project: Project) -> QuerySet[OnboardingTicket]:
    return project.tickets.select_related("created_by", "reviewed_by", "cluster")


def tickets_visible(*, user, status: str = "") -> QuerySet[OnboardingTicket]:
    tickets = OnboardingTicket.objects.filter(project__in=visible_projects(user)).select_related(
        "project", "created_by", "cluster"
    )
    return tickets.filter(status=status) if status else tickets


def approval_cluster(*, ticket: OnboardingTicket) -> Cluster | None:
    """The cluster approving the ticket uses when ops choose none: the one the environment already runs
    on, the ticket's own (a retry), or the only cluster of that environment; None when ops must choose."""
    environment = (
        ProjectEnvironment.objects.filter(project=ticket.project, environment=ticket.environment)
        .select_related("cluster")
        .first()
    )
    if environment and environment.cluster_id:
        return environment.cluster
    if ticket.cluster_id:
        return ticket.cluster
    candidates = list(Cluster.objects.filter(environment=ticket.environment)[:2])
    return candidates[0] if len(candidates) == 1 else None


def ticket_version(ticket: OnboardingTicket) -> str:
    """The version of a ticket's editable content, which an edit must name (see opsportal.versions)."""
    return content_version({"request": ticket.request, "overrides": ticket.overrides})


STALE_HISTORY = 50


def _undo(state: dict, changes: dict) -> None:
    for key, values in changes.items():
        if key == "secret_env_changes" or not (isinstance(values, list) and len(values) == 2):
            continue  # secret values are never in the audit; their names are in request.secret_env_names
        part, name = (
            ("overrides", key.removeprefix("override:")) if key.startswith("override:") else ("request", key)
        )
        if values[0] is None:
            state[part].pop(name, None)
        else:
            state[part][name] = values[0]


def ticket_stale_message(ticket: OnboardingTicket, version: str) -> str:
    """What changed in a ticket since the editor loaded ``version``, and by whom.

    Each edit's audit event holds {field: [old, new]}; undoing them newest first until the loaded version
    comes back gives the edits the editor missed. Not found (an audited value was redacted, or the history
    is longer): the latest edit is named."""
    state = {"request": dict(ticket.request), "overrides": dict(ticket.overrides)}
    edits = AuditEvent.objects.filter(
        verb="ticket.edit", target_type=OnboardingTicket._meta.label_lower, target_id=str(ticket.pk)
    ).order_by("-pk")
    missed = []
    for event in edits[:STALE_HISTORY]:
        missed.append(event)
        _undo(state, event.changes)
        if content_version(state) == version:
            break
    else:
        missed = missed[:1]
    missed.reverse()
    return stale_message(
        what=_("Ticket #%(id)s") % {"id": ticket.pk},
        changes=combine_changes([event.changes for event in missed]),
        authors=[event.actor_name for event in missed],
    )


def environments_for_project(*, project: Project) -> list[ProjectEnvironment]:
    return list(project.environments.select_related("cluster"))


def releases_for_project(*, project: Project):
    from deploys.models import Release

    return Release.objects.filter(project=project).select_related(
        "created_by", "confirmed_by", "promoted_from"
    )


def releases_visible(*, user, status: str = ""):
    from deploys.models import Release

    releases = Release.objects.filter(project__in=visible_projects(user)).select_related(
        "project", "created_by"
    )
    return releases.filter(status=status) if status else releases


def deployment_history(*, project: Project, environment: str):
    from deploys.models import DeploymentRecord

    return DeploymentRecord.objects.filter(project=project, environment=environment).select_related(
        "release", "actor"
    )


def release_steps(release) -> list[dict]:
    """The timeline of a release: each step with its state (done, current, failed or pending)."""
    from deploys.choices import ReleaseStatus

    if release.environment == "prod":
        order = [ReleaseStatus.SUBMITTED, ReleaseStatus.DEPLOYING, ReleaseStatus.DEPLOYED]
    else:
        order = [
            ReleaseStatus.SUBMITTED,
            ReleaseStatus.TAGGING,
            ReleaseStatus.BUILDING,
            ReleaseStatus.BUILT,
            ReleaseStatus.DEPLOYING,
            ReleaseStatus.DEPLOYED,
        ]
    ended_early = release.status in (ReleaseStatus.FAILED, ReleaseStatus.CANCELLED)
    reached = release.status if release.status in order else None
    if release.status == ReleaseStatus.ROLLED_BACK:
        reached = ReleaseStatus.DEPLOYED
    stopped_at = order.index(_step_that_ended(release, order)) if ended_early else None
    steps = []
    current_index = order.index(reached) if reached else None
    for index, status in enumerate(order):
        if stopped_at is not None:
            state = "done" if index < stopped_at else "failed" if index == stopped_at else "pending"
        elif current_index is not None:
            state = "done" if index < current_index or status == ReleaseStatus.DEPLOYED else "current"
            if index > current_index:
                state = "pending"
        else:
            state = "pending"
        steps.append({"status": status, "label": ReleaseStatus(status).label, "state": state})
    if ended_early:
        steps.append({"status": release.status, "label": release.get_status_display(), "state": "failed"})
    return steps


def _step_that_ended(release, order: list[str]) -> str:
    """The step a failed or cancelled release stopped in, from what it had produced by then."""
    from deploys.choices import ReleaseStatus

    if release.image_digest and ReleaseStatus.DEPLOYING in order:
        return ReleaseStatus.DEPLOYING
    if release.jenkins_queue_id or release.jenkins_build:
        return ReleaseStatus.BUILDING
    if ReleaseStatus.TAGGING in order and release.attempts:
        return ReleaseStatus.TAGGING
    return ReleaseStatus.SUBMITTED


def deployment_markers(*, environment: ProjectEnvironment, start, end) -> list[dict]:
    """The releases, promotions and rollbacks put on ``environment`` between ``start`` and ``end``, as
    the monitoring panels mark them (registered in DeploysConfig.ready): when each finished (or began,
    while it still rolls out), what it put there, how it ended, and a link to its release."""
    from django.db.models import Q
    from django.urls import reverse

    from deploys.models import DeploymentRecord

    records = (
        DeploymentRecord.objects.filter(
            project_id=environment.project_id, environment=environment.environment
        )
        .filter(
            Q(finished_at__range=(start, end)) | Q(finished_at__isnull=True, created_at__range=(start, end))
        )
        .select_related("release", "project")
        .order_by("created_at")[:200]
    )
    markers = []
    for record in records:
        version = record.release.version or record.image.rsplit("/", 1)[-1]
        label = f"{record.get_kind_display()} {version}"
        if record.outcome != "succeeded":
            label += f" ({record.get_outcome_display()})"
        markers.append(
            {
                "at": (record.finished_at or record.created_at).timestamp(),
                "kind": record.kind,
                "outcome": record.outcome,
                "label": label,
                "url": reverse("release-detail", args=[record.project.name, record.release_id]),
            }
        )
    return markers


def release_verification(release) -> dict:
    """What the release page and the API show of a release's post-release verification: the verdict, until
    when a pending one runs, and the numbers of both periods (error ratio as a fraction, p95 in seconds)."""
    from django.utils.dateparse import parse_datetime

    data = release.verification or {}

    def period(key: str) -> dict | None:
        numbers = data.get(key)
        if not isinstance(numbers, dict) or "requests" not in numbers:
            return None
        p95 = numbers.get("p95_seconds")
        return {
            "requests": round(numbers["requests"]),
            "errors": round(numbers.get("errors", 0)),
            "error_ratio": numbers.get("error_ratio", 0.0),
            "error_percent": round(numbers.get("error_ratio", 0.0) * 100, 2),
            "p95_seconds": p95,
            "p95_ms": round(p95 * 1000) if p95 is not None else None,
        }

    return {
        "status": release.verification_status,
        "label": release.get_verification_status_display(),
        "until": parse_datetime(data["due"]) if data.get("due") else None,
        "window_seconds": data.get("window_seconds"),
        "new": period("new"),
        "baseline": period("baseline"),
        "reasons": list(data.get("reasons") or []),
        "rollback": data.get("rollback", ""),
        "error": data.get("error", "") or data.get("skipped", ""),
        "verified_at": release.verified_at,
    }
