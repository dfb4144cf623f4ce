"""Onboarding tickets: filing, review, and provisioning onto Kubernetes.

Every status change locks the ticket row, checks TICKET_TRANSITIONS, records an AuditEvent in the same
transaction and announces itself on the project's live stream after commit.
"""

import logging
from dataclasses import dataclass, field
from functools import partial

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import Cluster, ProjectEnvironment
from clusters.selectors.clusters import cluster_log_pipeline, log_pipeline_exists
from clusters.services.common import rollout_reporter
from clusters.services.environments import environment_record_provisioned
from clusters.services.workload import had_env_secret, keep_live_fields, objects_to_apply
from clusters.workload import manifests, secret_env
from clusters.workload.request import build_spec, env_secret_values, logs_to_pipeline, refuse_prod_image
from deploys.choices import EDITABLE_BY_FILER, EDITABLE_BY_OPS, OPEN_TICKET_STATUSES, TicketStatus
from deploys.models import OnboardingTicket
from deploys.selectors import approval_cluster, ticket_stale_message, ticket_version
from deploys.tasks import provision_ticket as provision_ticket_task
from integrations.errors import IntegrationError
from observability.services import audit_record, changes_between
from opsportal import runs
from opsportal.errors import StateConflict
from opsportal.notices import Notice, NoticeKind, notice_emit
from projects.access import Action, can, check, is_ops
from projects.models import Project

logger = logging.getLogger(__name__)

# --- helpers ---------------------------------------------------------------------------------


def _refuse_without_log_pipeline(ticket: OnboardingTicket) -> None:
    """A service that logs to the pipeline runs only on a cluster that has one. The cluster is chosen at
    approval, where build_spec checks it; before that at least one cluster of the environment must have a
    pipeline, so the requester learns it at submission instead of ops at approval."""
    if not logs_to_pipeline(ticket.request) or ticket.cluster_id is not None:
        return
    if not log_pipeline_exists(environment=ticket.environment):
        message = _(
            "No %(env)s cluster has a log pipeline yet: ops must set one up before a service can send its "
            "logs there, or turn this off."
        ) % {"env": ticket.environment}
        raise ValidationError({"logs_to_pipeline": message})


def _submit(ticket: OnboardingTicket, *, actor, remote_addr: str | None) -> None:
    """Move a ticket to submitted and tell ops (a workflow notice, sent once this transaction commits)."""
    _refuse_without_log_pipeline(ticket)
    runs.move(ticket, TicketStatus.SUBMITTED, actor=actor, verb="ticket.submit", remote_addr=remote_addr)
    notice_emit(
        Notice(
            kind=NoticeKind.TICKET_SUBMITTED,
            project_id=ticket.project_id,
            environment=ticket.environment,
            path=reverse("ticket-detail", args=[ticket.project.name, ticket.pk]),
            actor_id=actor.pk,
            context={"ticket": ticket.pk, "by": actor.get_username()},
        )
    )


def ticket_spec(ticket: OnboardingTicket) -> manifests.WorkloadSpec:
    """The full WorkloadSpec of a ticket; raises ValidationError with field errors when it is invalid."""
    refuse_prod_image(environment=ticket.environment, request=ticket.request)
    log_pipeline = cluster_log_pipeline(ticket.cluster)
    values = env_secret_values(stored=ticket.secret_env, request=ticket.request, log_pipeline=log_pipeline)
    return build_spec(
        project=ticket.project,
        environment=ticket.environment,
        cluster=ticket.cluster,
        request=ticket.request,
        overrides=ticket.overrides,
        secret_env_digest=secret_env.digest(values),
        log_pipeline=log_pipeline,
    )


def ticket_secret_values(ticket: OnboardingTicket) -> dict:
    """The values of the ticket's env Secret on its cluster (secret variables and the pipeline's URL)."""
    return env_secret_values(
        stored=ticket.secret_env, request=ticket.request, log_pipeline=cluster_log_pipeline(ticket.cluster)
    )


def check_ticket_change(actor, ticket: OnboardingTicket) -> None:
    """Filing is per member; changing a filed ticket is for its requester, the project's owner and ops."""
    check(actor, Action.FILE_TICKET, ticket.project)
    if ticket.created_by_id != actor.pk and not can(actor, Action.EDIT_PROJECT, ticket.project):
        raise PermissionDenied(
            _("Only the ticket's requester, the project's owner or ops may change ticket #%(id)s.")
            % {"id": ticket.pk}
        )


