"""Configuration changes of a running environment: checked in the request, applied by a task.

The request validates the edit and dry-runs it (config_plan), then records a ConfigChange (queued) with
the audit event in one transaction and queues clusters.tasks.apply_config_change on commit. The task
claims the change (queued → applying), applies the objects with server-side apply, stores the new
configuration on the environment, follows the rollout, and ends the change applied or failed. Every step
is logged on the change and announced on the project's live stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _

from clusters.choices import ACTIVE_CONFIG_CHANGE_STATUSES, ConfigChangeStatus
from clusters.models import ConfigChange, ProjectEnvironment
from clusters.selectors.clusters import cluster_log_pipeline
from clusters.selectors.environments import EnvironmentRef, config_version
from clusters.services.common import rollout_reporter
from clusters.services.dashboards import dashboard_request_sync
from clusters.services.environments import ConfigPlan, config_plan, config_version_check
from clusters.services.workload import had_env_secret, keep_live_fields, objects_to_apply
from clusters.tasks import apply_config_change as apply_config_change_task
from clusters.workload import manifests, secret_env
from clusters.workload.request import build_spec, log_secret_values
from integrations.errors import IntegrationError, Invalid
from observability.services import audit_record
from opsportal import runs
from opsportal.errors import StateConflict
from opsportal.notices import Notice, NoticeKind, notice_emit

DIFF_LIMIT = 200_000


# --- in the request ------------------------------------------------------------------------------------


def config_change_create(
    *,
    actor,
    ref: EnvironmentRef,
    request: dict,
    overrides: dict | None = None,
    secret_env_vars: dict | None = None,
    remote_addr: str | None = None,
    version: str | None = None,
) -> tuple[ConfigPlan, ConfigChange | None]:
    """Validate and dry-run an edit, then record it as a queued change for the worker to apply.

    Returns the plan and the change, or no change when the edit changes nothing. Raises ValidationError
    for an invalid edit (nothing is written), and StateConflict while another change of the environment
    is queued or applying, or when ``version`` (the configuration the editor loaded) is stale."""
    plan = config_plan(
        actor=actor,
        ref=ref,
        request=request,
        overrides=overrides,
        secret_env_vars=secret_env_vars,
        version=version,
    )
    if not plan.changed:
        return plan, None
    with transaction.atomic():
        # The environment's row lock serialises two edits racing past the check below.
        env = ProjectEnvironment.objects.select_for_update().get(pk=ref.environment.pk)
        # The plan merged the edit over the configuration read before the lock: it must still be current.
        config_version_check(env, config_version(ref.environment.spec))
        active = (
            ConfigChange.objects.filter(environment=env, status__in=ACTIVE_CONFIG_CHANGE_STATUSES)
            .values_list("pk", flat=True)
            .first()
        )
        if active is not None:
            raise StateConflict(
                _("Configuration change #%(id)s is in progress; wait until it ends, then apply again.")
                % {"id": active}
            )
        change = ConfigChange.objects.create(
            environment=env,
            actor=actor,
            request=plan.request,
            overrides=plan.overrides,
            changes=plan.changes,
            diff=plan.diff[:DIFF_LIMIT],
            secret_env=secret_env.dump(plan.secret_values),
            remote_addr=remote_addr,
        )
        audit_record(
            actor=actor,
            verb="environment.config.update",
            target=env,
            project=ref.project,
            changes={**plan.changes, "diff": plan.diff[:20000], "config_change": change.pk},
            remote_addr=remote_addr,
        )
        change.project = ref.project
        runs.publish(change)
        runs.queue(apply_config_change_task, change_id=change.pk, run_token=str(change.run_token))
    return plan, change


# --- in the worker -------------------------------------------------------------------------------------


APPLY = runs.Step(
    ConfigChange, ConfigChangeStatus.QUEUED, ConfigChangeStatus.APPLYING, "environment.config.apply.start"
)


@dataclass
class ApplyOutcome:
    ok: bool
    message: str = ""


def config_change_progress(*, change_id: int, run_token: str, message: str) -> None:
    """Append a line to the change's log and announce it (only while this run applies it)."""
    runs.progress(ConfigChange, change_id, run_token, message)


def _finish(change_id: int, run_token: str, outcome: ApplyOutcome) -> None:
    with transaction.atomic():
        change = runs.locked_run(ConfigChange, change_id, run_token)
        if change is None:
            return  # ended already: a late or duplicate message never flips the outcome
        change.secret_env = ""  # the values now live on the environment (or were never applied)
        if outcome.ok:
            runs.finish(change, ConfigChangeStatus.APPLIED, verb="environment.config.apply.succeed")
        else:
            runs.finish(
                change,
                ConfigChangeStatus.FAILED,
                verb="environment.config.apply.fail",
                error=outcome.message,
            )


@runs.on_end(ConfigChange)
def _notify_author(change: ConfigChange, status: str) -> None:
    """Its author learns how the change ended (a workflow notice, sent once the transaction commits)."""
    failed = status == ConfigChangeStatus.FAILED
    env = change.environment
    notice_emit(
        Notice(
            kind=NoticeKind.CONFIG_FAILED if failed else NoticeKind.CONFIG_APPLIED,
            project_id=env.project_id,
            environment=env.environment,
            path=reverse("environment-config-change", args=[change.project.name, env.environment, change.pk]),
            user_ids=(change.actor_id,),
            context={"change": change.pk, **({"error": change.error[:300]} if failed else {})},
        )
    )


def config_change_fail(*, change_id: int, run_token: str, error: str) -> None:
    """Give up on a change (transient errors outlasted the retries, a bug, or a lost worker)."""
    message = _("%(error)s. Check the cluster on the Clusters page, then apply the change again.") % {
        "error": error.rstrip(".")
    }
    _finish(change_id, run_token, ApplyOutcome(ok=False, message=message))


def _kube_message(exc: IntegrationError) -> str:
    causes = getattr(exc, "causes", None) or []
    detail = "; ".join(f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes)
    return detail or str(exc)


def _apply_and_wait(change: ConfigChange, run_token: str) -> ApplyOutcome:
    def progress(message: str) -> None:
        config_change_progress(change_id=change.pk, run_token=run_token, message=message)

    env = ProjectEnvironment.objects.select_related("cluster", "project").get(pk=change.environment_id)
    ref = EnvironmentRef(project=env.project, environment=env)
    secrets = secret_env.load(change.secret_env)
    # The pipeline as it is now: a changed address or password since the plan is what gets applied.
    log_pipeline = cluster_log_pipeline(env.cluster)
    values = {**secrets, **log_secret_values(request=change.request, log_pipeline=log_pipeline)}
    spec = build_spec(
        project=env.project,
        environment=env.environment,
        cluster=env.cluster,
        request=change.request,
        overrides=change.overrides,
        secret_env_digest=secret_env.digest(values),
        log_pipeline=log_pipeline,
    )
    objects = objects_to_apply(spec, manifests.render(spec), had_secrets=had_env_secret(env))
    live_objects = []
    with ref.client() as client:
        for obj in objects:
            kind, name = obj["kind"], obj["metadata"]["name"]
            progress(_("Applying %(kind)s %(name)s") % {"kind": kind, "name": name})
            desired = keep_live_fields(client, obj)
            if kind == "Secret":
                desired = manifests.secret_with_values(desired, values)
            client.apply(desired)
            live_objects.append({"kind": kind, "name": name, "namespace": ref.namespace})
        with transaction.atomic():
            locked_env = ProjectEnvironment.objects.select_for_update().get(pk=env.pk)
            locked_env.spec = {"request": change.request, "overrides": change.overrides}
            locked_env.secret_env = secret_env.dump(secrets)
            locked_env.live_objects = live_objects
            locked_env.save(update_fields=["spec", "secret_env", "live_objects"])
        progress(_("Saved the new configuration of the environment"))
        progress(_("Waiting for the Deployment rollout"))
        result = client.wait_for_deployment(
            ref.namespace,
            ref.name,
            timeout=settings.OPSPORTAL_ROLLOUT_TIMEOUT,
            on_progress=rollout_reporter(progress),
        )
    if result.succeeded:
        progress(_("The Deployment rolled out"))
        if _scrape_changed(env.spec.get("request") or {}, change.request):
            dashboard_request_sync(environment=env, reason="metrics path or port changed")
        return ApplyOutcome(ok=True)
    return ApplyOutcome(
        ok=False,
        message=_(
            "The rollout did not complete (%(cause)s: %(message)s). The objects are applied; look at the "
            "pods and events on the environment page, fix the configuration and apply again."
        )
        % {"cause": result.reason or result.state, "message": result.message},
    )


# The request fields that decide what Prometheus scrapes, and so what the dashboard shows.
SCRAPE_FIELDS = ("metrics_path", "metrics_port")


def _scrape_changed(before: dict, after: dict) -> bool:
    return any(before.get(name) != after.get(name) for name in SCRAPE_FIELDS)


def config_change_apply(*, change_id: int, run_token: str) -> None:
    """The task's work: apply a queued change and follow its rollout.

    Raises a transient IntegrationError for the task to retry (the retry takes the applying change again);
    permanent failures end the change with the cause."""
    change = APPLY.claim(change_id, run_token)
    if change is None:
        return
    try:
        outcome = _apply_and_wait(change, run_token)
    except ValidationError as exc:
        outcome = ApplyOutcome(ok=False, message="; ".join(exc.messages))
    except IntegrationError as exc:
        if not exc.permanent:
            config_change_progress(
                change_id=change_id,
                run_token=run_token,
                message=_("Temporary failure, will retry: %(e)s") % {"e": exc},
            )
            raise
        hint = (
            _("Fix the configuration and apply again.")
            if isinstance(exc, Invalid)
            else _("Check the cluster's credentials and permissions on the Clusters page, then apply again.")
        )
        outcome = ApplyOutcome(
            ok=False,
            message=_("The cluster refused the change: %(e)s. %(hint)s")
            % {"e": _kube_message(exc), "hint": hint},
        )
    _finish(change_id, run_token, outcome)


def config_changes_fail_stuck(*, older_than_seconds: int) -> int:
    """Fail changes whose worker vanished: no progress for longer than any run may take."""
    message = _(
        "The worker applying this change stopped responding. Check the environment page, "
        "then apply the change again."
    )
    return runs.fail_stuck(
        ConfigChange,
        older_than_seconds,
        lambda pk, token: _finish(pk, token, ApplyOutcome(ok=False, message=message)),
    )


def config_changes_resume_stale() -> tuple[int, int]:
    """Re-apply changes whose worker was lost (server-side apply is idempotent); fail those past resuming."""
    return runs.resume_stale(
        ConfigChange,
        step_task=lambda change: (
            apply_config_change_task,
            {"change_id": change.pk, "run_token": str(change.run_token)},
        ),
        give_up=lambda pk, token, error: _finish(pk, token, ApplyOutcome(ok=False, message=error)),
        verb="environment.config.apply.resume",
        queued_statuses=frozenset({ConfigChangeStatus.QUEUED}),
    )