@transaction.atomic
def ticket_create(
    *,
    actor,
    project: Project,
    environment: str,
    request: dict,
    secret_env_vars: dict | None = None,
    submit: bool = False,
    remote_addr: str | None = None,
) -> OnboardingTicket:
    """File a ticket. ``secret_env_vars`` ({NAME: value}) are stored encrypted; the request gets their
    names."""
    check(actor, Action.FILE_TICKET, project)
    if not isinstance(request, dict):
        raise ValidationError({"request": _("Expected an object of fields.")})
    refuse_prod_image(environment=environment, request=request)
    secrets = secret_env.merge({}, secret_env_vars)
    request = secret_env.with_names(request, secrets)
    build_spec(project=project, environment=environment, cluster=None, request=request, overrides={})
    # Lock the project so two people filing at once cannot both pass the "one open ticket" check.
    Project.objects.select_for_update().get(pk=project.pk)
    open_ticket = OnboardingTicket.objects.filter(
        project=project, environment=environment, status__in=OPEN_TICKET_STATUSES
    ).first()
    if open_ticket is not None:
        raise StateConflict(
            _("Ticket #%(id)s for %(env)s is still open; finish or withdraw it first.")
            % {"id": open_ticket.pk, "env": environment}
        )
    ticket = OnboardingTicket.objects.create(
        project=project,
        environment=environment,
        created_by=actor,
        request=request,
        secret_env=secret_env.dump(secrets),
    )
    audit_record(
        actor=actor,
        verb="ticket.create",
        target=ticket,
        project=project,
        changes=request,
        remote_addr=remote_addr,
    )
    if submit:
        _submit(ticket, actor=actor, remote_addr=remote_addr)
    else:
        runs.publish(ticket)
    return ticket


@transaction.atomic
def ticket_update(
    *,
    actor,
    ticket_id: int,
    request: dict | None = None,
    overrides: dict | None = None,
    secret_env_vars: dict | None = None,
    remote_addr: str | None = None,
    version: str | None = None,
) -> OnboardingTicket:
    """Change a ticket before approval: its requester while it is a draft, ops until approval.
    Only ops may override guardrail defaults. ``secret_env_vars`` are changes (see secret_env.merge).
    ``version``, when given, is the ticket version the editor loaded: StateConflict, naming what changed,
    if someone else edited it since. The diff is audited, with the names of changed secrets and never
    their values."""
    ticket = runs.locked(OnboardingTicket, ticket_id)
    check(actor, Action.VIEW, ticket.project)
    if is_ops(actor):
        allowed = ticket.status in EDITABLE_BY_OPS
    else:
        check_ticket_change(actor, ticket)
        allowed = ticket.status in EDITABLE_BY_FILER
        if overrides is not None and overrides != ticket.overrides:
            raise ValidationError({"overrides": _("Only ops can override guardrail defaults.")})
    if not allowed:
        raise StateConflict(
            _("Ticket #%(id)s is %(status)s and can no longer be edited.")
            % {"id": ticket.pk, "status": ticket.get_status_display()}
        )
    if version is not None and version != ticket_version(ticket):
        raise StateConflict(ticket_stale_message(ticket, version))
    if request is not None and not isinstance(request, dict):
        raise ValidationError({"request": _("Expected an object of fields.")})
    old_secrets = secret_env.load(ticket.secret_env)
    new_secrets = secret_env.merge(old_secrets, secret_env_vars)
    new_request = secret_env.with_names(ticket.request if request is None else request, new_secrets)
    new_overrides = ticket.overrides if overrides is None else overrides
    refuse_prod_image(environment=ticket.environment, request=new_request)
    build_spec(
        project=ticket.project,
        environment=ticket.environment,
        cluster=ticket.cluster,
        request=new_request,
        overrides=new_overrides,
        log_pipeline=cluster_log_pipeline(ticket.cluster),
    )
    diff = changes_between(ticket.request, new_request)
    override_diff = changes_between(ticket.overrides, new_overrides)
    secret_diff = secret_env.changes(old_secrets, new_secrets)
    if not diff and not override_diff and not secret_diff:
        return ticket
    ticket.request, ticket.overrides = new_request, new_overrides
    ticket.secret_env = secret_env.dump(new_secrets)
    ticket.save()
    changes = {**diff, **{f"override:{k}": v for k, v in override_diff.items()}}
    if secret_diff:
        changes["secret_env_changes"] = secret_diff
    audit_record(
        actor=actor,
        verb="ticket.edit",
        target=ticket,
        project=ticket.project,
        changes=changes,
        remote_addr=remote_addr,
    )
    runs.publish(ticket)
    return ticket


@transaction.atomic
def ticket_submit(*, actor, ticket_id: int, remote_addr: str | None = None) -> OnboardingTicket:
    ticket = runs.locked(OnboardingTicket, ticket_id)
    check_ticket_change(actor, ticket)
    if ticket.status == TicketStatus.SUBMITTED:
        return ticket
    ticket_spec(ticket)
    _submit(ticket, actor=actor, remote_addr=remote_addr)
    return ticket


@transaction.atomic
def ticket_withdraw(*, actor, ticket_id: int, remote_addr: str | None = None) -> OnboardingTicket:
    ticket = runs.locked(OnboardingTicket, ticket_id)
    check_ticket_change(actor, ticket)
    if ticket.status == TicketStatus.DRAFT:
        return ticket
    runs.move(ticket, TicketStatus.DRAFT, actor=actor, verb="ticket.withdraw", remote_addr=remote_addr)
    return ticket


@transaction.atomic
def ticket_reject(*, actor, ticket_id: int, reason: str, remote_addr: str | None = None) -> OnboardingTicket:
    ticket = runs.locked(OnboardingTicket, ticket_id)
    check(actor, Action.APPROVE_TICKET, ticket.project)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Say why the ticket is rejected.")})
    if ticket.status == TicketStatus.REJECTED:
        return ticket
    ticket.rejection_reason = reason[:2000]
    ticket.reviewed_by, ticket.reviewed_at = actor, timezone.now()
    runs.move(
        ticket,
        TicketStatus.REJECTED,
        actor=actor,
        verb="ticket.reject",
        changes={"reason": reason},
        remote_addr=remote_addr,
    )
    return ticket


def _pick_cluster(ticket: OnboardingTicket, cluster_id: int | None) -> Cluster:
    clusters = Cluster.objects.filter(environment=ticket.environment)
    if cluster_id is not None:
        cluster = clusters.filter(pk=cluster_id).first()
        if cluster is None:
            raise ValidationError({"cluster": _("Choose a %(env)s cluster.") % {"env": ticket.environment}})
        return cluster
    cluster = approval_cluster(ticket=ticket)
    if cluster is None:
        raise ValidationError(
            {
                "cluster": _("Choose which %(env)s cluster to use.") % {"env": ticket.environment}
                if clusters.exists()
                else _("No %(env)s cluster is registered yet; add one under Clusters.")
                % {"env": ticket.environment}
            }
        )
    return cluster


@transaction.atomic
def ticket_approve(
    *, actor, ticket_id: int, cluster_id: int | None = None, remote_addr: str | None = None
) -> OnboardingTicket:
    """Approve a submitted ticket, or retry a failed one, and queue its provisioning."""
    ticket = runs.locked(OnboardingTicket, ticket_id)
    check(actor, Action.APPROVE_TICKET, ticket.project)
    if ticket.status in (TicketStatus.APPROVED, TicketStatus.PROVISIONING):
        return ticket
    if not ticket.can_move_to(TicketStatus.APPROVED):
        raise StateConflict(
            _("Ticket #%(id)s is %(status)s and cannot be approved.")
            % {"id": ticket.pk, "status": ticket.get_status_display()}
        )
    verb = "ticket.retry" if ticket.status == TicketStatus.FAILED else "ticket.approve"
    cluster = _pick_cluster(ticket, cluster_id)
    ticket.cluster = cluster
    ticket_spec(ticket)
    ticket.reviewed_by, ticket.reviewed_at = actor, timezone.now()
    # A new run: its own token, log and times.
    ticket.error, ticket.error_causes, ticket.progress = "", [], []
    ticket.started_at = ticket.finished_at = None
    token = ticket.new_run_token()
    runs.move(
        ticket,
        TicketStatus.APPROVED,
        actor=actor,
        verb=verb,
        changes={"cluster": cluster.name},
        remote_addr=remote_addr,
    )
    runs.queue(provision_ticket_task, ticket_id=ticket.pk, run_token=str(token))
    return ticket


# --- provisioning ----------------------------------------------------------------------------

PROVISION = runs.Step(
    OnboardingTicket, TicketStatus.APPROVED, TicketStatus.PROVISIONING, "ticket.provision.start"
)


@dataclass
class ProvisionOutcome:
    ok: bool
    message: str = ""
    causes: list = field(default_factory=list)


def ticket_progress(*, ticket_id: int, run_token: str, message: str) -> None:
    runs.progress(OnboardingTicket, ticket_id, run_token, message)


def _finish(ticket_id: int, run_token: str, outcome: ProvisionOutcome, live_objects: list) -> None:
    with transaction.atomic():
        ticket = runs.locked_run(OnboardingTicket, ticket_id, run_token)
        if ticket is None:
            return
        ticket.live_objects = live_objects
        if outcome.ok:
            ticket.error_causes = []
            environment_record_provisioned(
                project=ticket.project,
                environment=ticket.environment,
                cluster=ticket.cluster,
                request=ticket.request,
                overrides=ticket.overrides,
                secret_env_stored=ticket.secret_env,
                live_objects=live_objects,
                at=timezone.now(),
            )
            runs.finish(
                ticket,
                TicketStatus.ACTIVE,
                verb="ticket.provision.succeed",
                changes={"objects": [f"{o['kind']}/{o['name']}" for o in live_objects]},
            )
        else:
            ticket.error_causes = outcome.causes
            runs.finish(ticket, TicketStatus.FAILED, verb="ticket.provision.fail", error=outcome.message)


def ticket_provision_failed(*, ticket_id: int, run_token: str, error: str) -> None:
    """Give up on a run (transient errors outlasted the retries, or the worker was lost)."""
    _finish(ticket_id, run_token, ProvisionOutcome(ok=False, message=error), live_objects=[])


def _apply_and_wait(
    ticket_id: int,
    run_token: str,
    client,
    spec,
    objects: list[dict],
    live_objects: list,
    secrets: dict[str, str],
) -> ProvisionOutcome:
    def progress(message: str) -> None:
        ticket_progress(ticket_id=ticket_id, run_token=run_token, message=message)

    progress(_("Ensuring namespace %(ns)s") % {"ns": spec.namespace})
    client.ensure_namespace(spec.namespace, labels={"app.kubernetes.io/managed-by": "opsportal"})
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        progress(_("Applying %(kind)s %(name)s") % {"kind": kind, "name": name})
        if kind == "Secret":
            obj = manifests.secret_with_values(obj, secrets)
        client.apply(keep_live_fields(client, obj))
        live_objects.append({"kind": kind, "name": name, "namespace": spec.namespace})
    progress(_("Waiting for the Deployment to become available"))
    on_progress = rollout_reporter(progress)
    result = client.wait_for_deployment(
        spec.namespace, spec.project, timeout=settings.OPSPORTAL_ROLLOUT_TIMEOUT, on_progress=on_progress
    )
    if result.succeeded:
        return ProvisionOutcome(ok=True)
    return ProvisionOutcome(ok=False, message=f"{result.reason or result.state}: {result.message}")


def ticket_provision(*, ticket_id: int, run_token: str) -> None:
    """Apply the ticket's objects with server-side apply and wait for the Deployment.

    Raises a transient IntegrationError for the task to retry; permanent failures end the ticket."""
    from integrations.kubernetes.client import KubeClient

    # A redelivered or retried message of this run takes it again: applying is idempotent.
    ticket = PROVISION.claim(ticket_id, run_token)
    if ticket is None:
        return
    cluster = Cluster.objects.get(pk=ticket.cluster_id)
    ticket.cluster = cluster
    live_objects: list = []
    try:
        spec = ticket_spec(ticket)
        rendered = manifests.render(spec)
        with KubeClient.from_cluster(cluster) as client:
            secrets = ticket_secret_values(ticket)
            current = ProjectEnvironment.objects.filter(
                project=ticket.project, environment=ticket.environment
            ).first()
            objects = objects_to_apply(spec, rendered, had_secrets=had_env_secret(current))
            outcome = _apply_and_wait(ticket_id, run_token, client, spec, objects, live_objects, secrets)
    except ValidationError as exc:
        outcome = ProvisionOutcome(ok=False, message="; ".join(exc.messages))
    except IntegrationError as exc:
        if not exc.permanent:
            ticket_progress(
                ticket_id=ticket_id,
                run_token=run_token,
                message=_("Temporary failure, will retry: %(e)s") % {"e": exc},
            )
            raise
        outcome = ProvisionOutcome(ok=False, message=str(exc), causes=list(getattr(exc, "causes", []) or []))
    _finish(ticket_id, run_token, outcome, live_objects)


def tickets_fail_stuck(*, older_than_seconds: int) -> int:
    """Fail provisioning runs whose worker vanished (no progress for longer than any run may take)."""
    error = _("The provisioning worker stopped responding. Retry the ticket.")
    fail = partial(ticket_provision_failed, error=error)
    return runs.fail_stuck(
        OnboardingTicket, older_than_seconds, lambda pk, token: fail(ticket_id=pk, run_token=token)
    )


def tickets_resume_stale() -> tuple[int, int]:
    """Provision again the tickets whose worker was lost (provisioning applies idempotently)."""
    return runs.resume_stale(
        OnboardingTicket,
        step_task=lambda ticket: (
            provision_ticket_task,
            {"ticket_id": ticket.pk, "run_token": str(ticket.run_token)},
        ),
        give_up=lambda pk, token, error: ticket_provision_failed(ticket_id=pk, run_token=token, error=error),
        verb="ticket.provision.resume",
        queued_statuses=frozenset({TicketStatus.APPROVED}),
    )
